"""Issue 20, items 6, 7, 9, 10 (data files) and 11: bad input meets a short, clear error where it enters.

Sizes are bounded before anything is allocated (checks.py's limits); a preset file is recognised only by a manifest's
checksum; features of very different scales are reported, and standardised on request with the training split's
statistics; a file in another format names the one expected; the API's edges refuse what they used to misread.
"""

import gzip
import json
import pickle
import tracemalloc
import warnings

import numpy as np
import pytest

from mini_cal import checks, noise
from mini_cal import evaluate as E
from mini_cal.data import DataError, Dataset, DataWarning, feature_statistics, from_arrays, load_npz, standardized
from mini_cal.lab import presets
from mini_cal.lab.cli import main
from mini_cal.methods import make_method, tuned_config
from mini_cal.model import Model, ModelConfig
from mini_cal.train import TrainConfig


def two_modalities(n=120, K=3, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % K
    return [rng.standard_normal((n, 3)) + y[:, None], rng.standard_normal((n, 2))], y


def uci_like(n=300, K=3, seed=0):
    """Raw features as they come: one modality with columns in the thousands next to small counts."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % K
    big = rng.uniform(1e3, 1e4, (n, 2)) + 500.0 * y[:, None]  # e.g. areas, incomes
    small = rng.integers(0, 7, (n, 2)).astype(float)  # e.g. counts in [0, 6]
    other = rng.standard_normal((n, 3)) + y[:, None]
    return [np.hstack([big, small]), other], y


# ------------------------------------------------------------------------------------------- 6: bounded sizes
def test_more_modalities_than_exact_shapley_allows_are_refused(tmp_path, capsys):
    rng = np.random.default_rng(0)
    y = np.arange(60) % 2
    xs = [rng.standard_normal((60, 1)) for _ in range(20)]
    with pytest.raises(DataError, match=f"at most {checks.MAX_MODALITIES} modalities.*2\\^M"):
        from_arrays(xs, y)
    with pytest.raises(ValueError, match="input_dims"):
        ModelConfig(input_dims=(1,) * 20, num_classes=2)
    path = tmp_path / "wide.npz"
    np.savez(path, y_train=y, **{f"x_train_m{m:02d}": x for m, x in enumerate(xs)})
    assert main(["train", "--data", str(path), "--method", "cal", "--epochs", "2", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "modalities" in err and len(err) < 400


@pytest.mark.parametrize("top", [10**6, 3 * 10**9])
def test_a_huge_label_is_refused_briefly(top):
    xs, y = two_modalities()
    y = y.copy()
    y[0] = top
    tracemalloc.start()
    try:
        with pytest.raises(DataError) as info:
            from_arrays(xs, y)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "classes" in str(info.value) and len(str(info.value)) < 300
    assert peak < 50e6  # nothing sized by the label was allocated


def test_a_missing_class_message_stays_short():
    xs, y = two_modalities(n=200)
    y = y.copy()
    y[-1] = 900  # classes 3..899 have no sample
    with pytest.raises(DataError, match="no training sample") as info:
        from_arrays(xs, y)
    assert len(str(info.value)) < 300


def test_hidden_sizes_and_features_are_bounded():
    with pytest.raises(ValueError, match="hidden"):
        TrainConfig(hidden=(10**9,)).validate()
    with pytest.raises(ValueError, match="z_dim"):
        TrainConfig(z_dim=10**9).validate()
    with pytest.raises(ValueError, match="hidden"):
        ModelConfig(input_dims=(3, 2), num_classes=2, hidden=(10**9,))
    with pytest.raises(ValueError, match="input_dims"):
        ModelConfig(input_dims=(checks.MAX_FEATURES + 1, 2), num_classes=2)
    with pytest.raises(ValueError, match="num_classes"):
        ModelConfig(input_dims=(3, 2), num_classes=checks.MAX_CLASSES + 1)


def test_hidden_size_from_hparams_is_refused_before_training(tmp_path, capsys):
    hp = tmp_path / "h.json"
    hp.write_text(json.dumps({"joint": {"train.hidden": [10**9]}}))
    argv = ["compare", "--preset", "tiny", "--methods", "joint", "--seeds", "1", "--epochs", "1", "--jobs", "1"]
    assert main([*argv, "--hparams", str(hp), "--out", str(tmp_path / "o"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "hidden" in err and "<= 4096" in err and "Traceback" not in err


def test_a_small_npz_of_millions_of_columns_is_refused_from_its_header(tmp_path):
    path = tmp_path / "bomb.npz"
    y = np.arange(4) % 2
    np.savez_compressed(path, x_train_a=np.zeros((4, 3_000_000), np.float32), y_train=y)
    assert path.stat().st_size < 1e6
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match=f"x_train_a.*at most {checks.MAX_FEATURES:,}"):
            load_npz(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 10e6  # the 48 MB array was never read


# --------------------------------------------------------------------------------- 7: presets by checksum only
def _preset_arrays():
    with np.load(presets.data_dirs()[0] / "tiny.npz", allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def test_a_user_file_in_the_preset_format_is_not_trusted_without_a_checksum(tmp_path, capsys):
    arrays = _preset_arrays()
    meta = json.loads(str(arrays["meta"]))
    meta["bayes"]["fused"] = 7.5
    arrays["meta"] = np.array(json.dumps(meta))
    np.savez(tmp_path / "mine.npz", **arrays)
    with pytest.raises(DataError, match="manifest"):
        presets.load_data_file(tmp_path / "mine.npz")
    assert main(["data", "describe", "--data", str(tmp_path / "mine.npz")]) == 2
    out, err = capsys.readouterr()
    assert "7.5" not in out + err and "manifest" in err
    with pytest.raises(DataError, match="bayes"):  # even when built directly, not printed as an accuracy
        Dataset(*two_modalities()[0:2] * 3, bayes={"fused": 7.5})


def test_a_genuine_preset_file_is_recognised_by_its_checksum(tmp_path):
    copy = tmp_path / "tiny_copy.npz"
    copy.write_bytes((presets.data_dirs()[0] / "tiny.npz").read_bytes())
    ds = presets.load_data_file(copy)  # the shipped manifest records this checksum
    assert ds.name == "tiny" and ds.bayes["fused"] <= 1


def test_a_checksummed_preset_file_with_missing_keys_is_a_data_error(tmp_path):
    arrays = _preset_arrays()
    meta = json.loads(str(arrays["meta"]))
    del meta["bayes"]
    arrays["meta"] = np.array(json.dumps(meta))
    path = tmp_path / "tiny.npz"
    np.savez(path, **arrays)
    (tmp_path / "manifest.json").write_text(json.dumps({"tiny": {"sha256": presets.checksum(path)}}))
    with pytest.raises(DataError, match="bayes"):
        presets.load_data_file(path)


# ---------------------------------------------------------------------------------------------- 9: feature scale
def test_features_of_very_different_scales_are_reported():
    xs, y = uci_like()
    with pytest.warns(DataWarning, match="standardize"):
        from_arrays(xs, y)


def test_well_scaled_data_gives_no_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        from_arrays(*two_modalities())
        load_npz("docs/data/digits_two_views.npz")


def test_standardize_uses_the_training_split_statistics():
    xs, y = uci_like()
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        ds = from_arrays(xs, y, standardize=True)
    with pytest.warns(DataWarning):
        raw = from_arrays(xs, y)
    for m in range(2):
        x = ds.x_train[m].astype(np.float64)
        assert np.allclose(x.mean(0), 0, atol=1e-6) and np.allclose(x.std(0), 1, atol=1e-6)
        mean = raw.x_train[m].astype(np.float64).mean(0)
        std = raw.x_train[m].astype(np.float64).std(0)
        for s in ("val", "test"):
            expect = (raw.split(s)[0][m] - mean) / std
            assert np.allclose(ds.split(s)[0][m], expect, atol=1e-6)
        assert np.allclose(ds.provenance["standardize"]["mean"][m], mean)
        assert np.allclose(ds.provenance["standardize"]["std"][m], std)
    assert ds.x_train[0].dtype == raw.x_train[0].dtype
    assert len(ds.describe()) < 2000


def test_standardize_from_a_file_and_on_the_command_line(tmp_path, capsys):
    xs, y = uci_like()
    path = tmp_path / "uci.npz"
    np.savez(path, x_train_a=xs[0], x_train_b=xs[1], y_train=y)
    assert np.allclose(load_npz(path, standardize=True).x_train[0].mean(0), 0, atol=1e-6)
    argv = ["train", "--data", str(path), "--method", "joint", "--epochs", "1", "--no-progress"]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "--standardize" in err and "Traceback" not in err and err.count("\n") <= 3
    assert main([*argv, "--standardize"]) == 0
    assert "--standardize" not in capsys.readouterr().err
    assert main(["train", "--preset", "tiny", "--standardize", "--epochs", "1", "--no-progress"]) == 2
    assert "only with --data" in capsys.readouterr().err
    from mini_cal.lab.cli import build_parser

    for command in ("compare", "sweep", "robustness", "train"):
        assert build_parser().parse_args([command, "--data", str(path), "--standardize"]).standardize is True


def test_robustness_with_models_gets_the_same_standardised_data(tmp_path, capsys):
    xs, y = uci_like(n=150)
    path = tmp_path / "uci.npz"
    np.savez(path, x_train_a=xs[0], x_train_b=xs[1], y_train=y)
    out = tmp_path / "c"
    common = ["--methods", "joint", "--seeds", "1", "--jobs", "1", "--no-progress"]  # --epochs: compare only
    assert main(["compare", "--data", str(path), "--standardize", *common, "--epochs", "1", "--out", str(out)]) == 0
    models = str(out / "models")
    assert main(["robustness", "--models", models, *common, "--out", str(tmp_path / "r1")]) == 0
    capsys.readouterr()
    # the raw data are not what the models were trained on: refused, not silently evaluated
    assert main(["robustness", "--models", models, "--data", str(path), *common, "--out", str(tmp_path / "r2")]) == 2
    assert "standardize" in capsys.readouterr().err
    again = ["robustness", "--models", models, "--data", str(path), "--standardize", *common]
    assert main([*again, "--out", str(tmp_path / "r3")]) == 0
    r1, r3 = (json.loads((tmp_path / r / "robustness.json").read_text()) for r in ("r1", "r3"))
    assert r1["data"] == r3["data"] == {"file": str(path), "standardize": True}
    assert r1["records"] == r3["records"]  # the same attack curves: the same standardised test split


# ------------------------------------------------------------------------------------ 10: other file formats
@pytest.mark.parametrize("kind", ["npy", "gzip", "csv", "pickle"])
def test_a_file_in_another_format_names_the_expected_one(tmp_path, kind):
    path = tmp_path / f"data.{kind}"
    a = np.arange(6.0).reshape(3, 2)
    if kind == "npy":
        np.save(path, a)
        path = tmp_path / "data.npy"
    elif kind == "gzip":
        path.write_bytes(gzip.compress(b"1,2\n3,4\n"))
    elif kind == "csv":
        path.write_text("a,b,y\n1,2,0\n3,4,1\n")
    else:
        path.write_bytes(pickle.dumps({"x_train_a": a}))
    with pytest.raises(DataError) as info:
        load_npz(path)
    text = str(info.value)
    assert "expected an .npz" in text and "x_<split>_<modality>" in text and "allow_pickle" not in text


def test_values_beyond_float32_are_refused_naming_file_key_and_split(tmp_path):
    xs, y = two_modalities()
    xs[1][5, 0] = 1e39
    path = tmp_path / "big.npz"
    np.savez(path, x_train_a=xs[0], x_train_b=xs[1], y_train=y)
    with pytest.raises(DataError, match=r"big\.npz': x_train_b: .*float32"):
        load_npz(path)
    with pytest.raises(DataError, match="float32"):
        from_arrays(xs, y)


# ------------------------------------------------------------------------------------------------ 11: API edges
def test_names_given_as_one_string_are_refused():
    xs, y = two_modalities()
    with pytest.raises(DataError, match="modality_names.*list"):
        from_arrays(xs, y, modality_names="av")
    with pytest.raises(DataError, match="class_names.*list"):
        from_arrays(xs, y, class_names="abc")


def test_a_dict_of_modalities_names_them_and_a_conflicting_list_is_refused():
    xs, y = two_modalities()
    ds = from_arrays({"audio": xs[0], "video": xs[1]}, y)
    assert ds.modality_names == ["audio", "video"] and ds.input_dims == (3, 2)
    same = from_arrays({"audio": xs[0], "video": xs[1]}, y, modality_names=["audio", "video"])
    assert same.modality_names == ["audio", "video"]
    with pytest.raises(DataError, match="modality_names"):
        from_arrays({"audio": xs[0], "video": xs[1]}, y, modality_names=["video", "audio"])


def test_a_variant_keeps_its_fixed_flags_and_says_so():
    with pytest.raises(ValueError, match="unimodal-0.*modality.*0"):
        make_method("unimodal-0", modality=1)
    with pytest.raises(ValueError, match="cal-no-accel.*accelerate.*False"):
        make_method("cal-no-accel", accelerate=True)
    assert make_method("unimodal-0", modality=0).modality == 0  # the same value is no conflict
    assert "gamma" not in tuned_config("cal-gamma0")  # inherited from cal: dropped, the variant fixes it
    assert tuned_config("cal-gamma0")["beta0"] == tuned_config("cal")["beta0"]
    make_method("cal-gamma0", **{k: v for k, v in tuned_config("cal-gamma0").items() if "." not in k})


def test_an_explicit_hparam_against_a_variant_flag_is_refused_on_the_command_line(tmp_path, capsys):
    hp = tmp_path / "h.json"
    hp.write_text(json.dumps({"cal-no-accel": {"accelerate": True}}))
    argv = ["compare", "--preset", "tiny", "--methods", "cal-no-accel", "--seeds", "1", "--epochs", "1"]
    assert main([*argv, "--hparams", str(hp), "--out", str(tmp_path / "o"), "--no-progress"]) == 2
    assert "accelerate" in capsys.readouterr().err


def test_evaluate_refuses_non_finite_parameters():
    model = Model(ModelConfig(input_dims=(3, 2), num_classes=2))
    params = model.init_params(np.random.default_rng(0))
    params["head.b"][...] = np.nan
    xs = [np.zeros((4, 3), np.float32), np.zeros((4, 2), np.float32)]
    with pytest.raises(ValueError, match="params.*head.b"):
        E.evaluate(model, params, xs, np.array([0, 1, 0, 1]))


def test_accuracies_are_checked():
    with pytest.raises(ValueError, match=r"accs.*\[0, 1\]"):
        noise.auc([0, 10], [5, 7])
    with pytest.raises(ValueError, match="empty"):
        E.accuracy([], [])
    assert noise.auc([0, 10], [1.0, 0.5]) == pytest.approx(0.75)


def test_a_constant_feature_with_a_rounding_residue_is_constant():
    """np.std of 0.3 repeated 100 times is about 5e-17, not 0: dividing by it sent val/test values to about 1e15."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(100, 3))
    x[:, 1] = 0.3
    assert 0 < x.std(axis=0)[1] < 1e-12  # the residue this test is about (per-column std of the matrix)
    mean, std = feature_statistics([x])
    assert std[0][1] == 1.0 and np.all(std[0][[0, 2]] != 1.0)
    other = x[:5].copy()
    other[:, 1] = 0.7
    assert np.allclose(standardized(other, mean[0], std[0])[:, 1], 0.4)  # its change, in training units (std 1)
