"""Solution to notebook 05's fourth exercise: CAL's asymmetric compression weights (ours, docs/method.md).

    beta^m = beta0 * M * (1 - W^m) / (M - 1)
Balanced weights W^m = 1/M give beta0 each; since sum_m (1 - W^m) = M - 1, the beta^m always sum to M beta0.
"""

import numpy as np


def bottleneck_betas(W, beta0):
    """W: (M,) contribution weights summing to 1; beta0: a number -> beta: (M,)."""
    W = np.asarray(W, dtype=float)
    M = len(W)
    return beta0 * M * (1.0 - W) / (M - 1)
