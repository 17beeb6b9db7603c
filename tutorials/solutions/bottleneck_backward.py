"""Solution to notebook 02's exercise: the backward pass of the Gaussian bottleneck.

Forward (mini_cal.layers.gaussian_bottleneck_forward):
    mu = h w_mu + b_mu;  a = h w_s + b_s - shift;  sigma = softplus(a) + sigma_min;  z = mu + sigma * eps
(z = mu when eps is None). Gradients arrive through z (dz, from the head) and directly on mu and sigma
(dmu_extra, dsigma_extra, from the KL term). The chain rule, one node at a time:
    dmu    = dz + dmu_extra                  (z depends on mu with slope 1)
    dsigma = dz * eps + dsigma_extra         (z depends on sigma with slope eps; no eps, no such path)
    da     = dsigma * sigmoid(a)             (softplus' = sigmoid; shift and sigma_min are constants)
    dh     = dmu w_mu^T + da w_s^T           (h feeds both linear maps: the two paths add up)
"""

from mini_cal import backend as B
from mini_cal import layers as L


def bottleneck_backward(dz, cache, dmu_extra=None, dsigma_extra=None):
    """dz: (N, Z); cache from gaussian_bottleneck_forward -> dh (N, H), dw_mu, dw_s (H, Z), db_mu, db_s (Z,)."""
    xp = B.xp()
    mu_cache, s_cache, a, eps = cache
    h, w_s = s_cache

    dmu = dz if dmu_extra is None else dz + dmu_extra  # (N, Z)
    dsigma = xp.zeros_like(a)  # (N, Z)
    if eps is not None:
        dsigma = dsigma + dz * eps
    if dsigma_extra is not None:
        dsigma = dsigma + dsigma_extra
    da = dsigma * L.sigmoid(a)  # (N, Z)

    dh_mu, dw_mu, db_mu = L.linear_backward(dmu, mu_cache)  # (N, H), (H, Z), (Z,)
    dh_s, dw_s, db_s = L.linear_backward(da, s_cache)
    return dh_mu + dh_s, dw_mu, db_mu, dw_s, db_s
