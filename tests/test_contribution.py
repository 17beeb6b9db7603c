import math

import numpy as np
import pytest

from mini_cal import backend as B
from mini_cal import contribution as C
from mini_cal import layers as L
from mini_cal.methods import cal_design as CD


def test_all_coalitions():
    assert C.all_coalitions(2) == [(), (0,), (1,), (0, 1)]
    assert len(C.all_coalitions(3)) == 8


def test_two_modality_hand_example():
    v = {(): 0.0, (0,): 0.6, (1,): 0.2, (0, 1): 1.0}
    I = np.array(C.shapley(v, 2))
    np.testing.assert_allclose(I, [0.5 * 0.6 + 0.5 * 0.8, 0.5 * 0.2 + 0.5 * 0.4])  # [0.7, 0.3]
    # D: uniform logits -> 0; p = (0.75, 0.25) -> 1 - H / log 2
    D_a = C.confidence(np.zeros((4, 2)), 2)
    D_b = C.confidence(np.tile([math.log(3.0), 0.0], (4, 1)), 2)
    H = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    assert D_a == pytest.approx(0.0)
    assert D_b == pytest.approx(1 - H / math.log(2))
    s = I * np.array([D_a, D_b])
    W = C.softmax_weights(s, temperature=2.0)
    e = math.exp(2.0 * 0.3 * (1 - H / math.log(2)))
    np.testing.assert_allclose(W, [1 / (1 + e), e / (1 + e)])
    assert W.sum() == pytest.approx(1.0)


@pytest.mark.parametrize("M", [2, 3, 4])
def test_shapley_efficiency_and_symmetry(M, rng):
    v = {S: rng.standard_normal() for S in C.all_coalitions(M)}
    v[()] = 0.3
    I = np.array(C.shapley(v, M))
    full = tuple(range(M))
    assert I.sum() == pytest.approx(v[full] - v[()])
    # symmetry: a game in which modalities 0 and 1 are interchangeable gives them equal value
    sym = {S: len(S) ** 2 + (0.5 if 2 in S else 0.0) for S in C.all_coalitions(M)}
    I = np.array(C.shapley(sym, M))
    assert I[0] == pytest.approx(I[1])
    # a null player gets 0
    null = {S: float(len([m for m in S if m != 0])) for S in C.all_coalitions(M)}
    assert C.shapley(null, M)[0] == pytest.approx(0.0)


def test_confidence_in_unit_interval(rng):
    for scale in (0.0, 1.0, 100.0):
        D = C.confidence(rng.standard_normal((20, 5)) * scale, 5)
        assert 0.0 <= D <= 1.0 + 1e-12


def test_score_modes():
    I, D = np.array([0.4, 0.1]), np.array([0.5, 0.9])
    np.testing.assert_allclose(CD.score(I, D, "product"), [0.2, 0.09])
    np.testing.assert_allclose(CD.score(I, D, "sum"), [0.9, 1.0])
    np.testing.assert_allclose(CD.score(I, D, "I"), I)
    np.testing.assert_allclose(CD.score(I, D, "D"), D)
    with pytest.raises(ValueError, match="score mode"):
        CD.score(I, D, "max")


def test_coalition_value_is_entropy_minus_ce():
    Y = L.one_hot(B.asarray(np.array([0, 1])), 2, dtype="float64")
    assert C.coalition_value(np.zeros((2, 2)), Y, math.log(2)) == pytest.approx(0.0)  # uniform: no information
    assert C.coalition_value(np.array([[50.0, 0], [0, 50.0]]), Y, math.log(2)) == pytest.approx(math.log(2))
    assert C.label_entropy(np.array([0, 1, 2, 3]), 4) == pytest.approx(math.log(4))


def test_metric_on_a_model_and_ema():
    from mini_cal.model import Model, ModelConfig

    rng = B.make_rng(0)
    model = Model(ModelConfig((3, 4), 3, hidden=(5,)))
    params = model.init_params(rng, dtype="float64")
    xs = [rng.host.standard_normal((10, 3)), rng.host.standard_normal((10, 4))]
    Y = L.one_hot(B.asarray(rng.host.integers(3, size=10)), 3, dtype="float64")
    out = model.forward(params, xs)
    metric = CD.ContributionMetric(2, 3, temperature=1.0, ema=0.5)
    r1 = metric(model, params, out, Y)
    assert r1["I"].sum() == pytest.approx(r1["v"][(0, 1)] - r1["v"][()])
    assert r1["W"].sum() == pytest.approx(1.0)
    np.testing.assert_allclose(r1["W"], r1["W_batch"])  # first step: no history to smooth with
    metric.W = np.array([0.9, 0.1])
    r2 = metric(model, params, out, Y)
    np.testing.assert_allclose(r2["W"], 0.5 * np.array([0.9, 0.1]) + 0.5 * r2["W_batch"])
    with pytest.raises(ValueError, match="ema"):
        CD.ContributionMetric(2, 3, ema=1.0)


def test_known_cross_entropies_are_reused_exactly():
    from mini_cal.model import Model, ModelConfig

    rng = B.make_rng(1)
    model = Model(ModelConfig((3, 4), 3, hidden=(5,)))
    params = model.init_params(rng)
    xs = [B.asarray(rng.host.standard_normal((10, d)), dtype="float32") for d in (3, 4)]
    Y = L.one_hot(B.asarray(rng.host.integers(3, size=10)), 3)
    out = model.forward(params, xs)
    fresh = C.coalition_values(model, params, out, Y, math.log(3))
    known = {S: math.log(3) - fresh[S] for S in [(0, 1), (0,)]}  # the CE values a loss would pass in
    assert C.coalition_values(model, params, out, Y, math.log(3), known) == pytest.approx(fresh, abs=1e-12)
    assert C.coalition_values(model, params, out, Y, math.log(3), {(0,): 99.0})[(0,)] == math.log(3) - 99.0
