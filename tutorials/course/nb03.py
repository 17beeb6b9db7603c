"""Notebook 03 (measuring contribution): the checkers of its five exercises and its figures.

Exercises, each graded against the library's answer computed *before* the library function is hidden:

* ``check_coalition_values(fn)``: ``fn(shares, bias, y_onehot, h_y) -> {S: v(S)}``, v(S) = H(Y) - CE(logits(S));
* ``check_shapley_two(fn)``: ``fn(v) -> [I(0), I(1)]``, the Shapley value of a two-modality game;
* ``check_shapley_three(fn)``: ``fn(v) -> [I(0), I(1), I(2)]``, the same for three modalities;
* ``check_confidence(fn)``: ``fn(logits_m, num_classes) -> D(m)``, one minus the normalised mean entropy;
* ``check_contribution_weights(fn)``: ``fn(I, D, temperature) -> W``, the softmax with temperature of I * D.

Each checker recognises the typical wrong answers of its exercise (modalities in reversed order, a missing 1/M!
weight, a flipped sign, a forgotten temperature, bits instead of nats...) by computing them too, and names the one
it sees in one sentence with a pointer to the concept; anything else gets :func:`grading.diagnose`'s diagnosis.
"""

from __future__ import annotations

import math
import re

import numpy as np

from mini_cal import contribution as C
from mini_cal import layers as L
from mini_cal import model as model_module
from mini_cal.methods import agm, cal_design

from . import grading, plots
from .grading import FormError, grade


def _as_vector(length):
    def to_array(value, args):
        try:
            arr = np.asarray(value, dtype=float)
        except (TypeError, ValueError):
            raise FormError(f"expected {length} numbers, got a {type(value).__name__}") from None
        if arr.shape != (length,):
            raise FormError(f"expected {length} numbers (one per modality, in modality order), got shape {arr.shape}")
        return arr

    return to_array


# ------------------------------------------------------------------------- exercise 1: coalition values v(S)
def _ce(logits, y_onehot, log=np.log):
    """Mean cross-entropy, computed here (not by the library) for the wrong answers."""
    z = logits - logits.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    if log is not np.log:
        logp = logp / math.log(2)
    return float(-(y_onehot * logp).sum() / logits.shape[0])


def _coalition_logits(shares, bias, S, bias_per_modality=False, with_bias=True):
    n, k = shares[0].shape
    logits = np.zeros((n, k))
    if with_bias:
        logits = logits + bias * (max(len(S), 1) if bias_per_modality else 1)
    for m in S:
        logits = logits + shares[m]
    return logits


COALITION_MISTAKES = {
    "sign": "your v(S) has the wrong sign: a coalition is worth the uncertainty its logits REMOVE, H(Y) minus the "
    "cross-entropy, so a good coalition has a large positive value.",
    "no_hy": "your v(S) is minus the cross-entropy: you left out H(Y). The value measures how much the logits "
    "reduce the label's uncertainty, so it starts from the uncertainty before seeing anything.",
    "bits": "your v(S) is in bits, not nats (it is 1/ln 2 = 1.44 times the answer, or mixes the two): H(Y) is "
    "given in nats, so the cross-entropy must use the natural logarithm too.",
    "sum_batch": "your cross-entropy is a SUM over the samples; the loss (and v) uses the MEAN over the batch, so "
    "that v does not grow with the batch size.",
    "no_bias": "your coalition logits leave out the head's bias: logits(S) is the sum of the shares of S PLUS the "
    "bias (the empty coalition is the bias alone).",
    "bias_each": "your coalition logits add the bias once per modality: the head has one bias, added once to the "
    "sum of the shares of S.",
    "reversed": "your v(S) are those of the modalities in reversed order (modality 0's share used for 1 and vice "
    "versa): the coalition (0,) must use shares[0].",
}
COALITION_MISTAKES["bits_both"] = COALITION_MISTAKES["bits"]
COALITION_HINTS = {"default": "logits(S) = bias + the shares of the modalities in S; v(S) = H(Y) - mean CE."}


def _coalition_cases(seed=0):
    rng = np.random.default_rng(seed)
    cases = []
    for label, M, n, k, scale in [
        ("2 modalities, 6 samples, 4 classes", 2, 6, 4, 1.5),
        ("2 modalities, a confidently wrong one (negative values)", 2, 5, 4, 4.0),
        ("3 modalities, 7 samples, 3 classes", 3, 7, 3, 1.0),
    ]:
        y = rng.integers(0, k, size=n)
        y_onehot = np.eye(k)[y]
        shares = [rng.standard_normal((n, k)) * scale for _ in range(M)]
        if label.startswith("2 modalities, a conf"):
            shares[1] = -3.0 * y_onehot + rng.standard_normal((n, k)) * 0.3  # modality 1 confidently wrong
        bias = rng.standard_normal(k) * 0.5
        counts = np.bincount(y, minlength=k) / n
        h_y = float(-(counts[counts > 0] * np.log(counts[counts > 0])).sum())
        coalitions = C.all_coalitions(M)
        expected = np.array([C.coalition_value(_coalition_logits(shares, bias, S), y_onehot, h_y) for S in coalitions])

        def values(**kw):
            return np.array(
                [
                    h_y
                    - _ce(
                        _coalition_logits(shares, bias, S, **{k2: v for k2, v in kw.items() if k2 != "log"}),
                        y_onehot,
                        kw.get("log", np.log),
                    )
                    for S in coalitions
                ]
            )

        ce = h_y - expected
        rev = {S: tuple(sorted(M - 1 - m for m in S)) for S in coalitions}
        wrong = {
            "sign": -expected,
            "no_hy": -ce,
            "bits": h_y - ce / math.log(2),
            "bits_both": expected / math.log(2),
            "sum_batch": h_y - n * ce,
            "no_bias": values(with_bias=False),
            "bias_each": values(bias_per_modality=True),
            "reversed": np.array([expected[coalitions.index(rev[S])] for S in coalitions]),
        }
        args = ([s.copy() for s in shares], bias.copy(), y_onehot.copy(), h_y)
        cases.append((label, args, expected, wrong))
    return cases


def _coalition_dict_to_array(value, args):
    M = len(args[0])
    coalitions = C.all_coalitions(M)
    if not isinstance(value, dict):
        raise FormError(f"expected a dict {{coalition: v(S)}}, got a {type(value).__name__}")
    missing = [S for S in coalitions if S not in value]
    if missing:
        odd = [key for key in value if key not in coalitions]
        extra = f"; it has keys {odd[:3]} that are not sorted tuples of modality indices" if odd else ""
        raise FormError(
            f"your dict lacks the coalition(s) {missing[:4]}: it needs all {len(coalitions)} coalitions "
            f"of {M} modalities as sorted tuples, {coalitions}, the empty one () included{extra}"
        )
    try:
        return np.array([float(value[S]) for S in coalitions])
    except (TypeError, ValueError):
        raise FormError("every v(S) must be a number (a Python float or a 0-d array)") from None


def check_coalition_values(fn, seed: int = 0) -> grading.Result:
    """Grade ``fn(shares, bias, y_onehot, h_y) -> {S: v(S)}`` for every coalition S (sorted tuples, () included).

    ``shares``: list of M arrays (N, K), modality m's share z^m W_h[m] of the head's logits; ``bias``: (K,);
    ``y_onehot``: (N, K); ``h_y``: H(Y) in nats. v(S) = H(Y) - CE(bias + sum_{m in S} shares[m], y).
    """
    return grade(
        fn,
        _coalition_cases(seed),
        hidden=[
            (C, "coalition_value"),
            (C, "coalition_values"),
            (L, "softmax_ce_forward"),
            (model_module.Model, "coalition_logits"),
        ],
        to_array=_coalition_dict_to_array,
        messages=COALITION_MISTAKES,
        name="coalition values",
        hints=COALITION_HINTS,
        what="v(S), in the order of all_coalitions(M)",
        parts=lambda args: [(f"v{S}" if S else "v(())", ()) for S in C.all_coalitions(len(args[0]))],
    )


# --------------------------------------------------------------------------- exercises 2 and 3: Shapley I(m)
SHAPLEY_MISTAKES = {
    "reversed": "your values are right but in reversed modality order: entry m must be modality m's share, and "
    "the keys of v hold modality indices (the coalition (0,) is modality 0 alone).",
    "permuted": "your values are right but in the wrong modality order (permuted): entry m must be modality m's share.",
    "no_factorial": "your values are M! times too large: I(m) is an AVERAGE over the M! orders in which the "
    "modalities can arrive, so after counting the orders, divide by their number.",
    "no_weight": "you summed the marginal contributions without weighting them: each v(S with m) - v(S) counts as "
    "often as there are arrival orders in which m finds exactly S already there, out of all M! orders. Count them.",
    "equal_weights": "you averaged the marginal contributions with equal weights: the coalitions S are not all "
    "found equally often. Count, for each S, the arrival orders in which m finds exactly S already there; "
    "with equal weights the shares no longer add up to v(all) - v({}).",
    "swapped_weights": "your weights for |S| = 0 and 2 and for |S| = 1 are swapped: count again, for each S, the "
    "arrival orders in which m finds exactly S already there (out of the M! orders). Your values are right when "
    "what m adds does not depend on S (an additive game), and wrong otherwise.",
    "sign": "your values have the wrong sign: a marginal contribution is what m ADDS, v(S with m) - v(S).",
    "alone": "you returned what each modality is worth alone, v({m}) - v({}): the Shapley value averages that "
    "with what m adds to the others (for M = 2, the leave-one-out view).",
    "leave_one_out": "you returned the leave-one-out values v(all) - v(all without m): the Shapley value averages "
    "that with what m is worth alone.",
    "no_empty": "you left out v({}): the first marginal contribution is v({m}) - v({}), and v({}) (the bias "
    "alone) need not be 0.",
}
SHAPLEY_MISTAKES["permuted2"] = SHAPLEY_MISTAKES["permuted"]
SHAPLEY_HINTS = {
    "default": "I(m) is the average, over the M! orders in which the modalities can arrive, of what "
    "m adds when it arrives."
}


def _weighted(v, M, weight, sign=1.0, with_empty=True):
    phi = np.zeros(M)
    for m in range(M):
        for S in C.all_coalitions(M):
            if m in S:
                continue
            base = v[S] if (S or with_empty) else 0.0
            phi[m] += weight(len(S), M) * sign * (v[tuple(sorted(S + (m,)))] - base)
    return phi


def _shapley_wrongs(v, M, expected):
    full = tuple(range(M))
    wrong = {
        "reversed": expected[::-1],
        "no_factorial": expected * math.factorial(M),
        "no_weight": _weighted(v, M, lambda s, M: 1.0),
        "sign": _weighted(
            v, M, lambda s, M: math.factorial(s) * math.factorial(M - s - 1) / math.factorial(M), sign=-1.0
        ),
        "alone": np.array([v[(m,)] - v[()] for m in range(M)]),
        "leave_one_out": np.array([v[full] - v[tuple(j for j in full if j != m)] for m in range(M)]),
        "no_empty": _weighted(
            v, M, lambda s, M: math.factorial(s) * math.factorial(M - s - 1) / math.factorial(M), with_empty=False
        ),
    }
    if M == 3:
        wrong["equal_weights"] = _weighted(v, M, lambda s, M: 1.0 / 2 ** (M - 1))
        # the weight of |S| = 1 given to |S| = 0 and 2, and theirs to |S| = 1
        weight = lambda s: math.factorial(s) * math.factorial(M - s - 1) / math.factorial(M)  # noqa: E731
        wrong["swapped_weights"] = _weighted(v, M, lambda s, M: weight(1 if s != 1 else 0))
        wrong["permuted"] = expected[[1, 2, 0]]
        wrong["permuted2"] = expected[[2, 0, 1]]
    return wrong


def _shapley_games(M, seed):
    rng = np.random.default_rng(seed)
    coalitions = C.all_coalitions(M)
    games = []
    if M == 2:
        games += [
            ("v({}) = 0.2, A worth more than V", {(): 0.2, (0,): 1.0, (1,): 0.3, (0, 1): 1.3}),
            ("V harmful alone, useful with A", {(): 0.0, (0,): 0.6, (1,): -0.2, (0, 1): 0.9}),
            ("complementary: only both together", {(): 0.1, (0,): 0.1, (1,): 0.1, (0, 1): 1.0}),
        ]
    else:
        a = np.array([0.5, 0.2, -0.1])
        games += [
            ("additive, v({}) = 0.3", {S: 0.3 + float(a[list(S)].sum()) for S in coalitions}),
            (
                "null player: modality 1 adds nothing",
                {S: {(): 0.0, (0,): 0.6, (2,): 0.5, (0, 2): 1.1}[tuple(m for m in S if m != 1)] for S in coalitions},
            ),
            ("complementary: only all three", {S: 1.0 if len(S) == 3 else 0.0 for S in coalitions}),
        ]
    for i in range(3):
        values = rng.normal(0.0, 1.0, size=len(coalitions))
        game = {S: float(x) for S, x in zip(coalitions, values)}
        game[()] = 0.0 if i == 0 else game[()]
        games.append((f"random game {i + 1}" + (", v({}) = 0" if i == 0 else ""), game))
    return games


def _shapley_cases(M, seed):
    return [
        (label, (dict(game),), C.shapley(game, M), _shapley_wrongs(game, M, C.shapley(game, M)))
        for label, game in _shapley_games(M, seed)
    ]


def _check_shapley(fn, M, seed):
    cases = _shapley_cases(M, seed)
    result = grade(
        fn,
        cases,
        hidden=[(C, "shapley"), (agm, "shapley_responses")],
        to_array=_as_vector(M),
        messages=SHAPLEY_MISTAKES,
        name=f"Shapley values (M = {M})",
        hints=SHAPLEY_HINTS,
        what="I(m)",
    )
    if not result.passed and "mistake" not in result.details and "errors" in result.details:
        # no known mistake: say whether the shares at least add up (efficiency)
        label = result.details["case"]
        game = next(case[1][0] for case in cases if case[0] == label)
        with grading.hide((C, "shapley"), (agm, "shapley_responses")):
            got, _ = grading.call_student(fn, dict(game))
        try:
            total = float(np.sum(np.asarray(got, dtype=float)))
            target = game[tuple(range(M))] - game[()]
            holds = abs(total - target) < 1e-9
            result.message += (
                f"\n  Efficiency {'holds' if holds else 'fails'}: your values sum to {total:.4f}, "
                f"v(all) - v({{}}) = {target:.4f}."
            )
        except (TypeError, ValueError):
            pass
    return result


def check_shapley_two(fn, seed: int = 0) -> grading.Result:
    """Grade ``fn(v) -> [I(0), I(1)]`` for games {(): .., (0,): .., (1,): .., (0, 1): ..} on two modalities."""
    return _check_shapley(fn, 2, seed)


def check_shapley_three(fn, seed: int = 0) -> grading.Result:
    """Grade ``fn(v) -> [I(0), I(1), I(2)]`` for games on three modalities (8 coalitions, sorted tuples)."""
    return _check_shapley(fn, 3, seed)


# ------------------------------------------------------------------------------- exercise 4: confidence D(m)
CONFIDENCE_MISTAKES = {
    "entropy": "you returned the normalised mean entropy itself: the confidence is ONE MINUS it (1 for certain "
    "predictions, 0 for uniform ones).",
    "unnormalised": "your D is not normalised: divide the mean entropy by its largest possible value, the entropy "
    "of a uniform prediction over K classes, so that D lies in [0, 1] whatever K is.",
    "mixed_logs": "your D mixes logarithm bases: the entropy and its largest value log K must use the same base "
    "(then the base cancels).",
    "max_prob": "you returned the mean largest probability: that is a confidence too, but D(m) is built from the "
    "ENTROPY of the whole predicted distribution.",
}
CONFIDENCE_MISTAKES["mixed_logs2"] = CONFIDENCE_MISTAKES["mixed_logs"]
CONFIDENCE_HINTS = {
    "default": "D(m) = 1 - (mean over samples of the entropy of softmax(logits)) / log K.",
}


def _confidence_cases(seed=0):
    rng = np.random.default_rng(seed)
    cases = []
    for label, n, k, scale in [
        ("8 samples, 4 classes", 8, 4, 1.5),
        ("5 samples, 3 classes", 5, 3, 0.7),
        ("near-uniform logits, 10 classes", 6, 10, 0.05),
        ("large logits (use a stable softmax)", 6, 4, 1000.0),
    ]:
        logits = rng.standard_normal((n, k)) * scale
        logits[0] = logits[0] * 0 + 2.0 * (scale if scale < 100 else 1)  # one uniform row
        expected = C.confidence(logits, k)
        z = logits - logits.max(axis=1, keepdims=True)
        p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            h = -np.sum(np.where(p > 0, p * np.log(p), 0.0), axis=1)
        wrong = {
            "entropy": 1 - expected,
            "unnormalised": 1 - h.mean(),
            "mixed_logs": 1 - h.mean() / math.log2(k),
            "mixed_logs2": 1 - h.mean() / math.log(2) / math.log(k),
            "max_prob": p.max(axis=1).mean(),
        }
        cases.append(
            (label, (logits.copy(), k), np.array([expected]), {key: np.array([value]) for key, value in wrong.items()})
        )
    return cases


def _as_scalar(value, args):
    arr = np.asarray(value, dtype=float) if not isinstance(value, (dict, str)) else None
    if arr is None:
        raise FormError(f"expected one number, got a {type(value).__name__}")
    if arr.size != 1:
        raise FormError(
            f"expected one number (the mean over the batch), got shape {arr.shape}: average the "
            f"per-sample entropies over the samples"
        )
    return arr.reshape(1)


CONFIDENCE_NAN = {
    "overflow": "exp of a large logit overflows: subtract each row's largest logit first (log-sum-exp).",
    "zero_log_zero": "your softmax is stable, but a probability that underflows to exactly 0 gives 0 * log 0 = "
    "0 * (-inf) = NaN. An entropy counts 0 log 0 as 0: compute log p as z - log sum exp(z) (finite), or skip the "
    "zero probabilities.",
}
# Two probes tell the NaNs apart: logits whose largest is 0 cannot overflow, but one class's probability
# underflows to 0; logits near 1000 overflow without the max subtracted, but no probability is 0.
_ZERO_PROBE = np.array([[0.0, -1000.0, -1.0], [0.0, 0.0, 0.0]])
_OVERFLOW_PROBE = np.array([[1000.0, 999.0, 998.0], [1000.0, 1000.0, 1000.0]])


def _confidence_nan(fn) -> str | None:
    """Which NaN the student's D(m) has, from the probes (None if neither gives one)."""
    for probe, key in ((_OVERFLOW_PROBE, "overflow"), (_ZERO_PROBE, "zero_log_zero")):
        with grading.hide((C, "confidence"), (L, "entropy"), (L, "entropy_forward")), np.errstate(all="ignore"):
            value, failure = grading.call_student(fn, probe.copy(), probe.shape[1], allow_nonfinite=True)
        try:
            finite = failure is None and bool(np.all(np.isfinite(np.asarray(value, dtype=float))))
        except (TypeError, ValueError):
            finite = True
        if not finite:
            return CONFIDENCE_NAN[key]
    return None


def check_confidence(fn, seed: int = 0) -> grading.Result:
    """Grade ``fn(logits_m, num_classes) -> D(m)`` (one float), logits_m of shape (N, K)."""
    with np.errstate(all="ignore"):
        result = grade(
            fn,
            _confidence_cases(seed),
            hidden=[(C, "confidence"), (L, "entropy"), (L, "entropy_forward")],
            to_array=_as_scalar,
            messages=CONFIDENCE_MISTAKES,
            name="confidence D(m)",
            hints={**CONFIDENCE_HINTS, "nan": ""},
            what="D(m)",
        )
    if not result.passed and re.search(r" is (NaN|infinite), not a finite number", result.message):
        cause = _confidence_nan(fn) or "Look for exp overflowing, or for 0 * log 0 (= NaN in floating point)."
        return grading.failed(f"{result.message.rstrip()} {cause}", **result.details)
    return result


# ------------------------------------------------------------------------ exercise 5: contribution weights W
WEIGHT_MISTAKES = {
    "no_temperature": "your W ignores the temperature: W = softmax(T s), and T is what makes the weights more or "
    "less decisive (T = 0 gives 1/M each).",
    "divide_temperature": "you divided the score by the temperature: in CAL's weights T MULTIPLIES the score "
    "(a larger T gives more decisive weights).",
    "sum": "your score is I + D: mini_cal's score is the product s = I * D (a modality needs both information "
    "and confidence).",
    "I_only": "your score uses I only: the score is s = I * D.",
    "D_only": "your score uses D only: the score is s = I * D.",
    "unnormalised": "your weights do not sum to 1: a softmax divides each exponential by their sum.",
    "sign": "your weights favour the LOWER score: the softmax of T s gives the larger weight to the larger score.",
    "reversed": "your weights are right but in reversed modality order: entry m must be modality m's weight.",
}
WEIGHT_HINTS = {
    "default": "s_m = I(m) D(m); W = softmax(T s) over the modalities.",
    "nan": "exp(T s) overflows for a large T s: subtract the largest T s_m first (it cancels in the softmax).",
}


def _softmax(a):
    a = np.asarray(a, dtype=float)
    e = np.exp(a - a.max())
    return e / e.sum()


def _weight_cases(seed=0):
    rng = np.random.default_rng(seed)
    cases = []
    for label, M, T in [
        ("M = 2, T = 1", 2, 1.0),
        ("M = 2, T = 2.5", 2, 2.5),
        ("M = 3, T = 0.7", 3, 0.7),
        ("M = 3, a negative I, T = 4", 3, 4.0),
        ("M = 2, T = 0", 2, 0.0),
        ("M = 2, T = 500 (use a stable softmax)", 2, 500.0),
    ]:
        I = rng.normal(0.4, 0.5, size=M)
        if "negative" in label:
            I[1] = -1.3
        if T > 100:
            I = np.array([2.5, 1.0])
        D = rng.uniform(0.1, 0.95, size=M)
        expected = C.softmax_weights(I * D, T)
        s = I * D
        with np.errstate(over="ignore", invalid="ignore"):
            wrong = {
                "no_temperature": _softmax(s),
                "divide_temperature": _softmax(s / T) if T else np.full(M, np.nan),
                "sum": _softmax(T * (I + D)),
                "I_only": _softmax(T * I),
                "D_only": _softmax(T * D),
                "unnormalised": np.exp(T * s),
                "sign": _softmax(-T * s),
                "reversed": expected[::-1],
            }
        cases.append((label, (I.copy(), D.copy(), T), expected, wrong))
    return cases


def check_contribution_weights(fn, seed: int = 0) -> grading.Result:
    """Grade ``fn(I, D, temperature) -> W`` (M weights), I and D arrays of shape (M,)."""
    cases = _weight_cases(seed)

    def to_array(value, args):
        return _as_vector(len(args[0]))(value, args)

    return grade(
        fn,
        cases,
        hidden=[(C, "softmax_weights"), (cal_design, "score"), (L, "softmax"), (L, "log_softmax")],
        to_array=to_array,
        messages=WEIGHT_MISTAKES,
        name="contribution weights W",
        hints=WEIGHT_HINTS,
        what="W",
    )


# ------------------------------------------------------------------------------------------------- figures
def label(S, names):
    return "{" + ", ".join(names[m] for m in S) + "}"


def plot_coalition_values(values: dict, names, h_y: float, path=None):
    """Figure 1: v(S) per coalition, one group of bars per model (zero-based, values written on the bars)."""
    coalitions = list(next(iter(values.values())))
    fig, ax = plots.figure(width=8.5, height=4.0)
    width = 0.8 / len(values)
    for i, (name, v) in enumerate(values.items()):
        x = np.arange(len(coalitions)) + (i - (len(values) - 1) / 2) * width
        heights = [v[S] for S in coalitions]
        ax.bar(x, heights, width, color=f"C{i}", label=name)
        for xi, h in zip(x, heights):
            if abs(h) >= 0.05:  # values near 0 (the empty coalition's) would overlap: the table prints them
                ax.text(
                    xi,
                    h + (0.03 if h >= 0 else -0.03),
                    f"{h:.2f}",
                    ha="center",
                    va="bottom" if h >= 0 else "top",
                    fontsize=9,
                )
    ax.axhline(h_y, color="k", ls="--", lw=1, label=f"H(Y) = {h_y:.2f}, the largest possible value")
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xticks(range(len(coalitions)), [f"v({label(S, names)})" for S in coalitions])
    ax.set_xlabel("coalition S")
    ax.set_ylabel("coalition value v(S) (nats)")
    low = min(min(v.values()) for v in values.values())
    ax.set_ylim(min(-0.2, low - 0.15), h_y + 0.15)
    plots.legend_outside(ax)
    ax.set_title("Figure 1. Coalition values v(S) = H(Y) - CE, validation split")
    plots.finish(fig, path)


def plot_entropy_histograms(norm_entropy: dict, D: dict, names, path=None):
    """Figure 2: per-sample normalised entropy of each modality's coalition prediction, one panel per model."""
    fig, axes = plots.figure(ncols=len(norm_entropy), width=10, height=3.6, sharey=True)
    bins = np.linspace(0, 1, 41)
    for ax, name in zip(np.atleast_1d(axes), norm_entropy):
        for m, color in enumerate(("C0", "C3")[: len(names)]):
            e = norm_entropy[name][m]
            ax.hist(e, bins=bins, color=color, alpha=0.55, label=f"{names[m]}: D = {D[name][m]:.2f}")
            ax.axvline(e.mean(), color=color, ls="--", lw=1.2)
        ax.set_title(name)
        ax.set_xlabel("entropy / log K, per validation sample")
        ax.legend(loc="upper center")
    np.atleast_1d(axes)[0].set_ylabel("samples")
    fig.suptitle("Figure 2. How sure each modality's coalition prediction is (dashed: the mean, 1 - D)")
    plots.finish(fig, path)


def plot_weights_vs_temperature(I: dict, D: dict, path=None):
    """Figure 3: W^A against T for each score mode, one panel per model."""
    temperatures = np.logspace(-1, 2, 61)
    fig, axes = plots.figure(ncols=len(I), width=10, height=3.8, sharey=True)
    for ax, name in zip(np.atleast_1d(axes), I):
        for mode, ls in zip(cal_design.SCORE_MODES, ("-", "--", "-.", ":")):
            s = cal_design.score(I[name], D[name], mode)
            ax.semilogx(temperatures, [C.softmax_weights(s, T)[0] for T in temperatures], ls=ls, lw=2, label=mode)
        ax.axvline(1.0, color="k", lw=0.8, ls=":")
        ax.axhline(0.5, color="grey", lw=0.8)
        ax.set_title(
            f"{name}: I = ({I[name][0]:.2f}, {I[name][1]:.2f}), D = ({D[name][0]:.2f}, {D[name][1]:.2f})", fontsize=9
        )
        ax.set_xlabel("temperature T")
    axes = np.atleast_1d(axes)
    axes[0].set_ylabel("W^A (W^V = 1 - W^A)")
    axes[0].set_ylim(0, 1)
    plots.legend_outside(axes[-1], title="score_mode")
    fig.suptitle("Figure 3. A's weight against the temperature, per score_mode (dotted: T = 1)")
    plots.finish(fig, path)


def plot_batch_traces(traces: dict, W_split: float, path=None):
    """Figure 4: the metric's W^A on 300 single validation batches, raw and smoothed."""
    fig, ax = plots.figure(width=9, height=3.6)
    ax.plot(traces[0.0], color="C0", lw=0.8, alpha=0.7, label="ema = 0 (each batch's own W^A)")
    ax.plot(traces[0.9], color="C1", lw=2, label="ema = 0.9")
    ax.axhline(W_split, color="k", ls="--", lw=1, label=f"whole validation split ({W_split:.3f})")
    ax.set_xlabel("batch (64 validation samples each; the model is frozen)")
    ax.set_ylabel("W^A")
    ax.legend(ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.2))
    ax.set_title("Figure 4. The metric on single batches, raw and smoothed (trained CAL model, T = 1)")
    plots.finish(fig, path)


def plot_training_curves(
    curves: dict, first: dict, step_x, val_coalition, names, bayes, warmup: int, n_seeds: int, path=None
):
    """Figure 5: I, D, W per epoch during CAL training (bold: mean over seeds; faint: every step of seed 0), and
    the validation coalition accuracy."""
    epochs = np.arange(1, val_coalition.shape[1] + 1)
    fig, axes = plots.figure(ncols=2, nrows=2, width=10, height=7, sharex=True)
    colors = ("C0", "C3")
    panels = [
        (axes[0, 0], "I", "information quantity I(m) (nats)"),
        (axes[0, 1], "D", "confidence D(m)"),
        (axes[1, 0], "W", "contribution weight W^m used"),
    ]
    for ax, key, title in panels:
        for m in range(len(names)):
            ax.plot(step_x, first["W_metric" if key == "W" else key][:, m], color=colors[m], lw=0.5, alpha=0.3)
            ax.plot(epochs, curves[key].mean(0)[:, m], color=colors[m], lw=2.2, label=names[m])
            if key == "W":
                ax.plot(
                    epochs,
                    curves["W_metric"].mean(0)[:, m],
                    color=colors[m],
                    lw=1.2,
                    ls="--",
                    label=f"{names[m]}: the metric's W",
                )
        ax.set_ylabel(title)
    ax = axes[1, 1]
    for m in range(len(names)):
        ax.plot(epochs, val_coalition.mean(0)[:, m], color=colors[m], lw=2.2, label=names[m])
        ax.axhline(bayes[f"modality {m}"], color=colors[m], ls=":", lw=1)
    ax.set_ylabel("validation coalition accuracy")
    ax.set_ylim(0, 1)
    axes[1, 0].set_ylim(0.25, 0.9)  # room above the curves for the legend
    for ax in axes.ravel():
        ax.axvspan(0, warmup, color="grey", alpha=0.12, lw=0)
        if ax is axes[1, 0]:
            ax.legend(fontsize=9, loc="upper center", ncol=2)
        else:
            ax.legend(fontsize=9, loc="lower right")
    for ax in axes[1]:
        ax.set_xlabel("epoch")
    fig.suptitle(
        f"Figure 5. CAL training: bold, epoch mean over {n_seeds} seed(s); faint, each step of seed 0;\n"
        f"shaded, warm-up; dotted, Bayes-optimal accuracy"
    )
    plots.finish(fig, path)


def batch_traces(
    result,
    ds,
    h_y: float,
    ema: float,
    n_batches: int = 300,
    batch_size: int = 64,
    seed: int = 0,
    temperature: float = 1.0,
):
    """W^A of a frozen trained model's metric (``cal_design.ContributionMetric`` with this ``ema``) on ``n_batches``
    random validation batches, the same batches for every ``ema`` (same ``seed``): an array (n_batches,)."""
    from mini_cal import backend as B

    xs, y = ds.split("val")
    rng = np.random.default_rng(seed)
    metric = cal_design.ContributionMetric(result.model.M, ds.num_classes, temperature=temperature, ema=ema, h_y=h_y)
    trace = []
    for _ in range(n_batches):
        idx = rng.choice(len(y), size=batch_size, replace=False)
        out = result.model.forward(result.params, [B.asarray(x[idx]) for x in xs])
        trace.append(metric(result.model, result.params, out, L.one_hot(B.asarray(y[idx]), ds.num_classes))["W"][0])
    return np.array(trace)
