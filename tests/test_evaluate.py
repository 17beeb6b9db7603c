import numpy as np
import pytest

from mini_cal import evaluate as E


def test_accuracy_and_macro_f1_by_hand():
    y = np.array([0, 0, 1, 1, 2])
    pred = np.array([0, 1, 1, 1, 0])
    assert E.accuracy(pred, y) == pytest.approx(0.6)
    # class 0: tp1 fp1 fn1 -> 0.5; class 1: tp2 fp1 fn0 -> 0.8; class 2: tp0 fp0 fn1 -> 0
    assert E.macro_f1(pred, y, 3) == pytest.approx((0.5 + 0.8 + 0.0) / 3)


def test_softmax_regression_probe_fits_separable_data(rng):
    X = np.vstack([rng.standard_normal((100, 3)) + [4, 0, 0], rng.standard_normal((100, 3)) - [4, 0, 0]])
    y = np.repeat([0, 1], 100)
    fit = E.fit_softmax_regression(X, y, 2)
    assert E.accuracy(E.probe_predict(fit, X), y) > 0.99
    # pure noise features: chance
    fit = E.fit_softmax_regression(rng.standard_normal((200, 3)), y, 2, l2=1.0)
    assert E.accuracy(E.probe_predict(fit, rng.standard_normal((2000, 3))), np.repeat([0, 1], 1000)) < 0.6


def test_imbalance_degree():
    assert E.imbalance_degree([0.3, 0.3]) == 0.0
    assert E.imbalance_degree([0.5, 0.0]) == 1.0
