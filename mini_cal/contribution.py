"""CAL's modality contribution metric W^m (docs/method.md §3.1-3.2).

What the paper states: W^m combines an information quantity I(m) and a confidence D(m), evaluates marginal
performance (Shapley-inspired) and uses a softmax-based dynamic weighting. The formulas below are **ours**:

1. coalition value, in nats        v(S) = H(Y) - CE(logits(S), y)
2. information quantity (Shapley)  I(m) = sum_{S ⊆ M\\{m}} |S|!(M-|S|-1)!/M! [v(S ∪ {m}) - v(S)]
3. confidence                      D(m) = 1 - mean_i H(softmax(logits({m})_i)) / log K
4. score and weight                s_m = I(m) D(m),  W = softmax(T s)   (optionally an EMA over steps)

Everything here is computed from the batch's own forward pass and carries no gradient.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from . import backend as B
from . import layers as L

SCORE_MODES = ("product", "sum", "I", "D")


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


def shapley(values: dict, M: int) -> np.ndarray:
    """Exact Shapley values of a game given as {coalition tuple: value}, shape (M,).

    I(m) = sum over S not containing m of |S|! (M-|S|-1)! / M! * [v(S ∪ {m}) - v(S)].
    Efficiency: the I(m) sum to v(all) - v({}).
    """
    phi = np.zeros(M)
    for m in range(M):
        for S in all_coalitions(M):
            if m in S:
                continue
            weight = math.factorial(len(S)) * math.factorial(M - len(S) - 1) / math.factorial(M)
            with_m = tuple(sorted(S + (m,)))
            phi[m] += weight * (values[with_m] - values[S])
    return phi


def confidence(logits_m, num_classes: int) -> float:
    """D(m) = 1 - mean_i H(softmax(logits({m})_i)) / log K, in [0, 1]; label-free."""
    xp = B.xp()
    return 1.0 - B.to_float(xp.mean(L.entropy(logits_m))) / math.log(num_classes)


def score(I: np.ndarray, D: np.ndarray, mode: str = "product") -> np.ndarray:
    """s_m = I(m) D(m) (``product``, ours, docs/method.md §3.2); ablations: ``sum`` I + D, ``I`` only, ``D`` only."""
    if mode == "product":
        return I * D
    if mode == "sum":
        return I + D
    if mode == "I":
        return np.array(I, dtype=float)
    if mode == "D":
        return np.array(D, dtype=float)
    raise ValueError(f"score mode: expected one of {SCORE_MODES}, got {mode!r}")


def softmax_weights(s: np.ndarray, temperature: float) -> np.ndarray:
    """W = softmax(T s) over modalities; sums to 1."""
    a = temperature * np.asarray(s, dtype=float)
    a = a - a.max()
    e = np.exp(a)
    return e / e.sum()


class ContributionMetric:
    """Computes W^m for a batch, with an optional exponential moving average over steps.

    ``ema`` in [0, 1): W_t = ema W_{t-1} + (1 - ema) W_batch (0: no smoothing).
    """

    def __init__(
        self,
        num_modalities: int,
        num_classes: int,
        temperature: float = 1.0,
        mode: str = "product",
        ema: float = 0.0,
        h_y: float | None = None,
    ):
        if mode not in SCORE_MODES:
            raise ValueError(f"score mode: expected one of {SCORE_MODES}, got {mode!r}")
        if not 0 <= ema < 1:
            raise ValueError(f"ema: expected a smoothing factor in [0, 1), got {ema}")
        if temperature < 0:
            raise ValueError(f"temperature: expected >= 0, got {temperature}")
        self.M, self.K = num_modalities, num_classes
        self.temperature, self.mode, self.ema = temperature, mode, ema
        self.h_y = math.log(num_classes) if h_y is None else h_y
        self.W = np.full(num_modalities, 1.0 / num_modalities)
        self.steps = 0

    def measure(self, model, params, out, y_onehot, known_ce: dict | None = None) -> dict:
        """I, D, s and W of this batch alone (host NumPy arrays) with the coalition values; changes no state
        (no EMA step). ``known_ce``: cross-entropies of some coalitions already computed on this batch."""
        values = coalition_values(model, params, out, y_onehot, self.h_y, known_ce)
        I = shapley(values, self.M)
        D = np.array([confidence(model.coalition_logits(params, out, (m,)), self.K) for m in range(self.M)])
        s = score(I, D, self.mode)
        W_batch = softmax_weights(s, self.temperature)
        return {"v": values, "I": I, "D": D, "s": s, "W_batch": W_batch, "W": W_batch.copy()}

    def __call__(self, model, params, out, y_onehot, known_ce: dict | None = None) -> dict:
        """:meth:`measure` this batch, then one EMA step: ``W`` is the smoothed weight (``W_batch`` the batch's)."""
        res = self.measure(model, params, out, y_onehot, known_ce)
        if self.ema and self.steps:
            self.W = self.ema * self.W + (1 - self.ema) * res["W_batch"]
        else:
            self.W = res["W_batch"]
        self.steps += 1
        res["W"] = self.W.copy()
        return res

    def state_dict(self) -> dict:
        return {"W": self.W.tolist(), "steps": self.steps}

    def load_state_dict(self, state: dict) -> None:
        self.W = np.array(state["W"], dtype=float)
        self.steps = int(state["steps"])
