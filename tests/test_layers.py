import math

import numpy as np
import pytest

from mini_cal import backend as B
from mini_cal import layers as L
from mini_cal.gradcheck import numerical_gradient, numerical_gradient_array, rel_error

TOL = 1e-7


def test_linear_values_and_gradients(rng):
    x, w, b = rng.standard_normal((5, 4)), rng.standard_normal((4, 3)), rng.standard_normal(3)
    out, cache = L.linear_forward(x, w, b)
    np.testing.assert_allclose(out, x @ w + b)
    dout = rng.standard_normal((5, 3))
    dx, dw, db = L.linear_backward(dout, cache)
    assert rel_error(dx, numerical_gradient_array(lambda v: L.linear_forward(v, w, b)[0], x, dout)) < TOL
    assert rel_error(dw, numerical_gradient_array(lambda v: L.linear_forward(x, v, b)[0], w, dout)) < TOL
    assert rel_error(db, numerical_gradient_array(lambda v: L.linear_forward(x, w, v)[0], b, dout)) < TOL


def test_relu_values_and_gradient(rng):
    x = rng.standard_normal((6, 5))
    x[np.abs(x) < 1e-3] = 0.5  # keep away from the kink, where the derivative is undefined
    out, cache = L.relu_forward(x)
    np.testing.assert_array_equal(out, np.maximum(x, 0))
    dout = rng.standard_normal(x.shape)
    dx = L.relu_backward(dout, cache)
    assert rel_error(dx, numerical_gradient_array(lambda v: L.relu_forward(v)[0], x, dout)) < TOL


def test_linear_relu_sandwich_gradient(rng):
    x, w, b = rng.standard_normal((4, 3)), rng.standard_normal((3, 5)), rng.standard_normal(5)
    out, cache = L.linear_relu_forward(x, w, b)
    dout = rng.standard_normal(out.shape)
    dx, dw, db = L.linear_relu_backward(dout, cache)
    assert rel_error(dw, numerical_gradient_array(lambda v: L.linear_relu_forward(x, v, b)[0], w, dout)) < TOL
    assert rel_error(dx, numerical_gradient_array(lambda v: L.linear_relu_forward(v, w, b)[0], x, dout)) < TOL


def test_softmax_ce_value_stability_and_gradient(rng):
    logits = rng.standard_normal((7, 4))
    y = rng.integers(4, size=7)
    Y = L.one_hot(B.asarray(y), 4, dtype="float64")
    loss, cache = L.softmax_ce_forward(logits, Y)
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    assert float(loss) == pytest.approx(-np.mean(np.log(p[np.arange(7), y])))
    # huge logits: a naive exp overflows; the log-sum-exp form stays finite
    big, _ = L.softmax_ce_forward(logits * 1e4, Y)
    assert np.isfinite(float(big))
    dlogits = L.softmax_ce_backward(1.0, cache)
    num = numerical_gradient(lambda v: L.softmax_ce_forward(v, Y)[0], logits)
    assert rel_error(dlogits, num) < TOL
    # uniform logits give log K
    assert float(L.softmax_ce_forward(np.zeros((3, 4)), Y[:3])[0]) == pytest.approx(math.log(4))


def test_one_hot():
    Y = L.one_hot(B.asarray(np.array([2, 0])), 3, dtype="float64")
    np.testing.assert_array_equal(Y, [[0, 0, 1], [1, 0, 0]])


def test_softplus_and_sigmoid_stable(rng):
    a = np.array([-800.0, -30.0, -1.0, 0.0, 1.0, 30.0, 800.0])
    sp = L.softplus(a)
    assert np.all(np.isfinite(sp))
    np.testing.assert_allclose(sp[2:6], np.log1p(np.exp(a[2:6])))
    assert sp[-1] == pytest.approx(800.0)
    np.testing.assert_allclose(L.sigmoid(a[2:5]), 1 / (1 + np.exp(-a[2:5])))
    x = rng.standard_normal(6)
    assert rel_error(L.sigmoid(x), numerical_gradient(lambda v: np.sum(L.softplus(v)), x)) < TOL


@pytest.mark.parametrize("with_eps", [True, False])
def test_gaussian_bottleneck_gradients(rng, with_eps):
    h = rng.standard_normal((5, 4))
    w_mu, b_mu = rng.standard_normal((4, 3)), rng.standard_normal(3)
    w_s, b_s = rng.standard_normal((4, 3)), rng.standard_normal(3)
    eps = rng.standard_normal((5, 3)) if with_eps else None
    dz, dmu_x, ds_x = (rng.standard_normal((5, 3)) for _ in range(3))

    def scalar(h_, w_mu_, b_mu_, w_s_, b_s_):
        (z, mu, sigma), _ = L.gaussian_bottleneck_forward(h_, w_mu_, b_mu_, w_s_, b_s_, eps, shift=1.0)
        return np.sum(z * dz) + np.sum(mu * dmu_x) + np.sum(sigma * ds_x)

    (z, mu, sigma), cache = L.gaussian_bottleneck_forward(h, w_mu, b_mu, w_s, b_s, eps, shift=1.0)
    if eps is None:
        np.testing.assert_array_equal(z, mu)
    else:
        np.testing.assert_allclose(z, mu + sigma * eps)
    assert np.all(sigma > 0)
    grads = L.gaussian_bottleneck_backward(dz, cache, dmu_x, ds_x)
    args = [h, w_mu, b_mu, w_s, b_s]
    for i, g in enumerate(grads):

        def f(v, i=i):
            trial = list(args)
            trial[i] = v
            return scalar(*trial)

        assert rel_error(g, numerical_gradient(f, args[i])) < TOL, i


def test_bottleneck_sigma_starts_small(rng):
    h = np.abs(rng.standard_normal((8, 4))) * 0.1
    (_, _, sigma), _ = L.gaussian_bottleneck_forward(
        h, np.zeros((4, 3)), np.zeros(3), np.zeros((4, 3)), np.zeros(3), None
    )
    assert np.allclose(sigma, math.log1p(math.exp(-5.0)) + 1e-4)


def test_gaussian_kl_value_and_gradient(rng):
    mu = rng.standard_normal((6, 3))
    sigma = np.exp(rng.standard_normal((6, 3)) * 0.3)
    kl, cache = L.gaussian_kl_forward(mu, sigma)
    expected = np.mean(0.5 * np.sum(mu**2 + sigma**2 - np.log(sigma**2) - 1, axis=1))
    assert float(kl) == pytest.approx(expected)
    assert float(L.gaussian_kl_forward(np.zeros((2, 3)), np.ones((2, 3)))[0]) == pytest.approx(0.0)
    dmu, dsigma = L.gaussian_kl_backward(1.0, cache)
    assert rel_error(dmu, numerical_gradient(lambda v: L.gaussian_kl_forward(v, sigma)[0], mu)) < TOL
    assert rel_error(dsigma, numerical_gradient(lambda v: L.gaussian_kl_forward(mu, v)[0], sigma)) < TOL


def test_entropy_bounds(rng):
    H = L.entropy(rng.standard_normal((10, 5)) * 3)
    assert np.all(H >= 0) and np.all(H <= math.log(5) + 1e-12)
    assert L.entropy(np.zeros((1, 5)))[0] == pytest.approx(math.log(5))
