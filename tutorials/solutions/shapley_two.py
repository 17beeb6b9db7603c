"""Solution to notebook 03's exercise: the Shapley value of a two-modality game.

Derived from the definition (the average over the 2! = 2 arrival orders of what m adds when it arrives): in the
order (m, other), m finds nobody and adds v({m}) - v({}); in the order (other, m), it finds the other one and adds
v({0, 1}) - v({other}). Each order is one of two, so each counts 1/2: the average of "alone" and "leave-one-out".
"""


def shapley_two(v):
    """v: {(): .., (0,): .., (1,): .., (0, 1): ..} -> [I(0), I(1)]."""
    return [0.5 * (v[(m,)] - v[()]) + 0.5 * (v[(0, 1)] - v[(1 - m,)]) for m in range(2)]
