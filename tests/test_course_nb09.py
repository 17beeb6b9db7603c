"""Notebook 09's checker: it accepts its solution (and the other harmless conventions for a constant feature),
reports a stub as unfinished, refuses the library's own standardisation, and tells typical wrong answers apart with
different messages that never print the expected arrays; its helpers behave as the notebook says."""

import sys
from pathlib import Path

import numpy as np
import pytest

TUTORIALS = Path(__file__).resolve().parents[1] / "tutorials"
sys.path.insert(0, str(TUTORIALS))

from course import nb09  # noqa: E402
from solutions.standardize import standardize  # noqa: E402

from mini_cal import data  # noqa: E402


def stub(train, *others):
    raise NotImplementedError("write the standardisation")


def make(
    stats_from=lambda train, splits, name, i: train[name],
    axis=0,
    ddof=0,
    center=True,
    scale=True,
    power=1,
    eps=0.0,
    constant="ptp",
    raw_others=False,
    as_int=False,
    in_place=False,
):
    """A standardisation with one knob turned. ``constant``: how a constant training feature is found and what it
    becomes: "ptp" (all values equal: std 1), "exact" (std == 0: std 1), "none" (divide anyway), "zero" (all equal:
    0 everywhere), "relative" (std <= 1e-12 |mean|: std 1), a number (std below it: std 1)."""

    def fn(train, *others):
        splits = (train, *others)
        out = []
        for i, split in enumerate(splits):
            out.append({})
            for name, x in split.items():
                src = np.asarray(stats_from(train, splits, name, i), np.float64)
                mean = src.mean(axis=axis, keepdims=True)
                sd = src.std(axis=axis, ddof=ddof, keepdims=True)
                const = np.zeros_like(sd, dtype=bool)
                if constant == "ptp" or constant == "zero":
                    const = np.ptp(src, axis=axis, keepdims=True) == 0
                elif constant == "exact":
                    const = sd == 0
                elif constant == "relative":
                    const = sd <= 1e-12 * np.abs(mean)
                elif isinstance(constant, float):
                    const = sd < constant
                sd = np.where(const, 1.0, sd)
                if in_place:
                    y = x
                    y -= mean.astype(x.dtype)
                    y /= sd.astype(x.dtype)
                elif raw_others and i > 0:
                    y = np.asarray(x, np.float64)
                else:
                    y = ((x - mean) if center else x) / ((sd**power + eps) if scale else 1.0)
                if constant == "zero":
                    y = np.where(np.broadcast_to(const, y.shape), 0.0, y)
                if as_int:
                    z = np.empty_like(x)
                    z[...] = y
                    y = z
                out[i][name] = y
        return out

    return fn


def pooled(train, splits, name, i):
    return np.concatenate([s[name] for s in splits])


WRONG = [
    (make(stats_from=lambda train, splits, name, i: splits[i][name]), "its own statistics"),
    (make(stats_from=pooled), "pool the training split"),
    (make(stats_from=lambda train, splits, name, i: splits[1][name]), "another split than the training split"),
    (make(raw_others=True), "only the training split is standardised"),
    (make(stats_from=lambda train, splits, name, i: splits[i][name], axis=1, constant="exact"), "per sample"),
    (make(stats_from=lambda train, splits, name, i: np.asarray(train[name], float).ravel()), "all the features of a"),
    (
        make(stats_from=lambda train, splits, name, i: np.concatenate([np.ravel(x) for x in train.values()])),
        "all the features of all modalities",
    ),
    (make(ddof=1), "ddof=1"),
    (make(power=2), "variance"),
    (make(scale=False), "centred but not scaled"),
    (make(center=False), "scaled but not centred"),
    (make(eps=1e-8, constant="none"), "added a small number"),
    (make(eps=1e-20, constant="none"), "came out huge"),
    (make(constant="none"), "NaN or inf"),
    (make(constant="exact"), "rounding residue"),
    (make(constant=1e-4), "treated as constant"),
    (make(constant=1e-8), "no absolute threshold can work"),  # np.isclose(std, 0)'s tolerance
    (make(as_int=True), "integer array"),
    (make(in_place=True), "in place"),
]


def minmax(train, *others):
    lo = {m: np.min(x, axis=0) for m, x in train.items()}
    span = {m: np.where(np.ptp(x, axis=0) > 0, np.ptp(x, axis=0), 1.0) for m, x in train.items()}
    return [{m: (np.asarray(x, float) - lo[m]) / span[m] for m, x in s.items()} for s in (train, *others)]


def nan_to_num(train, *others):
    with np.errstate(divide="ignore", invalid="ignore"):
        out = make(constant="none")(train, *others)
    return [{m: np.nan_to_num(x) for m, x in s.items()} for s in out]


def one_dict(train, *others):
    return standardize(train, *others)[0]


def reversed_splits(train, *others):
    return standardize(train, *others)[::-1]


def drops_constants(train, *others):
    keep = {m: np.ptp(np.asarray(x, float), axis=0) > 0 for m, x in train.items()}
    return [{m: x[:, keep[m]] for m, x in s.items()} for s in standardize(train, *others)]


WRONG += [
    (minmax, "min-max"),
    (nan_to_num, "came out huge"),
    (one_dict, "one dict"),
    (reversed_splits, "another order"),
    (drops_constants, "keep every sample and every feature"),
]


def test_solution_passes_on_visible_and_hidden_cases():
    for seed in (0, 1, 2, 20_251, 12345):
        result = nb09.check_standardize(standardize, seed=seed)
        assert result.passed, (seed, result.message)
    assert nb09.check_standardize(standardize).message.startswith("PASSED")


@pytest.mark.parametrize(
    "fn",
    [make(), make(constant="zero"), make(constant="relative")],
    ids=["std 1 for a constant", "a constant set to 0", "a threshold relative to the mean"],
)
def test_harmless_conventions_pass(fn):
    assert nb09.check_standardize(fn).passed, nb09.check_standardize(fn).message


def test_float32_answers_pass():
    def single(train, *others):
        return [{m: x.astype(np.float32) for m, x in s.items()} for s in standardize(train, *others)]

    assert nb09.check_standardize(single).passed


def test_stub_is_not_yet_and_the_library_is_refused():
    result = nb09.check_standardize(stub)
    assert not result.passed and result.message.startswith("NOT YET") and "not implemented" in result.message
    for library in (
        nb09.library_standardize,
        lambda train, *others: nb09.library_standardize(train, *others),
        lambda train, *others: [data.standardized(train["a"], 0, 1)],
        lambda train, *others: nb09.reference([train, *others]),  # the checker's own reference
    ):
        result = nb09.check_standardize(library)
        assert not result.passed and "library" in result.message, result.message


@pytest.mark.parametrize("fn, expected", WRONG, ids=[w[1] for w in WRONG])
def test_typical_mistakes_are_named(fn, expected):
    with np.errstate(divide="ignore", invalid="ignore"):
        result = nb09.check_standardize(fn)
    assert not result.passed, expected
    assert expected in result.message, (expected, result.message)


def test_each_mistake_has_its_own_message():
    with np.errstate(divide="ignore", invalid="ignore"):
        messages = [nb09.check_standardize(fn).message for fn, _ in WRONG]
    assert len(set(messages)) == len(messages)


def test_mistakes_are_caught_on_hidden_cases_too():
    with np.errstate(divide="ignore", invalid="ignore"):
        for fn, expected in WRONG:
            result = nb09.check_standardize(fn, seed=20_251)
            assert not result.passed and expected in result.message, (expected, result.message)


def test_checker_never_raises_on_garbage():
    for fn in (
        lambda *a: None,
        lambda *a: "text",
        lambda *a: 1 / 0,
        lambda *a: (1, 2),
        lambda *a: [dict(s) for s in a],  # the inputs themselves
        lambda *a: [{m: "x" for m in s} for s in a],
        lambda *a: [{m: np.full(np.shape(x), np.nan) for m, x in s.items()} for s in a],
        lambda *a: [{} for s in a],
    ):
        assert not nb09.check_standardize(fn).passed


def test_a_wrong_answer_does_not_print_the_expected_arrays():
    def off(train, *others):
        out = standardize(train, *others)
        out[1][next(iter(out[1]))][0, 0] += 0.5
        return out

    result = nb09.check_standardize(off)
    assert not result.passed and "1 of" in result.message


def test_the_cases_hold_what_they_claim():
    for seed in (0, 20_251):
        (_, first, info1), (_, ints, _), (_, const, info3), (_, sensor, info4) = nb09._cases(seed)
        assert len(first) == 3 and len(ints) == 2 and len(const) == 3 and len(sensor) == 2
        assert info1["tiny"] == ("a", 0) and 0 < first[0]["a"][:, 0].std() < 1e-4
        assert ints[0]["counts"].dtype.kind == "i"
        x = const[0]["pixels"]
        assert np.ptp(x[:, 1]) == 0 and x[0, 1] == 0 and x[:, 1].std() == 0  # blank
        assert np.ptp(x[:, 3]) == 0 and x.std(axis=0)[3] > 0  # constant, np.std a rounding residue
        assert all(np.ptp(s["pixels"][:, [1, 3]], axis=0).min() > 0 for s in const[1:])  # not constant elsewhere
        assert info3["residue"] == {"pixels": [3]}
        assert info4 == {"tiny": ("sensor", 0), "residue": {"sensor": [1]}}


@pytest.mark.parametrize("seed", [0, 1, 2, 20_251, 12345])
def test_case_4_defeats_every_absolute_threshold(seed):
    """A feature that really varies with a std of about 1e-14, next to a constant whose np.std (per column of the
    matrix, as students write x.std(axis=0), or of the column alone) is a larger rounding residue: whatever t, "std <
    t" gets one of the two wrong."""
    _, splits, _ = nb09._cases(seed)[3]
    x = splits[0]["sensor"]
    tiny = x[:, 0].std()
    assert 1e-15 < tiny < 1e-13 and np.ptp(x[:, 0]) > 0
    assert np.ptp(x[:, 1]) == 0 and min(x.std(axis=0)[1], x[:, 1].std()) > 10 * tiny
    assert np.ptp(splits[1]["sensor"][:, 1]) > 0  # not constant on test


@pytest.mark.parametrize("seed", [0, 20_251])
@pytest.mark.parametrize("threshold", [1e-15, 3e-15, 1e-14, 3e-14, 1e-13, 1e-12, 1e-10, 1e-8, 1e-6, 1e-5, 1e-4])
def test_no_absolute_threshold_on_the_std_passes(threshold, seed):
    with np.errstate(divide="ignore", invalid="ignore"):
        result = nb09.check_standardize(make(constant=threshold), seed=seed)
    assert not result.passed and "threshold" in result.message, result.message
    assert "constant" in result.message, result.message


def test_tolerances_of_isclose_and_allclose_are_absolute_thresholds_too():
    def isclose(train, *others):  # np.isclose(std, 0): atol 1e-8
        stats = {}
        for m, x in train.items():
            x = np.asarray(x, float)
            sd = x.std(axis=0)
            stats[m] = x.mean(axis=0), np.where(np.isclose(sd, 0), 1.0, sd)
        return [{m: (np.asarray(x, float) - stats[m][0]) / stats[m][1] for m, x in s.items()} for s in (train, *others)]

    result = nb09.check_standardize(isclose)
    assert not result.passed and "no absolute threshold can work" in result.message, result.message


def test_max_equals_min_passes_however_it_is_written():
    def all_equal(train, *others):
        stats = {}
        for m, x in train.items():
            x = np.asarray(x, float)
            const = np.all(x == x[0], axis=0)
            stats[m] = x.mean(axis=0), np.where(const, 1.0, x.std(axis=0))
        return [{m: (np.asarray(x, float) - stats[m][0]) / stats[m][1] for m, x in s.items()} for s in (train, *others)]

    for seed in (0, 20_251):
        assert nb09.check_standardize(all_equal, seed=seed).passed
        assert nb09.check_standardize(make(constant="relative"), seed=seed).passed


def test_the_library_treats_a_constant_with_a_rounding_residue_as_constant():
    """mini_cal.data.feature_statistics once tested std > 0, and a constant column's np.std is often a residue
    (1e-16): its val/test values went to about 1e15. It now tests max == min."""
    _, splits, _ = nb09._cases(0)[2]
    mean, std = data.feature_statistics([splits[0]["pixels"]])
    assert std[0][1] == 1.0 and std[0][3] == 1.0  # the blank column and the residue column
    expected = standardize(*splits)
    assert np.allclose(expected[0]["pixels"][:, 3], 0) and np.all(np.isfinite(expected[1]["pixels"]))
    ours = nb09.library_standardize(*splits)
    assert all(np.allclose(o[m], e[m]) for o, e in zip(ours, expected) for m in e)


def test_library_standardize_is_the_librarys_rule_in_the_exercise_form():
    rng = np.random.default_rng(0)
    train = {"a": rng.normal(size=(20, 3)).astype(np.float32), "b": rng.integers(0, 5, size=(20, 2))}
    val = {"a": rng.normal(size=(5, 3)).astype(np.float32), "b": rng.integers(0, 5, size=(5, 2))}
    ours = nb09.library_standardize(train, val)
    ref = standardize(train, val)
    for got, want in zip(ours, ref):
        for m in train:
            assert got[m].dtype.kind == "f"
            np.testing.assert_allclose(got[m], want[m], rtol=1e-5, atol=1e-5)
    assert np.array_equal(train["b"], np.asarray(train["b"]))  # inputs untouched


def test_active_units_counts_the_last_layer():
    class R:
        params = {
            "b0.W1": np.eye(2),
            "b0.b1": np.zeros(2),
            "b0.W2": np.array([[1.0, -1.0, 0.0]] * 2),
            "b0.b2": np.zeros(3),
        }

    assert nb09.active_units(R, [np.array([[1.0, 2.0], [0.5, 0.0]])], 0) == (1, 3)
