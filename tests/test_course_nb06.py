"""Notebook 06's checkers: each accepts its solution, reports a stub as unfinished, refuses the library's own
function, and tells typical wrong answers apart with different messages."""

import sys
from pathlib import Path

import numpy as np
import pytest

TUTORIALS = Path(__file__).resolve().parents[1] / "tutorials"
sys.path.insert(0, str(TUTORIALS))

from course import nb06  # noqa: E402
from solutions.auc import auc  # noqa: E402
from solutions.gaussian_attack import gaussian_attack  # noqa: E402

from mini_cal import noise  # noqa: E402

C = noise.GAUSSIAN_C


def stub(*args, **kwargs):
    raise NotImplementedError("write it")


def library_attack(x, eps, seed=0, p_attack=0.5):
    xs, mask = noise.attack([x], "gaussian", eps, 0, seed, p_attack)
    return xs[0], mask


def make_attack(
    scale=lambda x: x.std(axis=0, keepdims=True),
    level=lambda eps: eps / 10 * C,
    reseed=False,
    p_fixed=None,
    in_place=False,
    draw=lambda rng, shape: rng.standard_normal(shape),
):
    def fn(x, eps, seed=0, p_attack=0.5):
        rng = np.random.default_rng([seed, eps] if reseed else seed)
        attacked = rng.random(len(x)) < (p_fixed if p_fixed is not None else p_attack)
        z = draw(rng, x.shape)
        out = x if in_place else x.copy()
        out[attacked] = (x + level(eps) * scale(x) * z)[attacked]
        return out, attacked

    return fn


WRONG_ATTACKS = [
    (make_attack(reseed=True), "common random numbers"),
    (make_attack(p_fixed=0.5), "probability p_attack"),
    (make_attack(scale=lambda x: x.std()), "same size for every feature"),
    (make_attack(scale=lambda x: x.var(axis=0, keepdims=True)), "not the variance"),
    (make_attack(level=lambda eps: eps * C), "eps / 10"),
    (make_attack(level=lambda eps: eps / 10), "GAUSSIAN_C"),
    (make_attack(in_place=True), "changed its input"),
    (make_attack(draw=lambda rng, shape: rng.random(shape)), "not centred"),
]


def all_rows(x, eps, seed=0, p_attack=0.5):
    out, mask = gaussian_attack(x, eps, seed, p_attack)
    rng = np.random.default_rng(seed + 100)
    return x + eps / 10 * C * x.std(axis=0) * rng.standard_normal(x.shape), mask


WRONG_ATTACKS.append((all_rows, "outside your mask were changed"))


def auc_raw(levels, accs):
    return float(np.trapezoid(accs, levels)) if hasattr(np, "trapezoid") else float(np.trapz(accs, levels))


def auc_mean(levels, accs):
    return float(np.mean(accs))


def auc_by_count(levels, accs):
    return auc_raw(levels, accs) / len(levels)


def auc_left(levels, accs):
    levels, accs = np.asarray(levels, float), np.asarray(accs, float)
    return float(np.sum(accs[:-1] * np.diff(levels)) / (levels[-1] - levels[0]))


def auc_unit_steps(levels, accs):
    accs = np.asarray(accs, float)
    return float(np.sum((accs[1:] + accs[:-1]) / 2) / (levels[-1] - levels[0]))


WRONG_AUCS = [
    (auc_raw, "raw area"),
    (auc_mean, "mean of the accuracies"),
    (auc_by_count, "number of levels"),
    (auc_left, "left rectangles"),
    (auc_unit_steps, "ignores the spacing"),
]


@pytest.mark.parametrize(
    "check, solution, library, wrong",
    [
        (nb06.check_gaussian_attack, gaussian_attack, library_attack, WRONG_ATTACKS),
        (nb06.check_auc, auc, noise.auc, WRONG_AUCS),
    ],
    ids=["gaussian_attack", "auc"],
)
def test_checker(check, solution, library, wrong):
    result = check(solution)
    assert result.passed, result.message
    assert "not implemented" in check(stub).message
    result = check(library)
    assert not result.passed and "library" in result.message
    messages = set()
    for fn, expected in wrong:
        result = check(fn)
        assert not result.passed, expected
        assert expected in result.message, (expected, result.message)
        messages.add(result.message)
    assert len(messages) == len(wrong)


def test_checkers_never_raise_on_garbage():
    for check in (nb06.check_gaussian_attack, nb06.check_auc):
        for fn in (lambda *a, **k: None, lambda *a, **k: "text", lambda *a, **k: 1 / 0, lambda *a, **k: (1, 2)):
            assert not check(fn).passed


# ------------------------------------------------------------- issue 19, point 7: verdicts that do not mislead
def test_noise_of_the_right_variance_but_not_gaussian_is_refused():
    uniform = make_attack(draw=lambda rng, shape: (rng.random(shape) - 0.5) * np.sqrt(12.0))  # variance 1
    laplace = make_attack(draw=lambda rng, shape: rng.laplace(size=shape) / np.sqrt(2.0))  # variance 1
    assert "lighter-tailed than a Gaussian" in check_message(uniform)
    assert "heavier-tailed than a Gaussian" in check_message(laplace)
    for seed in range(20):  # a Gaussian passes whatever its draws
        gaussian = make_attack(draw=lambda rng, shape, s=seed: np.random.default_rng(s + 100).standard_normal(shape))
        assert nb06.check_gaussian_attack(gaussian).passed, seed


def check_message(fn):
    result = nb06.check_gaussian_attack(fn)
    assert not result.passed
    return result.message


def test_a_wrong_auc_does_not_print_the_answer():
    result = nb06.check_auc(lambda levels, accs: 0.5)
    expected = noise.auc(*nb06.AUC_CASES[0][1:])
    assert not result.passed and f"{expected:.4f}" not in result.message and "too small" in result.message
