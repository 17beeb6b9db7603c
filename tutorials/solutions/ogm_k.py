"""Solution to notebook 04's exercise: OGM-GE's suppression coefficient k(rho).

Only the dominant modality (rho > 1) is suppressed; the other keeps k = 1.
    paper (and current code):    k = 1 - tanh(alpha * rho)        (jumps from 1 to 1 - tanh(alpha) at rho = 1)
    continuous (early release):  k = 1 - tanh(alpha * (rho - 1))  (starts at 1 and falls smoothly)
"""

import math


def ogm_k(rho, alpha, variant="paper"):
    """rho: the modality's discrepancy ratio; alpha >= 0 -> k in (0, 1]."""
    if rho <= 1:
        return 1.0
    x = rho if variant == "paper" else rho - 1.0
    return 1.0 - math.tanh(alpha * x)
