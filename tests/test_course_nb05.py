"""Notebook 05's checkers: each accepts its solution, reports a stub as unfinished, refuses the library's own
function, and tells typical wrong answers apart with different messages."""

import sys
from pathlib import Path

import numpy as np
import pytest

TUTORIALS = Path(__file__).resolve().parents[1] / "tutorials"
sys.path.insert(0, str(TUTORIALS))

from course import nb05  # noqa: E402
from solutions.bottleneck_betas import bottleneck_betas  # noqa: E402
from solutions.bottleneck_forward import bottleneck_forward  # noqa: E402
from solutions.kl_backward import kl_backward  # noqa: E402
from solutions.kl_forward import kl_forward  # noqa: E402

from mini_cal import layers as L  # noqa: E402
from mini_cal.methods import cal  # noqa: E402


def stub(*args, **kwargs):
    raise NotImplementedError("write it")


def softplus(a):
    return np.logaddexp(0.0, a)


# ------------------------------------------------------------------------------------- wrong answers
def fwd_no_shift(h, w_mu, b_mu, w_s, b_s, eps=None, sigma_min=1e-4, shift=5.0):
    mu, sigma = h @ w_mu + b_mu, softplus(h @ w_s + b_s) + sigma_min
    return (mu if eps is None else mu + sigma * eps), mu, sigma


def fwd_variance(h, w_mu, b_mu, w_s, b_s, eps=None, sigma_min=1e-4, shift=5.0):
    mu, sigma = h @ w_mu + b_mu, softplus(h @ w_s + b_s - shift) + sigma_min
    return (mu if eps is None else mu + sigma**2 * eps), mu, sigma


def fwd_noise_in_eval(h, w_mu, b_mu, w_s, b_s, eps=None, sigma_min=1e-4, shift=5.0):
    mu, sigma = h @ w_mu + b_mu, softplus(h @ w_s + b_s - shift) + sigma_min
    return mu + sigma * (eps if eps is not None else 1.0), mu, sigma


def fwd_hardcoded(h, w_mu, b_mu, w_s, b_s, eps=None, sigma_min=1e-4, shift=5.0):
    mu, sigma = h @ w_mu + b_mu, softplus(h @ w_s + b_s - 5.0) + 1e-4
    return (mu if eps is None else mu + sigma * eps), mu, sigma


def fwd_unstable(h, w_mu, b_mu, w_s, b_s, eps=None, sigma_min=1e-4, shift=5.0):
    with np.errstate(over="ignore"):
        mu, sigma = h @ w_mu + b_mu, np.log(1 + np.exp(h @ w_s + b_s - shift)) + sigma_min
    return (mu if eps is None else mu + sigma * eps), mu, sigma


def kl_sum_batch(mu, sigma):
    return 0.5 * np.sum(mu**2 + sigma**2 - np.log(sigma**2) - 1.0)


def kl_mean_all(mu, sigma):
    return 0.5 * np.mean(mu**2 + sigma**2 - np.log(sigma**2) - 1.0)


def kl_no_half(mu, sigma):
    return np.sum(mu**2 + sigma**2 - np.log(sigma**2) - 1.0) / mu.shape[0]


def kl_log_sigma(mu, sigma):
    return 0.5 * np.sum(mu**2 + sigma**2 - np.log(sigma) - 1.0) / mu.shape[0]


def kl_no_minus_one(mu, sigma):
    return 0.5 * np.sum(mu**2 + sigma**2 - np.log(sigma**2)) / mu.shape[0]


def kl_per_sample(mu, sigma):
    return 0.5 * np.sum(mu**2 + sigma**2 - np.log(sigma**2) - 1.0, axis=1)


def klb_no_n(dkl, cache):
    mu, sigma = cache
    return dkl * mu, dkl * (sigma - 1 / sigma)


def klb_no_dkl(dkl, cache):
    mu, sigma = cache
    return mu / len(mu), (sigma - 1 / sigma) / len(mu)


def klb_dkl_squared(dkl, cache):
    mu, sigma = cache
    return dkl**2 * mu / len(mu), dkl**2 * (sigma - 1 / sigma) / len(mu)


def klb_forgot_term(dkl, cache):
    mu, sigma = cache
    return dkl * mu / len(mu), dkl * sigma / len(mu)


def klb_sign(dkl, cache):
    mu, sigma = cache
    return -dkl * mu / len(mu), -dkl * (sigma - 1 / sigma) / len(mu)


def klb_log_sigma(dkl, cache):
    mu, sigma = cache
    return dkl * mu / len(mu), dkl * (sigma - 0.5 / sigma) / len(mu)


def klb_plus(dkl, cache):
    mu, sigma = cache
    return dkl * mu / len(mu), dkl * (sigma + 1 / sigma) / len(mu)


def klb_twice_mu(dkl, cache):
    mu, sigma = cache
    return 2 * dkl * mu / len(mu), dkl * (sigma - 1 / sigma) / len(mu)


def klb_swapped(dkl, cache):
    return tuple(reversed(kl_backward(dkl, cache)))


def betas_high(W, beta0):
    return beta0 * len(W) * np.asarray(W)


def betas_no_norm(W, beta0):
    return beta0 * (1 - np.asarray(W))


def betas_no_div(W, beta0):
    return beta0 * len(W) * (1 - np.asarray(W))


def betas_reversed(W, beta0):
    return bottleneck_betas(W, beta0)[::-1]


CHECKS = [
    (
        nb05.check_bottleneck_forward,
        bottleneck_forward,
        L.gaussian_bottleneck_forward,
        [
            (fwd_no_shift, "ignores the shift"),
            (fwd_variance, "sigma^2 * eps"),
            (fwd_noise_in_eval, "must be the mean"),
            (fwd_hardcoded, "hard-coded constants"),
            (fwd_unstable, "NaN or inf"),
        ],
    ),
    (
        nb05.check_kl_forward,
        kl_forward,
        L.gaussian_kl_forward,
        [
            (kl_sum_batch, "N = 4 times too large"),
            (kl_mean_all, "Z = 3 times too small"),
            (kl_no_half, "twice"),
            (kl_log_sigma, "log sigma^2"),
            (kl_no_minus_one, "misses the -1"),
            (kl_per_sample, "expected one number"),
        ],
    ),
    (
        nb05.check_kl_backward,
        kl_backward,
        L.gaussian_kl_backward,
        [
            (klb_no_n, "N = 4 times too large"),
            (klb_no_dkl, "not multiplied by the upstream gradient"),
            (klb_dkl_squared, "dkl squared"),
            (klb_forgot_term, "misses a term"),
            (klb_sign, "wrong sign"),
            (klb_swapped, "(dsigma, dmu)"),
            (klb_log_sigma, "differentiated log sigma"),
            (klb_plus, "minus sign"),
            (klb_twice_mu, "dmu is twice"),
        ],
    ),
    (
        nb05.check_bottleneck_betas,
        bottleneck_betas,
        cal.bottleneck_betas,
        [
            (betas_high, "HIGH-contribution"),
            (betas_no_norm, "too small by M/(M-1)"),
            (betas_no_div, "M-1 times too large"),
            (betas_reversed, "reversed order"),
        ],
    ),
]


@pytest.mark.parametrize("check, solution, library, wrong", CHECKS, ids=lambda x: getattr(x, "__name__", ""))
def test_checker(check, solution, library, wrong):
    result = check(solution)
    assert result.passed, result.message
    assert "not implemented" in check(stub).message
    result = check(library)
    assert not result.passed and "library" in result.message
    messages = set()
    for fn, expected in wrong:
        result = check(fn)
        assert not result.passed, fn.__name__
        assert expected in result.message, (fn.__name__, result.message)
        messages.add(result.message)
    assert len(messages) == len(wrong)  # a different diagnosis for each typical mistake


def test_checkers_never_raise_on_garbage():
    for check, *_ in CHECKS:
        for fn in (lambda *a, **k: None, lambda *a, **k: "text", lambda *a, **k: 1 / 0):
            assert not check(fn).passed


# ------------------------------------------------------------- issue 19, point 7: verdicts that do not mislead
def test_swapped_mu_and_sigma_are_named():
    def swapped(*args, **kwargs):
        z, mu, sigma = bottleneck_forward(*args, **kwargs)
        return z, sigma, mu

    result = nb05.check_bottleneck_forward(swapped)
    assert not result.passed and "mu and sigma are swapped" in result.message, result.message


def test_a_wrong_kl_prints_neither_a_factor_nor_the_answer():
    result = nb05.check_kl_forward(lambda mu, sigma: 0.3)
    assert not result.passed and "times the right answer" not in result.message, result.message
    assert "expected" not in result.message and "too small" in result.message, result.message
