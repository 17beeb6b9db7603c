"""Solution to notebook 05's second exercise: the KL of N(mu, sigma^2) to the prior N(0, I).

Derivation, one dimension, z ~ q = N(mu, sigma^2), p = N(0, 1):
    log q(z) - log p(z) = -1/2 log sigma^2 - (z - mu)^2 / (2 sigma^2) + z^2 / 2     (the log sqrt(2 pi) cancel)
    E_q[(z - mu)^2] = sigma^2,  E_q[z^2] = mu^2 + sigma^2
    KL = -1/2 log sigma^2 - 1/2 + (mu^2 + sigma^2) / 2 = 1/2 (mu^2 + sigma^2 - log sigma^2 - 1)
Summed over the Z dimensions (independent Gaussians: their KLs add), averaged over the N samples:
    KL = (1/N) sum_i 1/2 sum_j (mu_ij^2 + sigma_ij^2 - log sigma_ij^2 - 1)
"""

import numpy as np


def kl_forward(mu, sigma):
    """mu, sigma: (N, Z) -> the KL, one number."""
    n = mu.shape[0]
    return 0.5 * np.sum(mu**2 + sigma**2 - np.log(sigma**2) - 1.0) / n
