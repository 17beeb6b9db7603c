import math

import numpy as np
import pytest

from mini_cal import backend as B
from mini_cal import layers as L
from mini_cal.gradcheck import check_params
from mini_cal.methods import ARL, CAL, OGMGE, CALDesign, Joint, StepContext, make_method
from mini_cal.methods.arl import arl_weights
from mini_cal.methods.base import ratio_to_others as discrepancy_ratios
from mini_cal.methods.cal import bottleneck_betas
from mini_cal.methods.cal_design import directed_betas
from mini_cal.methods.ogm_ge import modulation_coefficient
from mini_cal.model import Model, ModelConfig


def setup_model(M=2, bottleneck=True, n=6, seed=0):
    rng = B.make_rng(seed)
    dims = (5, 4, 3)[:M]
    model = Model(ModelConfig(dims, 3, hidden=(6, 5), bottleneck=bottleneck, z_dim=4, sigma_shift=1.0, head_init=1.0))
    params = model.init_params(rng, dtype="float64")
    for k in params:
        if ".b" in k:
            params[k] = params[k] + 0.1 * rng.host.standard_normal(params[k].shape)
    xs = [rng.host.standard_normal((n, d)) for d in dims]
    Y = L.one_hot(B.asarray(rng.host.integers(3, size=n)), 3, dtype="float64")
    eps = model.sample_eps(n, rng, "float64")
    return model, params, xs, Y, eps, rng


class FrozenCAL(CALDesign):
    """CAL with W fixed, so that the loss is a function of the parameters alone."""

    def __init__(self, W, **kw):
        super().__init__(warmup_epochs=0, **kw)
        self.frozen = np.asarray(W, dtype=float)

    def contribution(self, ctx, known_ce=None):
        M = len(self.frozen)
        return {"W": self.frozen, "I": np.zeros(M), "D": np.zeros(M)}


def loss_and_grads(method, model, params, xs, Y, eps, rng, epoch=10):
    out = model.forward(params, xs, eps=eps if method.samples_noise else None)
    ctx = StepContext(model, params, out, Y, epoch, 0, rng, math.log(3))
    lo = method.loss(ctx)
    return lo, model.backward(params, out, lo.dlogits, lo.dmu, lo.dsigma), ctx


@pytest.mark.parametrize("M", [2, 3])
def test_cal_full_loss_gradient_check(M):
    model, params, xs, Y, eps, rng = setup_model(M)
    W = np.array([0.6, 0.3, 0.1][:M]) / sum([0.6, 0.3, 0.1][:M])
    method = FrozenCAL(W, gamma=0.7, beta0=0.3)
    method.setup(model, math.log(3))
    lo, grads, _ = loss_and_grads(method, model, params, xs, Y, eps, rng)
    assert {"ce_fused", "ce_0", "ce_1", "kl_weighted"} <= set(lo.terms)
    np.testing.assert_allclose(lo.diagnostics["beta"], bottleneck_betas(W, 0.3))
    errs = check_params(lambda p: loss_and_grads(method, model, p, xs, Y, eps, rng)[0].total, params, grads)
    assert max(errs.values()) < 1e-7, errs


@pytest.mark.parametrize("name", ["joint", "ogm-ge", "arl", "cal-no-aib"])
def test_other_losses_gradient_check(name):
    model, params, xs, Y, eps, rng = setup_model(2, bottleneck=(name == "cal-no-aib"))
    method = make_method(name)
    if name == "cal-no-aib":
        method = FrozenCAL([0.7, 0.3], aib=False)
    method.setup(model, math.log(3))
    lo, grads, _ = loss_and_grads(method, model, params, xs, Y, eps, rng)
    errs = check_params(lambda p: loss_and_grads(method, model, p, xs, Y, eps, rng)[0].total, params, grads)
    assert max(errs.values()) < 1e-7, errs


def test_betas():
    np.testing.assert_allclose(bottleneck_betas([0.5, 0.5], 0.01), [0.01, 0.01])
    np.testing.assert_allclose(bottleneck_betas([0.8, 0.2], 0.01), [0.01 * 2 * 0.2, 0.01 * 2 * 0.8])
    np.testing.assert_allclose(directed_betas([0.8, 0.2], 0.01, "high"), [0.016, 0.004])
    np.testing.assert_allclose(bottleneck_betas([1 / 3] * 3, 0.01), [0.01] * 3)


def test_cal_acceleration_scales_branches_only_and_not_in_warmup():
    model, params, xs, Y, eps, rng = setup_model(2)
    method = FrozenCAL([0.7, 0.3])
    method.setup(model, math.log(3))
    lo, grads, ctx = loss_and_grads(method, model, params, xs, Y, eps, rng)
    before = {k: v.copy() for k, v in grads.items()}
    diag = method.modify_gradients(grads, ctx, lo)
    np.testing.assert_allclose(diag["coef"], [1.7, 1.3])
    for m, c in enumerate([1.7, 1.3]):
        for k in model.branch_keys(m):
            np.testing.assert_allclose(grads[k], c * before[k])
    for k in model.head_keys():
        np.testing.assert_array_equal(grads[k], before[k])
    # warm-up: W = 1/M, beta = beta0, nothing scaled
    warm = CAL(warmup_epochs=3, beta0=0.05)
    warm.setup(model, math.log(3))
    lo, grads, ctx = loss_and_grads(warm, model, params, xs, Y, eps, rng, epoch=2)
    before = {k: v.copy() for k, v in grads.items()}
    assert warm.modify_gradients(grads, ctx, lo)["coef"] == [1.0, 1.0]
    assert all(np.array_equal(grads[k], before[k]) for k in grads)
    assert lo.diagnostics["W"] == [0.5, 0.5] and lo.diagnostics["beta"] == [0.05, 0.05]


def test_cal_ablation_flags():
    model, params, xs, Y, eps, rng = setup_model(2)
    for kw, check in [
        (dict(accelerate=False), lambda lo, d: d["coef"] == [1.0, 1.0]),
        (dict(aib=False), lambda lo, d: lo.dmu is None and "kl_weighted" not in lo.terms),
        (dict(symmetric=True, beta0=0.02), lambda lo, d: lo.diagnostics["beta"] == [0.02, 0.02]),
        (dict(gamma=0.0), lambda lo, d: "ce_0" not in lo.terms),
    ]:
        method = FrozenCAL([0.7, 0.3], **kw)
        method.setup(model, math.log(3))
        lo, grads, ctx = loss_and_grads(method, model, params, xs, Y, eps, rng)
        assert check(lo, method.modify_gradients(grads, ctx, lo)), kw
    assert not make_method("cal-no-aib").samples_noise and make_method("cal").samples_noise
    assert make_method("cal-gamma0").gamma == 0.0
    with pytest.raises(ValueError, match="cal-gamma0: gamma is fixed to 0.0"):  # never silently undone (issue 20)
        make_method("cal-gamma0", gamma=1.0)
    with pytest.raises(ValueError, match="beta_direction"):
        CALDesign(beta_direction="up")
    with pytest.raises(ValueError, match="gamma"):
        CAL(gamma=-1)


def test_ogm_coefficients_by_hand():
    assert modulation_coefficient(2.0, 0.5, "paper") == pytest.approx(1 - math.tanh(1.0))
    assert modulation_coefficient(2.0, 0.5, "continuous") == pytest.approx(1 - math.tanh(0.5))
    assert modulation_coefficient(0.5, 0.5, "paper") == 1.0
    # the jump at rho = 1 in the paper variant, continuity in the other
    assert modulation_coefficient(1.0, 0.5, "paper") == 1.0
    assert modulation_coefficient(1.0 + 1e-9, 0.5, "paper") == pytest.approx(1 - math.tanh(0.5))
    assert modulation_coefficient(1.0 + 1e-9, 0.5, "continuous") == pytest.approx(1.0)
    np.testing.assert_allclose(discrepancy_ratios([3.0, 1.5]), [2.0, 0.5])
    with pytest.raises(ValueError, match="variant"):  # checked where it enters: the method's constructor
        OGMGE(variant="smooth")


def test_ogm_ge_noise_uses_unmodulated_std_and_reaches_both_encoders():
    model, params, xs, Y, eps, rng = setup_model(2, bottleneck=False)
    method = OGMGE(alpha=0.5)
    method.setup(model, math.log(3))
    lo, grads, ctx = loss_and_grads(method, model, params, xs, Y, eps, rng)
    lo.modulation["k"] = np.array([0.25, 1.0])  # as if loss() had measured these
    before = {k: v.copy() for k, v in grads.items()}
    state = rng.get_state()
    method.modify_gradients(grads, ctx, lo)
    rng.set_state(state)  # replay the same noise draws
    for m, k in enumerate([0.25, 1.0]):
        for key in model.branch_keys(m):
            g = before[key]
            expected = k * g + np.std(g) * rng.normal(g.shape, "float64")
            np.testing.assert_allclose(grads[key], expected)
            assert not np.allclose(grads[key], k * g)  # noise reached this encoder
    for key in model.head_keys():
        np.testing.assert_array_equal(grads[key], before[key])


def test_ogm_ge_outside_window_changes_nothing():
    model, params, xs, Y, eps, rng = setup_model(2, bottleneck=False)
    method = OGMGE(alpha=0.5, modulation_start=2, modulation_end=4)
    method.setup(model, math.log(3))
    for epoch, active in [(1, False), (2, True), (4, True), (5, False)]:
        lo, grads, ctx = loss_and_grads(method, model, params, xs, Y, eps, rng, epoch=epoch)
        before = {k: v.copy() for k, v in grads.items()}
        method.modify_gradients(grads, ctx, lo)
        same = all(np.array_equal(grads[k], before[k]) for k in grads)
        assert same != active, epoch


def test_ogm_ge_ratio_from_weight_slice_logits():
    model, params, xs, Y, eps, rng = setup_model(2, bottleneck=False)
    method = OGMGE()
    method.setup(model, math.log(3))
    lo, _, ctx = loss_and_grads(method, model, params, xs, Y, eps, rng)
    out = ctx.out
    s = [np.sum(L.softmax(out.u[m] + params["head.b"] / 2) * Y) for m in range(2)]
    np.testing.assert_allclose(lo.diagnostics["s"], s)
    np.testing.assert_allclose(lo.diagnostics["rho"], [s[0] / s[1], s[1] / s[0]])


def test_arl_weights_by_hand_and_as_released():
    w = arl_weights([3.0, 1.0], [0.2, 0.6], temperature=1.0)
    a = np.array([1 / 0.3, 1 / 0.75])
    a = a / a.sum()
    scores = np.array([0.25 * a[0], 0.75 * a[1]])
    np.testing.assert_allclose(w, np.exp(scores) / np.exp(scores).sum())
    np.testing.assert_allclose(w, [0.491072, 0.508928], atol=1e-6)
    model, params, xs, Y, eps, rng = setup_model(2, bottleneck=False)
    released = ARL(as_released=True, warmup_epochs=0)
    released.setup(model, math.log(3))
    lo, grads, ctx = loss_and_grads(released, model, params, xs, Y, eps, rng)
    assert lo.diagnostics["w"] == [0.5, 0.5]
    assert released.modify_gradients(grads, ctx, lo)["coef"] == [1.5, 1.5]
    paper = ARL(warmup_epochs=5)
    paper.setup(model, math.log(3))
    lo, grads, ctx = loss_and_grads(paper, model, params, xs, Y, eps, rng, epoch=1)
    assert paper.modify_gradients(grads, ctx, lo)["coef"] == [1.0, 1.0]  # warm-up


def test_joint_is_plain_fused_ce():
    model, params, xs, Y, eps, rng = setup_model(2, bottleneck=False)
    lo, _, _ = loss_and_grads(Joint(), model, params, xs, Y, eps, rng)
    assert list(lo.dlogits) == [(0, 1)] and set(lo.terms) == {"ce_fused"}


def test_ogm_without_ge_only_scales():
    model, params, xs, Y, eps, rng = setup_model(2, bottleneck=False)
    method = make_method("ogm-ge-no-ge")
    assert method.name == "ogm-ge-no-ge" and not method.ge
    method.setup(model, math.log(3))
    lo, grads, ctx = loss_and_grads(method, model, params, xs, Y, eps, rng)
    lo.modulation["k"] = np.array([0.25, 1.0])  # as if loss() had measured these
    before = {k: v.copy() for k, v in grads.items()}
    method.modify_gradients(grads, ctx, lo)
    for m, k in enumerate([0.25, 1.0]):
        for key in model.branch_keys(m):
            np.testing.assert_allclose(grads[key], k * before[key])
