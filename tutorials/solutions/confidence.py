"""Solution to notebook 03's exercise: the confidence D(m) of one modality's coalition logits.

D(m) = 1 - mean_i H(softmax(logits_i)) / log K, with the entropy in nats (any base works if log K uses the same).
"""

import math

import numpy as np


def confidence(logits_m, num_classes):
    """logits_m: (N, K) -> D(m), a float in [0, 1]."""
    z = logits_m - logits_m.max(axis=1, keepdims=True)  # stable softmax
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    entropy = -np.sum(np.exp(log_p) * log_p, axis=1)  # (N,)
    return float(1.0 - entropy.mean() / math.log(num_classes))
