"""Solution to notebook 06's second exercise: the normalised area under an accuracy-vs-level curve.

Trapezoid rule over the (possibly uneven) levels, divided by the level range, so that a model whose accuracy never
moves scores its clean accuracy.
"""

import numpy as np


def auc(levels, accs):
    """levels, accs: sequences of the same length (>= 2) -> a number."""
    levels, accs = np.asarray(levels, dtype=float), np.asarray(accs, dtype=float)
    area = np.sum((accs[1:] + accs[:-1]) / 2 * np.diff(levels))
    return float(area / (levels[-1] - levels[0]))
