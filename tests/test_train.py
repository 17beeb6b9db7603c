import numpy as np
import pytest

from mini_cal import synthetic
from mini_cal.methods import Joint, Unimodal, make_method
from mini_cal.train import TrainConfig, train

FAST = dict(epochs=3, progress=False)


@pytest.fixture(scope="module")
def tiny():
    return synthetic.load_preset("tiny")


def test_joint_training_history_and_selection(tiny):
    r = train(Joint(), tiny, TrainConfig(**FAST))
    assert len(r.history["epochs"]) == 3
    steps_per_epoch = int(np.ceil(200 / 64))
    assert len(r.history["steps"]) == 3 * steps_per_epoch
    row = r.history["steps"][0]
    assert {"loss", "ce_fused", "grad_norm", "branch_grad_norm"} <= set(row)
    assert len(row["branch_grad_norm"]) == 2
    val_accs = [e["val_acc"] for e in r.history["epochs"]]
    assert r.best_epoch == int(np.argmax(val_accs))
    assert r.val["acc"] == pytest.approx(max(val_accs))
    assert set(r.test) >= {"acc", "macro_f1", "coalition_acc", "shapley_acc"}
    phi = r.test["shapley_acc"]
    v = r.test["coalition_values"]
    assert sum(phi) == pytest.approx(v["0,1"] - v["{}"])  # efficiency
    assert len(r.probe_acc) == 2 and all(0 <= p <= 1 for p in r.probe_acc)


def test_same_seed_same_result(tiny):
    a = train(Joint(), tiny, TrainConfig(**FAST, seed=5))
    b = train(Joint(), tiny, TrainConfig(**FAST, seed=5))
    c = train(Joint(), tiny, TrainConfig(**FAST, seed=6))
    assert all(np.array_equal(a.params[k], b.params[k]) for k in a.params)
    assert a.history["epochs"] == b.history["epochs"]
    assert not np.array_equal(a.params["b0.W1"], c.params["b0.W1"])


def test_unimodal_trains_only_its_branch(tiny):
    r = train(make_method("unimodal-1"), tiny, TrainConfig(**FAST))
    assert r.method == "unimodal-1"  # the registry names a method
    assert r.test["acc"] == r.test["coalition_acc"][1]
    assert r.probe_acc[0] is None and r.probe_acc[1] is not None
    assert r.test["coalition_acc"][0] is None  # the untrained branch reports nothing, like its probe


def test_joint_learns_easy_modality(tiny):
    r = train(Joint(), tiny, TrainConfig(epochs=15, progress=False))
    assert r.test["acc"] > 0.5  # well above chance (0.25)


def test_make_method_and_bad_arguments(tiny):
    assert isinstance(make_method("joint"), Joint)
    with pytest.raises(ValueError, match=r"method: expected one of"):
        make_method("nope")
    with pytest.raises(ValueError, match="modality: expected an index in 0..1"):
        train(Unimodal(4), tiny, TrainConfig(**FAST))
    for kw, msg in [
        (dict(epochs=0), "epochs"),
        (dict(lr=-1.0), "lr"),
        (dict(batch_size=0), "batch_size"),
        (dict(dtype="int8"), "dtype"),
        (dict(optimizer="x"), "optimizer"),
        (dict(clip_norm=-1.0), "clip_norm"),
    ]:
        with pytest.raises(ValueError, match=msg):
            train(Joint(), tiny, TrainConfig(progress=False, **kw))


def test_training_rejects_bad_data(tiny):
    from dataclasses import replace as dc_replace

    with pytest.raises(ValueError, match="train modality 1: contains NaN"):  # refused when the Dataset is made
        dc_replace(tiny, x_train=[tiny.x_train[0], np.full_like(tiny.x_train[1], np.nan)])
    with pytest.raises(ValueError, match=r"val labels: expected integers in 0..3"):
        dc_replace(tiny, y_val=tiny.y_val + 7)
    with pytest.raises(ValueError, match="read-only"):  # a Dataset keeps its own read-only copies: checked once
        tiny.x_train[0][0, 0] = np.nan


def test_divergence_is_reported(tiny):
    from mini_cal.train import DivergenceError

    class InfGradient(Joint):
        def modify_gradients(self, grads, ctx, lo):
            if ctx.step == 2:
                grads["b1.W1"] = grads["b1.W1"] * np.inf
            return {}

    with pytest.raises(DivergenceError, match=r"gradient norm is (inf|nan) at epoch 1, step 2"):
        train(InfGradient(), tiny, TrainConfig(**FAST))

    class NanLoss(Joint):
        def loss(self, ctx):
            lo = super().loss(ctx)
            if ctx.step == 4:
                lo.terms["ce_fused"] = float("nan")
            return lo

    with pytest.raises(DivergenceError, match=r"loss term 'ce_fused' is nan at epoch 2, step 4"):
        train(NanLoss(), tiny, TrainConfig(**FAST))
