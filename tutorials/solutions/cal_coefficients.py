"""Solution to notebook 04's exercise: CAL's asymmetric gradient acceleration.

Every gradient of branch m (its encoder and bottleneck: the keys branch_keys[m]) is multiplied by 1 + W^m; the
fusion head, shared by all modalities, is left alone. Under plain SGD this is branch m trained with learning rate
(1 + W^m) times the head's.
"""


def accelerate(grads, branch_keys, W):
    """grads: {name: array}; branch_keys: list of M lists of names; W: (M,) -> {name: array}."""
    out = dict(grads)
    for m, keys in enumerate(branch_keys):
        for key in keys:
            out[key] = grads[key] * (1.0 + W[m])
    return out
