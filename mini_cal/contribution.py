"""CAL's modality contribution metric W^m (docs/method.md §3.1-3.2).

What the paper states: W^m combines an information quantity I(m) and a confidence D(m), evaluates marginal
performance (Shapley-inspired) and uses a softmax-based dynamic weighting. The formulas below are **ours**:

1. coalition value, in nats        v(S) = H(Y) - CE(logits(S), y)
2. information quantity (Shapley)  I(m) = sum_{S ⊆ M\\{m}} |S|!(M-|S|-1)!/M! [v(S ∪ {m}) - v(S)]
3. confidence                      D(m) = 1 - mean_i H(softmax(logits({m})_i)) / log K
4. score and weight                s_m = I(m) D(m),  W = softmax(T s)

Everything here is computed from the batch's own forward pass and carries no gradient. Other scores and an EMA
over steps are in CAL's design space (:mod:`mini_cal.methods.cal_design`).
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from . import backend as B
from . import layers as L


def all_coalitions(M: int) -> list:
    """Every subset of range(M) as a sorted tuple, smallest first: (), (0,), (1,), (0, 1), ..."""
    return [S for r in range(M + 1) for S in itertools.combinations(range(M), r)]


def label_entropy(y, num_classes: int) -> float:
    """H(Y) in nats of the training label distribution (log K for balanced classes)."""
    counts = np.bincount(np.asarray(y), minlength=num_classes).astype(np.float64)
    p = counts / counts.sum()
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def coalition_value(logits_S, y_onehot, h_y: float) -> float:
    """v(S) = H(Y) - CE(logits(S), y): the head's variational lower bound on I(Y; Z_S), in nats."""
    ce, _ = L.softmax_ce_forward(logits_S, y_onehot)
    return h_y - B.to_float(ce)


def coalition_values(model, params, out, y_onehot, h_y: float, known_ce: dict | None = None) -> dict:
    """v(S) for every coalition S, from one forward pass's per-modality logit shares.

    ``known_ce``: {S: CE(logits(S), y)} (floats) that the caller's loss has already computed on the same batch;
    they are reused rather than computed twice."""
    known_ce = known_ce or {}
    return {
        S: h_y - known_ce[S]
        if S in known_ce
        else coalition_value(model.coalition_logits(params, out, S), y_onehot, h_y)
        for S in all_coalitions(model.M)
    }


def shapley_weight(size: int, M: int) -> float:
    """|S|! (M-|S|-1)! / M! for |S| = size: the share of the M! orders in which m joins right after S."""
    return math.factorial(size) * math.factorial(M - size - 1) / math.factorial(M)


def shapley(values: dict, M: int):
    """Exact Shapley values of a game given as {coalition tuple: value}: an (M,) array for a game of numbers, a
    list of M arrays for a game of arrays (AGM's per-sample logits).

    phi(m) = sum over S not containing m of |S|! (M-|S|-1)! / M! * [v(S ∪ {m}) - v(S)].
    Efficiency: the phi(m) sum to v(all) - v({}).
    """
    phi = []
    for m in range(M):
        total = 0.0
        for S in all_coalitions(M):
            if m not in S:
                total = total + shapley_weight(len(S), M) * (values[tuple(sorted(S + (m,)))] - values[S])
        phi.append(total)
    return np.array(phi) if np.isscalar(phi[0]) else phi


def confidence(logits_m, num_classes: int) -> float:
    """D(m) = 1 - mean_i H(softmax(logits({m})_i)) / log K, in [0, 1]; label-free."""
    xp = B.xp()
    return 1.0 - B.to_float(xp.mean(L.entropy(logits_m))) / math.log(num_classes)


def softmax_weights(s, temperature: float) -> np.ndarray:
    """W = softmax(T s) over modalities; sums to 1."""
    a = temperature * np.asarray(s, dtype=float)
    a = a - a.max()
    e = np.exp(a)
    return e / e.sum()


def contribution_weights(model, params, out, y_onehot, h_y: float, temperature: float, known_ce=None) -> dict:
    """Steps 1-4 on one batch: {"v": v(S) per coalition, "I", "D", "s", "W"} (host arrays, shape (M,)).
    ``known_ce``: cross-entropies of some coalitions that the loss has already computed on this batch."""
    values = coalition_values(model, params, out, y_onehot, h_y, known_ce)
    I = shapley(values, model.M)
    K = model.config.num_classes
    D = np.array([confidence(model.coalition_logits(params, out, (m,)), K) for m in range(model.M)])
    s = I * D
    return {"v": values, "I": I, "D": D, "s": s, "W": softmax_weights(s, temperature)}
