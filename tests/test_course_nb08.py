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
