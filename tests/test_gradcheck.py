import numpy as np
import pytest

from mini_cal import gradcheck as G


def test_rel_error_norm_and_elementwise():
    assert G.rel_error(np.ones(3), np.ones(3)) == 0.0
    assert G.rel_error(np.array([1.0, 0.0]), np.array([1.0, 1e-3])) == pytest.approx(1e-3 / (1 + np.sqrt(1 + 1e-6)))
    assert G.rel_error(np.array([1.0, 0.0]), np.array([1.0, 1e-3]), elementwise=True) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="shapes differ"):
        G.rel_error(np.ones(2), np.ones(3))


def test_numerical_gradient_of_known_function(rng):
    x = rng.standard_normal((3, 2))
    num = G.numerical_gradient(lambda v: np.sum(v**3), x)
    assert G.rel_error(num, 3 * x**2) < 1e-8


def test_projected_and_sampled_checks(rng):
    x = rng.standard_normal((4, 5))
    dout = rng.standard_normal((4, 5))
    num = G.numerical_gradient_array(np.sin, x, dout)
    assert G.rel_error(num, np.cos(x) * dout) < 1e-8
    big = rng.standard_normal((50, 40))
    err = G.check_sampled(lambda v: np.sum(np.sin(v)), big, np.cos(big), num=15)
    assert err < 1e-8
    # a wrong analytic gradient is caught
    assert G.check_sampled(lambda v: np.sum(np.sin(v)), big, np.cos(big) * 1.01, num=15) > 1e-3


def test_check_params_reports_each_parameter(rng):
    params = {"a": rng.standard_normal(3), "b": rng.standard_normal((2, 2))}
    loss = lambda p: np.sum(p["a"] ** 2) + np.sum(p["b"])  # noqa: E731
    errs = G.check_params(loss, params, {"a": 2 * params["a"], "b": np.ones((2, 2))})
    assert max(errs.values()) < 1e-8
    errs = G.check_params(loss, params, {"a": params["a"], "b": np.ones((2, 2))})
    assert errs["a"] > 0.1
    with pytest.raises(KeyError, match="no gradient"):
        G.check_params(loss, params, {"a": params["a"]})
