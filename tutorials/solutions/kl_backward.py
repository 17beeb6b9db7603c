"""Solution to notebook 05's exercise: the backward pass of the KL term to the standard normal prior.

Forward (mini_cal.layers.gaussian_kl_forward), for mu and sigma of shape (N, Z):
    KL = (1/N) sum_i 1/2 sum_j (mu_ij^2 + sigma_ij^2 - log sigma_ij^2 - 1)
One entry at a time, with log sigma^2 = 2 log sigma:
    dKL/dmu_ij    = mu_ij / N
    dKL/dsigma_ij = (sigma_ij - 1/sigma_ij) / N      (zero at sigma = 1: the prior's width)
and the chain rule multiplies both by the upstream gradient dkl (beta^m in CAL's loss).
"""


def kl_backward(dkl, cache):
    """dkl: scalar upstream gradient; cache = (mu, sigma), each (N, Z) -> dmu, dsigma: (N, Z)."""
    mu, sigma = cache
    n = mu.shape[0]
    dmu = dkl * mu / n  # (N, Z)
    dsigma = dkl * (sigma - 1.0 / sigma) / n  # (N, Z)
    return dmu, dsigma
