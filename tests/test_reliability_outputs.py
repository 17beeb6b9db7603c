"""Outputs that never touch what the user owns and never trust what is stale (issue 20, items 1-4, 8, 10):
the record of what mini-cal wrote into an --out folder (--overwrite and --resume act on it only), the atomic writer
on links and special files, --resume that checks the data's content and each record against its task, results
written before anything is printed, and real failures that name the file and the way to continue."""

import errno
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from mini_cal.lab import io
from mini_cal.lab import runs as R
from mini_cal.lab.cli import main

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
COMPARE = ["compare", "--preset", "tiny", "--methods", "joint", "--epochs", "1", "--jobs", "1", "--no-progress"]


def cli(argv, **kw):
    return subprocess.run(
        [sys.executable, "-m", "mini_cal", *argv],
        env={**ENV, **kw.pop("env", {})},
        text=True,
        capture_output=True,
        **kw,
    )


# ------------------------------------------------------------------------------------ the record of a folder
def test_overwrite_refuses_a_folder_holding_files_mini_cal_did_not_write(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "p" / "models").mkdir(parents=True)
    (tmp_path / "p" / "models" / "my_weights.npz").write_text("x")
    assert main([*COMPARE, "--seeds", "1", "--out", "p", "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert "models/my_weights.npz" in err and "did not write" in err
    assert (tmp_path / "p" / "models" / "my_weights.npz").read_text() == "x"


def test_overwrite_refuses_a_source_checkout(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".git").mkdir()
    (tmp_path / "setup.py").write_text("# mine")
    for flag in ("--overwrite", "--resume"):
        argv = [*COMPARE, "--seeds", "1", flag, "."] if flag == "--resume" else [*COMPARE, "--out", ".", flag]
        assert main(argv) == 2
        assert "source checkout" in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == [".git", "setup.py"]


def test_overwrite_removes_what_the_record_lists_and_keeps_a_changed_file(tmp_path, capsys):
    out = tmp_path / "out"
    assert main([*COMPARE, "--seeds", "2", "--out", str(out)]) == 0
    record = json.loads((out / io.MANIFEST).read_text())["files"]
    written = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()} - {io.MANIFEST}
    assert set(record) == written and all(io.sha256_file(out / k) == v for k, v in record.items())
    (out / "table.md").write_text("my notes on the table")
    assert main([*COMPARE, "--seeds", "1", "--out", str(out), "--overwrite"]) == 2
    assert "'table.md'" in capsys.readouterr().err and (out / "table.md").read_text() == "my notes on the table"
    (out / "table.md").unlink()
    assert main([*COMPARE, "--seeds", "1", "--out", str(out), "--overwrite"]) == 0
    assert os.listdir(out / "models") == ["joint-seed0.npz"] and os.listdir(out / "runs") == ["joint-seed0.json"]


# ------------------------------------------------------------------------------------ links and special files
def test_the_atomic_writer_writes_through_a_link(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "target.json").write_text("{}")
    os.symlink("target.json", "link.json")
    io.write_json({"a": 1}, "link.json")
    assert os.path.islink("link.json") and json.loads((tmp_path / "target.json").read_text()) == {"a": 1}
    argv = ["train", "--preset", "tiny", "--epochs", "1", "--no-progress", "--json", "link.json"]
    assert main(argv) == 0
    assert os.path.islink("link.json") and "test" in json.loads((tmp_path / "target.json").read_text())
    assert sorted(os.listdir(tmp_path)) == ["link.json", "target.json"]


def test_the_atomic_writer_writes_a_named_pipe_directly(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_text()), daemon=True)
    reader.start()
    io.write_json({"a": 1}, fifo)
    reader.join(timeout=10)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and json.loads(got[0]) == {"a": 1}
    assert os.listdir(tmp_path) == ["pipe"]


def test_json_to_dev_stdout_is_written_to_the_output():
    before = os.lstat("/dev/stdout").st_mode
    r = cli(["train", "--preset", "tiny", "--epochs", "1", "--no-progress", "--json", "/dev/stdout"])
    assert r.returncode == 0, r.stderr
    assert '"test": {' in r.stdout and os.lstat("/dev/stdout").st_mode == before


# ------------------------------------------------------------------------------------ --resume checks its records
def _write_data(path, seed):
    rng = np.random.default_rng(seed)
    y = np.arange(150) % 3
    a = (rng.standard_normal((150, 4)) + y[:, None]).astype(np.float32)
    b = (0.1 * rng.standard_normal((150, 6)) + 0.1 * y[:, None]).astype(np.float32)
    np.savez(path, x_train_audio=a, x_train_video=b, y_train=y)


def test_resume_does_not_reuse_records_of_data_that_changed(tmp_path, capsys):
    data, out = tmp_path / "mine.npz", tmp_path / "out"
    _write_data(data, 0)
    argv = ["compare", "--data", str(data), "--methods", "joint", "--seeds", "2", "--epochs", "1", "--jobs", "1"]
    argv += ["--no-progress"]
    assert main([*argv, "--out", str(out)]) == 0
    first = json.loads((out / "results.json").read_text())["records"]
    assert main([*argv, "--resume", str(out)]) == 0  # the same data: every record is reused
    assert json.loads((out / "results.json").read_text())["resumed_runs"] == 2
    capsys.readouterr()
    _write_data(data, 1)  # the same file name, other values
    assert main([*argv, "--resume", str(out)]) == 0
    err = capsys.readouterr().err
    assert "other data" in err and "joint-seed0.json" in err
    result = json.loads((out / "results.json").read_text())
    assert result["resumed_runs"] == 0
    assert [r["test"]["acc"] for r in result["records"]] != [r["test"]["acc"] for r in first]


@pytest.mark.parametrize("fix_the_record", [False, True])
def test_resume_does_not_reuse_an_edited_record(tmp_path, capsys, fix_the_record):
    """An edited record is not reused: its hash differs from the folder's record, and (had the folder's record been
    edited too) its method and seed differ from its task's."""
    out = tmp_path / "out"
    assert main([*COMPARE, "--seeds", "2", "--out", str(out)]) == 0
    path = out / "runs" / "joint-seed1.json"
    saved = json.loads(path.read_text())
    saved["record"].update(method="cal", seed=99)
    path.write_text(json.dumps(saved))
    if fix_the_record:
        manifest = io.Manifest(out)
        manifest.add([path])
    capsys.readouterr()
    assert main([*COMPARE, "--seeds", "2", "--resume", str(out)]) == 0
    assert "joint-seed1.json" in capsys.readouterr().err
    result = json.loads((out / "results.json").read_text())
    assert [(r["method"], r["seed"]) for r in result["records"]] == [("joint", 0), ("joint", 1)]
    assert result["resumed_runs"] == 1 and json.loads(path.read_text())["record"]["seed"] == 1


def test_robustness_refuses_a_model_whose_name_is_not_its_content(tmp_path, capsys):
    out = tmp_path / "cmp"
    argv = ["compare", "--preset", "tiny", "--methods", "joint", "unimodal-0", "--seeds", "1", "--epochs", "1"]
    assert main([*argv, "--jobs", "1", "--no-progress", "--out", str(out)]) == 0
    shutil.copy(out / "models" / "unimodal-0-seed0.npz", out / "models" / "joint-seed0.npz")
    argv = ["robustness", "--models", str(out / "models"), "--methods", "joint", "--seeds", "1", "--no-progress"]
    assert main([*argv, "--out", str(tmp_path / "r")]) == 2
    assert "not of 'joint' seed 0" in capsys.readouterr().err and not (tmp_path / "r").exists()


# ------------------------------------------------------------------------------------ results before printing
def test_an_encoding_that_cannot_print_plus_minus_loses_nothing(tmp_path):
    out = tmp_path / "out"
    r = cli([*COMPARE, "--seeds", "1", "--out", str(out)], env={"PYTHONIOENCODING": "ascii"})
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr and "+/-" in r.stdout
    assert (out / "results.json").exists() and "±" in (out / "table.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("command", ["train", "compare"])
def test_a_closed_or_broken_stdout_loses_nothing(tmp_path, command):
    if command == "train":
        argv, written = ["train", "--preset", "tiny", "--epochs", "1", "--no-progress", "--json", "r.json"], "r.json"
    else:
        argv, written = [*COMPARE, "--seeds", "1", "--out", "out"], "out/results.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "mini_cal", *argv], cwd=tmp_path, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    proc.stdout.close()  # like `| head -0`: the reader is gone before anything is printed
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0, err
    assert "Traceback" not in err and (tmp_path / written).exists()
    (tmp_path / written).unlink()
    if command == "compare":
        argv = [*argv, "--overwrite"]
    closed = subprocess.run(  # stdout closed outright: mini-cal ... >&-
        [sys.executable, "-m", "mini_cal", *argv],
        cwd=tmp_path,
        env=ENV,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: os.close(1),
    )
    assert closed.returncode == 0 and "Traceback" not in closed.stderr, closed.stderr
    assert (tmp_path / written).exists()


# ------------------------------------------------------------------------------------ real failures
def test_a_full_disk_names_the_file_and_how_to_continue(tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    write = io.atomic_write

    def full(path, *args, **kwargs):
        if Path(path).name == "results.json":
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return write(path, *args, **kwargs)

    monkeypatch.setattr(io, "atomic_write", full)
    assert main([*COMPARE, "--seeds", "1", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "No space left on device" in err and str(out / "results.json") in err
    assert f"--resume {out}" in err and "Traceback" not in err


def _killed_by_the_os(task):
    os.kill(os.getpid(), signal.SIGKILL)


def test_a_worker_killed_by_the_os_says_so_and_how_to_continue(tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    monkeypatch.setattr(R, "run_one", _killed_by_the_os)
    argv = ["compare", "--preset", "tiny", "--methods", "joint", "--seeds", "2", "--epochs", "1", "--jobs", "2"]
    assert main([*argv, "--no-progress", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "killed" in err and "--jobs" in err and f"--resume {out}" in err and "Traceback" not in err


def test_ctrl_c_where_nothing_can_be_saved_says_both(tmp_path, capsys, monkeypatch):
    """Item 10: Ctrl-C of train in a folder where the interrupt checkpoint cannot be written (read-only, full)
    reported only the write error; now it says the run was interrupted, after which epoch, and why nothing was
    kept. (As root a chmod does not stop writes, so the save itself is made to fail.)"""
    import mini_cal.train as T
    from mini_cal.lab import checkpoint as C

    monkeypatch.chdir(tmp_path)
    metrics, calls = T.metrics, []

    def interrupt_second_validation(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return metrics(*args, **kwargs)

    def read_only(path, *args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(path))

    monkeypatch.setattr(T, "metrics", interrupt_second_validation)
    monkeypatch.setattr(C, "save_training_checkpoint", read_only)
    rc = main(["train", "--method", "joint", "--preset", "tiny", "--epochs", "3", "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 130 and "Traceback" not in err
    assert "interrupted after epoch 1" in err and "could not be saved" in err and "Read-only file system" in err
