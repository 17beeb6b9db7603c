"""The four peers (G-Blending, AGM, MMPareto, PMR): full-loss gradient checks at M = 2 and 3, hand-worked tests of
every coefficient or weight rule, the model's per-branch backward they rely on, and bit-identical resume for the
methods that carry state across epochs or steps."""

import math

import numpy as np
import pytest
from test_reliability import assert_same_checkpoint, assert_same_result, config
from test_reliability import train as train_resumable

from mini_cal import backend as B
from mini_cal import layers as L
from mini_cal import synthetic
from mini_cal.gradcheck import numerical_gradient, numerical_gradient_array
from mini_cal.lab.selfcheck import _model_check
from mini_cal.methods import SPECS, StepContext, default_methods, make_method, swept_methods
from mini_cal.methods import agm as A
from mini_cal.methods import gblending as G
from mini_cal.methods import mmpareto as P
from mini_cal.methods import pmr as R
from mini_cal.methods.conventions import add_unimodal_gradient, unimodal_logits
from mini_cal.model import Model, ModelConfig
from mini_cal.train import TrainConfig, start_run

PEERS = ("gblending", "agm", "mmpareto", "pmr")


@pytest.fixture(scope="module")
def tiny():
    return synthetic.load_preset("tiny")


def small_problem(M=2, seed=0, method=None):
    """A float64 model, batch and StepContext as in the gradient checks."""
    rng = B.make_rng(seed)
    dims = (5, 4, 3)[:M]
    model = Model(ModelConfig(dims, 3, hidden=(6, 5), head_init=1.0))
    params = model.init_params(rng, dtype="float64")
    xs = [rng.host.standard_normal((6, d)) for d in dims]
    Y = L.one_hot(B.asarray(np.array([0, 1, 2, 0, 1, 2])), 3, dtype="float64")
    if method is not None:
        method.setup(model, math.log(3))
    out = model.forward(params, xs)
    return model, params, xs, Y, out, out, StepContext(model, params, out, Y, 10, 0, rng, math.log(3))


# ----------------------------------------------------------------------------------------- declarations
def test_peers_are_declared_compared_swept_and_gradient_checked():
    for name in PEERS:
        spec = SPECS[name]
        assert name in default_methods(2) and name in default_methods(3) and name in swept_methods(2)
        assert spec.gradcheck and spec.min_modalities == 2
        size = int(np.prod([len(v) for v in spec.search_space.values()]))
        assert size >= 8, f"{name}: a search space smaller than the budget of 8 configurations ({size})"


@pytest.mark.parametrize("M", [2, 3])
@pytest.mark.parametrize("name", PEERS)
def test_full_loss_gradient_check(name, M):
    rng = B.make_rng(1)
    for variant, kwargs in SPECS[name].gradcheck.items():
        assert _model_check(M, variant, rng, **kwargs) <= 1e-7, variant


def test_model_gradient_on_the_representation():
    """model.backward's dmu without a bottleneck is a gradient on z = mu itself: check it numerically."""
    model, params, xs, Y, out, cache, _ = small_problem(M=2)
    g = np.random.default_rng(3)
    dz = [g.standard_normal(z.shape) for z in out.z]
    grads = model.backward(params, out, {}, dmu=dz)
    for key in ("b0.W1", "b1.W2", "b0.b2"):

        def f(value, key=key):
            trial = dict(params, **{key: value})
            o = model.forward(trial, xs)
            return sum(float(np.sum(o.mu[m] * dz[m])) for m in range(2))

        num = numerical_gradient(f, params[key])
        assert np.allclose(grads[key], num, atol=1e-7), key


def test_branch_backward_separates_the_loss_terms():
    """The fused and unimodal terms' branch gradients (MMPareto's g_mm and g_m) add up to backward's total."""
    method = make_method("mmpareto")
    model, params, xs, Y, out, cache, ctx = small_problem(M=3, method=method)
    lo = method.loss(ctx)
    total = model.backward(params, out, lo.dlogits)
    for m in range(3):
        g_mm, g_m = method.branch_gradients(ctx, lo, m)
        for k in model.branch_keys(m):
            assert np.allclose(g_mm[k] + g_m[k], total[k], atol=1e-12), k
            assert not np.allclose(g_m[k], 0)


def test_slice_convention_by_hand():
    """Weight-slice unimodal logits z^m Wh[m] + bh / M: the bias receives d / M, the branch the same as {m}'s."""
    model, params, xs, Y, out, cache, _ = small_problem(M=3)
    params["head.b"] = np.array([0.3, -0.6, 0.9])
    sliced = unimodal_logits(model, params, out, 1, "slice")
    assert np.allclose(sliced, model.coalition_logits(params, out, (1,)) - params["head.b"] * (1 - 1 / 3))
    d = np.random.default_rng(0).standard_normal(sliced.shape)
    dlogits = {}
    add_unimodal_gradient(dlogits, 1, d, "slice", 3)
    grads = model.backward(params, out, dlogits)
    assert np.allclose(grads["head.b"], d.sum(axis=0) / 3)
    reference = model.backward(params, out, {(1,): d})
    for k in model.branch_keys(1) + ["head.W1"]:
        assert np.allclose(grads[k], reference[k]), k


# ------------------------------------------------------------------------------------------- G-Blending
def test_gblending_weights_by_hand():
    # G = (0.2, 0.1, -0.05), O = (0.1, 0.05, 0.5): G / O^2 = (20, 40, -0.2)
    raw, w = G.blending_weights([0.2, 0.1, -0.05], [0.1, 0.05, 0.5])
    assert np.allclose(raw, [20, 40, -0.2])
    assert np.allclose(w, [1 / 3, 2 / 3, 0])  # negative clipped to 0, then normalised
    _, w_abs = G.blending_weights([0.2, 0.1, -0.05], [0.1, 0.05, 0.5], negative="abs")
    assert np.allclose(w_abs, np.array([20, 40, 0.2]) / 60.2)  # the released code
    _, w_fused = G.blending_weights([0.2, 0.1, -0.05], [0.1, 0.05, 0.5], scale="fused")
    assert np.allclose(w_fused, [1, 2, 0])  # fused term keeps weight 1
    _, w_none = G.blending_weights([-0.1, -0.2], [0.1, 0.1])
    assert np.allclose(w_none, [0.5, 0.5])  # nothing generalises: equal weights


def test_gblending_fused_scale_with_the_fused_weight_clipped():
    """Issue 20, item 12 (found by the independent oracle): with the fused term's weight clipped to 0, scale="fused"
    divided by 1e-12 and gave unimodal weights of ~1e11; the fused term keeps weight 1 and so does every term."""
    _, w = G.blending_weights([-0.02, 0.05, 0.01], [0.1, 0.2, 0.05], "clip", "fused")
    assert np.allclose(w, [1.0, 1.0, 1.0])
    _, w_sum = G.blending_weights([-0.02, 0.05, 0.01], [0.1, 0.2, 0.05], "clip", "sum")
    assert np.allclose(w_sum, np.array([0.0, 1.25, 4.0]) / 5.25)  # G / O^2 = (-2, 1.25, 4), clipped: unchanged


def test_gblending_estimate_by_hand(tiny, monkeypatch):
    """G and O from the split losses before and after the copy's training, for each term (fused first)."""
    method = make_method("gblending")
    run = start_run(method, tiny, TrainConfig(epochs=2, progress=False, probe=False, shapley=False))
    # per term: (train, val) before, then (train, val) after
    losses = iter([1.0, 1.2, 0.6, 1.0, 1.0, 1.1, 0.9, 1.05, 1.0, 1.0, 0.5, 1.2])
    monkeypatch.setattr(G, "split_loss", lambda *a: next(losses))
    monkeypatch.setattr(method, "train_copy", lambda *a: None)
    method.estimate(run)
    e = method.estimates[-1]
    # fused: G = 1.2 - 1.0 = 0.2, O = (1.0 - 0.6) - (1.2 - 1.0) = 0.2 -> w_raw 5
    # 0:     G = 1.1 - 1.05 = 0.05, O = (1.05 - 0.9) - (1.1 - 1.0) = 0.05 -> 20
    # 1:     G = 1.0 - 1.2 = -0.2 (the validation loss rose), O = 0.7 - 0 = 0.7 -> negative, clipped
    assert np.allclose(e["G"], [0.2, 0.05, -0.2]) and np.allclose(e["O"], [0.2, 0.05, 0.7])
    assert np.allclose(e["w_raw"], [5, 20, -0.2 / 0.49])
    assert np.allclose(method.weights, [0.2, 0.8, 0.0])


def test_gblending_runs_and_reports_every_estimate(tiny):
    method = make_method("gblending", super_epoch=2)
    result = train_resumable(method, tiny, config(4))
    assert [e["epoch"] for e in method.estimates] == [0, 2, 4]  # the last is unused by this run
    for e in method.estimates:
        assert len(e["G"]) == len(e["O"]) == len(e["w"]) == 3 and abs(sum(e["w"]) - 1) < 1e-9
    row = result.history["steps"][-1]
    assert row["gb_w"] == method.estimates[-2]["w"] and row["gb_G"] == method.estimates[-2]["G"]


# -------------------------------------------------------------------------------------------------- AGM
def test_agm_shapley_responses_by_hand():
    f = {(0,): np.array([1.0]), (1,): np.array([4.0]), (0, 1): np.array([7.0])}
    o = A.shapley_responses(f, 2)
    assert np.allclose(o[0], 0.5 * (7 - 4) + 0.5 * (1 - 0)) and np.allclose(o[1], 0.5 * (7 - 1) + 0.5 * 4)
    f3 = {S: np.array([float(sum(S) + len(S) ** 2)]) for S in [(0,), (1,), (2,), (0, 1), (0, 2), (1, 2), (0, 1, 2)]}
    assert np.allclose(sum(A.shapley_responses(f3, 3)), f3[(0, 1, 2)])  # efficiency with f({}) = 0


def test_agm_input_masking_zeroes_the_input():
    model, params, xs, Y, out, cache, _ = small_problem(M=3)
    for masking in ("input", "feature"):
        outputs = A.coalition_outputs(model, params, out, masking)
        for S, f in outputs.items():
            if masking == "input":
                masked = [x if m in S else np.zeros_like(x) for m, x in enumerate(xs)]
                assert np.allclose(f, model.logits(params, masked)), S
            else:
                assert np.allclose(f, model.coalition_logits(params, out, S)), S


def test_agm_coefficients_by_hand():
    # s = (0.5, 1.5): mean 1, r = (exp(2 * 0.5), exp(2 * -0.5)) = (e, 1/e); sbar equal: rbar = (1, 1)
    assert np.allclose(A.discrepancy_ratios([0.5, 1.5]), [math.e, 1 / math.e])
    kappa = A.agm_coefficients([0.5, 1.5], [1.0, 1.0], alpha=1.0)
    assert np.allclose(kappa, [math.exp(1 - math.e), math.exp(1 - 1 / math.e)])  # the one ahead slowed
    # M = 3: s = (0, 1, 2), mean 1, r = exp(1.5 (1 - s)) = (e^1.5, 1, e^-1.5)
    assert np.allclose(A.discrepancy_ratios([0.0, 1.0, 2.0]), [math.exp(1.5), 1.0, math.exp(-1.5)])
    # the exponent is capped at 7: rbar - r = e^5 - e^-5 = 148.4 for the second modality
    kappa = A.agm_coefficients([0.0, 5.0], [5.0, 0.0], alpha=0.5)
    assert np.isclose(kappa[1], math.exp(0.5 * 7)) and np.isclose(
        kappa[0], math.exp(0.5 * (math.exp(-5) - math.exp(5)))
    )


def test_agm_running_mean_of_scores():
    method = make_method("agm")
    *_, ctx = small_problem(M=2, method=method)
    seen = []
    for _ in range(3):
        lo = method.loss(ctx)
        seen.append(lo.diagnostics["s"])
    assert method.state_dict()["count"] == 3 and np.allclose(method.s_bar, np.mean(seen, axis=0))
    # kappa of the third step used the mean of the first two
    assert np.allclose(lo.modulation["kappa"], A.agm_coefficients(seen[2], np.mean(seen[:2], axis=0), 0.1))


# --------------------------------------------------------------------------------------------- MMPareto
def test_mmpareto_weights_and_combination_by_hand():
    # agreement: equal weights, the step is boost * (g_mm + g_m)
    a, b, cos = P.pareto_weights(1.0, 1.0, 2.0)  # g_mm = (1, 0), g_m = (1, 1)
    assert (a, b) == (0.5, 0.5) and np.isclose(cos, 1 / math.sqrt(2))
    g_mm, g_m = {"w": np.array([1.0, 0.0])}, {"w": np.array([1.0, 1.0])}
    new, ratio = P.combine(g_mm, g_m, a, b, boost=1.5)
    assert np.allclose(new["w"], [3.0, 1.5]) and np.isclose(ratio, 1.5)
    # conflict: g_mm = (1, 0), g_m = (-1, 1): dots 1, -1, 2; a = (2 + 1) / (1 + 2 + 2) = 3/5
    a, b, cos = P.pareto_weights(1.0, -1.0, 2.0)
    assert np.isclose(a, 0.6) and np.isclose(b, 0.4) and cos < 0
    g_mm, g_m = {"w": np.array([1.0, 0.0])}, {"w": np.array([-1.0, 1.0])}
    new, ratio = P.combine(g_mm, g_m, a, b, boost=1.0)
    # 2 (0.6 (1, 0) + 0.4 (-1, 1)) = (0.4, 0.8), norm sqrt(0.8) < ||g_mm + g_m|| = 1: raised to norm 1
    assert np.allclose(new["w"], np.array([0.4, 0.8]) / math.sqrt(0.8)) and np.isclose(ratio, 1.0)
    # the min-norm point is orthogonal to g_mm - g_m
    d = 0.6 * g_mm["w"] + 0.4 * g_m["w"]
    assert np.isclose(d @ (g_mm["w"] - g_m["w"]), 0.0)


def test_mmpareto_step_replaces_branch_gradients():
    method = make_method("mmpareto", boost=1.0)
    model, params, xs, Y, out, cache, ctx = small_problem(M=2, method=method)
    lo = method.loss(ctx)
    grads = model.backward(params, out, lo.dlogits)
    head = {k: grads[k].copy() for k in model.head_keys()}
    diag = method.modify_gradients(grads, ctx, lo)
    for k in model.head_keys():
        assert np.array_equal(grads[k], head[k])  # the head keeps the plain gradient
    for m in range(2):
        g_mm, g_m = method.branch_gradients(ctx, lo, m)
        a = diag["a_fused"][m]
        expect, _ = P.combine(g_mm, g_m, a, 1 - a, 1.0)
        for k in model.branch_keys(m):
            assert np.allclose(grads[k], expect[k])


# -------------------------------------------------------------------------------------------------- PMR
def test_prototype_logits_and_entropy_by_hand_and_numerically():
    z, c = np.array([[0.0, 0.0]]), np.array([[3.0, 4.0], [0.0, 1.0]])
    logits, cache = R.prototype_logits_forward(z, c)
    assert np.allclose(logits, [[-5.0, -1.0]])
    g = np.random.default_rng(0)
    z, c, d = g.standard_normal((4, 3)), g.standard_normal((5, 3)), g.standard_normal((4, 5))
    dz = R.prototype_logits_backward(d, R.prototype_logits_forward(z, c)[1])
    assert np.allclose(dz, numerical_gradient_array(lambda v: R.prototype_logits_forward(v, c)[0], z, d), atol=1e-8)
    H, cache = L.entropy_forward(np.log(np.array([[0.5, 0.5], [0.25, 0.75]])))  # PMR's entropy term: the mean
    assert np.isclose(H.mean(), (math.log(2) + (-0.25 * math.log(0.25) - 0.75 * math.log(0.75))) / 2)
    lg = g.standard_normal((4, 5))
    dl = L.entropy_backward(0.7 / 4, L.entropy_forward(lg)[1])
    assert np.allclose(dl, numerical_gradient(lambda v: 0.7 * L.entropy_forward(v)[0].mean(), lg), atol=1e-8)


def test_pmr_coefficients_and_prototypes_by_hand():
    rho, beta = R.pmr_coefficients([2.0, 4.0], alpha=0.6)  # s_a / s_v = 1/2: the first is behind
    assert np.allclose(rho, [0.5, 2.0]) and np.allclose(beta, [0.6, 0.0])
    rho, beta = R.pmr_coefficients([1.0, 2.0, 3.0], alpha=1.0)  # s_m / mean of the others
    assert np.allclose(rho, [1 / 2.5, 2 / 2, 3 / 1.5]) and np.allclose(beta, [1.0, 0.0, 0.0])
    z = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 0.0]])
    Y = np.array([[1.0, 0, 0], [1.0, 0, 0], [0, 1.0, 0]])
    previous = np.full((3, 2), 9.0)
    assert np.allclose(R.class_means(z, Y, previous), [[2.0, 3.0], [5.0, 0.0], [9.0, 9.0]])  # class 2 absent


def test_pmr_prototype_momentum(tiny):
    method = make_method("pmr", momentum=0.25)
    run = start_run(method, tiny, TrainConfig(epochs=2, progress=False, probe=False, shapley=False))
    method.update_prototypes(run)
    first = [c.copy() for c in method.prototypes]
    old = [c + 1.0 for c in first]
    method.prototypes = [c.copy() for c in old]
    method.update_prototypes(run)  # same parameters: the new class means equal `first`
    for m in range(2):
        assert np.allclose(method.prototypes[m], 0.75 * first[m] + 0.25 * old[m])


def test_pmr_terms_reach_the_encoder():
    """The gradient check is not vacuous: the behind modality gets its PCE term, the leader the entropy term."""
    method = make_method("pmr-per", prototype_seed=0, entropy_epochs=20)
    *_, ctx = small_problem(M=2, method=method)
    lo = method.loss(ctx)
    behind = int(np.argmin(lo.diagnostics["rho"]))
    assert f"pce_{behind}" in lo.terms and f"proto_entropy_{1 - behind}" in lo.terms
    assert all(float(np.abs(d).sum()) > 0 for d in lo.dmu)


# ----------------------------------------------------------------------------------------------- resume
RESUMABLE = {
    "gblending": dict(super_epoch=1),
    "agm": dict(alpha=0.5),
    "pmr": dict(momentum=0.5),
    "mmpareto": {},
}


@pytest.mark.parametrize("name", sorted(RESUMABLE))
def test_resume_is_bit_identical(tiny, tmp_path, name):
    full_path, part_path = tmp_path / "full.npz", tmp_path / "part.npz"
    full = train_resumable(make_method(name, **RESUMABLE[name]), tiny, config(4, checkpoint_path=full_path))
    train_resumable(make_method(name, **RESUMABLE[name]), tiny, config(2, checkpoint_path=part_path))
    resumed = train_resumable(
        make_method(name, **RESUMABLE[name]), tiny, config(4, checkpoint_path=part_path), resume=part_path
    )
    assert_same_result(full, resumed)
    assert_same_checkpoint(full_path, part_path)


@pytest.mark.parametrize("name", ["agm", "gblending", "pmr"])
def test_peer_state_matters_for_resume(tiny, tmp_path, name):
    """Without its saved state the resumed run differs: the bit-identical test above has teeth."""
    path = tmp_path / "part.npz"
    full = train_resumable(make_method(name, **RESUMABLE[name]), tiny, config(4))
    train_resumable(make_method(name, **RESUMABLE[name]), tiny, config(2, checkpoint_path=path))
    forgetful = type(make_method(name))(**RESUMABLE[name])
    forgetful.load_state_dict = lambda state: None
    resumed = train_resumable(forgetful, tiny, config(4), resume=path)
    assert any(full.params[k].tobytes() != resumed.params[k].tobytes() for k in full.params)


@pytest.mark.parametrize("name", ["gblending-slice", "agm", "mmpareto", "pmr-per"])
def test_peers_run_on_a_strict_array_backend(tiny, name):
    """Two epochs under array_api_strict (the stand-in for CuPy) give NumPy's parameters: no NumPy-only calls."""
    kwargs = {"super_epoch": 1} if name.startswith("gblending") else {}
    params = {}
    for backend in ("numpy", "array_api_strict"):
        B.set_backend(backend)
        result = train_resumable(make_method(name, **kwargs), tiny, config(2))
        params[backend] = {k: B.to_numpy(v) for k, v in result.params.items()}
    for k in params["numpy"]:
        np.testing.assert_allclose(params["array_api_strict"][k], params["numpy"][k], rtol=1e-4, atol=1e-5, err_msg=k)
