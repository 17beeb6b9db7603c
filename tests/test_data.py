from dataclasses import replace

import numpy as np
import pytest

from mini_cal import data, synthetic
from mini_cal.lab import presets


def small(**kw):
    cfg = replace(synthetic.preset_config("tiny"), n_bayes=20_000)
    return replace(cfg, **kw)


def test_generation_is_deterministic_and_seed_dependent():
    a, b = synthetic.generate(small(), with_bayes=False), synthetic.generate(small(), with_bayes=False)
    c = synthetic.generate(small(seed=1), with_bayes=False)
    assert all(np.array_equal(x, y) for x, y in zip(a.x_train, b.x_train))
    assert not np.array_equal(a.x_train[0], c.x_train[0])
    assert a.x_train[0].dtype == np.float32 and a.y_train.dtype == np.int64


def test_shapes_balance_and_scale():
    ds = synthetic.generate(small(), with_bayes=False)
    assert ds.input_dims == (16, 32)
    assert len(ds.y_train) == 200 and len(ds.y_val) == 100 and len(ds.y_test) == 200
    assert np.all(np.bincount(ds.y_train) == 50)
    # the weak modality's inputs live on a ~30x smaller scale: the imbalance knob
    assert ds.x_train[1].std() < ds.x_train[0].std() / 10


def test_bayes_accuracy_sanity():
    b = synthetic.bayes_accuracy(small())
    assert 0.25 < b["modality 0"] < b["fused"] and b["modality 1"] < b["fused"] <= 1
    # no separation: chance
    cfg = small(modalities=[replace(s, separation=0.0) for s in small().modalities])
    b0 = synthetic.bayes_accuracy(cfg)
    assert abs(b0["fused"] - 0.25) < 0.02
    # more class overlap lowers the ceiling
    cfg = small(modalities=[replace(s, separation=s.separation / 2) for s in small().modalities])
    assert synthetic.bayes_accuracy(cfg)["fused"] < b["fused"] - 0.05


def test_bayes_matches_posterior_classifier_on_generated_test_set():
    ds = synthetic.generate(small(n_test=4000), with_bayes=True)
    models = synthetic._models(ds.config)
    ll = sum(mod.log_likelihood(x.astype(np.float64)) for mod, x in zip(models, ds.x_test))
    acc = np.mean(ll.argmax(1) == ds.y_test)
    assert abs(acc - ds.bayes["fused"]) < 0.02


def test_label_noise_and_corruption_fractions():
    ds = synthetic.generate(
        small(n_train=4000, label_noise=0.2, corrupt_modality=1, corrupt_fraction=0.3), with_bayes=False
    )
    flipped = np.mean(ds.y_train != ds.clean_y_train)
    assert 0.17 < flipped < 0.23
    assert 0.27 < ds.corrupted_mask.mean() < 0.33
    clean = synthetic.generate(small(n_train=4000), with_bayes=False)
    np.testing.assert_array_equal(ds.x_train[0], clean.x_train[0])  # only the chosen modality is touched
    assert np.array_equal(ds.x_test[1], clean.x_test[1])  # test split is clean


def test_save_load_roundtrip_and_regenerate(tmp_path, monkeypatch):
    ds = synthetic.generate(small(), name="tiny")
    presets.save_preset(ds, tmp_path / "tiny.npz")
    back = presets.read_preset(tmp_path / "tiny.npz")
    assert back.bayes == ds.bayes and back.name == "tiny"
    assert all(np.array_equal(x, y) for x, y in zip(back.x_test, ds.x_test))
    assert presets.load_data_file(tmp_path / "tiny.npz").name == "tiny"  # --data reads a preset file too
    monkeypatch.setenv("MINI_CAL_DATA", str(tmp_path / "empty"))
    regen = presets.load_preset("tiny")  # file absent: regenerated deterministically
    shipped = synthetic.generate(synthetic.preset_config("tiny"), with_bayes=False)
    assert np.array_equal(regen.x_train[1], shipped.x_train[1])


def test_shipped_files_match_manifest_and_the_generator_bit_for_bit():
    import json

    folder = presets.data_dirs()[0]
    manifest = json.loads((folder / "manifest.json").read_text())
    for name, entry in manifest.items():
        assert presets.checksum(folder / entry["file"]) == entry["sha256"], name
    ds = presets.load_preset("default")
    assert ds.bayes == manifest["default"]["bayes"] and ds.provenance["file"] == str(folder / "default.npz")
    generated = synthetic.load_preset("default")  # in memory, no file: the same numbers
    assert generated.bayes == ds.bayes and "file" not in generated.provenance
    for split in data.SPLITS:
        (xs, y), (gxs, gy) = ds.split(split), generated.split(split)
        assert np.array_equal(y, gy) and all(a.dtype == b.dtype and np.array_equal(a, b) for a, b in zip(xs, gxs))
    assert np.array_equal(ds.clean_y_train, generated.clean_y_train)


def test_presets_and_describe():
    assert {"default", "balanced", "corrupted", "three", "tiny"} <= set(synthetic.PRESETS)
    text = synthetic.describe(synthetic.load_preset("tiny"))
    assert "Bayes-optimal" in text and "modality 1 (V)" in text
    with pytest.raises(ValueError, match=r"preset: expected one of .*got 'nope'"):
        synthetic.preset_config("nope")


@pytest.mark.parametrize(
    "kw, msg",
    [
        (dict(label_noise=1.5), "label_noise"),
        (dict(corrupt_fraction=0.3, corrupt_modality=5), "corrupt_modality"),
        (dict(n_train=0), "n_train"),
        (dict(num_classes=1), "num_classes"),
    ],
)
def test_bad_config(kw, msg):
    with pytest.raises(ValueError, match=msg):
        synthetic.generate(small(**kw))


@pytest.mark.parametrize(
    "mutate, msg",
    [
        (lambda xs, y: (xs, y.astype(float) + 0.5), "labels: expected integers"),
        (lambda xs, y: (xs, y + 10), r"labels: expected integers in 0..3"),
        (lambda xs, y: (xs, y[:0]), "empty"),
        (lambda xs, y: ([xs[0], xs[1][:-1]], y), "modality 1: expected"),
        (lambda xs, y: ([xs[0], np.where(xs[1] > 0, np.nan, xs[1])], y), "NaN or inf"),
        (lambda xs, y: ([xs[0]], y), "expected 2 modalities"),
        (lambda xs, y: ([xs[0], xs[1][:, :3]], y), "expected 32 features"),
    ],
)
def test_validate_split_errors(mutate, msg):
    ds = synthetic.generate(small(), with_bayes=False)
    xs, y = mutate(list(ds.x_val), ds.y_val)
    with pytest.raises(ValueError, match=msg):
        data.validate_split(xs, y, ds.input_dims, 4, split="val")


def test_data_knows_nothing_of_the_generator():
    """The dependency is one-way: synthetic imports data, data never imports synthetic (nor the lab)."""
    import ast
    from pathlib import Path

    tree = ast.parse(Path(data.__file__).read_text())
    imported = {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not {m for m in imported if "synthetic" in m or "lab" in m}, imported
    assert not hasattr(data, "__getattr__")
