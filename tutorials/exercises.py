"""Every graded exercise of the course, in one place: ``from exercises import check_...`` or ``import exercises``.

Each checker grades a function the student writes and returns a :class:`course.grading.Result` (it never raises on a
wrong or unfinished answer). The checking itself lives with its notebook in ``course/nbXX.py`` (cases, diagnoses of
typical mistakes, figures); while grading, the library's own version of what the exercise asks for is hidden, so
calling it does not pass (after the exercise, the notebook's text says where to compare with it). Solutions are in
``solutions/`` and are used only by the tests (tests/test_course_nbXX.py).
"""

from course import nb01, nb02, nb03, nb04, nb05, nb06, nb07, nb08, nb09


def check_effective_lr(fn, *args, **kwargs):
    """Notebook 01: Grade ``fn(lr, s) -> lr_eff``: the learning rate at which one SGD step on a linear map fed the
    *unscaled* inputs x changes its output as much as a step with ``lr`` does when the inputs are ``s * x``."""
    return nb01.check_effective_lr(fn, *args, **kwargs)


def check_linear_backward(fn, *args, **kwargs):
    """Notebook 02: Grade ``fn(dout, cache) -> (dx, dw, db)``, the backward of :func:`mini_cal.layers.linear_forward`
    whose cache is ``(x, w)``, on three cases."""
    return nb02.check_linear_backward(fn, *args, **kwargs)


def check_relu_backward(fn, *args, **kwargs):
    """Notebook 02: Grade ``fn(dout, cache) -> dx``, the backward of :func:`mini_cal.layers.relu_forward` whose cache
    is its output ``out = max(x, 0)`` (slope 0 at x = 0)."""
    return nb02.check_relu_backward(fn, *args, **kwargs)


def check_softmax_ce_backward(fn, *args, **kwargs):
    """Notebook 02: Grade ``fn(dloss, cache) -> dlogits``, the backward of :func:`mini_cal.layers.softmax_ce_forward`
    (a MEAN over the batch) whose cache is ``(p, y_onehot)``."""
    return nb02.check_softmax_ce_backward(fn, *args, **kwargs)


def check_bottleneck_backward(fn, *args, **kwargs):
    """Notebook 02: Grade ``fn(dz, cache, dmu_extra=None, dsigma_extra=None) -> (dh, dw_mu, db_mu, dw_s, db_s)``, the
    backward of :func:`mini_cal.layers.gaussian_bottleneck_forward` on five cases (training and evaluation passes,
    with and without KL gradients, shift 0)."""
    return nb02.check_bottleneck_backward(fn, *args, **kwargs)


def check_coalition_values(fn, *args, **kwargs):
    """Notebook 03: Grade ``fn(shares, bias, y_onehot, h_y) -> {S: v(S)}`` for every coalition S (sorted tuples, ()
    included)."""
    return nb03.check_coalition_values(fn, *args, **kwargs)


def check_shapley_two(fn, *args, **kwargs):
    """Notebook 03: Grade ``fn(v) -> [I(0), I(1)]`` for games {(): .., (0,): .., (1,): .., (0, 1): ..} on two
    modalities."""
    return nb03.check_shapley_two(fn, *args, **kwargs)


def check_shapley_three(fn, *args, **kwargs):
    """Notebook 03: Grade ``fn(v) -> [I(0), I(1), I(2)]`` for games on three modalities (8 coalitions, sorted
    tuples)."""
    return nb03.check_shapley_three(fn, *args, **kwargs)


def check_confidence(fn, *args, **kwargs):
    """Notebook 03: Grade ``fn(logits_m, num_classes) -> D(m)`` (one float), logits_m of shape (N, K)."""
    return nb03.check_confidence(fn, *args, **kwargs)


def check_contribution_weights(fn, *args, **kwargs):
    """Notebook 03: Grade ``fn(I, D, temperature) -> W`` (M weights), I and D arrays of shape (M,)."""
    return nb03.check_contribution_weights(fn, *args, **kwargs)


def check_acceleration(fn, *args, **kwargs):
    """Notebook 04: Grade ``fn(grads, branch_keys, W) -> grads`` (a dict; modifying ``grads`` in place and returning
    it, or returning None, is fine too): every gradient of branch m multiplied by 1 + W[m], the others
    unchanged."""
    return nb04.check_acceleration(fn, *args, **kwargs)


def check_ogm_k(fn, *args, **kwargs):
    """Notebook 04: Grade ``fn(rho, alpha, variant) -> k`` for one modality, ``variant`` "paper" or "continuous"."""
    return nb04.check_ogm_k(fn, *args, **kwargs)


def check_ge_noise(fn, *args, **kwargs):
    """Notebook 04: Grade ``fn(g, k, eps) -> k g + std(g) eps`` for one parameter's gradient ``g`` (any shape) and
    standard normal ``eps`` of the same shape."""
    return nb04.check_ge_noise(fn, *args, **kwargs)


def check_arl_weights(fn, *args, **kwargs):
    """Notebook 04: Grade ``fn(c, H, temperature, h_floor) -> w`` for two modalities (c, H: raw per-modality logit
    sizes and entropies)."""
    return nb04.check_arl_weights(fn, *args, **kwargs)


def check_bottleneck_forward(fn, *args, **kwargs):
    """Notebook 05: Grade ``fn(h, w_mu, b_mu, w_s, b_s, eps=None, sigma_min=1e-4, shift=5.0) -> (z, mu, sigma)``."""
    return nb05.check_bottleneck_forward(fn, *args, **kwargs)


def check_kl_forward(fn, *args, **kwargs):
    """Notebook 05: Grade ``fn(mu, sigma) -> kl``: KL(N(mu, sigma^2) || N(0, I)), summed over dimensions, averaged over
    the batch, as one number."""
    return nb05.check_kl_forward(fn, *args, **kwargs)


def check_kl_backward(fn, *args, **kwargs):
    """Notebook 05: Grade ``fn(dkl, cache) -> (dmu, dsigma)``, the gradients of ``dkl * KL`` for the KL of exercise 2
    (cache ``(mu, sigma)``); ``dkl`` is the upstream gradient (beta^m in CAL's loss)."""
    return nb05.check_kl_backward(fn, *args, **kwargs)


def check_bottleneck_betas(fn, *args, **kwargs):
    """Notebook 05: Grade ``fn(W, beta0) -> beta`` (one number per modality): CAL's asymmetric compression weights."""
    return nb05.check_bottleneck_betas(fn, *args, **kwargs)


def check_gaussian_attack(fn, *args, **kwargs):
    """Notebook 06: Grade ``fn(x, eps, seed=0, p_attack=0.5) -> (x_attacked, attacked)`` by the properties of the
    attack."""
    return nb06.check_gaussian_attack(fn, *args, **kwargs)


def check_auc(fn, *args, **kwargs):
    """Notebook 06: Grade ``fn(levels, accs) -> float``: trapezoid area under the curve divided by the level range."""
    return nb06.check_auc(fn, *args, **kwargs)


def check_log_softmax(fn, *args, **kwargs):
    """Notebook 07: Grade ``fn(logits) -> log_probs`` under NumPy and under ``array_api_strict``."""
    return nb07.check_log_softmax(fn, *args, **kwargs)


def check_weights_assembly(fn, *args, **kwargs):
    """Notebook 08: Grade ``fn(P, model, params, out, y_onehot, h_y, temperature) -> W`` (CAL's contribution
    weights of one batch)."""
    return nb08.check_weights_assembly(fn, *args, **kwargs)


def check_kl_assembly(fn, *args, **kwargs):
    """Notebook 08: Grade ``fn(P, out, betas) -> (kl_loss, dmu, dsigma)``: sum_m beta^m KL^m and its per-branch
    gradients, in the model's dtype (float32 stays float32)."""
    return nb08.check_kl_assembly(fn, *args, **kwargs)


def check_cal_step(fn, *args, **kwargs):
    """Notebook 08: Grade ``fn(P, model, params, xs, y_onehot, eps, h_y, hp, lr, W=None) -> (loss, grads,
    new_params)``: one whole CAL training step after warm-up, its gradients (before acceleration) checked against
    the library's and against centred finite differences of the loss, with W held fixed; on float32 parameters,
    grads and new_params must stay float32."""
    return nb08.check_cal_step(fn, *args, **kwargs)


def check_standardize(fn, *args, **kwargs):
    """Notebook 09: Grade ``fn(train, *others) -> [train', *others']`` (each split a dict {modality name: array
    (N, D_m)}): every feature at mean 0 and std 1 on the training split, every split mapped alike, constant features
    finite, inputs unchanged."""
    return nb09.check_standardize(fn, *args, **kwargs)
