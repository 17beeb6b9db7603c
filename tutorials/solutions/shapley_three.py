"""Solution to notebook 03's exercise: the exact Shapley value of a game on three modalities.

phi_m = sum over coalitions S that do not contain m of  |S|! (M - |S| - 1)! / M!  [v(S ∪ {m}) - v(S)].
With M = 3 the weight depends only on |S|: 0!2!/3! = 1/3 for S = {}, 1!1!/3! = 1/6 for the two coalitions of one
other modality, 2!0!/3! = 1/3 for the coalition of both others. Equivalently: the average over the 3! = 6 orders in
which the modalities can arrive of what m adds when it arrives (first in 2 orders, second in 1 + 1, last in 2).
"""


def shapley_three(v):
    """v: {sorted tuple: value} for the 8 coalitions of (0, 1, 2) -> [phi_0, phi_1, phi_2]."""
    phi = []
    for m in range(3):
        j, k = [other for other in range(3) if other != m]
        with_m = lambda S: tuple(sorted(S + (m,)))  # noqa: E731
        phi.append(
            v[with_m(())] / 3
            - v[()] / 3  # m arrives first (2 of the 6 orders)
            + (v[with_m((j,))] - v[(j,)]) / 6  # m arrives second, after j
            + (v[with_m((k,))] - v[(k,)]) / 6  # m arrives second, after k
            + (v[(0, 1, 2)] - v[(j, k)]) / 3
        )  # m arrives last
    return phi
