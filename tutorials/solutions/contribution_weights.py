"""Solution to notebook 03's exercise: CAL's contribution weights W = softmax(T s), with s = I * D."""

import numpy as np


def contribution_weights(I, D, temperature):
    """I, D: (M,) -> W: (M,), positive, summing to 1."""
    a = temperature * np.asarray(I, dtype=float) * np.asarray(D, dtype=float)
    e = np.exp(a - a.max())  # subtracting the max cancels in the ratio and avoids overflow
    return e / e.sum()
