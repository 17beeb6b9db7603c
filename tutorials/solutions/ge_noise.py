"""Solution to notebook 04's exercise: OGM-GE's generalisation-enhancement step for one parameter.

g <- k g + N(0, std(g)^2): the noise's standard deviation is that of the entries of the UN-modulated gradient g,
so the noise keeps the gradient's own size however small k is. eps is N(0, 1) of g's shape.
"""

import numpy as np


def ge_noise(g, k, eps):
    """g: a gradient array; k: its branch's coefficient; eps: standard normal, g's shape -> the array sent on."""
    return k * g + np.std(g) * eps
