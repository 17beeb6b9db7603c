"""Solution to notebook 04's exercise: ARL's weights w for two modalities (as its paper describes them).

c_m: mean absolute size of modality m's coalition logits, H_m: mean entropy of its coalition prediction.
c and H are normalised over the modalities, H is clamped below at h_floor, a = 1 / H normalised, and
w = softmax(T [c_V a_A, c_A a_V]): a modality's weight grows with its own confidence and the OTHER's logit size.
"""

import numpy as np


def arl_weights(c, H, temperature=1.0, h_floor=0.3):
    """c, H: two raw values each (A, V) -> w: (2,), positive, summing to 1."""
    c = np.asarray(c, dtype=float)
    H = np.asarray(H, dtype=float)
    c_n = c / c.sum()
    H_n = np.maximum(H / H.sum(), h_floor)
    a = (1.0 / H_n) / (1.0 / H_n).sum()
    x = temperature * a * c_n[::-1]  # A's confidence times V's size, V's times A's
    e = np.exp(x - x.max())
    return e / e.sum()
