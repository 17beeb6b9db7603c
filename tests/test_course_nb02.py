"""Notebook 02's checkers (tutorials/course/nb02.py): each accepts its solution, reports a stub as not implemented,
rejects the library's own function, and names typical mistakes with different messages."""

import os
import sys

import numpy as np
import pytest

TUTORIALS = os.path.join(os.path.dirname(__file__), "..", "tutorials")
sys.path.insert(0, TUTORIALS)

from course import nb02  # noqa: E402
from solutions.bottleneck_backward import bottleneck_backward  # noqa: E402
from solutions.linear_backward import linear_backward  # noqa: E402
from solutions.relu_backward import relu_backward  # noqa: E402
from solutions.softmax_ce_backward import softmax_ce_backward  # noqa: E402

from mini_cal import layers as L  # noqa: E402


def stub(*args, **kwargs):
    raise NotImplementedError("write it")


def assert_fails_with(result, *words):
    assert not result.passed, result.message
    for word in words:
        assert word in result.message, result.message


# ---------------------------------------------------------------------------------------------------- linear
def test_linear_solution_stub_and_library():
    assert nb02.check_linear_backward(linear_backward).passed
    assert_fails_with(nb02.check_linear_backward(stub), "not implemented")
    assert_fails_with(nb02.check_linear_backward(L.linear_backward), "library's own function")
    assert_fails_with(nb02.check_linear_backward(lambda d, c: L.linear_backward(d, c)), "hidden")


@pytest.mark.parametrize(
    "wrong, words",
    [
        (lambda d, c: (d @ c[1].T, d.T @ c[0], d.sum(0)), ("dw has shape (3, 5)", "transposed", "shaped like w")),
        (
            lambda d, c: (d @ c[1].T, c[0].T @ d, d),
            ("db has shape (4, 3)", "first (batch) axis is right", "collects the contributions"),
        ),
        (lambda d, c: (d @ c[1].T, c[0].T @ d, d.mean(0)), ("db is N = 4 times too small", "A sum, not a mean")),
        (lambda d, c: (d @ c[1].T, c[0].T @ d / len(d), d.sum(0)), ("dw is N = 4 times too small",)),
        (lambda d, c: (-(d @ c[1].T), c[0].T @ d, d.sum(0)), ("dx has the wrong sign",)),
    ],
)
def test_linear_typical_mistakes(wrong, words):
    assert_fails_with(nb02.check_linear_backward(wrong), *words)


# ------------------------------------------------------------------------------------------------------ relu
def test_relu_solution_stub_and_library():
    assert nb02.check_relu_backward(relu_backward).passed
    assert_fails_with(nb02.check_relu_backward(stub), "not implemented")
    assert_fails_with(nb02.check_relu_backward(L.relu_backward), "library's own function")


@pytest.mark.parametrize(
    "wrong, words",
    [
        (lambda d, c: d, ("right where the input was positive", "flat")),
        (lambda d, c: d * (c <= 0), ("mask is inverted",)),
        (lambda d, c: (c > 0).astype(float), ("local slope alone",)),
        (lambda d, c: -d * (c > 0), ("wrong sign", "never negative")),
    ],
)
def test_relu_typical_mistakes(wrong, words):
    assert_fails_with(nb02.check_relu_backward(wrong), *words)


# ------------------------------------------------------------------------------------- softmax cross-entropy
def test_softmax_ce_solution_stub_and_library():
    assert nb02.check_softmax_ce_backward(softmax_ce_backward).passed
    assert_fails_with(nb02.check_softmax_ce_backward(stub), "not implemented")
    assert_fails_with(nb02.check_softmax_ce_backward(L.softmax_ce_backward), "library's own function")


@pytest.mark.parametrize(
    "wrong, words",
    [
        (lambda dl, c: dl * (c[0] - c[1]), ("N = 8 times too large", "MEAN over the batch")),
        (lambda dl, c: dl * (c[1] - c[0]) / len(c[0]), ("wrong sign",)),
        (lambda dl, c: dl * c[0] / len(c[0]), ("rows of dlogits sum to", "label")),
        (lambda dl, c: (c[0] - c[1]) / len(c[0]), ("ignores the upstream gradient dloss",)),
        (lambda dl, c: dl * (c[0] - c[1]) / len(c[0]) ** 2, ("N = 8 times too small",)),
    ],
)
def test_softmax_ce_typical_mistakes(wrong, words):
    assert_fails_with(nb02.check_softmax_ce_backward(wrong), *words)


# --------------------------------------------------------------------------------------- gaussian bottleneck
def test_bottleneck_solution_stub_and_library():
    assert nb02.check_bottleneck_backward(bottleneck_backward).passed
    assert_fails_with(nb02.check_bottleneck_backward(stub), "not implemented")
    assert_fails_with(nb02.check_bottleneck_backward(L.gaussian_bottleneck_backward), "library's own function")


def _variant(slope=True, kl_mu=True, kl_sigma=True, paths=("mu", "s")):
    def backward(dz, cache, dmu_extra=None, dsigma_extra=None):
        mu_cache, s_cache, a, eps = cache
        dmu = dz + (dmu_extra if kl_mu and dmu_extra is not None else 0)
        dsigma = np.zeros_like(a) + (0 if eps is None else dz * eps)
        if kl_sigma and dsigma_extra is not None:
            dsigma = dsigma + dsigma_extra
        da = dsigma * (L.sigmoid(a) if slope else 1)
        dh_mu, dw_mu, db_mu = linear_backward(dmu, mu_cache)
        dh_s, dw_s, db_s = linear_backward(da, s_cache)
        dh = (dh_mu if "mu" in paths else 0) + (dh_s if "s" in paths else 0)
        return dh, dw_mu, db_mu, dw_s, db_s

    return backward


@pytest.mark.parametrize(
    "wrong, words",
    [
        (_variant(slope=False), ("dw_s misses the slope of sigma = softplus",)),
        (_variant(kl_sigma=False), ("dw_s misses the gradient that the KL term sends directly to sigma",)),
        (_variant(kl_mu=False), ("dw_mu misses the gradient that the KL term sends directly to mu",)),
        (_variant(paths=("mu",)), ("dh has only the mu path",)),
        (lambda dz, c, a=None, b=None: bottleneck_backward(dz, c, a, b)[::-1], ("holds what", "in the order")),
        (lambda dz, c, a=None, b=None: bottleneck_backward(dz, c, a, b)[:4], ("expected 5 values",)),
    ],
)
def test_bottleneck_typical_mistakes(wrong, words):
    assert_fails_with(nb02.check_bottleneck_backward(wrong), *words)


def test_bottleneck_missing_sigma_gradients_are_named():
    def none_when_nothing_reaches_sigma(dz, cache, dmu_extra=None, dsigma_extra=None):
        grads = bottleneck_backward(dz, cache, dmu_extra, dsigma_extra)
        if cache[3] is None and dsigma_extra is None:
            return grads[:3] + (None, None)
        return grads

    assert_fails_with(
        nb02.check_bottleneck_backward(none_when_nothing_reaches_sigma), "dw_s is None", "zeros shaped like them"
    )
