"""The outside battery's findings in the lab (issue 20): outputs that name an input, records that reach outside
their folder, preset files that are the user's own, folders that are never outputs, NumPy warnings before the
divergence message, printing in an ASCII terminal and empty option values."""

import json
import os

import numpy as np
import pytest
from test_reliability_outputs import ENV, REPO, cli  # noqa: F401  (one CLI runner for both files)

from mini_cal.lab import io
from mini_cal.lab.cli import main

COMPARE = ["compare", "--preset", "tiny", "--methods", "joint", "--seeds", "1", "--epochs", "1", "--jobs", "1"]
COMPARE = [*COMPARE, "--no-progress"]
TRAIN = ["train", "--preset", "tiny", "--epochs", "1", "--no-progress"]


def _write_data(path, names=("audio", "video")):
    rng = np.random.default_rng(0)
    y = np.arange(150) % 3
    a = (rng.standard_normal((150, 4)) + y[:, None]).astype(np.float32)
    b = (rng.standard_normal((150, 6)) + y[:, None]).astype(np.float32)
    np.savez(path, **{f"x_train_{names[0]}": a, f"x_train_{names[1]}": b, "y_train": y})


# ------------------------------------------------------------------------------------ 1, 2: an output that is an input
def test_an_output_naming_an_input_or_another_output_is_refused(tmp_path, capsys):
    data = tmp_path / "mine.npz"
    _write_data(data)
    before = data.read_bytes()
    assert main(["train", "--data", str(data), "--epochs", "1", "--no-progress", "--json", str(data)]) == 2
    err = capsys.readouterr().err
    assert "--json" in err and "--data" in err and data.read_bytes() == before
    ck = tmp_path / "c.npz"
    assert main([*TRAIN, "--checkpoint", str(ck), "--json", str(ck)]) == 2
    err = capsys.readouterr().err
    assert "--json" in err and "--checkpoint" in err and not ck.exists()
    (tmp_path / "link.json").symlink_to(data)  # the same file under another name
    assert (
        main(["train", "--data", str(data), "--epochs", "1", "--no-progress", "--json", str(tmp_path / "link.json")])
        == 2
    )
    assert "--data" in capsys.readouterr().err and data.read_bytes() == before


# ------------------------------------------------------------------------------------ 3: a record reaching outside
@pytest.mark.parametrize("entry", ["../victim.txt", "ABSOLUTE", "link/victim.txt"])
def test_a_record_naming_a_file_outside_its_folder_is_refused(tmp_path, capsys, entry):
    victim = tmp_path / "victim.txt"
    victim.write_text("data")
    out = tmp_path / "done"
    out.mkdir()
    (out / "link").symlink_to(tmp_path)
    name = str(victim) if entry == "ABSOLUTE" else entry
    (out / io.MANIFEST).write_text(json.dumps({"files": {name: None, "link": None}}))
    assert main([*COMPARE, "--out", str(out), "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert "--out" in err and name in err and victim.read_text() == "data"
    assert not (out / "RUNNING").exists()


def test_overwrite_removes_a_listed_file_only_when_its_hash_matches(tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    (out / "a.txt").write_text("mini-cal's")
    (out / "planned.txt").write_text("half-written")
    manifest = io.Manifest(out)
    manifest.files = {"a.txt": io.sha256_file(out / "a.txt"), "planned.txt": None, "gone.txt": "0" * 64}
    manifest.save()
    from mini_cal.lab.runs import OutFolder

    folder = OutFolder(str(out), overwrite=True, command="compare")
    folder.done()
    assert sorted(os.listdir(out)) == [io.MANIFEST]


# ------------------------------------------------------------------------------------ 4, 5: preset files of the user
def test_data_generate_never_replaces_the_users_files(tmp_path, capsys):
    g = tmp_path / "g"
    g.mkdir()
    (g / "tiny.npz").write_text("my own tiny data")
    assert main(["data", "generate", "tiny", "--out", str(g)]) == 2
    err = capsys.readouterr().err
    assert "tiny.npz" in err and (g / "tiny.npz").read_text() == "my own tiny data"
    assert not (g / "manifest.json").exists()
    g2 = tmp_path / "g2"
    g2.mkdir()
    (g2 / "manifest.json").write_text('{"my": "project manifest"}')
    assert main(["data", "generate", "tiny", "--out", str(g2)]) == 2
    err = capsys.readouterr().err
    assert "manifest.json" in err and (g2 / "manifest.json").read_text() == '{"my": "project manifest"}'
    assert not (g2 / "tiny.npz").exists()


def test_data_generate_replaces_its_own_files_and_a_damaged_one_with_overwrite(tmp_path, capsys):
    g = tmp_path / "g"
    assert main(["data", "generate", "tiny", "--out", str(g)]) == 0
    first = (g / "tiny.npz").read_bytes()
    assert main(["data", "generate", "tiny", "--out", str(g)]) == 0  # mini-cal's own, vouched for: replaced
    assert (g / "tiny.npz").read_bytes() == first
    (g / "tiny.npz").write_bytes(first[:100])  # damaged: refused, then replaced with --overwrite
    capsys.readouterr()
    assert main(["data", "generate", "tiny", "--out", str(g)]) == 2
    assert "--overwrite" in capsys.readouterr().err and (g / "tiny.npz").read_bytes() == first[:100]
    assert main(["data", "generate", "tiny", "--out", str(g), "--overwrite"]) == 0
    assert (g / "tiny.npz").read_bytes() == first


# ------------------------------------------------------------------------------------ 6: folders that are never outputs
def test_the_root_and_the_ancestors_of_home_are_refused_before_anything(tmp_path, capsys, monkeypatch):
    had = os.path.exists("/RUNNING")
    assert main([*COMPARE, "--out", "/", "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert "--out" in err and "'/'" in err and os.path.exists("/RUNNING") == had
    home = tmp_path / "home" / "me"
    home.mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    assert main([*COMPARE, "--out", str(tmp_path / "home"), "--overwrite"]) == 2
    assert "home folder" in capsys.readouterr().err and not (tmp_path / "home" / "RUNNING").exists()


def test_an_unreadable_entry_is_a_clear_refusal_that_leaves_no_marker(tmp_path, capsys, monkeypatch):
    uf = tmp_path / "uf"
    uf.mkdir()
    (uf / "notes.txt").write_text("mine")
    (uf / "link").symlink_to(tmp_path / "elsewhere")
    real_walk = os.walk

    def unreadable(top, *args, onerror=None, **kw):  # a folder we may not read (root reads everything)
        error = PermissionError(13, "Permission denied", str(uf / "link"))
        if onerror is None:
            raise error
        onerror(error)
        yield from real_walk(top, *args, onerror=onerror, **kw)

    monkeypatch.setattr(os, "walk", unreadable)
    assert main([*COMPARE, "--out", str(uf), "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert "--out" in err and "link" in err and "Errno" not in err
    assert sorted(os.listdir(uf)) == ["link", "notes.txt"]
    monkeypatch.setattr(os, "walk", real_walk)
    assert main([*COMPARE, "--out", str(uf)]) == 2
    err = capsys.readouterr().err
    assert "unfinished" not in err and "not empty" in err


# ------------------------------------------------------------------------------------ 7: divergence, 8: ASCII
def test_divergence_prints_only_the_clear_message():
    r = cli(["train", "--preset", "tiny", "--no-progress", "--epochs", "2", "--lr", "1e30"])
    assert r.returncode == 1 and "RuntimeWarning" not in r.stderr, r.stderr
    assert r.stderr.strip().count("\n") == 0 and "diverged" in r.stderr


def _errors(task):
    return np.geterr()


def test_worker_processes_inherit_the_quiet_numpy_settings():
    from mini_cal.lab.cli import quiet_numpy
    from mini_cal.lab.runs import run_tasks

    with quiet_numpy():
        settings = run_tasks([0, 1], jobs=2, progress=False, fn=_errors)
    assert all(s["over"] == s["invalid"] == s["divide"] == "ignore" for s in settings)


def test_describe_in_an_ascii_terminal(tmp_path):
    _write_data(tmp_path / "u.npz", names=("\u03b1udio", "vid\u00e9o"))
    r = cli(["data", "describe", "--data", str(tmp_path / "u.npz")], env={"PYTHONIOENCODING": "ascii"})
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert "vid?o" in r.stdout


# ------------------------------------------------------------------------------------ 9: empty values
@pytest.mark.parametrize("option", ["--preset", "--data", "--json", "--checkpoint", "--resume"])
def test_an_empty_value_is_refused(option, capsys):
    assert main(["train", "--epochs", "1", "--no-progress", option, ""]) == 2
    assert option in capsys.readouterr().err


# ------------------------------------------------------------------------ a second, fresh outside battery
@pytest.mark.parametrize(
    "argv, option",
    [
        (["train", "--preset", "tiny", "--epochs", "1", "--checkpoint-every", "3"], "--checkpoint-every"),
        (["robustness", "--preset", "tiny", "--models", "nowhere", "--epochs", "7"], "--epochs"),
        (["robustness", "--preset", "tiny", "--models", "nowhere", "--untuned"], "--untuned"),
    ],
)
def test_an_option_that_would_be_ignored_is_refused(tmp_path, capsys, monkeypatch, argv, option):
    """--checkpoint-every without a checkpoint, and training options with --models, did nothing without a word."""
    monkeypatch.chdir(tmp_path)
    assert main([*argv, "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"{option}: " in err and "Traceback" not in err and not list(tmp_path.iterdir())


def test_two_names_of_one_method_are_refused(tmp_path, capsys):
    """`unimodal` and `unimodal-0` trained modality 0 twice, under different settings, as two rows of one table."""
    argv = ["compare", "--preset", "tiny", "--methods", "unimodal", "unimodal-0", "--seeds", "1", "--epochs", "1"]
    assert main([*argv, "--out", str(tmp_path / "out"), "--no-progress"]) == 2
    assert "'unimodal' and 'unimodal-0' are the same method" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_data_example_without_its_extra_says_what_to_install(tmp_path, capsys, monkeypatch):
    from mini_cal.lab import examples

    def missing(*args, **kwargs):
        raise ImportError("No module named 'sklearn'", name="sklearn")

    monkeypatch.setattr(examples, "make_example", missing)
    assert main(["data", "example", "digits", "--out", str(tmp_path / "d.npz")]) == 2
    err = capsys.readouterr().err
    assert "needs sklearn" in err and ".[example]" in err and "Traceback" not in err


def test_config_numbers_are_stored_as_python_numbers_and_design_state_needs_setup():
    """np.float32(0.05) as lr reached summary() and broke json.dumps; state_dict before setup gave AttributeError."""
    from mini_cal.methods import make_method
    from mini_cal.train import TrainConfig

    config = TrainConfig(lr=np.float32(0.05), epochs=np.int64(2), clip_norm=np.float64(10)).validate()
    assert type(config.lr) is float and type(config.epochs) is int and config.lr == float(np.float32(0.05))
    json.dumps(config.__dict__)
    with pytest.raises(RuntimeError, match=r"cal-ema: state_dict\(\) before setup"):
        make_method("cal-ema").state_dict()
