"""tutorials/course/nb03.py: every checker of notebook 03 accepts its solution, says "not implemented" for the stub,
refuses the library's own function, and names typical wrong answers, each with its own message."""

import math
import os
import re
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tutorials"))

from course import nb03  # noqa: E402
from solutions.coalition_values import coalition_values  # noqa: E402
from solutions.confidence import confidence  # noqa: E402
from solutions.contribution_weights import contribution_weights  # noqa: E402
from solutions.shapley_three import shapley_three  # noqa: E402
from solutions.shapley_two import shapley_two  # noqa: E402

from mini_cal import contribution as C  # noqa: E402
from mini_cal import layers as L  # noqa: E402

CHECKS = [
    (nb03.check_coalition_values, coalition_values),
    (nb03.check_shapley_two, shapley_two),
    (nb03.check_shapley_three, shapley_three),
    (nb03.check_confidence, confidence),
    (nb03.check_contribution_weights, contribution_weights),
]


def stub(*args):
    raise NotImplementedError("write it")


@pytest.mark.parametrize("check, solution", CHECKS)
def test_solution_passes_stub_is_not_implemented(check, solution):
    result = check(solution)
    assert result.passed, result.message
    assert result.message.startswith("PASSED")
    result = check(stub)
    assert not result.passed and "not implemented" in result.message


@pytest.mark.parametrize(
    "check, library",
    [
        (
            nb03.check_coalition_values,
            lambda shares, b, y, h: {
                S: C.coalition_value(sum((shares[m] for m in S), np.zeros_like(shares[0])) + b, y, h)
                for S in C.all_coalitions(len(shares))
            },
        ),
        (nb03.check_shapley_two, lambda v: C.shapley(v, 2)),
        (nb03.check_shapley_three, lambda v: C.shapley(v, 3)),
        (nb03.check_confidence, C.confidence),
        (nb03.check_confidence, lambda logits, k: 1 - float(np.mean(L.entropy(logits))) / math.log(k)),
        (nb03.check_contribution_weights, lambda I, D, T: C.softmax_weights(np.asarray(I) * D, T)),
    ],
)
def test_library_function_fails(check, library):
    result = check(library)
    assert not result.passed
    assert "library's own" in result.message


def test_library_is_restored_after_grading():
    nb03.check_shapley_two(lambda v: C.shapley(v, 2))
    assert np.allclose(C.shapley({(): 0, (0,): 1, (1,): 0, (0, 1): 1}, 2), [1, 0])


def _with(fn, **changes):
    """A wrong coalition_values: the solution's formula with one piece changed."""

    def wrong(shares, bias, y, h_y):
        values = {}
        M = len(shares)
        for S in C.all_coalitions(M):
            logits = np.zeros_like(shares[0]) + (0 if changes.get("no_bias") else bias)
            for m in S:
                logits = logits + shares[M - 1 - m if changes.get("reversed") else m]
            z = logits - logits.max(axis=1, keepdims=True)
            logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
            if changes.get("bits"):
                logp = logp / math.log(2)
            ce = -np.sum(y * logp) / (1 if changes.get("sum") else logits.shape[0])
            values[S] = fn(h_y, ce)
        return values

    return wrong


@pytest.mark.parametrize(
    "wrong, words",
    [
        (_with(lambda h, ce: ce - h), "wrong sign"),
        (_with(lambda h, ce: -ce), "left out H(Y)"),
        (_with(lambda h, ce: h - ce, bits=True), "in bits"),
        (_with(lambda h, ce: h - ce, sum=True), "SUM over the samples"),
        (_with(lambda h, ce: h - ce, no_bias=True), "leave out the head's bias"),
        (_with(lambda h, ce: h - ce, reversed=True), "reversed order"),
        (
            lambda shares, b, y, h: {str(k): v for k, v in coalition_values(shares, b, y, h).items()},
            "lacks the coalition",
        ),
    ],
)
def test_coalition_values_mistakes(wrong, words):
    result = nb03.check_coalition_values(wrong)
    assert not result.passed and words in result.message, result.message


def _shapley_weighted(M, weight, sign=1.0):
    def fn(v):
        phi = np.zeros(M)
        for m in range(M):
            for S in C.all_coalitions(M):
                if m not in S:
                    phi[m] += weight(len(S)) * sign * (v[tuple(sorted(S + (m,)))] - v[S])
        return phi

    return fn


@pytest.mark.parametrize(
    "wrong, words",
    [
        (lambda v: shapley_two(v)[::-1], "reversed modality order"),
        (_shapley_weighted(2, lambda s: 1.0), "M! times too large"),
        (lambda v: [-x for x in shapley_two(v)], "wrong sign"),
        (lambda v: [v[(m,)] - v[()] for m in range(2)], "worth alone"),
        (lambda v: [v[(0, 1)] - v[(1 - m,)] for m in range(2)], "leave-one-out"),
        (lambda v: [0.5 * v[(m,)] + 0.5 * (v[(0, 1)] - v[(1 - m,)]) for m in range(2)], "left out v({})"),
        (lambda v: [0.3 * x for x in shapley_two(v)], "Efficiency fails"),
        (lambda v: [1.0], "expected 2 numbers"),
    ],
)
def test_shapley_two_mistakes(wrong, words):
    result = nb03.check_shapley_two(wrong)
    assert not result.passed and words in result.message, result.message


@pytest.mark.parametrize(
    "wrong, words",
    [
        (lambda v: shapley_three(v)[::-1], "reversed modality order"),
        (lambda v: [shapley_three(v)[i] for i in (2, 0, 1)], "permuted"),
        (_shapley_weighted(3, lambda s: 1 / 4), "equal weights"),
        (_shapley_weighted(3, lambda s: math.factorial(s) * math.factorial(2 - s)), "M! times too large"),
        (_shapley_weighted(3, lambda s: 1.0), "without weighting them"),
        (_shapley_weighted(3, lambda s: math.factorial(s) * math.factorial(2 - s) / 6, sign=-1.0), "wrong sign"),
        (_shapley_weighted(3, lambda s: math.factorial(1 - s % 2) * math.factorial(1 + s % 2) / 6), "are swapped"),
    ],
)
def test_shapley_three_mistakes(wrong, words):
    result = nb03.check_shapley_three(wrong)
    assert not result.passed and words in result.message, result.message


# the weights of |S| = 0 and 2 given to |S| = 1 and the other way round, then doubled, as the old verdict
# ("0.5 times the right answer" in one case) told: right in one case, twice the answer in another
_SWAPPED = _shapley_weighted(3, lambda s: math.factorial(1 - s % 2) * math.factorial(1 + s % 2) / 6)
_SWAPPED_DOUBLED = _shapley_weighted(3, lambda s: 2 * math.factorial(1 - s % 2) * math.factorial(1 + s % 2) / 6)


@pytest.mark.parametrize("seed", [0, 1, 20_251])
def test_swapped_weights_are_named_on_every_seed(seed):
    result = nb03.check_shapley_three(_SWAPPED, seed=seed)
    assert not result.passed and result.details.get("mistake") == "swapped_weights", result.message
    assert "constant factor" not in result.message and "times the right answer" not in result.message


def test_a_factor_that_differs_between_cases_is_not_called_constant():
    result = nb03.check_shapley_three(_SWAPPED_DOUBLED)
    assert not result.passed
    assert "constant factor" not in result.message and "not in every case" in result.message, result.message
    assert "no single factor fixes it" in result.message, result.message
    # a factor that IS the same in every case is still named
    for check, solution in ((nb03.check_shapley_two, shapley_two), (nb03.check_shapley_three, shapley_three)):
        result = check(lambda v, solution=solution: [0.3 * x for x in solution(v)])
        assert "off by a constant factor: it is 0.3 times the right answer" in result.message, result.message
    scaled = _shapley_weighted(3, lambda s: 1.2 * math.factorial(s) * math.factorial(2 - s) / 6)
    result = nb03.check_shapley_three(scaled)
    assert "off by a constant factor: it is 1.2 times" in result.message, result.message


def _entropy(logits, log=np.log):
    z = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    return -np.sum(np.where(p > 0, p * log(np.where(p > 0, p, 1)), 0), axis=1)


@pytest.mark.parametrize(
    "wrong, words",
    [
        (lambda lg, k: float(_entropy(lg).mean() / math.log(k)), "ONE MINUS"),
        (lambda lg, k: float(1 - _entropy(lg).mean()), "not normalised"),
        (lambda lg, k: float(1 - _entropy(lg, np.log2).mean() / math.log(k)), "mixes logarithm bases"),
        (lambda lg, k: 1 - _entropy(lg) / math.log(k), "average the per-sample"),
        (
            lambda lg, k: float(
                1
                - np.mean(
                    -np.sum(
                        np.exp(lg)
                        / np.exp(lg).sum(1, keepdims=True)
                        * np.log(np.exp(lg) / np.exp(lg).sum(1, keepdims=True)),
                        axis=1,
                    )
                )
                / math.log(k)
            ),
            "NaN",
        ),
        (
            lambda lg, k: float(
                np.mean(
                    np.max(
                        np.exp(lg - lg.max(1, keepdims=True))
                        / np.exp(lg - lg.max(1, keepdims=True)).sum(1, keepdims=True),
                        axis=1,
                    )
                )
            ),
            "largest probability",
        ),
    ],
)
def test_confidence_mistakes(wrong, words):
    with np.errstate(all="ignore"):
        result = nb03.check_confidence(wrong)
    assert not result.passed and words in result.message, result.message


def _softmax(a):
    e = np.exp(a - np.max(a))
    return e / e.sum()


@pytest.mark.parametrize(
    "wrong, words",
    [
        (lambda I, D, T: _softmax(np.asarray(I) * D), "ignores the temperature"),
        (lambda I, D, T: _softmax(np.asarray(I) * D / T), "divided the score by the temperature"),
        (lambda I, D, T: _softmax(T * (np.asarray(I) + D)), "I + D"),
        (lambda I, D, T: _softmax(-T * np.asarray(I) * D), "LOWER score"),
        (lambda I, D, T: contribution_weights(I, D, T)[::-1], "reversed modality order"),
        (lambda I, D, T: np.exp(T * np.asarray(I) * D), "do not sum to 1"),
        (lambda I, D, T: np.exp(T * np.asarray(I) * D) / np.exp(T * np.asarray(I) * D).sum(), "NaN"),
    ],
)
def test_contribution_weights_mistakes(wrong, words):
    with np.errstate(all="ignore"):
        result = nb03.check_contribution_weights(wrong)
    assert not result.passed and words in result.message, result.message


def test_checkers_never_raise_on_odd_answers():
    for check, _ in CHECKS:
        for odd in (lambda *a: None, lambda *a: "text", lambda *a: 1 / 0):
            result = check(odd)
            assert not result.passed and result.message.startswith("FAILED")


# ------------------------------------------------------------- issue 19, point 7: verdicts that do not mislead
def _softmax_then_entropy(logits_m, num_classes):  # stable softmax, then -sum p log p: 0 log 0 where p underflows
    z = logits_m - logits_m.max(axis=1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    return float(1 + np.sum(p * np.log(p), axis=1).mean() / math.log(num_classes))


def _no_max_subtracted(logits_m, num_classes):
    p = np.exp(logits_m) / np.exp(logits_m).sum(axis=1, keepdims=True)
    return float(1 + np.sum(p * np.log(p), axis=1).mean() / math.log(num_classes))


def test_confidence_tells_zero_log_zero_from_overflow():
    with np.errstate(all="ignore"):
        zero = nb03.check_confidence(_softmax_then_entropy)
        overflow = nb03.check_confidence(_no_max_subtracted)
    assert not zero.passed and "0 * log 0" in zero.message and "subtract" not in zero.message, zero.message
    assert not overflow.passed and "subtract each row's largest logit" in overflow.message, overflow.message


def test_scalar_verdicts_print_no_expected_value():
    result = nb03.check_confidence(lambda logits, k: 0.3)
    assert not result.passed and "expected" not in result.message and "times the right" not in result.message
    expected = float(C.confidence(nb03._confidence_cases()[0][1][0], 4))
    assert f"{expected:.4f}"[:5] not in result.message, result.message
    result = nb03.check_confidence(lambda logits, k: np.float32(confidence(logits.astype(np.float32), k)))
    assert "1 times" not in result.message, result.message  # float32: rounding, named as such if it fails


def test_a_wrong_coalition_is_named_by_its_key():
    def one_wrong(shares, bias, y_onehot, h_y):
        values = coalition_values(shares, bias, y_onehot, h_y)
        values[(1,)] = values[(1,)] + 0.1
        return values

    result = nb03.check_coalition_values(one_wrong)
    assert not result.passed and "v(1,)" in result.message and "index" not in result.message, result.message


def test_alternative_library_implementations_do_not_pass():
    """Issue 19, point 3: the library's other implementations of an exercise are hidden (or caught) too."""
    from mini_cal import layers as L
    from mini_cal.methods import agm

    two = nb03.check_shapley_two(lambda v: agm.shapley_responses(v, 2))
    three = nb03.check_shapley_three(lambda v: agm.shapley_responses(v, 3))
    assert not two and not three and "hidden" in two.message, (two.message, three.message)
    assert not nb03.check_shapley_two(lambda v: agm.shapley_responses({k: val for k, val in v.items() if k}, 2))
    confidence = nb03.check_confidence(lambda z, k: 1 - float(np.mean(L.entropy_forward(z)[0])) / np.log(k))
    assert not confidence and "hidden" in confidence.message, confidence.message
    weights = nb03.check_contribution_weights(lambda I, D, T: L.softmax((T * np.asarray(I) * np.asarray(D))[None])[0])
    assert not weights and "hidden" in weights.message, weights.message


# ------------------------------------- exercises 2 and 3 are derivations: no weight above the stubs or in a verdict
NOTEBOOK = os.path.join(os.path.dirname(__file__), "..", "tutorials", "03_measuring_contribution.ipynb")
# the Shapley weights |S|!(M-|S|-1)!/M!, written out or as numbers (1/2 for M = 2; 1/3 and 1/6 for M = 3)
WEIGHT_PATTERNS = [
    r"\|S\|\s*!",
    r"\(\s*M\s*-\s*\|S\|\s*-\s*1\s*\)\s*!",
    r"factorial",
    r"shapley_weight",
    r"\b[12]\s*/\s*[36]\b",
    r"\\t?frac\s*\{?\s*[12]\s*\}?\s*\{?\s*[36]\s*\}?",
    r"[⅓⅙]",
]
HALF_PATTERNS = [r"\b1\s*/\s*2\b", r"\\t?frac\s*\{?\s*1\s*\}?\s*\{?\s*2\s*\}?", r"½", r"\b0\.5\s*\*"]


def _cells():
    import json

    with open(NOTEBOOK, encoding="utf-8") as f:
        return [(c["cell_type"], "".join(c["source"])) for c in json.load(f)["cells"]]


def _index(cells, text):
    found = [i for i, (_, source) in enumerate(cells) if text in source]
    assert found, f"no cell contains {text!r}"
    return found[0]


def _found(patterns, text):
    return [p for p in patterns if re.search(p, text)]


def test_shapley_weights_are_not_given_above_the_stubs():
    cells = _cells()
    two, three = _index(cells, "def my_shapley_two("), _index(cells, "def my_shapley_three(")
    above_two = "\n".join(source for _, source in cells[:two])
    assert not _found(WEIGHT_PATTERNS + HALF_PATTERNS, above_two), _found(WEIGHT_PATTERNS + HALF_PATTERNS, above_two)
    above_three = "\n".join(source for _, source in cells[:three])
    assert not _found(WEIGHT_PATTERNS, above_three), _found(WEIGHT_PATTERNS, above_three)
    # no earlier cell prints a Shapley value: none before exercise 2, none of a three-modality game before exercise 3
    code_two = "\n".join(source for kind, source in cells[:two] if kind == "code")
    assert not re.search(r"shapley(_responses)?\(", code_two)
    code_three = "\n".join(source for kind, source in cells[:three] if kind == "code")
    assert not re.search(r"shapley(_responses)?\(\s*(game3|[^,)]*,\s*3\s*\))", code_three)
    assert "shapley_acc" not in code_two  # evaluate.py's Shapley values of accuracy


def test_the_general_formula_is_revealed_after_exercise_3():
    cells = _cells()
    check = _index(cells, "exercises.check_shapley_three(my_shapley_three)")
    after = "\n".join(source for _, source in cells[check + 1 :])
    assert re.search(r"\|S\|!\\,\(M - \|S\| - 1\)!", after), "the closed form should follow exercise 3's check"
    assert _index(cells, "What you derived, in general") == check + 1


@pytest.mark.parametrize("M", [2, 3])
def test_shapley_verdicts_do_not_give_the_weights(M):
    check = nb03.check_shapley_two if M == 2 else nb03.check_shapley_three
    solution = shapley_two if M == 2 else shapley_three
    wrongs = [
        lambda v: solution(v)[::-1],
        lambda v: [-x for x in solution(v)],
        lambda v: [0.3 * x for x in solution(v)],
        lambda v: [v[(m,)] - v[()] for m in range(M)],
        _shapley_weighted(M, lambda s: 1.0),
        _shapley_weighted(M, lambda s: 1 / 2 ** (M - 1)),
        _shapley_weighted(M, lambda s: math.factorial(s) * math.factorial(M - s - 1)),
        stub,
    ]
    if M == 3:
        wrongs += [_SWAPPED, _SWAPPED_DOUBLED]
    patterns = WEIGHT_PATTERNS + (HALF_PATTERNS if M == 2 else [])
    texts = [check.__doc__, nb03.__doc__, *nb03.SHAPLEY_MISTAKES.values(), *nb03.SHAPLEY_HINTS.values()]
    texts += [check(wrong).message for wrong in wrongs]
    for text in texts:
        assert not _found(patterns, text or ""), (text, _found(patterns, text or ""))
