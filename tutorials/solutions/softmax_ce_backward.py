"""Solution to notebook 02's third exercise: the backward pass of the mean softmax cross-entropy.

For one sample, -log p_y = -s_y + log sum_k exp(s_k), whose derivative with respect to s_k is p_k - 1[k = y].
The loss is the mean over N samples, and the upstream gradient dloss multiplies everything:
    dlogits = dloss * (p - Y) / N
"""


def softmax_ce_backward(dloss, cache):
    """dloss: a scalar; cache = (p, y_onehot), both (N, K) -> dlogits (N, K)."""
    p, y_onehot = cache
    return dloss * (p - y_onehot) / p.shape[0]
