"""Solution to notebook 03's exercise: the Shapley value of a two-modality game.

Two arrival orders: m first (it adds v({m}) - v({})) or m second (it adds v({0, 1}) - v({other})); each has
weight 1/2! = 1/2.
"""


def shapley_two(v):
    """v: {(): .., (0,): .., (1,): .., (0, 1): ..} -> [I(0), I(1)]."""
    return [0.5 * (v[(m,)] - v[()]) + 0.5 * (v[(0, 1)] - v[(1 - m,)]) for m in range(2)]
