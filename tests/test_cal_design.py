"""CAL's design space (docs/method.md §3.8): every acceleration rule worked by hand, held-out W, its resume, and the
named suite of `mini-cal compare`."""

import numpy as np
import pytest

from mini_cal import layers as L
from mini_cal import synthetic
from mini_cal.hooks import Hook
from mini_cal.lab.checkpoint import read_npz, train_resumable
from mini_cal.lab.experiments import SUITES, suite_methods
from mini_cal.methods import CALDesign, make_method
from mini_cal.methods.cal_design import DESIGN_SPACE, ContributionMetric, acceleration_coefficients
from mini_cal.train import TrainConfig, train

FAST = dict(progress=False, probe=False, shapley=False)


@pytest.fixture(scope="module")
def tiny():
    return synthetic.load_preset("tiny")


# ------------------------------------------------------------------------------------- coefficients by hand
@pytest.mark.parametrize(
    "W, toward, scale, expected",
    [
        # the abstract's reading: 1 + W^m
        ([0.7, 0.3], "high", "raw", [1.7, 1.3]),
        ([0.5, 0.3, 0.2], "high", "raw", [1.5, 1.3, 1.2]),
        # toward the low-contribution modality: 1 + (1 - W^m) / (M - 1)
        ([0.7, 0.3], "low", "raw", [1.3, 1.7]),
        ([0.5, 0.3, 0.2], "low", "raw", [1.25, 1.35, 1.4]),  # 1 + 0.5/2, 1 + 0.7/2, 1 + 0.8/2
        # learning-rate matched: c / mean(c); mean(c) = 1 + 1/M = 1.5 at M = 2, 4/3 at M = 3
        ([0.7, 0.3], "high", "matched", [1.7 / 1.5, 1.3 / 1.5]),
        ([0.7, 0.3], "low", "matched", [1.3 / 1.5, 1.7 / 1.5]),
        ([0.5, 0.3, 0.2], "high", "matched", [1.5 * 0.75, 1.3 * 0.75, 1.2 * 0.75]),
        # the control: the average scaling 1 + 1/M, no asymmetry
        ([0.7, 0.3], "high", "uniform", [1.5, 1.5]),
        ([0.5, 0.3, 0.2], "low", "uniform", [4 / 3, 4 / 3, 4 / 3]),
        # balanced W: every rule gives the same coefficient to each branch
        ([0.5, 0.5], "low", "raw", [1.5, 1.5]),
        ([0.5, 0.5], "high", "matched", [1.0, 1.0]),
    ],
)
def test_acceleration_coefficients_by_hand(W, toward, scale, expected):
    np.testing.assert_allclose(acceleration_coefficients(W, toward, scale), expected, rtol=1e-12)


@pytest.mark.parametrize("W", [[0.9, 0.1], [0.2, 0.5, 0.3], [0.25, 0.25, 0.4, 0.1]])
def test_raw_rules_share_their_mean_and_matched_has_mean_one(W):
    M = len(W)
    for toward in ("high", "low"):
        assert np.mean(acceleration_coefficients(W, toward)) == pytest.approx(1 + 1 / M)
        assert np.mean(acceleration_coefficients(W, toward, "matched")) == pytest.approx(1.0)
    # "low" reverses the order of "high": the modality with the larger W gets the smaller coefficient
    high, low = acceleration_coefficients(W, "high"), acceleration_coefficients(W, "low")
    assert list(np.argsort(high, kind="stable")) == list(np.argsort(-low, kind="stable"))


def test_bad_design_options_name_the_argument():
    with pytest.raises(ValueError, match="accel_toward"):
        make_method("cal", accel_toward="middle")
    with pytest.raises(ValueError, match="accel_scale"):
        make_method("cal", accel_scale="half")
    with pytest.raises(ValueError, match="w_source"):
        make_method("cal", w_source="test")
    with pytest.raises(ValueError, match="accel_scale"):
        acceleration_coefficients([0.5, 0.5], "high", "half")


def test_every_design_variant_is_registered_with_its_flag():
    expected = {
        "cal-accel-low": ("accel_toward", "low"),
        "cal-lr-matched": ("accel_scale", "matched"),
        "cal-lr-control": ("accel_scale", "uniform"),
        "cal-W-val-batch": ("w_source", "val-batch"),
        "cal-W-val-epoch": ("w_source", "val-epoch"),
        "cal-sum": ("score_mode", "sum"),
        "cal-ema": ("ema", 0.9),
        "cal-I-only": ("score_mode", "I"),
        "cal-D-only": ("score_mode", "D"),
    }
    for name, (attr, value) in expected.items():
        assert name in DESIGN_SPACE
        method = make_method(name, gamma=0.5)  # a tuned configuration never overrides the variant's flag
        assert getattr(method, attr) == value and method.name == name and method.gamma == 0.5


def test_metric_measure_takes_no_ema_step(tiny):
    res = train(make_method("cal"), tiny, TrainConfig(epochs=1, **FAST))
    out = res.model.forward(res.params, [x[:16] for x in tiny.x_val])
    Y = L.one_hot(np.asarray(tiny.y_val[:16]), tiny.num_classes, dtype="float32")
    metric = ContributionMetric(2, tiny.num_classes, ema=0.5)
    metric.W, metric.steps = np.array([0.9, 0.1]), 3
    measured = metric.measure(res.model, res.params, out, Y)
    assert metric.W.tolist() == [0.9, 0.1] and metric.steps == 3
    stepped = metric(res.model, res.params, out, Y)
    np.testing.assert_allclose(stepped["W"], 0.5 * np.array([0.9, 0.1]) + 0.5 * measured["W_batch"])
    assert metric.steps == 4


# --------------------------------------------------------------------------------- the rules in training
def test_training_applies_each_rule_to_the_measured_W(tiny):
    for name, toward, scale in [
        ("cal", "high", "raw"),
        ("cal-accel-low", "low", "raw"),
        ("cal-lr-matched", "high", "matched"),
        ("cal-lr-control", "high", "uniform"),
    ]:
        res = train(make_method(name, warmup_epochs=1), tiny, TrainConfig(epochs=2, **FAST))
        for row in res.history["steps"]:
            if row["epoch"] == 0:
                assert row["coef"] == [1.0, 1.0]  # warm-up: nothing scaled
            else:
                np.testing.assert_allclose(row["coef"], acceleration_coefficients(row["W"], toward, scale))


class Spy(Hook):
    """Runs after the method's hooks: keeps the parameters and the held-out W at each epoch's end."""

    def __init__(self):
        self.seen = []

    def on_epoch_end(self, run):
        self.seen.append(({k: v.copy() for k, v in run.params.items()}, np.array(run.method.heldout["W"])))


def test_val_epoch_W_is_the_metric_on_the_whole_validation_split(tiny):
    method, spy = make_method("cal-W-val-epoch", warmup_epochs=1), Spy()
    res = train(method, tiny, TrainConfig(epochs=3, **FAST), hooks=[spy])
    Y = L.one_hot(np.asarray(tiny.y_val), tiny.num_classes, dtype="float32")
    for epoch, (params, W) in enumerate(spy.seen):
        out = res.model.forward(params, list(tiny.x_val))
        fresh = ContributionMetric(2, tiny.num_classes, h_y=method.metric.h_y).measure(res.model, params, out, Y)
        np.testing.assert_allclose(W, fresh["W"], rtol=1e-6)
        rows = [r for r in res.history["steps"] if r["epoch"] == epoch + 1]
        for r in rows:  # the next epoch uses it on every step
            np.testing.assert_allclose(r["W_metric"], W, rtol=1e-6)
            assert len(r["W_train"]) == 2


def test_val_batch_W_is_reproducible_and_differs_from_the_training_batch(tiny):
    a = train(make_method("cal-W-val-batch", warmup_epochs=1), tiny, TrainConfig(epochs=2, **FAST))
    b = train(make_method("cal-W-val-batch", warmup_epochs=1), tiny, TrainConfig(epochs=2, **FAST))
    assert a.history == b.history
    rows = a.history["steps"]
    assert any(not np.allclose(r["W_metric"], r["W_train"]) for r in rows)
    assert all(np.isclose(sum(r["W_metric"]), 1.0) for r in rows)


@pytest.mark.parametrize("name", ["cal-W-val-epoch", "cal-W-val-batch", "cal-ema"])
def test_resume_of_the_stateful_variants_is_bit_identical(tiny, tmp_path, name):
    kw = dict(warmup_epochs=1, ema=0.5) if name != "cal-ema" else dict(warmup_epochs=1)
    full = train_resumable(make_method(name, **kw), tiny, TrainConfig(epochs=4, **FAST))
    part = tmp_path / "part.npz"
    train_resumable(make_method(name, **kw), tiny, TrainConfig(epochs=2, **FAST), checkpoint_path=part)
    if name == "cal-W-val-epoch":
        assert "heldout" in read_npz(part)[0]["method"]["state"]
    resumed = train_resumable(make_method(name, **kw), tiny, TrainConfig(epochs=4, **FAST), resume=part)
    for k in full.params:
        assert full.params[k].tobytes() == resumed.params[k].tobytes(), k
    assert full.history == resumed.history


def test_val_epoch_resume_needs_its_heldout_state(tiny, tmp_path):
    """Forgetting the held-out W at resume changes the run: the test above has teeth."""

    class Forgetful(CALDesign):
        def load_state_dict(self, state):
            super().load_state_dict({"metric": state["metric"]})

    kw = dict(w_source="val-epoch", warmup_epochs=1)
    full = train_resumable(CALDesign(**kw), tiny, TrainConfig(epochs=4, **FAST))
    part = tmp_path / "part.npz"
    train_resumable(CALDesign(**kw), tiny, TrainConfig(epochs=2, **FAST), checkpoint_path=part)
    forgetful = train_resumable(Forgetful(**kw), tiny, TrainConfig(epochs=4, **FAST), resume=part)
    assert any(full.params[k].tobytes() != forgetful.params[k].tobytes() for k in full.params)


# ------------------------------------------------------------------------------------------------ suites
def test_suites():
    assert suite_methods("peers", 2) is None  # the methods' declared default set
    design = suite_methods("cal-design", 2)
    assert design[0] == "arl" and "cal" in design and set(DESIGN_SPACE) <= set(design)
    with pytest.raises(ValueError, match="suite"):
        suite_methods("nope", 2)
    assert set(SUITES) >= {"peers", "cal-design"}


def test_compare_suite_on_the_command_line(tmp_path, capsys):
    from mini_cal.lab.cli import main

    assert main(["compare", "--suite", "cal-design", "--methods", "cal", "--preset", "tiny", "--no-progress"]) == 2
    assert "--suite" in capsys.readouterr().err
    out = tmp_path / "design"
    args = ["compare", "--suite", "cal-design", "--preset", "tiny", "--seeds", "2", "--epochs", "1", "--jobs", "1"]
    assert main([*args, "--no-progress", "--out", str(out)]) == 0
    table = (out / "table.md").read_text()
    for name in ("arl", *DESIGN_SPACE):
        assert f"| {name} |" in table
    assert "Paired significance of ARL against each method" in table
    assert "Contribution weights" in table and "| cal-W-val-batch |" in table
