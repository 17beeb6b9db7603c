"""The backend: switching array libraries, and the compute code running on a device library.

``array_api_strict`` stands in for CuPy on machines without a GPU: it refuses NumPy-only functions and methods and
the mixing of NumPy arrays with its own, as CuPy does, so a training step or a gradient check that passes under it
should pass on a GPU (one gap: it lets ``np.asarray`` copy its arrays to the host; see mini_cal/backend.py).
The same tests run on CuPy when a CUDA device is present (``pytest -m gpu``) and are skipped otherwise.
"""

import math

import numpy as np
import pytest

from mini_cal import backend as B
from mini_cal import layers as L
from mini_cal import synthetic
from mini_cal.gradcheck import check_params
from mini_cal.methods import Joint
from mini_cal.model import Model, ModelConfig
from mini_cal.optim import SGD, Adam, clip_by_global_norm, global_norm, squared_norms
from mini_cal.train import TrainConfig, train

needs_gpu = [pytest.mark.gpu, pytest.mark.skipif(not B.cuda_available(), reason="needs CuPy and a CUDA device")]
DEVICE_BACKENDS = ["array_api_strict", pytest.param("cupy", marks=needs_gpu)]


@pytest.fixture(scope="module")
def tiny():
    return synthetic.load_preset("tiny")


def on_backend(arrays, name):
    """True when every array belongs to backend ``name`` (nothing fell back to NumPy on the way)."""
    return all(type(a).__module__.split(".")[0] == name for a in arrays)


# ----------------------------------------------------------------------------------------------- basics
def test_set_backend_errors_name_the_argument():
    with pytest.raises(ValueError, match=r"backend: expected one of .*got 'torch'"):
        B.set_backend("torch")
    with pytest.raises(ValueError, match=r"dtype: expected 'float32' or 'float64', got 'int8'"):
        B.float_dtype("int8")
    assert B.get_backend() == "numpy"


def test_use_backend_restores_the_previous_one():
    with B.use_backend("array_api_strict") as xp:
        assert B.get_backend() == "array_api_strict" and B.xp() is xp
    assert B.get_backend() == "numpy"
    with pytest.raises(RuntimeError, match="boom"):
        with B.use_backend("array_api_strict"):
            raise RuntimeError("boom")
    assert B.get_backend() == "numpy"


def test_numpy_namespace_is_numpy_with_direct_calls():
    """On NumPy, xp() is NumPy with sum, max, take and astype calling the ufunc reduction or array method that
    NumPy's own wrappers call: the same values and dtypes, bit for bit, for every argument the library passes."""
    xp = B.xp()
    assert xp.__name__ == "numpy" and xp.sum is not np.sum
    assert all(getattr(xp, k) is getattr(np, k) for k in dir(np) if k not in ("sum", "max", "take", "astype"))
    rng = np.random.default_rng(0)
    for dtype in (np.float32, np.float64, np.int64, np.bool_):
        for shape in ((), (7,), (64, 4), (3, 5, 2), (8193,)):
            a = (rng.standard_normal(shape) * 1e3).astype(dtype)
            axes = [None] + list(range(len(shape)))
            cases = [("sum", (a,), {"axis": ax, "keepdims": kd}) for ax in axes for kd in (False, True)]
            cases += [("max", (a,), {"axis": ax, "keepdims": kd}) for ax in axes for kd in (False, True)]
            cases += [("sum", (a,), {"dtype": np.float64}), ("astype", (a, np.float32), {})]
            if shape:
                cases.append(("take", (a, np.array([2, 0, 0]) % shape[0]), {"axis": 0}))
            for fn, args, kwargs in cases:
                got, want = getattr(xp, fn)(*args, **kwargs), getattr(np, fn)(*args, **kwargs)
                assert np.asarray(got).dtype == np.asarray(want).dtype, (fn, dtype, shape, kwargs)
                assert np.array_equal(got, want, equal_nan=True), (fn, dtype, shape, kwargs)
                assert np.shape(got) == np.shape(want)
    assert xp.sum([1.0, 2.5]) == 3.5 and xp.max([1, 4]) == 4  # Python lists, as NumPy takes them


@pytest.mark.parametrize("name", ["numpy", "array_api_strict", pytest.param("cupy", marks=needs_gpu)])
def test_rng_reproducible(name):
    B.set_backend(name)
    a, b, c = B.make_rng(7), B.make_rng(7), B.make_rng(8)
    x, y, z = a.normal((3, 4)), b.normal((3, 4)), c.normal((3, 4))
    assert on_backend([x], name) and tuple(x.shape) == (3, 4)
    assert np.array_equal(B.to_numpy(x), B.to_numpy(y))
    assert not np.array_equal(B.to_numpy(x), B.to_numpy(z))
    assert np.array_equal(a.permutation(10), b.permutation(10))
    state = a.get_state()
    first = B.to_numpy(a.normal((5,), "float64"))
    a.set_state(state)
    assert np.array_equal(first, B.to_numpy(a.normal((5,), "float64")))


@pytest.mark.parametrize("name", DEVICE_BACKENDS)
def test_transfers_round_trip(name):
    B.set_backend(name)
    host = np.arange(6, dtype=np.float32).reshape(2, 3)
    dev = B.asarray(host, dtype="float64")
    assert on_backend([dev], name) and B.dtype_name(dev) == "float64"
    back = B.to_numpy(dev)
    assert isinstance(back, np.ndarray) and np.array_equal(back, host)
    assert B.to_float(B.xp().sum(dev)) == 15.0


@pytest.mark.parametrize("name", DEVICE_BACKENDS)
def test_norms_take_one_transfer_and_clipping_stays_on_device(name, monkeypatch):
    B.set_backend(name)
    grads = {"a": B.asarray([[3.0, 0.0]], dtype="float32"), "b": B.asarray([4.0], dtype="float32")}
    transfers = []
    to_numpy = B.to_numpy
    monkeypatch.setattr(B, "to_numpy", lambda a: transfers.append(1) or to_numpy(a))
    assert squared_norms(grads) == {"a": 9.0, "b": 16.0}
    assert len(transfers) == 1  # one device-to-host copy per step, not one per parameter
    assert clip_by_global_norm(grads, 1.0, norm=5.0) == 5.0
    assert on_backend(grads.values(), name)
    assert global_norm(grads) == pytest.approx(1.0, rel=1e-6)
    B.synchronize()


# ------------------------------------------------------------------------------------------ training on a device
def final_params(backend_name, ds, method="joint"):
    from mini_cal.methods import make_method

    B.set_backend(backend_name)
    r = train(make_method(method), ds, TrainConfig(epochs=1, progress=False, probe=False, shapley=False))
    assert on_backend(r.params.values(), backend_name)
    assert all(math.isfinite(row["loss"]) for row in r.history["steps"])
    assert 0.0 <= r.test["acc"] <= 1.0
    return {k: B.to_numpy(v) for k, v in r.params.items()}


@pytest.mark.parametrize("method", ["joint", "cal", "ogm-ge", "arl"])  # cal: bottleneck noise and W; ogm-ge: GE
@pytest.mark.parametrize("name", DEVICE_BACKENDS)
def test_training_steps_match_numpy(name, method, tiny):
    reference = final_params("numpy", tiny, method)
    got = final_params(name, tiny, method)
    for k in reference:
        np.testing.assert_allclose(got[k], reference[k], rtol=1e-4, atol=1e-5, err_msg=k)


def bottleneck_setup(dims, K, n, dtype, seed=0):
    """A two-branch model with the Gaussian bottleneck, its parameters, a batch and its noise (all drawn on the
    host, so that every backend gets the same numbers)."""
    rng = B.make_rng(seed)
    model = Model(ModelConfig(dims, K, hidden=(6, 5), bottleneck=True, z_dim=4, sigma_shift=1.0, head_init=1.0))
    params = model.init_params(rng, dtype=dtype)
    xs = [B.asarray(rng.host.standard_normal((n, d)), dtype=dtype) for d in dims]
    Y = L.one_hot(B.asarray(rng.host.integers(K, size=n)), K, dtype=dtype)
    eps = [B.asarray(rng.host.standard_normal((n, model.config.out_dim)), dtype=dtype) for _ in dims]
    return model, params, xs, Y, eps


def ce_kl_loss(model, params, xs, Y, eps, beta=0.5):
    """CE of every coalition plus beta * KL per branch, and the hand-written gradient."""
    out = model.forward(params, xs, eps=eps)
    total, dlogits = 0.0, {}
    for S in [(0, 1), (0,), (1,)]:
        ce, c = L.softmax_ce_forward(model.coalition_logits(params, out, S), Y)
        total = total + ce
        dlogits[S] = L.softmax_ce_backward(1.0, c)
    dmu, dsigma = [], []
    for m in range(model.M):
        kl, c = L.gaussian_kl_forward(out.mu[m], out.sigma[m])
        total = total + beta * kl
        a, b = L.gaussian_kl_backward(beta, c)
        dmu.append(a)
        dsigma.append(b)
    return total, model.backward(params, out, dlogits, dmu, dsigma)


def bottleneck_steps(name):
    """Three steps each of SGD and Adam, with clipping, on a bottleneck model; returns host copies of params."""
    B.set_backend(name)
    model, params, xs, Y, eps = bottleneck_setup((5, 4), 3, 8, "float32")
    assert on_backend(model.sample_eps(8, B.make_rng(1), "float32"), name)  # noise is drawn on the device
    for opt in (SGD(lr=0.1, weight_decay=1e-3), Adam(lr=1e-2, weight_decay=1e-3)):
        for _ in range(3):
            loss, grads = ce_kl_loss(model, params, xs, Y, eps)
            assert on_backend(grads.values(), name) and math.isfinite(B.to_float(loss))
            clip_by_global_norm(grads, 1.0)
            opt.step(params, grads)
    assert on_backend(params.values(), name)
    return {k: B.to_numpy(v) for k, v in params.items()}


@pytest.mark.parametrize("name", DEVICE_BACKENDS)
def test_bottleneck_step_matches_numpy(name):
    reference = bottleneck_steps("numpy")
    got = bottleneck_steps(name)
    for k in reference:
        np.testing.assert_allclose(got[k], reference[k], rtol=1e-4, atol=1e-5, err_msg=k)


@pytest.mark.parametrize("name", DEVICE_BACKENDS)
def test_gradient_check_on_device(name):
    B.set_backend(name)
    model, params, xs, Y, eps = bottleneck_setup((5, 4), 3, 6, "float64")
    _, grads = ce_kl_loss(model, params, xs, Y, eps)
    errs = check_params(lambda p: ce_kl_loss(model, p, xs, Y, eps)[0], params, grads)
    assert max(errs.values()) < 1e-7, errs


# ------------------------------------------------------------------------------- in-place optimiser updates
def test_in_place_updates_leave_a_resumed_checkpoint_intact(tiny, tmp_path):
    """The optimisers update parameters in place (fewer allocations per step); a run resumed from a checkpoint
    must therefore train on copies, so that an interruption saves the epoch-boundary state, not a mid-epoch one."""
    from mini_cal.lab import checkpoint as C
    from mini_cal.lab.checkpoint import TrainingInterrupted, train_resumable

    class Interrupting(Joint):
        def loss(self, ctx):
            if ctx.step == 10:  # 4 steps per epoch: inside the third epoch
                raise KeyboardInterrupt
            return super().loss(ctx)

    def config(epochs):
        return TrainConfig(epochs=epochs, progress=False, probe=False, shapley=False)

    first, second = tmp_path / "first.npz", tmp_path / "second.npz"
    train_resumable(Joint(), tiny, config(2), checkpoint_path=first)
    with pytest.raises(TrainingInterrupted):
        train_resumable(Interrupting(), tiny, config(4), checkpoint_path=second, checkpoint_every=5, resume=first)
    (meta_a, a), (meta_b, b) = C.read_npz(first), C.read_npz(second)
    assert meta_a["epoch"] == meta_b["epoch"] == 2
    assert all(np.array_equal(a[k], b[k]) for k in a if k.startswith("param/"))
