"""Notebook 08 (capstone): the assembly checkers accept their solutions and name typical mistakes; collect() falls
back to the library for unfinished pieces; MyCAL with every piece from the library reproduces the library's CAL
exactly, and with the solutions' pieces trains to a close accuracy."""

import sys
from pathlib import Path

import numpy as np

TUTORIALS = Path(__file__).resolve().parents[1] / "tutorials"
sys.path.insert(0, str(TUTORIALS))

from course import nb08  # noqa: E402
from solutions.capstone_kl import kl_loss  # noqa: E402
from solutions.capstone_weights import weights_of_batch  # noqa: E402

from mini_cal.methods import make_method, split_config, tuned_config  # noqa: E402
from mini_cal.synthetic import load_preset  # noqa: E402
from mini_cal.train import TrainConfig, train  # noqa: E402


def stub(*args, **kwargs):
    raise NotImplementedError("write it")


def weights_with(score):
    def fn(P, model, params, out, y_onehot, h_y, temperature):
        v = P.coalition_values(out.u, params["head.b"], y_onehot, h_y)
        I = np.asarray(P.shapley_two(v), dtype=float)
        D = np.array(
            [P.confidence(model.coalition_logits(params, out, (m,)), model.config.num_classes) for m in range(model.M)]
        )
        return score(P, I, D, temperature)

    return fn


WRONG_WEIGHTS = [
    (weights_with(lambda P, I, D, T: P.contribution_weights(I, np.ones_like(D), T)), "ignores the confidence"),
    (weights_with(lambda P, I, D, T: P.contribution_weights(np.ones_like(I), D, T)), "ignores the Shapley"),
    (weights_with(lambda P, I, D, T: P.contribution_weights(I, D, 1.0)), "ignores the temperature"),
    (weights_with(lambda P, I, D, T: P.contribution_weights(I, D[::-1], T)), "other modality"),
    (weights_with(lambda P, I, D, T: np.asarray(P.contribution_weights(I, D, T))[::-1]), "reversed order"),
]


def kl_with(weight=lambda betas, m: betas[m], reduce=sum, grad_weight=lambda betas, m: betas[m]):
    def fn(P, out, betas):
        M = len(betas)
        terms = [float(weight(betas, m)) * float(P.kl_forward(out.mu[m], out.sigma[m])) for m in range(M)]
        grads = [P.kl_backward(float(grad_weight(betas, m)), (out.mu[m], out.sigma[m])) for m in range(M)]
        return reduce(terms), [g[0] for g in grads], [g[1] for g in grads]

    return fn


WRONG_KL = [
    (kl_with(weight=lambda b, m: 1.0), "plain sum"),
    (kl_with(reduce=lambda t: sum(t) / len(t)), "mean over modalities"),
    (kl_with(weight=lambda b, m: b[len(b) - 1 - m]), "OTHER modality"),
    (kl_with(weight=lambda b, m: b[0]), "weighted by betas[0]"),
    (kl_with(grad_weight=lambda b, m: 1.0), "constant factor"),
]


def test_assembly_checkers():
    for check, solution, wrong in (
        (nb08.check_weights_assembly, weights_of_batch, WRONG_WEIGHTS),
        (nb08.check_kl_assembly, kl_loss, WRONG_KL),
    ):
        assert check(solution).passed, check(solution).message
        assert "not implemented" in check(stub).message
        messages = set()
        for fn, expected in wrong:
            result = check(fn)
            assert not result.passed and expected in result.message, (expected, result.message)
            messages.add(result.message)
        assert len(messages) == len(wrong)
        for garbage in (lambda *a: None, lambda *a: "x", lambda *a: 1 / 0):
            assert not check(garbage).passed


def test_weights_assembly_cannot_call_the_library_metric():
    """The capstone asks for W assembled from the pieces: calling CAL's own metric is caught and named."""
    from mini_cal import contribution as C

    def shortcut(P, model, params, out, y_onehot, h_y, temperature):
        return C.contribution_weights(model, params, out, y_onehot, h_y, temperature)["W"]

    result = nb08.check_weights_assembly(shortcut)
    assert not result.passed and "library's own answer" in result.message, result.message
    assert nb08.check_weights_assembly(weights_of_batch).passed  # and the metric works again afterwards


def solution_namespace():
    from solutions import (
        bottleneck_backward,
        bottleneck_betas,
        bottleneck_forward,
        cal_coefficients,
        coalition_values,
        confidence,
        contribution_weights,
        kl_backward,
        kl_forward,
        linear_backward,
        relu_backward,
        shapley_two,
        softmax_ce_backward,
    )

    return {
        "my_linear_backward": linear_backward.linear_backward,
        "my_relu_backward": relu_backward.relu_backward,
        "my_softmax_ce_backward": softmax_ce_backward.softmax_ce_backward,
        "my_bottleneck_backward": bottleneck_backward.bottleneck_backward,
        "my_coalition_values": coalition_values.coalition_values,
        "my_shapley_two": shapley_two.shapley_two,
        "my_confidence": confidence.confidence,
        "my_contribution_weights": contribution_weights.contribution_weights,
        "my_accelerate": cal_coefficients.accelerate,
        "my_bottleneck_forward": bottleneck_forward.bottleneck_forward,
        "my_kl_forward": kl_forward.kl_forward,
        "my_kl_backward": kl_backward.kl_backward,
        "my_bottleneck_betas": bottleneck_betas.bottleneck_betas,
    }


def test_collect_uses_yours_or_the_library():
    pieces = nb08.collect(solution_namespace())
    assert len(pieces.yours) == len(nb08.PIECES) and pieces.complete
    ns = solution_namespace()
    ns["my_kl_forward"] = stub
    del ns["my_accelerate"]
    pieces = nb08.collect(ns)
    assert set(pieces.library) == {"kl_forward", "accelerate"} and pieces.complete
    pieces = nb08.collect(ns, use_library_for_unfinished=False)
    assert not pieces.complete
    assert nb08.train_mine(pieces, weights_of_batch, kl_loss, {}, None, None) is None  # says why, does not raise


def test_scaffold_matches_the_library():
    ds = load_preset("tiny")
    method_kw, train_kw = split_config(tuned_config("cal"))
    config = TrainConfig(epochs=8, seed=0, progress=False, probe=False, shapley=False, **train_kw)
    library = train(make_method("cal", **method_kw), ds, config)
    same = nb08.train_mine(nb08.library_pieces(), weights_of_batch, kl_loss, method_kw, ds, config)
    assert nb08.compare_params(same.params, library.params) == 0.0  # bit for bit, through and after warm-up
    mine = nb08.train_mine(nb08.collect(solution_namespace()), weights_of_batch, kl_loss, method_kw, ds, config)
    assert abs(mine.test["acc"] - library.test["acc"]) < 0.1


def test_kl_assembly_that_promotes_float32_gradients_is_named():
    """Issue 19, point 6: betas[m] is a NumPy float64; multiplying float32 gradients by it gives float64, which
    turns a float32 training run into another computation. The values are right, so only a dtype check sees it."""

    def numpy_betas(P, out, betas):
        total, dmu, dsigma = 0.0, [], []
        for m in range(len(betas)):
            total = total + betas[m] * P.kl_forward(out.mu[m], out.sigma[m])
            d_mu, d_sigma = P.kl_backward(betas[m], (out.mu[m], out.sigma[m]))
            dmu.append(d_mu)
            dsigma.append(d_sigma)
        return total, dmu, dsigma

    result = nb08.check_kl_assembly(numpy_betas)
    assert not result.passed, result.message
    assert "float64 while the model's are float32" in result.message and "float(betas[m])" in result.message
    result = nb08.check_kl_assembly(kl_loss)
    assert result.passed and "float32" in result.message, result.message
    result = nb08.check_kl_assembly(kl_with(weight=lambda b, m: 1.0))  # a scalar answer: no expected value printed
    assert not result.passed and "expected" not in result.message and "too large" in result.message, result.message


# ------------------------------------------------------------------------ assembly 3: one whole CAL training step
from solutions.cal_step import cal_step  # noqa: E402

from mini_cal import layers as L  # noqa: E402


def step_with(
    fused="one",
    unimodal="gamma",
    fused_grad=None,
    unimodal_grad=None,
    kl_loss=True,
    kl_grads=True,
    betas="cal",
    W_source="batch",
    copy_grads=True,
    return_accelerated=False,
    head="plain",
    update="cal",
):
    """A student's step with one planted mistake (the defaults: the solution, written another way)."""

    def weight(name, gamma):
        return {"one": 1.0, "gamma": gamma, "zero": 0.0}[name]

    def step(P, model, params, xs, y_onehot, eps, h_y, hp, lr, W=None):
        out = model.forward(params, xs, eps=eps)
        M, gamma = model.M, hp["gamma"]
        terms = [((0, 1), weight(fused, gamma), weight(fused_grad or fused, gamma))]
        terms += [((m,), weight(unimodal, gamma), weight(unimodal_grad or unimodal, gamma)) for m in range(M)]
        loss, dlogits = 0.0, {}
        for S, w, w_grad in terms:
            ce, cache = L.softmax_ce_forward(model.coalition_logits(params, out, S), y_onehot)
            loss += w * float(ce)
            if w_grad:
                dlogits[S] = P.softmax_ce_backward(w_grad, cache)
        if W is None or W_source == "ignore given":
            measured_on = model.forward(params, xs, eps=None) if W_source == "deterministic" else out
            W = weights_of_batch(P, model, params, measured_on, y_onehot, h_y, hp["temperature"])
        W = np.asarray(W, dtype=float)
        b = {
            "cal": lambda: P.bottleneck_betas(W, hp["beta0"]),
            "reversed": lambda: P.bottleneck_betas(W[::-1], hp["beta0"]),
            "beta0": lambda: np.full(M, hp["beta0"]),
            "one": lambda: np.ones(M),
        }[betas]()
        kl, dmu, dsigma = kl_loss_fn(P, out, b)
        loss += float(kl) if kl_loss else 0.0
        grads = model.backward(params, out, dlogits, dmu if kl_grads else None, dsigma if kl_grads else None)
        given = {k: g.copy() for k, g in grads.items()} if copy_grads else dict(grads)
        if W_source == "measured for the update":
            W = np.asarray(weights_of_batch(P, model, params, out, y_onehot, h_y, hp["temperature"]))
        coef = {"swapped": W[::-1], "none": np.zeros(M), "W only": W - 1}.get(update, W)
        branch_keys = [model.branch_keys(m) for m in range(M)]
        accelerated = P.accelerate(given, branch_keys, coef) or given
        if update == "accelerate twice":
            accelerated = P.accelerate(accelerated, branch_keys, coef) or accelerated
        if head == "accelerated":
            accelerated.update({k: accelerated[k] * (1 + W.max()) for k in model.head_keys()})
        step_size = {"lr twice": lr * lr, "two steps": 2 * lr, "sign": -lr}.get(update, lr)
        new = {k: params[k] - step_size * accelerated[k] for k in params}
        if update == "the step":
            new = {k: -lr * accelerated[k] for k in params}
        if update == "the gradients":
            new = accelerated
        return loss, (accelerated if return_accelerated else grads), new

    return step


kl_loss_fn = kl_loss

WRONG_STEPS = [
    (dict(unimodal="zero"), "no unimodal terms"),
    (dict(fused="gamma", unimodal="one"), "gamma weights the fused term instead"),
    (dict(fused="gamma"), "gamma weights every cross-entropy"),
    (dict(unimodal="one"), "not weighted by gamma (hp['gamma'])"),
    (dict(kl_loss=False), "no KL terms"),
    (dict(betas="one"), "not weighted by the betas"),
    (dict(betas="reversed"), "HIGH-contribution modality more"),
    (dict(betas="beta0"), "as during warm-up"),
    (dict(W_source="deterministic"), "without the noise"),
    (dict(kl_grads=False), "miss the KL's gradients"),
    (dict(unimodal_grad="one"), "upstream gradient gamma in its softmax backward"),
    (dict(unimodal_grad="zero"), "no gradient from the unimodal terms"),
    (dict(fused_grad="gamma", unimodal_grad="one"), "upstream gradients of the cross-entropies are swapped"),
    (dict(copy_grads=False), "already accelerated"),
    (dict(return_accelerated=True), "already accelerated"),
    (dict(W_source="ignore given"), "ignores it and measures W again"),
    (dict(head="accelerated"), "update of the head is not plain SGD"),
    (dict(update="none"), "not accelerated"),
    (dict(update="swapped"), "other modality's weight"),
    (dict(update="lr twice"), "learning rate twice"),
    (dict(update="two steps"), "takes two steps"),
    (dict(update="sign"), "climbs the loss"),
    (dict(update="W only"), "by W^m: CAL's coefficient is 1 + W^m"),
    (dict(update="accelerate twice"), "accelerates twice"),
    (dict(update="the step"), "hold the step"),
    (dict(update="the gradients"), "hold the accelerated gradients"),
    (dict(W_source="measured for the update"), "the acceleration too must use the W you are given"),
]


def test_the_step_solution_passes_quickly():
    import time

    for seed in (0, 1, 20_251):
        start = time.perf_counter()
        result = nb08.check_cal_step(cal_step, seed=seed)
        assert result.passed, (seed, result.message)
        assert time.perf_counter() - start < 1.5  # ~0.2 s on the course's machine
    assert nb08.check_cal_step(step_with()).passed  # the planted-mistake builder without a mistake


def test_each_planted_step_mistake_is_named():
    messages = set()
    for kwargs, expected in WRONG_STEPS:
        for seed in (0, 3):
            result = nb08.check_cal_step(step_with(**kwargs), seed=seed)
            assert not result.passed and expected in result.message, (kwargs, seed, result.message)
        messages.add(result.message)
        model, params, xs, y, eps, h_y, hp, lr = nb08.step_problem(3)
        loss0 = nb08._library_step(model, params, xs, y, eps, h_y, hp, lr)[0]
        assert f"{loss0:.6g}" not in result.message  # the right loss is never printed
    assert len(messages) == len(WRONG_STEPS) - 1  # the two ways of returning accelerated grads share one message


def test_the_mistake_catalogue_starts_from_the_library():
    model, params, xs, y, eps, h_y, hp, lr = nb08.step_problem(5)
    loss0, grads0, _, W0 = nb08._library_step(model, params, xs, y, eps, h_y, hp, lr)
    loss, grads = nb08._variant_step(model, params, xs, y, eps, hp, W0)
    assert abs(loss - loss0) < 1e-12 * abs(loss0)
    assert all(np.allclose(grads[k], grads0[k], rtol=1e-12, atol=1e-14) for k in grads0)


def test_the_step_cannot_call_the_library_or_the_scaffold():
    from mini_cal.methods.base import StepContext
    from mini_cal.methods.cal import CAL

    def library(P, model, params, xs, y_onehot, eps, h_y, hp, lr, W=None):
        method = CAL(hp["gamma"], hp["beta0"], hp["temperature"], warmup_epochs=0)
        out = model.forward(params, xs, eps=eps)
        ctx = StepContext(model, params, out, y_onehot, 0, 0, None, h_y)
        lo = method.loss(ctx)
        grads = model.backward(params, out, lo.dlogits, lo.dmu, lo.dsigma)
        accelerated = dict(grads)
        method.modify_gradients(accelerated, ctx, lo)
        return float(lo.total), grads, {k: params[k] - lr * accelerated[k] for k in params}

    def scaffold(P, model, params, xs, y_onehot, eps, h_y, hp, lr, W=None):
        method = nb08.MyCAL(P, weights_of_batch, kl_loss, hp["gamma"], hp["beta0"], hp["temperature"], 0)
        out = model.forward(params, xs, eps=eps)
        lo = method.loss(StepContext(model, params, out, y_onehot, 0, 0, None, h_y))
        grads = model.backward(params, out, lo.dlogits, lo.dmu, lo.dsigma)
        return float(lo.total), grads, dict(params)

    for fn in (library, scaffold):
        result = nb08.check_cal_step(fn)
        assert not result.passed and "library's own answer" in result.message, result.message
    assert nb08.check_cal_step(cal_step).passed  # and the library works again afterwards


def test_the_step_stub_and_broken_forms_do_not_pass():
    result = nb08.check_cal_step(stub)
    assert result.message.startswith("NOT YET"), result.message

    def in_place(P, model, params, xs, y_onehot, eps, h_y, hp, lr, W=None):
        loss, grads, _ = cal_step(P, model, params, xs, y_onehot, eps, h_y, hp, lr, W)
        for k in params:
            params[k] -= lr * grads[k]
        return loss, grads, params

    assert "in place" in nb08.check_cal_step(in_place).message
    for garbage in (lambda *a, **k: None, lambda *a, **k: (1.0, {}, {}), lambda *a, **k: ("x", None, None)):
        result = nb08.check_cal_step(garbage)
        assert not result.passed and result.message.startswith("FAILED"), result.message


def test_a_step_over_an_unfinished_assembly_says_which():
    import types

    namespace = dict(cal_step.__globals__, my_kl_loss=stub)
    step = types.FunctionType(cal_step.__code__, namespace, "my_cal_step", cal_step.__defaults__)
    result = nb08.check_cal_step(step)
    assert result.message.startswith("NOT YET"), result.message
    assert "uses my_kl_loss, which does not pass its own check yet (NOT YET" in result.message, result.message
    assert "my_weights_of_batch" not in result.message


def test_the_students_gradient_check(capsys):
    errors = nb08.gradcheck_step(cal_step, nb08.library_pieces())
    out = capsys.readouterr().out
    assert max(errors.values()) < 1e-6 and "every error below 1e-06" in out and "float32" in out, out
    errors = nb08.gradcheck_step(step_with(kl_grads=False), nb08.library_pieces())
    out = capsys.readouterr().out
    assert max(errors.values()) > 1e-3 and "are not the gradient of your loss" in out, out
    assert nb08.gradcheck_step(stub, nb08.library_pieces()) is None
    assert "NOT YET" in capsys.readouterr().out
