"""Solution to notebook 08's second assembly: the weighted KL sum_m beta^m KL^m and the gradients it sends into
each branch's mu and sigma, from the pieces of 05 (beta^m is the upstream gradient of modality m's KL)."""


def kl_loss(P, out, betas):
    """P: the pieces; out: the forward pass (out.mu, out.sigma: one (N, Z) array per modality); betas: (M,)."""
    total, dmu, dsigma = 0.0, [], []
    for m, beta in enumerate(betas):
        total = total + float(beta) * float(P.kl_forward(out.mu[m], out.sigma[m]))
        d_mu, d_sigma = P.kl_backward(float(beta), (out.mu[m], out.sigma[m]))
        dmu.append(d_mu)
        dsigma.append(d_sigma)
    return total, dmu, dsigma
