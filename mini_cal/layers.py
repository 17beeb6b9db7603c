"""Forward/backward pairs: linear, relu, softmax cross-entropy, the Gaussian bottleneck and its KL term.

Every operation is a pair in the CS231n style: ``op_forward(...) -> (out, cache)`` and
``op_backward(dout, cache) -> grads``. Shapes: N samples, D inputs, H outputs, K classes.
All array calls go through the backend namespace so that the same code runs on NumPy, CuPy and the array API.
"""

from __future__ import annotations

from . import backend as B


# --------------------------------------------------------------------------------------------------- linear
def linear_forward(x, w, b):
    """out = x w + b.

    x: (N, D), w: (D, H), b: (H,) -> out: (N, H); cache = (x, w).
    """
    out = x @ w  # (N, H)
    out += b  # in place: saves an (N, H) temporary
    return out, (x, w)


def linear_backward(dout, cache):
    """dout: (N, H) -> dx: (N, D), dw: (D, H), db: (H,)."""
    xp = B.xp()
    x, w = cache
    dx = dout @ w.T  # (N, D)
    dw = x.T @ dout  # (D, H)
    db = xp.sum(dout, axis=0)  # (H,)
    return dx, dw, db


# ----------------------------------------------------------------------------------------------------- relu
def relu_forward(x):
    """out = max(x, 0); cache = out (its sign pattern is all the backward needs)."""
    out = B.xp().maximum(x, 0.0)
    return out, out


def relu_backward(dout, cache):
    """dx = dout * 1[x > 0]: dout where the input was positive, else 0.

    A product with the 0/1 mask rather than ``xp.where``: on the CPU, ``where`` with a random mask is several
    times slower (it branches per element).
    """
    return dout * B.astype(cache > 0, dout.dtype)


def linear_relu_forward(x, w, b):
    """Sandwich: relu(x w + b)."""
    a, fc_cache = linear_forward(x, w, b)
    out, relu_cache = relu_forward(a)
    return out, (fc_cache, relu_cache)


def linear_relu_backward(dout, cache):
    """Backward of the sandwich, unpacking the caches in reverse order."""
    fc_cache, relu_cache = cache
    da = relu_backward(dout, relu_cache)
    return linear_backward(da, fc_cache)


# ------------------------------------------------------------------------------------ softmax cross-entropy
def one_hot(y, num_classes: int, dtype="float32"):
    """Integer labels (N,) -> one-hot matrix (N, K), built by comparison (no fancy indexing)."""
    xp = B.xp()
    classes = xp.arange(num_classes, dtype=y.dtype)
    return B.astype(y[:, None] == classes[None, :], B.float_dtype(dtype) if isinstance(dtype, str) else dtype)


def log_softmax(logits):
    """Stable log-softmax over the last axis: logits - logsumexp(logits)."""
    xp = B.xp()
    shifted = logits - xp.max(logits, axis=1, keepdims=True)
    return shifted - xp.log(xp.sum(xp.exp(shifted), axis=1, keepdims=True))


def softmax(logits):
    """Row-wise softmax, (N, K) -> (N, K)."""
    return B.xp().exp(log_softmax(logits))


def softmax_ce_forward(logits, y_onehot):
    """Mean softmax cross-entropy.

    loss = -(1/N) sum_i sum_k Y_ik log softmax(logits)_ik, computed with a stable log-sum-exp.
    logits: (N, K), y_onehot: (N, K) -> loss: 0-d array; cache = (probabilities, y_onehot).
    """
    xp = B.xp()
    logp = log_softmax(logits)  # (N, K)
    n = logits.shape[0]
    loss = -xp.sum(y_onehot * logp) / n
    return loss, (xp.exp(logp), y_onehot)


def softmax_ce_backward(dloss, cache):
    """dlogits = dloss * (softmax - Y) / N."""
    p, y_onehot = cache
    return (p - y_onehot) * (dloss / p.shape[0])


# ----------------------------------------------------------------------------------------------- softplus
def softplus(a):
    """log(1 + exp(a)), stable for large |a|."""
    xp = B.xp()
    return xp.maximum(a, 0.0) + xp.log1p(xp.exp(-xp.abs(a)))


def sigmoid(a):
    """1 / (1 + exp(-a)), stable for large |a|; the derivative of softplus."""
    xp = B.xp()
    e = xp.exp(-xp.abs(a))
    d = 1.0 + e
    return xp.where(a >= 0, 1.0 / d, e / d)


# --------------------------------------------------------------------------------------- gaussian bottleneck
def gaussian_bottleneck_forward(h, w_mu, b_mu, w_s, b_s, eps=None, sigma_min=1e-4, shift=5.0):
    """Reparameterised Gaussian bottleneck (docs/method.md §2.2).

    mu = h w_mu + b_mu;  sigma = softplus(h w_s + b_s - shift) + sigma_min;  z = mu + sigma * eps.

    ``eps`` (N, Z) is drawn by the caller (training) or ``None`` (evaluation: z = mu). The ``shift`` (ours,
    after Alemi et al.'s VIB) makes sigma start near softplus(-5) ~ 0.0067 so that noise does not drown a weak
    modality before anything is learned.
    h: (N, H), w_mu, w_s: (H, Z), b_mu, b_s: (Z,) -> z, mu, sigma: (N, Z).
    cache = (mu_cache, s_cache, a, eps): the two linear caches (h, w_mu) and (h, w_s), the shifted softplus input
    a = h w_s + b_s - shift (N, Z), and eps (or None).
    """
    mu, mu_cache = linear_forward(h, w_mu, b_mu)  # (N, Z)
    a, s_cache = linear_forward(h, w_s, b_s)  # (N, Z)
    a -= shift  # in place, as in linear_forward
    sigma = softplus(a) + sigma_min  # (N, Z)
    z = mu if eps is None else mu + sigma * eps
    return (z, mu, sigma), (mu_cache, s_cache, a, eps)


def gaussian_bottleneck_backward(dz, cache, dmu_extra=None, dsigma_extra=None):
    """Backward of the bottleneck.

    dz: (N, Z) upstream gradient of z; ``dmu_extra``/``dsigma_extra`` are gradients reaching mu and sigma from
    other terms (the KL). Returns dh, dw_mu, db_mu, dw_s, db_s.
    """
    mu_cache, s_cache, a, eps = cache
    dmu = dz if dmu_extra is None else dz + dmu_extra
    if eps is None:
        dsigma = dsigma_extra
    else:
        dsigma = dz * eps if dsigma_extra is None else dz * eps + dsigma_extra
    dh, dw_mu, db_mu = linear_backward(dmu, mu_cache)
    if dsigma is None:  # deterministic pass with no KL: the sigma path gets no gradient
        xp = B.xp()
        _, w_s = s_cache
        return dh, dw_mu, db_mu, xp.zeros_like(w_s), xp.zeros_like(w_s[0, :])
    da = dsigma * sigmoid(a)
    dh_s, dw_s, db_s = linear_backward(da, s_cache)
    return dh + dh_s, dw_mu, db_mu, dw_s, db_s


def gaussian_kl_forward(mu, sigma):
    """KL(N(mu, sigma^2) || N(0, I)), summed over dimensions and averaged over the batch.

    KL = (1/N) sum_i 1/2 sum_j (mu_ij^2 + sigma_ij^2 - log sigma_ij^2 - 1).
    mu, sigma: (N, Z) -> kl: 0-d array; cache = (mu, sigma).
    """
    xp = B.xp()
    n = mu.shape[0]
    kl = 0.5 * xp.sum(mu * mu + sigma * sigma - 2.0 * xp.log(sigma) - 1.0) / n
    return kl, (mu, sigma)


def gaussian_kl_backward(dkl, cache):
    """dmu = dkl * mu / N;  dsigma = dkl * (sigma - 1/sigma) / N."""
    mu, sigma = cache
    n = mu.shape[0]
    scale = dkl / n
    return mu * scale, (sigma - 1.0 / sigma) * scale


def entropy_forward(logits):
    """Row-wise entropy of softmax(logits) in nats, H_i = -sum_k p_ik log p_ik.  (N, K) -> H (N,), cache."""
    xp = B.xp()
    logp = log_softmax(logits)
    p = xp.exp(logp)
    H = -xp.sum(p * logp, axis=1)
    return H, (p, logp, H)


def entropy_backward(dH, cache):
    """dlogits_ik = -dH p_ik (log p_ik + H_i), for the same upstream gradient dH (a number) on every row."""
    p, logp, H = cache
    return -dH * p * (logp + H[:, None])


def entropy(logits):
    """Row-wise entropy of softmax(logits) in nats, (N, K) -> (N,)."""
    return entropy_forward(logits)[0]
