import math

import numpy as np
import pytest

from mini_cal import backend as B
from mini_cal import layers as L
from mini_cal.gradcheck import check_params
from mini_cal.model import Model, ModelConfig

TOL = 1e-7


def full_loss(model, params, xs, Y, eps, gamma=0.5, betas=None):
    """CE(all) + gamma * sum_m CE({m}) + sum_m beta_m KL_m, and its hand-written gradient."""
    out = model.forward(params, xs, eps=eps)
    M = model.M
    total, dlogits = 0.0, {}
    for S, w in [(tuple(range(M)), 1.0)] + [((m,), gamma) for m in range(M)]:
        ce, c = L.softmax_ce_forward(model.coalition_logits(params, out, S), Y)
        total = total + w * ce
        dlogits[S] = L.softmax_ce_backward(w, c)
    dmu = dsigma = None
    if model.config.bottleneck:
        betas = betas or [0.3 + 0.2 * m for m in range(M)]
        dmu, dsigma = [], []
        for m in range(M):
            kl, c = L.gaussian_kl_forward(out.mu[m], out.sigma[m])
            total = total + betas[m] * kl
            a, b = L.gaussian_kl_backward(betas[m], c)
            dmu.append(a)
            dsigma.append(b)
    return total, model.backward(params, out, dlogits, dmu, dsigma)


def make(M, bottleneck, seed=0, n=6):
    rng = B.make_rng(seed)
    dims = (5, 4, 3)[:M]
    model = Model(ModelConfig(dims, 3, hidden=(6, 5), bottleneck=bottleneck, z_dim=4, sigma_shift=1.0, head_init=1.0))
    params = model.init_params(rng, dtype="float64")
    for k in params:  # non-zero biases so that every path is exercised
        if ".b" in k or k == "head.b":
            params[k] = params[k] + 0.1 * rng.host.standard_normal(params[k].shape)
    xs = [rng.host.standard_normal((n, d)) for d in dims]
    Y = L.one_hot(B.asarray(rng.host.integers(3, size=n)), 3, dtype="float64")
    eps = model.sample_eps(n, rng, "float64")
    return model, params, xs, Y, eps


@pytest.mark.parametrize("M", [2, 3])
@pytest.mark.parametrize("bottleneck", [False, True])
def test_full_model_gradient_check(M, bottleneck):
    model, params, xs, Y, eps = make(M, bottleneck)
    _, grads = full_loss(model, params, xs, Y, eps)
    errs = check_params(lambda p: full_loss(model, p, xs, Y, eps)[0], params, grads)
    worst = max(errs.values())
    assert worst < TOL, errs


def test_keys_and_shapes():
    model, params, *_ = make(2, True)
    assert set(model.branch_keys(0)) == {"b0.W1", "b0.b1", "b0.W2", "b0.b2", "b0.Wmu", "b0.bmu", "b0.Ws", "b0.bs"}
    assert model.head_keys() == ["head.W0", "head.W1", "head.b"]
    assert set(params) == set(model.branch_keys(0)) | set(model.branch_keys(1)) | set(model.head_keys())
    assert params["head.W0"].shape == (4, 3)


def test_init_reproducible_from_seed():
    a = make(2, True, seed=3)[1]
    b = make(2, True, seed=3)[1]
    c = make(2, True, seed=4)[1]
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["b0.W1"], c["b0.W1"])


def test_coalition_logits_are_sums_of_blocks():
    model, params, xs, Y, eps = make(2, False)
    out = model.forward(params, xs)
    z = np.concatenate(out.z, axis=1)
    W = np.concatenate([params["head.W0"], params["head.W1"]], axis=0)
    np.testing.assert_allclose(model.coalition_logits(params, out, (0, 1)), z @ W + params["head.b"])
    # a coalition zeroes the other modalities' features
    z0 = np.concatenate([out.z[0], np.zeros_like(out.z[1])], axis=1)
    np.testing.assert_allclose(model.coalition_logits(params, out, (0,)), z0 @ W + params["head.b"])
    np.testing.assert_allclose(model.coalition_logits(params, out, ()), np.tile(params["head.b"], (6, 1)))


def test_eval_forward_is_deterministic_z_equals_mu():
    model, params, xs, Y, eps = make(2, True)
    out = model.forward(params, xs, eps=None)
    np.testing.assert_array_equal(out.z[0], out.mu[0])
    out2 = model.forward(params, xs, eps=eps)
    assert not np.allclose(out2.z[0], out.z[0])


def test_loss_at_init_is_log_k():
    from mini_cal import synthetic

    ds = synthetic.load_preset("tiny")
    model = Model(ModelConfig(ds.input_dims, ds.num_classes))
    params = model.init_params(B.make_rng(0))
    Y = L.one_hot(B.asarray(ds.y_train), ds.num_classes)
    loss, _ = L.softmax_ce_forward(model.logits(params, [B.asarray(x) for x in ds.x_train]), Y)
    assert abs(float(loss) / math.log(ds.num_classes) - 1) < 0.05


def test_overfits_twenty_samples():
    from mini_cal import synthetic
    from mini_cal.optim import Adam

    ds = synthetic.load_preset("tiny")
    xs = [x[:20] for x in ds.x_train]
    y = ds.y_train[:20]
    model = Model(ModelConfig(ds.input_dims, ds.num_classes, hidden=(64, 32)))
    params = model.init_params(B.make_rng(0))
    Y = L.one_hot(B.asarray(y), ds.num_classes)
    opt = Adam(lr=1e-2)
    for _ in range(300):
        out = model.forward(params, xs)
        loss, c = L.softmax_ce_forward(model.coalition_logits(params, out, (0, 1)), Y)
        opt.step(params, model.backward(params, out, {(0, 1): L.softmax_ce_backward(1.0, c)}))
    pred = np.argmax(model.logits(params, xs), axis=1)
    assert np.mean(pred == y) == 1.0


def test_input_validation():
    """Your own inputs enter through model.logits (forward is the inner maths, fed by checked data)."""
    model, params, xs, Y, eps = make(2, False)
    with pytest.raises(ValueError, match=r"xs: expected a list of 2"):
        model.logits(params, xs[:1])
    with pytest.raises(ValueError, match=r"xs\[1\]: expected shape \(N, 4\)"):
        model.logits(params, [xs[0], xs[1][:, :3]])
    with pytest.raises(ValueError, match=r"xs\[1\]: expected 6 rows"):
        model.logits(params, [xs[0], xs[1][:4]])
    with pytest.raises(ValueError, match="num_classes"):
        ModelConfig((3,), 1)
    with pytest.raises(ValueError, match="hidden"):
        ModelConfig((3,), 2, hidden=())
