import json

import numpy as np
import pytest

from mini_cal.lab.cli import main
from mini_cal.lab.experiments import sample_configs
from mini_cal.lab.stats import significance
from mini_cal.methods import split_config, tuned_config


def test_equal_budget_and_determinism():
    for name in ("ogm-ge", "arl", "cal"):
        cfgs = sample_configs(name, 8)
        assert len(cfgs) == 8 and len({json.dumps(c, sort_keys=True) for c in cfgs}) == 8
        assert cfgs == sample_configs(name, 8)
    assert len(sample_configs("joint", 8)) == 6  # a smaller space is searched exhaustively


def test_tuned_config_fallbacks():
    tuned = {"cal": {"gamma": 2.0, "train.lr": 0.1}, "arl": {"gamma": 0.5}, "unimodal-1": {"train.lr": 0.02}}
    assert tuned_config("cal-no-aib", tuned) == {"gamma": 2.0, "train.lr": 0.1}
    assert tuned_config("arl-released", tuned) == {"gamma": 0.5}
    assert tuned_config("unimodal-1", tuned) == {"train.lr": 0.02}
    assert tuned_config("joint", tuned) == {}
    assert split_config({"gamma": 2.0, "train.lr": 0.1}) == ({"gamma": 2.0}, {"lr": 0.1})


def test_significance_by_hand():
    recs = [
        {"method": m, "seed": s, "test": {"acc": a}}
        for m, accs in {"cal": [0.9, 0.8, 0.85], "joint": [0.7, 0.75, 0.8], "arl": [0.9, 0.8, 0.85]}.items()
        for s, a in enumerate(accs)
    ]
    rows = {r["baseline"]: r for r in significance(recs, ["joint", "arl", "cal"])}
    assert rows["joint"]["mean_diff"] == pytest.approx(0.1)
    assert rows["joint"]["wins"] == 3 and rows["joint"]["losses"] == 0
    assert np.isnan(rows["arl"]["t_test_p"])  # identical results: no test


def test_compare_end_to_end(tmp_path, capsys):
    out = tmp_path / "cmp"
    assert (
        main(
            [
                "compare",
                "--preset",
                "tiny",
                "--seeds",
                "2",
                "--epochs",
                "2",
                "--jobs",
                "1",
                "--no-progress",
                "--methods",
                "joint",
                "ogm-ge",
                "arl",
                "cal",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "| cal |" in text and "Bayes-optimal" in text and "cal vs" in text
    result = json.loads((out / "results.json").read_text())
    assert len(result["records"]) == 8
    assert {r["method"] for r in result["records"]} == {"joint", "ogm-ge", "arl", "cal"}
    for fig in (
        "coalition_accuracy.png",
        "contribution_W.png",
        "gradient_coefficients.png",
        "kl.png",
        "beta.png",
        "gradient_norms.png",
    ):
        assert (out / fig).stat().st_size > 1000
    cal = next(r for r in result["records"] if r["method"] == "cal")
    assert len(cal["step_means"]["W"]) == 2 and len(cal["step_means"]["W"][0]) == 2
    # the folder is not silently overwritten
    assert (
        main(
            [
                "compare",
                "--preset",
                "tiny",
                "--seeds",
                "1",
                "--epochs",
                "1",
                "--out",
                str(out),
                "--no-progress",
                "--methods",
                "joint",
            ]
        )
        == 2
    )
    assert "exists and is not empty" in capsys.readouterr().err


def test_compare_rejects_unknown_method(capsys, tmp_path):
    assert main(["compare", "--methods", "magic", "--no-progress", "--out", str(tmp_path / "x")]) == 2
    assert "method: expected one of" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()  # nothing half-written


def test_compare_default_set_comes_from_the_declarations(tmp_path, capsys):
    """No --methods and no --suite: every declaration's default rows (the peers included), in table order."""
    import json as _json

    from mini_cal.methods import default_methods

    out = tmp_path / "default"
    argv = ["compare", "--preset", "tiny", "--seeds", "1", "--epochs", "1", "--jobs", "1", "--no-progress"]
    assert main(argv + ["--out", str(out)]) == 0
    ran = _json.loads((out / "results.json").read_text())["methods"]
    assert ran == default_methods(2) and {"joint", "cal", "arl", "gblending"} <= set(ran)
    assert main(argv + ["--suite", "cal-design", "--out", str(tmp_path / "design")]) == 0
    design = _json.loads((tmp_path / "design" / "results.json").read_text())["methods"]
    assert "cal-lr-control" in design and "gblending" not in design
