"""Solution to notebook 03's exercise: the value v(S) of every coalition S.

logits(S) = bias + sum of the shares of the modalities in S (the bias alone for the empty coalition);
v(S) = H(Y) - CE(logits(S), y), with CE the MEAN over the batch of -log softmax(logits)[y], in nats.
"""

import itertools

import numpy as np


def coalition_values(shares, bias, y_onehot, h_y):
    """shares: list of M arrays (N, K); bias: (K,); y_onehot: (N, K); h_y: float -> {S: v(S)}."""
    M = len(shares)
    values = {}
    for r in range(M + 1):
        for S in itertools.combinations(range(M), r):
            logits = np.zeros_like(shares[0]) + bias  # (N, K)
            for m in S:
                logits = logits + shares[m]
            z = logits - logits.max(axis=1, keepdims=True)  # stable log-softmax
            log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
            ce = -np.sum(y_onehot * log_p) / logits.shape[0]
            values[S] = float(h_y - ce)
    return values
