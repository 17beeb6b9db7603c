"""tutorials/course/nb04.py: every checker of notebook 04 accepts its solution, says "not implemented" for the stub,
refuses the library's own function, and names typical wrong answers, each with its own message; the
learning-rate experiment and the results file behave as notebook 04 says."""

import math
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tutorials"))

from course import nb04  # noqa: E402
from solutions.arl_weights import arl_weights  # noqa: E402
from solutions.cal_coefficients import accelerate  # noqa: E402
from solutions.ge_noise import ge_noise  # noqa: E402
from solutions.ogm_k import ogm_k  # noqa: E402

from mini_cal.methods import arl, ogm_ge  # noqa: E402
from mini_cal.synthetic import load_preset  # noqa: E402

CHECKS = [
    (nb04.check_acceleration, accelerate),
    (nb04.check_ogm_k, ogm_k),
    (nb04.check_ge_noise, ge_noise),
    (nb04.check_arl_weights, arl_weights),
]


def stub(*args, **kwargs):
    raise NotImplementedError("write it")


@pytest.mark.parametrize("check, solution", CHECKS)
def test_solution_passes_stub_is_not_implemented(check, solution):
    result = check(solution)
    assert result.passed and result.message.startswith("PASSED"), result.message
    result = check(stub)
    assert not result.passed and "not implemented" in result.message


@pytest.mark.parametrize(
    "check, library",
    [
        (nb04.check_acceleration, nb04.library_accelerate),
        (nb04.check_ogm_k, ogm_ge.modulation_coefficient),
        (nb04.check_ogm_k, lambda rho, alpha, variant="paper": ogm_ge.modulation_coefficient(rho, alpha, variant)),
        (nb04.check_arl_weights, arl.arl_weights),
        (nb04.check_arl_weights, lambda c, H, T=1.0, h=0.3: arl.arl_weights(c, H, T, h)),
    ],
)
def test_library_function_fails(check, library):
    result = check(library)
    assert not result.passed and "library's own" in result.message, result.message


def _scale(coef):
    def fn(grads, branch_keys, W):
        out = dict(grads)
        for m, keys in enumerate(branch_keys):
            for key in keys:
                out[key] = grads[key] * coef(np.asarray(W), m)
        return out

    return fn


def _head_too(grads, branch_keys, W):
    out = accelerate(grads, branch_keys, W)
    return {k: (v if any(k in keys for keys in branch_keys) else 1.5 * v) for k, v in out.items()}


@pytest.mark.parametrize(
    "wrong, words",
    [
        (_scale(lambda W, m: W[m]), "multiplied branch m by W^m"),
        (_scale(lambda W, m: 1 - W[m]), "1 - W^m"),
        (_scale(lambda W, m: 1 + W[::-1][m]), "reversed modality order"),
        (_head_too, "head"),
        (lambda g, bk, W: {k: v for k, v in accelerate(g, bk, W).items() if k.startswith("b")}, "lacks the key"),
    ],
)
def test_acceleration_mistakes(wrong, words):
    result = nb04.check_acceleration(wrong)
    assert not result.passed and words in result.message, result.message


def _k(rule):
    def fn(rho, alpha, variant="paper"):
        return rule(rho, alpha, variant)

    return fn


@pytest.mark.parametrize(
    "wrong, words",
    [
        (_k(lambda r, a, v: 1.0 if r <= 1 else 1 - math.tanh(a * (r - 1))), "no jump"),
        (_k(lambda r, a, v: 1.0 if r <= 1 else 1 - math.tanh(a * r)), "jumps at rho = 1"),
        (_k(lambda r, a, v: 1 - math.tanh(a * (r if v == "paper" else r - 1))), "rho <= 1 too"),
        (_k(lambda r, a, v: 1.0 if r < 1 else 1 - math.tanh(a * (r if v == "paper" else r - 1))), "at rho = 1 exactly"),
        (_k(lambda r, a, v: 1.0 if r <= 1 else math.tanh(a * (r if v == "paper" else r - 1))), "fraction REMOVED"),
        (_k(lambda r, a, v: 1.0 if r <= 1 else 1 - math.tanh(r if v == "paper" else r - 1)), "ignores alpha"),
        (_k(lambda r, a, v: [1.0, 2.0]), "expected one number"),
    ],
)
def test_ogm_k_mistakes(wrong, words):
    result = nb04.check_ogm_k(wrong)
    assert not result.passed and words in result.message, result.message


@pytest.mark.parametrize(
    "wrong, words",
    [
        (lambda g, k, e: k * g + np.std(k * g) * e, "UN-modulated"),
        (lambda g, k, e: k * g + np.var(g) * e, "VARIANCE"),
        (lambda g, k, e: g + np.std(g) * e, "instead of k g"),
        (lambda g, k, e: k * g, "without noise"),
        (lambda g, k, e: k * g + e, "eps itself"),
        (lambda g, k, e: k * g + np.abs(g) * e, "ONE standard deviation"),
        (lambda g, k, e: (k * g + np.std(g) * e).ravel(), "shape"),
    ],
)
def test_ge_noise_mistakes(wrong, words):
    result = nb04.check_ge_noise(wrong)
    assert not result.passed and words in result.message, result.message


def _arl(**kw):
    def fn(c, H, temperature=1.0, h_floor=0.3):
        return nb04._arl_variant(c, H, temperature, h_floor, **kw)

    return fn


@pytest.mark.parametrize(
    "wrong, words",
    [
        (_arl(own=True), "OWN logit size"),
        (_arl(floor=False), "not clamped"),
        (_arl(floor_raw=True), "not normalised before the clamp"),
        (_arl(inverse=False), "INVERSE"),
        (_arl(use_T=False), "ignores the temperature"),
        (lambda c, H, T=1.0, h=0.3: arl_weights(c, H, T, h)[::-1], "reversed modality order"),
    ],
)
def test_arl_weights_mistakes(wrong, words):
    result = nb04.check_arl_weights(wrong)
    assert not result.passed and words in result.message, result.message


def test_checkers_never_raise_on_odd_answers():
    for check, _ in CHECKS:
        for odd in (lambda *a, **k: None, lambda *a, **k: "text", lambda *a, **k: 1 / 0):
            result = check(odd)
            assert not result.passed and result.message.startswith("FAILED")


def test_gradient_scaling_is_learning_rate_scaling_only_under_plain_sgd():
    ds = load_preset("default")
    diffs = {s: nb04.lr_experiment(accelerate, ds, s, steps=30)["max_rel_diff"] for s in nb04.SETTINGS}
    assert diffs["SGD, momentum 0.9"] < 1e-12
    assert diffs["+ clipping at norm 10 (the library's)"] < 1e-12
    for setting in ("+ clipping at norm 0.5", "+ weight decay 1e-4 (the library's)", "Adam instead of SGD"):
        assert diffs[setting] > 1e-4, setting

    def in_place(grads, branch_keys, W):  # a student's scaling that changes grads and returns None
        grads.update(accelerate(grads, branch_keys, W))

    assert nb04.lr_experiment(in_place, ds, "SGD, momentum 0.9", steps=10)["max_rel_diff"] < 1e-12


def test_results_file_is_small_and_complete():
    assert nb04.RESULTS_FILE.stat().st_size < 100_000
    results = nb04.load_results()
    assert "make_results.py" in results["command"] and results["seeds"] == list(range(10))
    for name in ("joint", "ogm-ge", "ogm-ge-no-ge", "arl", "arl-released", "cal", "cal-no-accel", "cal-gamma0"):
        rows = results["per_seed"][name]
        assert len(rows) == 10 and all(0 < r["test_acc"] <= 1 for r in rows)
        assert len(results["per_epoch_mean_over_seeds"][name]["coef"]) == 40


# ------------------------------------------------------------- issue 19, point 7: verdicts that do not mislead
def test_ge_noise_accepts_the_released_convention_and_says_which_is_which():
    for released in (
        lambda g, k, e: k * g + (np.std(g, ddof=1) + 1e-8) * e,  # OGM-GE's released code (torch.std + 1e-8)
        lambda g, k, e: k * g + np.std(g, ddof=1) * e,
    ):
        result = nb04.check_ge_noise(released)
        assert result.passed and "ddof=1" in result.message and "ddof=0" in result.message, result.message
    assert "ddof" not in nb04.check_ge_noise(ge_noise).message


def test_ogm_k_names_swapped_variants():
    swapped = _k(lambda r, a, v: 1.0 if r <= 1 else 1 - math.tanh(a * (r - 1 if v == "paper" else r)))
    result = nb04.check_ogm_k(swapped)
    assert not result.passed and "variants are swapped" in result.message, result.message


def test_arl_unnormalised_entropy_is_named():
    def unnormalised(c, H, temperature=1.0, h_floor=0.3):
        c, H = np.asarray(c, float), np.maximum(np.asarray(H, float), h_floor)  # H never divided by its sum
        a = (1 / H) / (1 / H).sum()
        x = temperature * a * (c / c.sum())[::-1]
        return np.exp(x) / np.exp(x).sum()

    result = nb04.check_arl_weights(unnormalised)
    assert not result.passed and "not normalised before the clamp" in result.message, result.message


def test_acceleration_names_the_wrong_gradient_not_a_flat_index():
    changed = []

    def one_key_wrong(grads, branch_keys, W):
        out = accelerate(grads, branch_keys, W)
        key = branch_keys[1][0]
        changed.append(key)
        out[key] = out[key] * 1.1
        return out

    result = nb04.check_acceleration(one_key_wrong)
    assert not result.passed and "index (" not in result.message, result.message
    assert f"the gradient {changed[0]!r} is off" in result.message and "1.1 times" in result.message, result.message


def test_ogm_ge_without_noise_does_not_pass_check_acceleration():
    """Issue 19, point 3: OGMGE(ge=False).modify_gradients with k = 1 + W is the library's acceleration."""
    from types import SimpleNamespace

    from mini_cal.methods import ogm_ge

    def via_ogm(grads, branch_keys, W):
        model = SimpleNamespace(M=len(branch_keys), branch_keys=lambda m: branch_keys[m])
        ctx = SimpleNamespace(model=model, epoch=0)
        lo = SimpleNamespace(modulation={"k": [1 + w for w in W]})
        ogm_ge.OGMGE(ge=False).modify_gradients(grads, ctx, lo)
        return grads

    result = nb04.check_acceleration(via_ogm)
    assert not result and "hidden" in result.message, result.message
