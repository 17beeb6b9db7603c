import json
import subprocess
import sys

import pytest

from mini_cal.lab.cli import main


def test_help_lists_commands(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "train" in out and "data" in out and "2510.26289" in out


def test_help_lists_the_registered_methods(capsys, monkeypatch):
    """The --help texts name methods from the registry (every method, the declared default and swept sets) and
    every data action, not a hand-written list that goes stale as methods are added."""
    from mini_cal.methods import default_methods, method_names, swept_methods

    monkeypatch.setenv("COLUMNS", "10000")  # one line per option: no names broken at their hyphens
    helps = {}
    for command in ("compare", "sweep", "train", "data"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        helps[command] = capsys.readouterr().out
    assert " ".join(method_names()) in helps["compare"] and " ".join(default_methods(2)) in helps["compare"]
    assert " ".join(swept_methods(2)) in helps["sweep"]
    assert ",".join(method_names()) in helps["train"]
    assert "example NAME" in helps["data"]


def test_train_prints_table_and_json(tmp_path, capsys):
    path = tmp_path / "r.json"
    assert (
        main(["train", "--method", "joint", "--preset", "tiny", "--epochs", "2", "--no-progress", "--json", str(path)])
        == 0
    )
    out = capsys.readouterr().out
    assert "| fused accuracy |" in out and "Bayes-optimal" in out
    saved = json.loads(path.read_text())
    assert saved["method"] == "joint"
    best = saved["best_epoch"]  # counted from 0, as the history; the printed line counts from 1 and says so
    assert f"best validation epoch {best + 1} of 2 (best_epoch {best} in --json" in out


def test_train_unimodal_table(capsys):
    assert (
        main(["train", "--method", "unimodal", "--modality", "1", "--preset", "tiny", "--epochs", "1", "--no-progress"])
        == 0
    )
    assert "| A: coalition accuracy | - |" in capsys.readouterr().out


def test_data_describe(capsys):
    assert main(["data", "describe", "default"]) == 0
    assert "fused Bayes-optimal accuracy" in capsys.readouterr().out


def test_unknown_preset_is_a_clean_error(capsys):
    assert main(["train", "--preset", "nope", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "preset: expected one of" in err and "Traceback" not in err


def test_bad_method_rejected_by_argparse(capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "--method", "magic"])
    assert e.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_module_entry_point_runs():
    out = subprocess.run(
        [sys.executable, "-m", "mini_cal", "data", "describe", "tiny"], capture_output=True, text=True, check=True
    ).stdout
    assert "preset tiny" in out


def test_gradcheck_command_passes(capsys):
    assert main(["gradcheck"]) == 0
    out = capsys.readouterr().out
    assert "model M=3 cal loss" in out and "pass at 1e-7" in out


def test_compare_notes_hparams_tuned_on_other_data(tmp_path, capsys):
    """A sweep.json tuned on another dataset is allowed, with a note on stderr naming both; none when they match."""
    for tuned_on, noted in (("digits_two_views", True), ("tiny", False)):
        sweep = tmp_path / f"sweep-{tuned_on}.json"
        sweep.write_text(json.dumps({"dataset": tuned_on, "chosen": {"joint": {"train.lr": 0.1}}}))
        argv = ["compare", "--preset", "tiny", "--methods", "joint", "--seeds", "1", "--epochs", "1", "--no-progress"]
        assert main([*argv, "--hparams", str(sweep), "--out", str(tmp_path / f"out-{tuned_on}")]) == 0
        err = capsys.readouterr().err
        assert ("was tuned on 'digits_two_views'; this compare runs on 'tiny'" in err) == noted, err
