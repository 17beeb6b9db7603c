"""Saved state is validated on load (issue 20, item 5): one schema per method's running state and one for a
checkpoint's counters (mini_cal/lab/schema.py), one writer per checkpoint path (a lock file), and model files
checked against the name they are loaded under (item 4b)."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from mini_cal import synthetic
from mini_cal.lab import checkpoint as C
from mini_cal.lab import io
from mini_cal.lab import schema as S
from mini_cal.lab.cli import main
from mini_cal.methods import SPECS, make_method, method_names
from mini_cal.methods.base import LossOutput, Method
from mini_cal.train import TrainConfig, start_run

FAST = dict(progress=False, probe=False, shapley=False)
# hyper-parameters under which each method has running state after two epochs
KWARGS = {
    "cal": dict(warmup_epochs=1, ema=0.5),
    "cal-val": dict(warmup_epochs=1, w_source="val-epoch"),
    "gblending": dict(super_epoch=1),
    "agm": dict(alpha=0.5),
    "pmr": dict(momentum=0.5),
    "joint": {},
}


def method(key):
    return make_method("cal" if key == "cal-val" else key, **KWARGS[key])


@pytest.fixture(scope="module")
def tiny():
    return synthetic.load_preset("tiny")


@pytest.fixture(scope="module")
def saved(tiny, tmp_path_factory):
    """{method key: a checkpoint after 2 of 3 epochs}."""
    folder = tmp_path_factory.mktemp("saved")
    paths = {}
    for key in KWARGS:
        paths[key] = folder / f"{key}.npz"
        C.train_resumable(method(key), tiny, TrainConfig(epochs=2, **FAST), checkpoint_path=paths[key])
    return paths


def edited(src, dst, change):
    meta, arrays = C.read_npz(src)
    change(meta)
    io.write_npz({**arrays, "meta": np.array(json.dumps(meta))}, dst)
    return dst


def state_set(path, value):
    """Set method state field ``path`` ("metric.W") to ``value``."""

    def change(meta):
        node = meta["method"]["state"]
        *parents, leaf = path.split(".")
        for p in parents:
            node = node[p]
        node[leaf] = value

    return change


def meta_set(**values):
    return lambda meta: meta.update(values)


NAN = float("nan")
BAD_STATES = [
    # (method key, change, field named in the message, what was expected)
    ("gblending", state_set("weights", [1.0]), "weights", "3 "),
    ("cal", state_set("metric.W", [1.0]), "metric.W", "sum to 1"),
    ("cal", state_set("metric.W", [0.2, 0.3, 0.5]), "metric.W", "2 "),
    ("cal", state_set("metric.W", [NAN, 0.5]), "metric.W", "finite"),
    ("cal", state_set("metric.W", [5.0, -4.0]), "metric.W", "non-negative"),
    ("cal", state_set("metric.W", [0.5, 0.6]), "metric.W", "sum to 1"),
    ("cal", state_set("metric.steps", -7), "metric.steps", "integer >= 0"),
    ("cal", state_set("metric.steps", 2.5), "metric.steps", "integer >= 0"),
    ("cal", state_set("metric.extra", 1), "metric.extra", "no such field"),
    ("cal-val", state_set("heldout.W", [1.0, 0.0, 0.0]), "heldout.W", "2 "),
    ("cal-val", state_set("heldout.I", [NAN, 0.0]), "heldout.I", "finite"),
    ("pmr", lambda m: m["method"]["state"]["prototypes"][1][0].__setitem__(0, NAN), "prototypes", "finite"),
    ("pmr", lambda m: m["method"]["state"]["prototypes"][0].pop(), "prototypes", "(2, 4, "),
    ("pmr", state_set("prototypes", "garbage"), "prototypes", "(2, 4, "),
    ("pmr", state_set("updates", -1), "updates", "integer >= 0"),
    ("agm", state_set("s_bar", [0.1] * 5), "s_bar", "2 "),
    ("agm", state_set("count", True), "count", "integer >= 0"),
    ("gblending", state_set("weights", [0.5, -0.25, 0.75]), "weights", "non-negative"),
    ("gblending", lambda m: m["method"]["state"]["estimates"][0].update(G=[0.1]), "estimates[0].G", "3 "),
    ("gblending", lambda m: m["method"]["state"]["estimates"].append("x"), "estimates[", "object"),
    ("joint", state_set("s_bar", [0.5, 0.5]), "s_bar", "no such field"),
    ("cal", lambda m: m["method"].update(state={"metric": {"W": [0.5, 0.5]}}), "metric.steps", "missing"),
    # the counters of the training loop
    ("joint", meta_set(best_val_acc=5.0), "best_val_acc", "in [0, 1]"),
    ("joint", meta_set(best_val_acc=-1.0), "best_val_acc", "in [0, 1]"),
    ("joint", meta_set(best_val_acc=0.125), "best_val_acc", "best validation accuracy"),
    ("joint", meta_set(elapsed_s=-1e9), "elapsed_s", ">= 0"),
    ("joint", meta_set(step=1), "step", "batches of 64"),
    ("joint", meta_set(epoch=1), "epoch", "history"),
    ("joint", meta_set(best_epoch=-1), "best_epoch", "fit"),
    ("joint", meta_set(surprise=1), "surprise", "no such field"),
]


@pytest.mark.parametrize(
    "key, change, field, expected", BAD_STATES, ids=[f"{k}-{f}-{i}" for i, (k, _, f, _e) in enumerate(BAD_STATES)]
)
def test_bad_saved_state_is_refused_naming_file_field_and_expectation(
    tiny, saved, tmp_path, key, change, field, expected
):
    bad = edited(saved[key], tmp_path / "bad.npz", change)
    with pytest.raises(C.CheckpointError) as err:
        C.train_resumable(method(key), tiny, TrainConfig(epochs=3, **FAST), resume=bad)
    text = str(err.value)
    assert str(bad) in text and field in text and expected in text, text


def test_gblending_weights_of_the_wrong_length_no_longer_broadcast(tiny, saved, tmp_path):
    """The reproduction of the issue: one weight for three terms trained on silently."""
    bad = edited(saved["gblending"], tmp_path / "gb.npz", state_set("weights", [1.0]))
    with pytest.raises(C.CheckpointError, match=r"'weights' is \[1.0\], expected 3 non-negative finite numbers"):
        C.train_resumable(method("gblending"), tiny, TrainConfig(epochs=3, **FAST), resume=bad)


def test_every_registered_method_has_a_schema_its_fresh_and_saved_state_meet(tiny, saved):
    classes = {cls for spec in SPECS.values() for cls in (spec.cls, *spec.classes.values())}
    assert classes <= set(S.METHOD_STATE), classes - set(S.METHOD_STATE)
    for name in method_names():
        if name.startswith("unimodal-") and int(name.split("-")[1]) >= tiny.num_modalities:
            continue
        m = make_method(name)
        run = start_run(m, tiny, TrainConfig(**FAST))
        S.check_method_state(m, m.state_dict(), run.model, "fresh")  # raises on a mismatch
    for key, path in saved.items():  # and the state after two epochs (resume tests cover the rest)
        m = method(key)
        run = start_run(m, tiny, TrainConfig(**FAST))
        S.check_method_state(m, C.read_npz(path)[0]["method"]["state"], run.model, str(path))


def test_a_method_outside_the_table_gets_the_shape_of_its_fresh_state(tiny, tmp_path):
    """A user's method with running state: the keys of a freshly set-up instance, every number finite."""

    class Counting(Method):
        name = "joint"

        def setup(self, model, h_y):
            super().setup(model, h_y)
            self.seen = [0.0] * model.M

        def loss(self, ctx):
            return make_method("joint").loss(ctx)

        def state_dict(self):
            return {"seen": self.seen}

    run = start_run(Counting(), tiny, TrainConfig(**FAST))
    S.check_method_state(run.method, {"seen": [1.0, 2.0]}, run.model, "ok")
    for state, message in (({}, "missing"), ({"seen": [NAN, 1]}, "finite"), ({"seen": [1], "x": 2}, "no such")):
        with pytest.raises(ValueError, match=message):
            S.check_method_state(run.method, state, run.model, "where")
    assert isinstance(LossOutput, type)


# ------------------------------------------------------------------------------------------- one writer per path
def test_second_writer_of_a_checkpoint_is_refused_at_once(tmp_path):
    """The lock held here (this process is alive): ``mini-cal train --checkpoint`` of the same path stops at
    once with a message naming the file, the lock and the PID, and leaves the lock alone."""
    path = tmp_path / "same.npz"
    with C.checkpoint_lock(path):
        start = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "mini_cal", "train", "--preset", "tiny", "--epochs", "50", "--no-progress",
             "--checkpoint", str(path)],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        took = time.perf_counter() - start
        assert proc.returncode == 2, proc.stderr
        assert "in use by another process" in proc.stderr and f"PID {os.getpid()}" in proc.stderr
        assert str(path) in proc.stderr and took < 30
        assert (tmp_path / "same.npz.lock").read_text().strip() == str(os.getpid())
        with pytest.raises(C.CheckpointLocked):  # in-process too
            with C.checkpoint_lock(path):
                pass
    assert not (tmp_path / "same.npz.lock").exists() and not path.exists()


def test_two_train_processes_on_one_checkpoint(tmp_path):
    """Two real processes: the second (resuming the same file while the first writes it) is refused; Ctrl-C
    of the first saves, exits 130 and releases the lock."""
    path = tmp_path / "same.npz"
    argv = [sys.executable, "-m", "mini_cal", "train", "--preset", "tiny", "--no-progress", "--checkpoint", str(path)]
    first = subprocess.Popen([*argv, "--epochs", "3000"], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 60
        while not path.exists() and time.time() < deadline:
            time.sleep(0.05)
        assert path.exists()
        second = subprocess.run(
            [*argv, "--epochs", "3000", "--resume", str(path)], capture_output=True, text=True, timeout=60
        )
        assert second.returncode == 2 and "in use by another process" in second.stderr
        assert f"PID {first.pid}" in second.stderr
    finally:
        first.send_signal(signal.SIGINT)
        try:
            _, err = first.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            first.kill()
            raise
    assert first.returncode == 130, err
    assert not (tmp_path / "same.npz.lock").exists()


def test_a_stale_lock_is_taken_over_and_every_exit_releases_it(tiny, tmp_path):
    path, lock = tmp_path / "ck.npz", tmp_path / "ck.npz.lock"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock.write_text(f"{dead.pid}\n")
    C.train_resumable(make_method("joint"), tiny, TrainConfig(epochs=1, **FAST), checkpoint_path=path)
    assert path.exists() and not lock.exists()

    class Boom(Method):
        name = "joint"

        def loss(self, ctx):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        C.train_resumable(Boom(), tiny, TrainConfig(epochs=1, **FAST), checkpoint_path=tmp_path / "b.npz")
    assert not (tmp_path / "b.npz.lock").exists()

    class CtrlC(Method):
        name = "joint"

        def loss(self, ctx):
            if ctx.epoch == 1:
                raise KeyboardInterrupt
            return make_method("joint").loss(ctx)

    with pytest.raises(C.TrainingInterrupted):
        C.train_resumable(CtrlC(), tiny, TrainConfig(epochs=2, **FAST), checkpoint_path=tmp_path / "c.npz")
    assert (tmp_path / "c.npz").exists() and not (tmp_path / "c.npz.lock").exists()


# ------------------------------------------------------------------------------ model files against their names
def test_robustness_refuses_a_model_file_whose_method_differs_from_its_name(tmp_path, capsys):
    out = tmp_path / "cmp"
    common = ["--preset", "tiny", "--methods", "joint", "cal", "--seeds", "1", "--jobs", "1", "--no-progress"]
    assert main(["compare", *common, "--epochs", "1", "--out", str(out)]) == 0
    models = out / "models"
    shutil.copyfile(models / "joint-seed0.npz", models / "cal-seed0.npz")
    capsys.readouterr()
    rc = main(["robustness", *common, "--models", str(models), "--out", str(tmp_path / "rob")])
    err = capsys.readouterr().err
    assert rc == 2 and "cal-seed0.npz" in err and "'joint'" in err, err
    assert not (tmp_path / "rob").exists()


def test_load_model_checks_method_and_seed(tmp_path, tiny):
    run = start_run(make_method("joint"), tiny, TrainConfig(**FAST))
    path = tmp_path / "cal-seed3.npz"
    C.save_model(path, run.model, run.params, {"method": "joint", "seed": 3})
    C.load_model(path, expect_method="joint", expect_seed=3)
    C.load_model(path)  # nothing expected, nothing checked
    with pytest.raises(
        C.CheckpointError, match=re.escape(f"{str(path)!r}") + " holds method 'joint' seed 3, expected method 'cal'"
    ):
        C.load_model(path, expect_method="cal", expect_seed=3)
    with pytest.raises(C.CheckpointError, match="seed 3, expected method 'joint' seed 0"):
        C.load_model(path, expect_method="joint", expect_seed=0)
