"""Solution to notebook 07's exercise: a backend-agnostic, numerically stable row-wise log-softmax.

Every operation comes from the backend's namespace xp = B.xp() (NumPy, CuPy or array_api_strict), so the same code
runs on the CPU and on a device. Subtracting each row's maximum leaves the softmax unchanged and keeps exp from
overflowing.
"""

from mini_cal import backend as B


def log_softmax(logits):
    """logits: (N, K) backend array -> log-probabilities (N, K), each row's exp summing to 1."""
    xp = B.xp()
    shifted = logits - xp.max(logits, axis=1, keepdims=True)
    return shifted - xp.log(xp.sum(xp.exp(shifted), axis=1, keepdims=True))
