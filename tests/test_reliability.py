"""Checkpoints, resume, interruption and divergence (mini_cal/lab/checkpoint.py: the hook around train.py, and the CLI),
and the atomic outputs of the multi-run commands."""

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from mini_cal import synthetic
from mini_cal.lab import checkpoint as C
from mini_cal.lab import io
from mini_cal.lab.checkpoint import TrainingInterrupted, train_resumable
from mini_cal.lab.cli import main
from mini_cal.methods import CALDesign, Joint, make_method
from mini_cal.train import DivergenceError, TrainConfig

FAST = dict(progress=False, probe=False, shapley=False)
# hyper-parameters under which each method's cross-step state matters within a few epochs
METHODS = {"cal": dict(warmup_epochs=1, ema=0.5), "ogm-ge": {}, "arl": dict(warmup_epochs=1)}
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny():
    return synthetic.load_preset("tiny")


CHECKPOINT_OPTIONS = ("checkpoint_path", "checkpoint_every", "save_on_interrupt")


def config(epochs, **kw):
    """(TrainConfig, checkpoint options of train_resumable)."""
    options = {k: kw.pop(k) for k in CHECKPOINT_OPTIONS if k in kw}
    return TrainConfig(epochs=epochs, **FAST, **kw), options


def train(method, ds, cfg, resume=None, log=None):
    config, options = cfg
    return train_resumable(method, ds, config, resume=resume, log=log, **options)


def assert_same_result(a, b):
    """Bit-identical selected parameters, identical history and metrics."""
    assert a.params.keys() == b.params.keys()
    for k in a.params:
        assert a.params[k].dtype == b.params[k].dtype and a.params[k].tobytes() == b.params[k].tobytes(), k
    assert a.history == b.history
    assert (a.best_epoch, a.val, a.test, a.probe_acc) == (b.best_epoch, b.val, b.test, b.probe_acc)


def assert_same_checkpoint(path_a, path_b):
    """Same current and best parameters, optimiser state, RNG state, method state and history, bit for bit."""
    meta_a, arrays_a = C.read_npz(path_a)
    meta_b, arrays_b = C.read_npz(path_b)
    assert arrays_a.keys() == arrays_b.keys()
    for k in arrays_a:
        assert arrays_a[k].tobytes() == arrays_b[k].tobytes(), k
    for k in ("epoch", "step", "best_epoch", "best_val_acc", "rng", "optimizer"):
        assert meta_a[k] == meta_b[k], k
    for k in ("name", "hparams", "state"):
        assert meta_a["method"][k] == meta_b["method"][k], k


@pytest.mark.parametrize("name", sorted(METHODS))
def test_resume_is_bit_identical(tiny, tmp_path, name):
    full_path, part_path = tmp_path / "full.npz", tmp_path / "part.npz"
    full = train(make_method(name, **METHODS[name]), tiny, config(4, checkpoint_path=full_path))
    train(make_method(name, **METHODS[name]), tiny, config(2, checkpoint_path=part_path))
    assert C.read_npz(part_path)[0]["epoch"] == 2
    resumed = train(make_method(name, **METHODS[name]), tiny, config(4, checkpoint_path=part_path), resume=part_path)
    assert_same_result(full, resumed)
    assert_same_checkpoint(full_path, part_path)
    assert len(resumed.history["epochs"]) == 4


def test_cal_state_matters_for_resume(tiny, tmp_path):
    """Without CAL's EMA state the resumed run differs: the bit-identical test above has teeth."""

    class ForgetfulCAL(CALDesign):
        def load_state_dict(self, state):
            pass

    path = tmp_path / "cal.npz"
    full = train(make_method("cal", **METHODS["cal"]), tiny, config(4))
    train(make_method("cal", **METHODS["cal"]), tiny, config(2, checkpoint_path=path))
    state = C.read_npz(path)[0]["method"]["state"]
    assert state["metric"]["steps"] > 0 and not np.allclose(state["metric"]["W"], 0.5)
    forgetful = train(ForgetfulCAL(**METHODS["cal"]), tiny, config(4), resume=path)
    assert forgetful.history["steps"][-1]["loss"] != full.history["steps"][-1]["loss"]


def test_checkpoint_every_and_adam(tiny, tmp_path):
    path = tmp_path / "adam.npz"
    cfg = dict(optimizer="adam", lr=1e-3, checkpoint_every=2)
    full = train(make_method("cal", **METHODS["cal"]), tiny, config(5, **cfg))
    train(make_method("cal", **METHODS["cal"]), tiny, config(3, **cfg, checkpoint_path=path))
    meta = C.read_npz(path)[0]
    assert meta["epoch"] == 3  # epoch 2 by checkpoint_every, then the last epoch
    assert meta["optimizer"]["scalars"]["t"] == meta["step"] > 0
    resumed = train(make_method("cal", **METHODS["cal"]), tiny, config(5, **cfg), resume=path)
    assert_same_result(full, resumed)


def test_resume_of_a_finished_run_only_evaluates(tiny, tmp_path):
    path = tmp_path / "done.npz"
    full = train(Joint(), tiny, config(2, checkpoint_path=path))
    again = train(Joint(), tiny, config(2), resume=path)
    assert_same_result(full, again)


def interrupting(cls, step):
    """``cls`` with Ctrl-C arriving at one step (same name and hyper-parameters as ``cls``)."""

    class Interrupting(cls):
        def loss(self, ctx):
            if ctx.step == step:
                raise KeyboardInterrupt
            return super().loss(ctx)

    return Interrupting


@pytest.mark.parametrize("name", sorted(METHODS))
def test_interruption_mid_epoch_saves_the_last_epoch_and_resumes(tiny, tmp_path, name):
    path = tmp_path / "run.npz"
    cls = type(make_method(name, **METHODS[name]))
    full = train(make_method(name, **METHODS[name]), tiny, config(4))
    # 4 steps per epoch: step 10 is inside epoch 3 (0-based 2); checkpoint_every=3 has written nothing yet
    with pytest.raises(TrainingInterrupted) as info:
        train(interrupting(cls, 10)(**METHODS[name]), tiny, config(4, checkpoint_path=path, checkpoint_every=3))
    assert info.value.path == str(path) and info.value.epoch == 2 and not info.value.default_location
    assert str(path) in str(info.value) and "resume" in str(info.value)
    assert C.read_npz(path)[0]["epoch"] == 2
    resumed = train(make_method(name, **METHODS[name]), tiny, config(4), resume=path)
    assert_same_result(full, resumed)


def test_interruption_in_log_callback_and_default_location(tiny, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    full = train(make_method("cal", **METHODS["cal"]), tiny, config(4))

    def log(row):
        if row["epoch"] == 1:
            raise KeyboardInterrupt

    with pytest.raises(TrainingInterrupted) as info:
        train(make_method("cal", **METHODS["cal"]), tiny, config(4), log=log)
    default = Path(info.value.path)
    assert default.parent == Path("checkpoints") and default.name.startswith("cal-seed0-")
    assert default.name.endswith("-interrupted.npz") and info.value.default_location and default.exists()
    assert "default location" in str(info.value) and str(default) in str(info.value)
    assert C.read_npz(default)[0]["epoch"] == 2  # the epoch whose log was interrupted had ended
    assert_same_result(full, train(make_method("cal", **METHODS["cal"]), tiny, config(4), resume=default))
    assert not list(Path("checkpoints").glob("*.tmp"))


def test_interruption_before_the_first_epoch_saves_nothing(tiny, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(TrainingInterrupted) as info:
        train(interrupting(Joint, 1)(), tiny, config(3))
    assert info.value.path is None and "nothing was saved" in str(info.value)
    assert not Path("checkpoints").exists()


def test_divergence_keeps_the_last_good_checkpoint(tiny, tmp_path):
    class NanAtStep(Joint):
        def loss(self, ctx):
            lo = super().loss(ctx)
            if ctx.step == 13:  # inside epoch 4 (0-based 3)
                lo.terms["ce_fused"] = float("nan")
            return lo

    path, clean = tmp_path / "div.npz", tmp_path / "clean.npz"
    with pytest.raises(
        DivergenceError,
        match=r"is nan at epoch 4, step 13; the last good checkpoint \(end of "
        r"epoch 3\) is",
    ) as info:
        train(NanAtStep(), tiny, config(6, checkpoint_path=path, checkpoint_every=2))
    assert str(path) in str(info.value)
    # epoch 3 was not due (every 2) but is the last good state: written then, and equal to a clean 3-epoch run
    train(Joint(), tiny, config(3, checkpoint_path=clean))
    assert_same_checkpoint(path, clean)

    with pytest.raises(DivergenceError, match="no checkpoint was written"):
        train(NanAtStep(), tiny, config(6))


def test_non_finite_parameters_are_never_checkpointed(tiny, tmp_path):
    class PoisonParams(Joint):
        def modify_gradients(self, grads, ctx, lo):
            if ctx.step == 7:  # the last step of epoch 2: the loss and gradients are finite, the parameters not
                ctx.params["head.b"][0] = np.inf
            return super().modify_gradients(grads, ctx, lo)

    path = tmp_path / "p.npz"
    with pytest.raises(
        DivergenceError,
        match=r"a parameter is not finite at the end of epoch 2; the last good "
        r"checkpoint \(end of epoch 1\)",
    ):
        train(PoisonParams(), tiny, config(4, checkpoint_path=path))
    meta, arrays = C.read_npz(path)
    assert meta["epoch"] == 1 and all(np.isfinite(v).all() for k, v in arrays.items() if k.startswith("param/"))


# ------------------------------------------------------------------------------------------ bad checkpoints
@pytest.fixture(scope="module")
def saved(tiny, tmp_path_factory):
    path = tmp_path_factory.mktemp("ck") / "cal.npz"
    train(make_method("cal", **METHODS["cal"]), tiny, config(2, checkpoint_path=path))
    return path


def rewrite(src, dst, change_meta=None, drop=()):
    meta, arrays = C.read_npz(src)
    if change_meta:
        change_meta(meta)
    arrays = {k: v for k, v in arrays.items() if k not in drop}
    io.write_npz({**arrays, "meta": np.array(json.dumps(meta))}, dst)
    return dst


def test_damaged_checkpoints_are_clear_errors(tiny, saved, tmp_path):
    cal = lambda: make_method("cal", **METHODS["cal"])  # noqa: E731
    blob = saved.read_bytes()
    (tmp_path / "truncated.npz").write_bytes(blob[: len(blob) // 2])
    (tmp_path / "garbage.npz").write_bytes(b"not a checkpoint at all")
    flipped = bytearray(blob)
    flipped[len(blob) // 3 : len(blob) // 3 + 64] = bytes(64)
    (tmp_path / "flipped.npz").write_bytes(bytes(flipped))
    cases = {
        tmp_path / "missing.npz": "does not exist",
        tmp_path / "truncated.npz": "truncated or corrupted",
        tmp_path / "garbage.npz": "truncated or corrupted",
        tmp_path / "flipped.npz": "truncated or corrupted",
        rewrite(saved, tmp_path / "v99.npz", lambda m: m.update(format_version=99)): "format version 99",
        rewrite(saved, tmp_path / "noparam.npz", drop=("param/head.b",)): "'head.b' is missing",
        rewrite(saved, tmp_path / "nohist.npz", drop=("history_json",)): "incomplete or damaged",
        rewrite(saved, tmp_path / "nostate.npz", lambda m: m["method"].update(state={})): "incomplete or damaged",
    }
    for path, message in cases.items():
        with pytest.raises(C.CheckpointError, match=message):
            train(cal(), tiny, config(3), resume=path)
    model_file = tmp_path / "model.npz"
    run = train(Joint(), tiny, config(1))
    C.save_model(model_file, run.model, run.params)
    with pytest.raises(C.CheckpointError, match="not a training checkpoint"):
        train(Joint(), tiny, config(3), resume=model_file)


def test_checkpoints_of_another_run_are_refused(tiny, saved):
    other_dims = replace(
        tiny,
        x_train=[x[:, :5] for x in tiny.x_train],
        x_val=[x[:, :5] for x in tiny.x_val],
        x_test=[x[:, :5] for x in tiny.x_test],
    )
    other_labels = replace(tiny, y_train=np.roll(tiny.y_train, 1))
    cases = [
        (make_method("joint"), tiny, config(3), "written by method 'cal', not 'joint'"),
        (make_method("cal", warmup_epochs=1, ema=0.9), tiny, config(3), "hyper-parameters differ: ema=0.5"),
        (make_method("cal", **METHODS["cal"]), other_dims, config(3), "other data .*input_dims"),
        (make_method("cal", **METHODS["cal"]), other_labels, config(3), "different training samples"),
        (make_method("cal", **METHODS["cal"]), tiny, config(3, hidden=(32, 16)), "options differ: hidden"),
        (make_method("cal", **METHODS["cal"]), tiny, config(3, lr=0.01), "options differ: lr=0.05"),
        (make_method("cal", **METHODS["cal"]), tiny, config(3, seed=1), "options differ: seed=0"),
        (make_method("cal", **METHODS["cal"]), tiny, config(3, dtype="float64"), "options differ: dtype"),
        (make_method("cal", **METHODS["cal"]), tiny, config(3, z_dim=8), "options differ: z_dim"),
        (make_method("cal", **METHODS["cal"]), tiny, config(1), "already run 2 epochs, more than epochs=1"),
    ]
    for method, ds, cfg, message in cases:
        with pytest.raises(C.CheckpointError, match=message):
            train(method, ds, cfg, resume=saved)


def test_atomic_write_keeps_the_old_file_when_a_write_fails(tmp_path):
    path = tmp_path / "a.npz"
    io.write_npz({"x": np.arange(3)}, path)

    class Boom:
        def __array__(self, *args, **kwargs):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        io.write_npz({"x": np.arange(5), "y": Boom()}, path)
    with np.load(path) as f:
        assert f["x"].tolist() == [0, 1, 2]
    assert os.listdir(tmp_path) == ["a.npz"]  # no temporary file left behind
    assert oct(path.stat().st_mode & 0o777) == oct(0o666 & ~_umask())  # like any file the user writes


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


# ------------------------------------------------------------------------------------------ the command line
@pytest.fixture
def quick_probe(monkeypatch):
    """The linear probes (the slowest part of a short CLI run) are not what these tests are about."""
    import mini_cal.train as T

    monkeypatch.setattr(T, "linear_probe", lambda model, *args, **kwargs: [0.5] * model.M)


def run_cli(argv, capsys):
    rc = main(argv)
    out, err = capsys.readouterr()
    return rc, out, err


def test_cli_interrupt_then_resume_matches_uninterrupted(tmp_path, capsys, monkeypatch, quick_probe):
    import mini_cal.train as T

    monkeypatch.chdir(tmp_path)
    base = ["train", "--method", "cal", "--preset", "tiny", "--epochs", "4", "--no-progress"]
    assert run_cli(base + ["--json", "full.json"], capsys)[0] == 0

    evaluate, calls = T.metrics, []

    def interrupt_third_validation(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return evaluate(*args, **kwargs)

    monkeypatch.setattr(T, "metrics", interrupt_third_validation)
    rc, out, err = run_cli(base + ["--json", "resumed.json"], capsys)
    assert rc == 130 and "Traceback" not in err
    assert "end of epoch 2" in err and "checkpoints/cal-seed0-" in err and "default location" in err
    command = err.split("resume with: ")[1].strip()
    saved = str(next(Path("checkpoints").glob("cal-seed0-*-interrupted.npz")))
    monkeypatch.setattr(T, "metrics", evaluate)
    argv = shlex.split(command)
    assert argv[0] == "mini-cal" and argv[-2:] == ["--resume", saved]
    assert run_cli(argv[1:], capsys)[0] == 0
    full, resumed = (json.loads(Path(f).read_text()) for f in ("full.json", "resumed.json"))
    for r in (full, resumed):
        r.pop("train_time_s")
    assert full == resumed


def test_cli_checkpoint_errors_are_clean(tmp_path, capsys, quick_probe):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"\x00" * 100)
    rc, _, err = run_cli(["train", "--preset", "tiny", "--no-progress", "--resume", str(bad)], capsys)
    assert rc == 2 and "truncated or corrupted" in err and "Traceback" not in err
    ck = tmp_path / "ck.npz"
    assert (
        run_cli(["train", "--preset", "tiny", "--epochs", "1", "--no-progress", "--checkpoint", str(ck)], capsys)[0]
        == 0
    )
    rc, _, err = run_cli(
        ["train", "--preset", "tiny", "--epochs", "2", "--no-progress", "--lr", "0.1", "--resume", str(ck)], capsys
    )
    assert rc == 2 and "options differ: lr=0.05 in the checkpoint, 0.1 here" in err
    rc, _, err = run_cli(
        ["train", "--method", "cal", "--preset", "tiny", "--epochs", "2", "--no-progress", "--resume", str(ck)], capsys
    )
    assert rc == 2 and "written by method 'joint', not 'cal'" in err
    # a new run does not silently overwrite a checkpoint
    rc, _, err = run_cli(["train", "--preset", "tiny", "--no-progress", "--checkpoint", str(ck)], capsys)
    assert rc == 2 and "exists; continue that run with --resume" in err


def test_cli_unwritable_checkpoint_is_clean(tmp_path, capsys, quick_probe):
    (tmp_path / "file").write_text("")
    rc, _, err = run_cli(
        [
            "train",
            "--preset",
            "tiny",
            "--epochs",
            "1",
            "--no-progress",
            "--checkpoint",
            str(tmp_path / "file" / "ck.npz"),
        ],
        capsys,
    )
    assert rc == 2 and "error:" in err and "Traceback" not in err


def test_interruption_crosses_process_boundaries():
    import pickle

    exc = pickle.loads(pickle.dumps(TrainingInterrupted("a.npz", 3, default_location=True)))
    assert (exc.path, exc.epoch, exc.default_location) == ("a.npz", 3, True) and "epoch 3" in str(exc)


def test_cli_divergence_is_clean(tmp_path, capsys):
    rc, _, err = run_cli(
        [
            "train",
            "--preset",
            "tiny",
            "--epochs",
            "3",
            "--no-progress",
            "--lr",
            "1e30",
            "--checkpoint",
            str(tmp_path / "d.npz"),
        ],
        capsys,
    )
    assert rc == 1 and "training diverged" in err and "no checkpoint was written" in err
    assert "Traceback" not in err and not (tmp_path / "d.npz").exists()


def test_cli_real_sigint(tmp_path):
    """A real Ctrl-C (SIGINT) on a running `mini-cal train`: exit 130, no traceback, a checkpoint to resume."""
    ck = tmp_path / "sig.npz"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mini_cal",
            "train",
            "--preset",
            "tiny",
            "--epochs",
            "100000",
            "--no-progress",
            "--checkpoint",
            str(ck),
            "--checkpoint-every",
            "5",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    try:
        deadline = time.monotonic() + 60
        while not ck.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and f"--resume {ck}" in err
    assert C.read_npz(ck)[0]["epoch"] >= 5
    assert not list(tmp_path.glob("*.tmp"))


# ------------------------------------------------------------------------------------------ multi-run outputs
def test_multi_run_commands_refuse_a_non_empty_out(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("earlier results")
    for command in ("compare", "robustness", "sweep"):
        argv = [command, "--preset", "tiny", "--methods", "joint", "--epochs", "1", "--no-progress", "--out", str(out)]
        rc, _, err = run_cli(argv, capsys)
        assert rc == 2 and "exists and is not empty" in err and "--overwrite" in err, command
    assert os.listdir(out) == ["keep.txt"] and (out / "keep.txt").read_text() == "earlier results"


def test_compare_outputs_are_complete_and_overwrite_is_explicit(tmp_path, capsys, quick_probe):
    out = tmp_path / "cmp"
    argv = [
        "compare",
        "--preset",
        "tiny",
        "--methods",
        "joint",
        "--seeds",
        "1",
        "--epochs",
        "1",
        "--jobs",
        "1",
        "--no-progress",
        "--out",
        str(out),
    ]
    assert run_cli(argv, capsys)[0] == 0
    files = {p.name for p in out.rglob("*")}
    assert {"results.json", "table.md", "models", "joint-seed0.npz"} <= files
    assert not [f for f in files if "tmp" in f]
    json.loads((out / "results.json").read_text())
    assert run_cli(argv, capsys)[0] == 2
    (out / "table.md").unlink()  # --overwrite writes into the folder anew
    assert run_cli(argv + ["--overwrite", "--epochs", "2"], capsys)[0] == 0
    assert (out / "table.md").exists()
    assert len(json.loads((out / "results.json").read_text())["records"][0]["epochs"]) == 2


def test_write_json_atomic_and_save_figure_keep_old_files_on_failure(tmp_path):
    from mini_cal.lab.io import save_figure
    from mini_cal.lab.plots import _plt

    path = tmp_path / "r.json"
    io.write_json({"a": 1}, path)
    with pytest.raises(TypeError):
        io.write_json({"a": object()}, path)
    assert json.loads(path.read_text()) == {"a": 1}

    fig_path = tmp_path / "f.png"
    fig = _plt().figure()
    assert save_figure(fig, fig_path) == str(fig_path) and fig_path.stat().st_size > 0
    assert sorted(os.listdir(tmp_path)) == ["f.png", "r.json"]  # no temporary file left behind


def test_no_interrupt_checkpoint_when_disabled(tmp_path, monkeypatch):
    """compare/sweep workers set save_on_interrupt=False: Ctrl-C stops them without writing files."""

    class Stop(Joint):
        def loss(self, ctx):
            if ctx.epoch == 2:
                raise KeyboardInterrupt
            return super().loss(ctx)

    monkeypatch.chdir(tmp_path)
    with pytest.raises(TrainingInterrupted) as info:
        train(Stop(), synthetic.load_preset("tiny"), config(4, save_on_interrupt=False))
    assert info.value.path is None and "nothing was saved" in str(info.value)
    assert not (tmp_path / "checkpoints").exists()
