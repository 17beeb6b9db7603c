"""The example data file (mini_cal.lab.examples): format, determinism, the committed copy, and a short training run.

Tests that build the file need scikit-learn (the ``example`` extra) and skip without it; the committed copy
(docs/data/digits_two_views.npz) and the missing-scikit-learn message are checked everywhere.
"""

import sys
from pathlib import Path

import numpy as np
import pytest

from mini_cal.data import load_npz
from mini_cal.lab.examples import DEFAULT_FILES, EXAMPLES, make_example
from mini_cal.methods import make_method
from mini_cal.train import TrainConfig, train

COMMITTED = Path(__file__).resolve().parent.parent / "docs" / "data" / "digits_two_views.npz"
SIZES = {"train": 1151, "val": 287, "test": 359}


@pytest.fixture
def sklearn():
    return pytest.importorskip("sklearn")


def check_digits(ds):
    assert ds.modality_names == ["pixels", "profiles"]
    assert ds.input_dims == (64, 16) and ds.num_classes == 10
    assert ds.class_names == [str(k) for k in range(10)]
    for split, n in SIZES.items():
        (pixels, profiles), y = ds.split(split)
        assert len(y) == n and y.dtype == np.int64
        assert pixels.dtype == np.float32 and profiles.dtype == np.float32
        assert pixels.min() >= 0 and pixels.max() <= 1
        # pixels are ink counts / 16; profiles are the 8 row means then the 8 column means of those pixels
        assert np.array_equal(pixels * 16, np.round(pixels * 16))
        img = pixels.astype(np.float64).reshape(-1, 8, 8)
        assert np.array_equal(profiles, np.concatenate([img.mean(2), img.mean(1)], 1).astype(np.float32))
    # stratified: each class splits 64/16/20 % (test 20 %, then val 20 % of the rest), to within rounding
    counts = np.array([np.bincount(ds.split(s)[1], minlength=10) for s in SIZES])
    assert np.all(counts > 0)
    assert np.allclose(counts / counts.sum(0), [[0.64], [0.16], [0.20]], atol=0.01)


def test_committed_file_loads_as_documented():
    check_digits(load_npz(COMMITTED))


def test_missing_sklearn_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "sklearn", None)  # `import sklearn...` now raises ImportError
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(ImportError, match=r"\.\[example\]"):
        make_example("digits", tmp_path / "d.npz")
    assert not list(tmp_path.iterdir())  # nothing written


def test_unknown_example_name(tmp_path):
    with pytest.raises(ValueError, match="digits"):
        make_example("mnist", tmp_path / "m.npz")
    assert set(EXAMPLES) == set(DEFAULT_FILES)


def test_make_example_is_deterministic_and_matches_the_committed_copy(sklearn, tmp_path):
    a = make_example("digits", tmp_path / "a.npz")
    b = make_example("digits", tmp_path)  # a folder: the default file name inside it
    assert b == tmp_path / DEFAULT_FILES["digits"]
    assert a.read_bytes() == b.read_bytes() == COMMITTED.read_bytes()
    assert [p.name for p in sorted(tmp_path.iterdir())] == sorted(["a.npz", DEFAULT_FILES["digits"]])  # no temp
    check_digits(load_npz(a))


def test_two_epoch_training_run(sklearn, tmp_path):
    ds = load_npz(make_example("digits", tmp_path / "d.npz"))
    cfg = TrainConfig(epochs=2, progress=False, probe=False, shapley=False)
    res = train(make_method("joint"), ds, cfg)
    assert len(res.history["epochs"]) == 2
    assert res.test["acc"] > 0.3  # chance is 0.1; about 0.8 after two epochs
    assert len(res.test["coalition_acc"]) == 2
    cal = train(make_method("cal"), ds, cfg)
    assert np.isfinite(cal.test["acc"]) and cal.test["acc"] > 0.1
