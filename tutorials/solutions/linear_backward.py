"""Solution to notebook 02's first exercise: the backward pass of a linear layer out = x w + b.

out[n, j] = sum_d x[n, d] w[d, j] + b[j]. Each entry of an input touches several outputs; its gradient sums dout
over all of them:
    dx[n, d] = sum_j dout[n, j] w[d, j]   -> dx = dout w^T  (N, D)
    dw[d, j] = sum_n x[n, d] dout[n, j]   -> dw = x^T dout  (D, H)
    db[j]    = sum_n dout[n, j]            -> db = dout summed over the batch axis  (H,)
No 1/N here: the mean over the batch is the loss's, and dout already carries it.
"""

import numpy as np


def linear_backward(dout, cache):
    """dout: (N, H); cache = (x, w) with x (N, D), w (D, H) -> dx (N, D), dw (D, H), db (H,)."""
    x, w = cache
    return dout @ w.T, x.T @ dout, np.sum(dout, axis=0)
