"""Solution to notebook 06's first exercise: the Gaussian attack on one modality (ours, after the QMF/PDF protocol).

Each sample is attacked with probability p_attack; an attacked sample gets x + (eps / 10) * c * std(x) * N(0, I),
with the standard deviation per feature over all samples and c = GAUSSIAN_C. Common random numbers: the mask and
the noise depend on the seed only, not on eps, so every level attacks the same samples with the same noise scaled.
"""

import numpy as np

from mini_cal.noise import GAUSSIAN_C


def gaussian_attack(x, eps, seed=0, p_attack=0.5):
    """x: (N, D) one modality's features; eps in 0..10 -> (attacked copy of x (N, D), attacked mask (N,))."""
    rng = np.random.default_rng(seed)
    attacked = rng.random(len(x)) < p_attack  # drawn before anything that depends on eps
    noise = rng.standard_normal(x.shape)
    std = x.std(axis=0, keepdims=True)  # (1, D): each feature's own spread
    out = x.copy()
    out[attacked] = (x + (eps / 10) * GAUSSIAN_C * std * noise)[attacked]
    return out, attacked
