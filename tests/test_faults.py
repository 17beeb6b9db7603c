"""Faults: signals (SIGTERM of train, SIGKILL and SIGTERM of a compare's parent, Ctrl-C of compare and --resume),
concurrent writers, leftovers of killed writers, interrupted and reused --out folders, and damaged files (truncated
or byte-flipped data, model and checkpoint files: only DataError / CheckpointError, both ValueErrors, may come out).
Subprocesses only where a real signal is the point; everything else runs in-process on the tiny preset."""

import json
import multiprocessing
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from mini_cal import data, synthetic
from mini_cal.lab import checkpoint as C
from mini_cal.lab import io, presets
from mini_cal.lab import runs as R
from mini_cal.lab.cli import main
from mini_cal.methods import make_method
from mini_cal.train import TrainConfig, start_run

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
FAST = dict(progress=False, probe=False, shapley=False)


def spawn(argv, cwd, env=ENV, **kw):
    return subprocess.Popen(
        [sys.executable, "-m", "mini_cal", *argv], cwd=cwd, env=env, text=True, stderr=subprocess.PIPE, **kw
    )


def wait_for(condition, timeout=60.0, every=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(every)
    return False


def children(pid: int) -> list:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def gone(pid: int) -> bool:
    """Exited (a zombie waiting for a reaper counts as exited: it runs no code)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


# ------------------------------------------------------------------------------------------- train and SIGTERM
def test_sigterm_of_train_saves_its_checkpoint(tmp_path):
    ck = tmp_path / "ck.npz"
    argv = ["train", "--preset", "tiny", "--epochs", "100000", "--no-progress", "--checkpoint", str(ck)]
    proc = spawn(argv + ["--checkpoint-every", "3"], tmp_path)
    try:
        assert wait_for(ck.exists)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 143, err
    assert "terminated (SIGTERM)" in err and f"--resume {ck}" in err and "Traceback" not in err
    assert C.read_npz(ck)[0]["epoch"] >= 3
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_sigterm_of_train_without_checkpoint_saves_to_a_new_file(tmp_path):
    # the progress bar says when epochs have ended: shown by default, whatever the environment of the suite says
    # (TQDM_DISABLE=1 is a common CI setting)
    env = {k: v for k, v in ENV.items() if k != "TQDM_DISABLE"}
    proc = spawn(["train", "--preset", "tiny", "--epochs", "100000"], tmp_path, env=env)
    seen = []

    def read():  # the progress bar (stderr) says when epochs have ended
        while chunk := proc.stderr.read(64):
            seen.append(chunk)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert wait_for(lambda: re.search(r"\b[1-9]\d*/100000", "".join(seen)))
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        reader.join(timeout=10)
    finally:
        proc.kill()
    err = "".join(seen)
    assert proc.returncode == 143, err
    saved = list((tmp_path / "checkpoints").glob("joint-seed0-*-interrupted.npz"))
    assert len(saved) == 1 and "default location" in err and str(saved[0].relative_to(tmp_path)) in err
    assert C.read_npz(saved[0])[0]["epoch"] >= 1
    assert not list((tmp_path / "checkpoints").glob(".*.tmp"))


# ------------------------------------------------------------------------------------------- compare and signals
COMPARE = ["compare", "--preset", "tiny", "--methods", "joint", "--no-progress"]


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_compare_workers_end_with_their_parent(tmp_path, capsys, sig):
    out = tmp_path / "out"
    proc = spawn([*COMPARE, "--seeds", "6", "--jobs", "2", "--epochs", "100000", "--out", str(out)], tmp_path)
    try:
        assert wait_for(lambda: len(children(proc.pid)) >= 2 and (out / R.MARKER).exists())
        time.sleep(0.5)  # the workers are inside their first run
        workers = children(proc.pid)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
        assert wait_for(lambda: all(gone(w) for w in workers), timeout=10), "workers outlived their parent"
    finally:
        proc.kill()
        for w in children(proc.pid):
            os.kill(w, signal.SIGKILL)
    assert proc.returncode == -signal.SIGKILL if sig == signal.SIGKILL else proc.returncode == 143
    if sig == signal.SIGTERM:
        assert "terminated (SIGTERM)" in err and f"--resume {out}" in err and "Traceback" not in err
    # the folder never looks complete: the marker stays, no results; a rerun is refused until told what to do
    assert (out / R.MARKER).exists() and not (out / "results.json").exists()
    rc = main([*COMPARE, "--seeds", "1", "--epochs", "1", "--out", str(out)])
    assert rc == 2 and "unfinished run" in capsys.readouterr().err


def _interrupt_third_run(monkeypatch):
    """Make the third run of a multi-run command raise KeyboardInterrupt (Ctrl-C); returns the real run_one."""
    run_one, calls = R.run_one, []

    def interrupted(task):
        calls.append(task)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return run_one(task)

    monkeypatch.setattr(R, "run_one", interrupted)
    return run_one


def test_compare_interrupted_then_resumed_is_identical(tmp_path, capsys, monkeypatch):
    argv = ["compare", "--preset", "tiny", "--methods", "joint", "unimodal-0", "--seeds", "2", "--epochs", "1"]
    argv += ["--jobs", "1", "--no-progress"]
    assert main([*argv, "--out", str(tmp_path / "full")]) == 0
    run_one = _interrupt_third_run(monkeypatch)
    part = tmp_path / "part"
    assert main([*argv, "--out", str(part)]) == 130
    err = capsys.readouterr().err
    assert "interrupted" in err and f"--resume {part}" in err and (part / R.MARKER).exists()
    assert not (part / "results.json").exists()
    monkeypatch.setattr(R, "run_one", run_one)
    assert main([*argv, "--resume", str(part)]) == 0
    assert "2 finished runs were reused" in capsys.readouterr().out and not (part / R.MARKER).exists()

    def records(folder):
        result = json.loads((folder / "results.json").read_text())
        for r in result["records"]:
            r.pop("train_time_s")
        return result["records"]

    assert records(part) == records(tmp_path / "full")
    for name in os.listdir(tmp_path / "full" / "models"):
        a, b = C.read_npz(tmp_path / "full" / "models" / name)[1], C.read_npz(part / "models" / name)[1]
        assert all(a[k].tobytes() == b[k].tobytes() for k in a), name


def test_sweep_interrupted_then_resumed_is_identical(tmp_path, capsys, monkeypatch):
    argv = ["sweep", "--preset", "tiny", "--methods", "joint", "--budget", "2", "--epochs", "1", "--jobs", "1"]
    argv += ["--no-progress"]
    assert main([*argv, "--out", str(tmp_path / "full")]) == 0
    run_one = _interrupt_third_run(monkeypatch)
    part = tmp_path / "part"
    assert main([*argv, "--out", str(part)]) == 130
    err = capsys.readouterr().err
    assert "continue with: mini-cal sweep" in err and f"--resume {part}" in err and (part / R.MARKER).exists()
    assert not (part / "sweep.json").exists()
    assert main([*argv, "--out", str(part)]) == 2  # refused without --resume or --overwrite, saying both
    assert "continue it with --resume, or start again with --overwrite" in capsys.readouterr().err
    monkeypatch.setattr(R, "run_one", run_one)
    assert main([*argv, "--resume", str(part)]) == 0
    assert "2 finished trial runs were reused" in capsys.readouterr().out and not (part / R.MARKER).exists()

    def result(folder):
        saved = json.loads((folder / "sweep.json").read_text())
        return {k: v for k, v in saved.items() if k != "resumed_runs"}

    assert result(part) == result(tmp_path / "full")
    assert json.loads((part / "sweep.json").read_text())["resumed_runs"] == 2


def test_overwrite_clears_an_interrupted_run(tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    argv = [*COMPARE, "--epochs", "1", "--jobs", "1", "--out", str(out)]
    run_one = _interrupt_third_run(monkeypatch)
    assert main([*argv, "--seeds", "3"]) == 130 and (out / "models" / "joint-seed1.npz").exists()
    monkeypatch.setattr(R, "run_one", run_one)
    assert main([*argv, "--seeds", "1"]) == 2 and "unfinished run" in capsys.readouterr().err
    assert main([*argv, "--seeds", "1", "--overwrite"]) == 0
    assert os.listdir(out / "models") == ["joint-seed0.npz"] and not (out / R.MARKER).exists()
    assert os.listdir(out / "runs") == ["joint-seed0.json"]
    assert json.loads((out / "results.json").read_text())["methods"] == ["joint"]


def test_a_second_run_into_a_live_folder_is_refused(tmp_path, capsys):
    out = tmp_path / "out"
    first = R.OutFolder(str(out), command="compare")  # a live run holds the folder
    try:
        for overwrite in ([], ["--overwrite"]):
            rc = main([*COMPARE, "--seeds", "1", "--epochs", "1", "--out", str(out), *overwrite])
            assert rc == 2 and "another mini-cal run is writing" in capsys.readouterr().err
        assert os.listdir(out) == [R.MARKER]
    finally:
        first.done()
    assert os.listdir(out) == []


def test_robustness_uses_the_data_of_the_saved_models(tmp_path, capsys):
    out = tmp_path / "cmp"
    assert main([*COMPARE, "--seeds", "1", "--epochs", "1", "--jobs", "1", "--out", str(out)]) == 0
    argv = ["robustness", "--models", str(out / "models"), "--methods", "joint", "--seeds", "1", "--no-progress"]
    rc = main([*argv, "--preset", "default", "--out", str(tmp_path / "r0")])
    assert rc == 2 and "trained on {'preset': 'tiny'}" in capsys.readouterr().err and not (tmp_path / "r0").exists()
    assert main([*argv, "--out", str(tmp_path / "r1")]) == 0
    assert json.loads((tmp_path / "r1" / "robustness.json").read_text())["data"] == {"preset": "tiny"}


# ------------------------------------------------------------------------------------------- files and writers
def _writer(path, value, times):
    for _ in range(times):
        io.write_npz({"x": np.full(50_000, value), "y": np.full(10, value)}, path)


def test_concurrent_writers_never_mix_their_bytes(tmp_path):
    path = tmp_path / "shared.npz"
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(path, v, 15)) for v in range(4)]
    for p in procs:
        p.start()
    seen = set()
    while any(p.is_alive() for p in procs):  # a reader meanwhile always sees one whole file
        if path.exists():
            with np.load(path) as f:
                x, y = f["x"], f["y"]
            assert len(set(x.tolist())) == 1 and y[0] == x[0]
            seen.add(int(x[0]))
    for p in procs:
        p.join()
        assert p.exitcode == 0
    assert os.listdir(tmp_path) == ["shared.npz"]


def test_a_killed_writer_s_temporary_file_is_removed_by_the_next_write(tmp_path):
    dead = subprocess.run(["true"]).args and subprocess.Popen(["true"])
    dead.wait()
    stale = tmp_path / f".a.npz.{dead.pid}-0badc0de.tmp"
    live = tmp_path / f".b.npz.{os.getppid()}-0badc0de.tmp"  # a writer that is still running
    other = tmp_path / ".notes.tmp"  # not ours
    for p in (stale, live, other):
        p.write_bytes(b"partial")
    io.write_json({"a": 1}, tmp_path / "c.json")
    assert sorted(os.listdir(tmp_path)) == sorted([live.name, other.name, "c.json"])


def test_ctrl_c_during_data_generate_leaves_no_temporary_file(tmp_path, monkeypatch):
    from mini_cal.lab import presets

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez_compressed", interrupted)
    with pytest.raises(KeyboardInterrupt):
        presets.write_presets(["tiny"], out_dir=tmp_path, log=lambda *a: None)
    assert os.listdir(tmp_path) == []


# ------------------------------------------------------------------------------------------- damaged files
def mutations(blob: bytes, n: int = 10, seed: int = 0) -> list:
    """n truncations and n single-byte flips at reproducible random positions, plus the empty file."""
    rng = np.random.default_rng(seed)
    cuts = [bytes(blob[: int(k)]) for k in rng.integers(0, len(blob), n)]
    flips = []
    for k in rng.integers(0, len(blob), n):
        b = bytearray(blob)
        b[int(k)] ^= 0xFF
        flips.append(bytes(b))
    return [b""] + cuts + flips


@pytest.fixture(scope="module")
def tiny():
    return synthetic.load_preset("tiny")


def _fuzz(tmp_path, blob, load, allowed, accept=lambda result: True):
    outcomes = {"error": 0, "loaded": 0}
    for i, bad in enumerate(mutations(blob)):
        path = tmp_path / f"m{i}.npz"
        path.write_bytes(bad)
        try:
            result = load(path)
        except allowed as exc:
            assert isinstance(exc, ValueError) and str(path) in str(exc), exc
            outcomes["error"] += 1
        else:  # a flip the format cannot notice (zip padding, say) must still give valid contents
            assert accept(result)
            outcomes["loaded"] += 1
    assert outcomes["error"] >= 15, outcomes
    return outcomes


def test_fuzzed_preset_files_are_refused_by_their_checksum(tmp_path, monkeypatch):
    src = presets.data_dirs()[0]
    folder = tmp_path / "data"
    folder.mkdir()
    shutil.copy(src / "manifest.json", folder / "manifest.json")
    monkeypatch.setenv("MINI_CAL_DATA", str(folder))
    blob = (src / "tiny.npz").read_bytes()
    for bad in mutations(blob, n=5):
        (folder / "tiny.npz").write_bytes(bad)
        with pytest.raises(data.DataError, match="tiny.npz"):
            presets.load_preset("tiny")
    (folder / "manifest.json").write_text("{ damaged")
    with pytest.raises(data.DataError, match="manifest"):
        presets.load_preset("tiny")


def test_a_preset_file_without_a_manifest_checksum_is_not_trusted(tmp_path, monkeypatch):
    """A preset file that no manifest entry vouches for (no manifest, or no entry, or no sha256) is not read: the
    preset is generated instead, so an altered file with a valid format cannot change the data."""
    src = presets.data_dirs()[0]
    folder = tmp_path / "data"
    folder.mkdir()
    monkeypatch.setenv("MINI_CAL_DATA", str(folder))
    with np.load(src / "tiny.npz", allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    arrays["train_x0"] = arrays["train_x0"] + 1.0  # altered data, intact format and metadata
    np.savez(folder / "tiny.npz", **arrays)
    genuine = synthetic.generate(synthetic.preset_config("tiny"), name="tiny")
    manifest = json.loads((src / "manifest.json").read_text())
    for entries in (None, {}, {"tiny": {k: v for k, v in manifest["tiny"].items() if k != "sha256"}}):
        if entries is not None:
            (folder / "manifest.json").write_text(json.dumps(entries))
        ds = presets.load_preset("tiny")
        assert np.array_equal(ds.x_train[0], genuine.x_train[0]) and "file" not in ds.provenance
    assert np.array_equal(presets.read_preset(folder / "tiny.npz").x_train[0], genuine.x_train[0] + 1.0)


def test_fuzzed_data_files(tmp_path, tiny):
    user = tmp_path / "user.npz"
    np.savez(user, x_train_a=tiny.x_train[0], x_train_b=tiny.x_train[1], y_train=tiny.y_train)
    for blob in (user.read_bytes(), (presets.data_dirs()[0] / "tiny.npz").read_bytes()):
        _fuzz(tmp_path, blob, presets.load_data_file, data.DataError, lambda ds: isinstance(ds, data.Dataset))


def test_fuzzed_model_files(tmp_path, tiny):
    run = start_run(make_method("joint"), tiny, TrainConfig(**FAST))
    C.save_model(tmp_path / "model.npz", run.model, run.params, {"method": "joint"})
    blob = (tmp_path / "model.npz").read_bytes()
    _fuzz(tmp_path, blob, C.load_model, C.CheckpointError, lambda r: all(np.isfinite(v).all() for v in r[1].values()))


def test_fuzzed_training_checkpoints(tmp_path, tiny):
    config = TrainConfig(epochs=3, **FAST)
    path = tmp_path / "ck.npz"
    C.train_resumable(make_method("cal", warmup_epochs=1), tiny, TrainConfig(epochs=1, **FAST), checkpoint_path=path)

    def load(p):
        method = make_method("cal", warmup_epochs=1)
        run = start_run(method, tiny, config)
        return C.load_training_checkpoint(p, method=method, config=config, model=run.model, dataset=tiny)

    _fuzz(
        tmp_path,
        path.read_bytes(),
        load,
        C.CheckpointError,
        lambda state: all(np.isfinite(a).all() for a in state.params.values()),
    )


def _edited(src, dst, meta_change=None, arrays_change=None):
    meta, arrays = C.read_npz(src)
    if meta_change:
        meta_change(meta)
    if arrays_change:
        arrays_change(arrays)
    io.write_npz({**arrays, "meta": np.array(json.dumps(meta))}, dst)
    return dst


def _pop(key):
    return lambda arrays: arrays.pop(key)


def _set(key, value):
    def change(arrays):
        arrays[key] = value(arrays[key])

    return change


EDITS = [
    (dict(arrays_change=_pop("optim/head.b")), "optimiser array 'head.b' is missing"),
    (dict(arrays_change=_set("optim/head.b", lambda a: a[:1])), "optimiser array 'head.b'"),
    (dict(arrays_change=_set("optim/head.b", lambda a: a * np.nan)), "optimiser array 'head.b' holds NaN"),
    (dict(arrays_change=_set("param/head.b", lambda a: a * np.nan)), "param array 'head.b' holds NaN"),
    (dict(arrays_change=_set("best/head.b", lambda a: a * np.inf)), "best array 'head.b' holds NaN or inf"),
    (dict(meta_change=lambda m: m.update(rng={})), "random generator state"),
    (dict(meta_change=lambda m: m.update(rng={"host": "garbage"})), "random generator state"),
    (dict(meta_change=lambda m: m["rng"]["host"].update(state={})), "random generator state"),
    (dict(meta_change=lambda m: m.update(epoch=-5)), "epoch is -5"),
    (dict(meta_change=lambda m: m.update(step=-1)), "step is -1"),
    (dict(meta_change=lambda m: m.update(best_epoch=7)), "best_epoch 7"),
    (dict(meta_change=lambda m: m.update(epoch=1.5)), "epoch is 1.5"),
    (dict(meta_change=lambda m: m.update(elapsed_s=float("nan"))), "elapsed_s"),
]


@pytest.mark.parametrize("edit, message", EDITS, ids=[m for _, m in EDITS])
def test_edited_checkpoints_are_clear_errors(tmp_path, tiny, edit, message):
    config = TrainConfig(epochs=3, **FAST)
    path = tmp_path / "ck.npz"
    C.train_resumable(make_method("joint"), tiny, TrainConfig(epochs=2, **FAST), checkpoint_path=path)
    bad = _edited(path, tmp_path / "bad.npz", **edit)
    with pytest.raises(C.CheckpointError, match=re.escape(message)):
        C.train_resumable(make_method("joint"), tiny, config, resume=bad)


# ------------------------------------------------------------------------------------------- the rest of issue 11
def test_interrupt_files_never_overwrite_each_other(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    first = C.default_interrupt_path("cal", 0)
    first.parent.mkdir()
    first.write_bytes(b"an earlier interrupted run")
    second = C.default_interrupt_path("cal", 0)
    assert second != first and not second.exists() and first.read_bytes() == b"an earlier interrupted run"


def test_jobs_are_capped_at_the_number_of_runs(monkeypatch):
    made = []

    class Pool:
        def __init__(self, max_workers, **kwargs):
            made.append(max_workers)

        def submit(self, fn, task):
            from concurrent.futures import Future

            future = Future()
            future.set_result(fn(task))
            return future

        def shutdown(self, *args, **kwargs):
            pass

    monkeypatch.setattr(R, "ProcessPoolExecutor", Pool)
    assert R.run_tasks([1, 2, 3], jobs=300, progress=False, fn=lambda t: t * 2) == [2, 4, 6]
    assert made == [3]


def test_epochs_option_wins_over_the_hparams_file_and_divergence_names_the_run(tmp_path, capsys):
    (tmp_path / "hp.json").write_text(json.dumps({"joint": {"train.epochs": 3}}))
    argv = [*COMPARE, "--seeds", "1", "--jobs", "1", "--hparams", str(tmp_path / "hp.json")]
    assert main([*argv, "--epochs", "1", "--out", str(tmp_path / "a")]) == 0
    assert len(json.loads((tmp_path / "a" / "results.json").read_text())["records"][0]["epochs"]) == 1
    (tmp_path / "hp.json").write_text(json.dumps({"joint": {"train.lr": 1e30}}))
    assert main([*argv, "--epochs", "2", "--out", str(tmp_path / "b")]) == 1
    err = capsys.readouterr().err
    assert "training diverged: joint seed 0" in err and (tmp_path / "b" / R.MARKER).exists()


def test_a_full_disk_names_the_file(tmp_path, capsys, monkeypatch):
    import errno

    def full(path, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(io, "atomic_write", full)
    rc = main(["train", "--preset", "tiny", "--epochs", "1", "--no-progress", "--json", str(tmp_path / "r.json")])
    err = capsys.readouterr().err
    assert rc == 2 and "No space left on device" in err and "r.json" in err
