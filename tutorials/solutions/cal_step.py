"""Solution to notebook 08's third assembly: one whole CAL training step after warm-up.

Forward with the given noise; loss L = CE(all) + gamma sum_m CE({m}) + sum_m beta^m KL^m, with W measured on this
batch (assembly 1) unless given and beta^m = P.bottleneck_betas(W, beta0); the weighted KL and its gradients
(assembly 2); backward with the KL's gradients on mu and sigma; ``grads`` is the gradient of ``loss`` with W and the
betas held constant (before acceleration); then branch m's gradients times 1 + W^m and one plain SGD step.
In the notebook the two assemblies are the student's own ``my_weights_of_batch`` and ``my_kl_loss``, defined above
the step; here two stand-ins of those names call their solutions (only ``cal_step`` is pasted into a notebook).
"""

from mini_cal import layers as L


def my_weights_of_batch(P, model, params, out, y_onehot, h_y, temperature):
    """Stand-in for the notebook's assembly 1."""
    from solutions.capstone_weights import weights_of_batch

    return weights_of_batch(P, model, params, out, y_onehot, h_y, temperature)


def my_kl_loss(P, out, betas):
    """Stand-in for the notebook's assembly 2."""
    from solutions.capstone_kl import kl_loss

    return kl_loss(P, out, betas)


def cal_step(P, model, params, xs, y_onehot, eps, h_y, hp, lr, W=None):
    """hp: {"gamma", "beta0", "temperature"}; W: None (measure it) or the weights to hold fixed
    -> (loss, grads, new_params)."""
    out = model.forward(params, xs, eps=eps)
    M = model.M
    loss, dlogits = 0.0, {}
    for S, weight in [(tuple(range(M)), 1.0)] + [((m,), hp["gamma"]) for m in range(M)]:
        ce, cache = L.softmax_ce_forward(model.coalition_logits(params, out, S), y_onehot)
        loss = loss + weight * float(ce)
        dlogits[S] = P.softmax_ce_backward(weight, cache)  # the term's weight is its upstream gradient
    if W is None:  # measured on this batch, then a constant: no gradient flows through W or the betas
        W = my_weights_of_batch(P, model, params, out, y_onehot, h_y, hp["temperature"])
    betas = P.bottleneck_betas(W, hp["beta0"])
    kl, dmu, dsigma = my_kl_loss(P, out, betas)
    loss = loss + float(kl)
    grads = model.backward(params, out, dlogits, list(dmu), list(dsigma))
    accelerated = {k: g.copy() for k, g in grads.items()}  # P.accelerate may scale in place: keep grads intact
    result = P.accelerate(accelerated, [model.branch_keys(m) for m in range(M)], W)
    if result is not None:
        accelerated = result
    new_params = {k: params[k] - lr * accelerated[k] for k in params}
    return loss, grads, new_params
