import numpy as np
import pytest

from mini_cal.optim import SGD, Adam, clip_by_global_norm, global_norm, make_optimizer


def test_sgd_momentum_weight_decay_by_hand():
    p = {"w": np.array([1.0, -2.0])}
    opt = SGD(lr=0.1, momentum=0.5, weight_decay=0.1)
    g = {"w": np.array([0.5, 0.5])}
    opt.step(p, g)  # v = g + wd w = [0.6, 0.3]; w = w - 0.1 v
    np.testing.assert_allclose(p["w"], [0.94, -2.03])
    opt.step(p, g)  # v = 0.5 [0.6, 0.3] + [0.5 + 0.094, 0.5 - 0.203]
    np.testing.assert_allclose(p["w"], [0.94 - 0.1 * (0.3 + 0.594), -2.03 - 0.1 * (0.15 + 0.297)])


def test_adam_first_step_is_lr_times_sign():
    p = {"w": np.array([1.0, -2.0, 0.5])}
    Adam(lr=0.01).step(p, {"w": np.array([3.0, -0.2, 1e-3])})
    np.testing.assert_allclose(p["w"], [0.99, -1.99, 0.49], atol=1e-6)


def test_adam_minimises_quadratic():
    p = {"w": np.array([3.0, -4.0])}
    opt = Adam(lr=0.1)
    for _ in range(500):
        opt.step(p, {"w": 2 * p["w"]})
    assert np.all(np.abs(p["w"]) < 1e-2)


def test_clipping():
    g = {"a": np.array([3.0]), "b": np.array([4.0])}
    assert global_norm(g) == pytest.approx(5.0)
    assert clip_by_global_norm(g, 1.0) == pytest.approx(5.0)
    assert global_norm(g) == pytest.approx(1.0)
    np.testing.assert_allclose(g["a"], [0.6])
    g = {"a": np.array([0.3])}
    clip_by_global_norm(g, 1.0)
    np.testing.assert_allclose(g["a"], [0.3])


def test_bad_hyperparameters():
    with pytest.raises(ValueError, match="lr"):
        SGD(lr=0)
    with pytest.raises(ValueError, match="momentum"):
        SGD(momentum=1.0)
    with pytest.raises(ValueError, match="weight_decay"):
        Adam(weight_decay=-1)
    with pytest.raises(ValueError, match="optimizer"):
        make_optimizer("rmsprop", 0.1)
