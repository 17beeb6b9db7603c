"""Solution to notebook 08's first assembly: CAL's contribution weights W^m of one batch, from the pieces of 03.

v(S) for every coalition (the head's shares out.u and bias), I(m) = the Shapley value of that game, D(m) = the
confidence of coalition {m}'s logits, W = softmax(T * I * D).
"""

import numpy as np


def weights_of_batch(P, model, params, out, y_onehot, h_y, temperature):
    """P: the pieces; out: the batch's forward pass -> W: (M,)."""
    v = P.coalition_values(out.u, params["head.b"], y_onehot, h_y)
    I = np.asarray(P.shapley_two(v), dtype=float)
    D = np.array(
        [P.confidence(model.coalition_logits(params, out, (m,)), model.config.num_classes) for m in range(model.M)]
    )
    return np.asarray(P.contribution_weights(I, D, temperature), dtype=float)
