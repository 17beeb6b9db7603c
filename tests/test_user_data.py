"""A user's own features: Dataset on its own, from_arrays, load_npz and --data on every command."""

import json

import numpy as np
import pytest

from mini_cal import data
from mini_cal.data import DataError, from_arrays, load_npz
from mini_cal.lab.cli import main


def arrays(n=120, seed=0, K=3):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % K
    a = rng.standard_normal((n, 4)) + y[:, None]
    b = 0.1 * rng.standard_normal((n, 6)) + 0.1 * y[:, None]
    return {"audio": a.astype(np.float32), "video": b.astype(np.float32)}, y


def write(path, **arrs):
    np.savez(path, **arrs)
    return path


def test_dataset_needs_no_generator():
    xs, y = arrays()
    ds = data.Dataset(list(xs.values()), y, list(xs.values()), y, list(xs.values()), y, modality_names=["a", "v"])
    assert ds.num_classes == 3 and ds.input_dims == (4, 6) and ds.bayes == {} and ds.config is None
    assert "modality 1 (v): 6 features" in ds.describe()


def test_dataset_is_checked_once_and_cannot_change_afterwards():
    """The constructor is the one check: it keeps read-only copies, and its fields cannot be reassigned, so
    training and evaluation need not check the data again."""
    import dataclasses

    xs, y = arrays()
    a, v = xs["audio"].copy(), xs["video"].copy()
    ds = data.Dataset([a, v], y, [a, v], y, [a, v], y)
    a[:] = np.nan  # the caller's arrays change later: the Dataset's do not
    assert np.all(np.isfinite(ds.x_train[0])) and ds.x_train[0] is not a
    with pytest.raises(ValueError, match="read-only"):
        ds.x_val[1][0, 0] = np.nan
    with pytest.raises(ValueError, match="read-only"):
        ds.y_val[0] = 7
    with pytest.raises(dataclasses.FrozenInstanceError):
        ds.y_val = ds.y_val + 7
    with pytest.raises(DataError, match=r"val labels: expected integers in 0..2"):
        dataclasses.replace(ds, y_val=ds.y_val + 7)  # a changed copy is a new Dataset, checked again


def test_from_arrays_splits_stratified_and_reproducibly():
    xs, y = arrays(n=150)
    ds = from_arrays(xs, y)
    assert ds.modality_names == ["audio", "video"]
    assert (len(ds.y_train), len(ds.y_val), len(ds.y_test)) == (96, 24, 30)
    for split in ("train", "val", "test"):
        counts = np.bincount(ds.split(split)[1], minlength=3)
        assert counts.max() - counts.min() <= 1, split  # stratified
    again = from_arrays(xs, y)
    assert all(np.array_equal(a, b) for a, b in zip(ds.x_test, again.x_test))
    other = from_arrays(xs, y, split_seed=1)
    assert not np.array_equal(ds.y_test, other.y_test) or not np.array_equal(ds.x_test[0], other.x_test[0])
    given = from_arrays(xs, y, x_test=xs, y_test=y)  # only val is carved out
    assert len(given.y_test) == 150 and len(given.y_val) == 30


def test_load_npz_roundtrip_and_names(tmp_path):
    xs, y = arrays()
    path = write(
        tmp_path / "mine.npz",
        x_train_video=xs["video"],
        x_train_audio=xs["audio"],
        y_train=y,
        modalities=np.array(["video", "audio"]),
        classes=np.array(["x", "y", "z"]),
    )
    ds = load_npz(path)
    assert ds.modality_names == ["video", "audio"] and ds.class_names == ["x", "y", "z"] and ds.name == "mine"
    assert ds.input_dims == (6, 4) and len(ds.y_train) + len(ds.y_val) + len(ds.y_test) == 120
    sorted_names = load_npz(write(tmp_path / "s.npz", x_train_video=xs["video"], x_train_audio=xs["audio"], y_train=y))
    assert sorted_names.modality_names == ["audio", "video"]  # no 'modalities' key: sorted names


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda a: a.pop("y_train"), "missing key 'y_train'"),
        (lambda a: a.update(y_train=a["y_train"] + 0.5), "y_train: expected integer labels"),
        (lambda a: a.update(y_train=a["y_train"] - 1), "labels: expected integers in 0..K-1"),
        (lambda a: a.update(x_train_audio=a["x_train_audio"][:-1]), "expected 120 rows"),
        (lambda a: a.update(x_train_audio=a["x_train_audio"][:, 0]), "x_train_audio: expected a 2-D array"),
        (lambda a: a.update(x_train_audio=np.where(a["x_train_audio"] > 1, np.inf, a["x_train_audio"])), "NaN or inf"),
        (lambda a: a.update(x_train_audio=a["x_train_audio"] + 1j), "real-valued"),
        (lambda a: a.update(x_val_audio=a["x_train_audio"]), "split 'val' is incomplete: missing .*x_val_video"),
        (
            lambda a: a.update(
                x_test_audio=a["x_train_audio"][:, :2], x_test_video=a["x_train_video"], y_test=a["y_train"]
            ),
            "test modality 0: expected 4 features, got 2",
        ),
        (lambda a: a.update(extra=np.zeros(3)), r"unexpected key\(s\) \['extra'\]"),
        (lambda a: a.update(modalities=np.array(["audio", "radar"])), r"'modalities' names \['radar'\]"),
        (lambda a: a.update(classes=np.array(["one", "two"])), "class_names: expected 3 names"),
        (lambda a: a.update(y_train=np.where(a["y_train"] == 1, 2, a["y_train"])), r"class\(es\) \[1\] have no"),
    ],
)
def test_bad_files_name_the_problem(tmp_path, mutate, message):
    xs, y = arrays()
    arrs = {"x_train_audio": xs["audio"], "x_train_video": xs["video"], "y_train": y}
    mutate(arrs)
    with pytest.raises(DataError, match=message):
        load_npz(write(tmp_path / "bad.npz", **arrs))


def test_unreadable_files(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        load_npz(tmp_path / "absent.npz")
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(DataError, match="not a readable .npz"):
        load_npz(tmp_path / "junk.npz")


def test_cli_runs_on_a_data_file(tmp_path, capsys):
    xs, y = arrays(n=150)
    path = write(tmp_path / "mine.npz", x_train_audio=xs["audio"], x_train_video=xs["video"], y_train=y)
    assert main(["data", "describe", "--data", str(path)]) == 0
    assert "dataset mine: 3 classes" in capsys.readouterr().out
    assert main(["train", "--data", str(path), "--method", "cal", "--epochs", "2", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "Bayes-optimal" not in out and "video: coalition accuracy" in out
    out_dir = tmp_path / "cmp"
    assert (
        main(
            [
                "compare",
                "--data",
                str(path),
                "--methods",
                "joint",
                "cal",
                "unimodal-1",
                "--seeds",
                "2",
                "--epochs",
                "2",
                "--jobs",
                "1",
                "--no-progress",
                "--out",
                str(out_dir),
            ]
        )
        == 0
    )
    table = (out_dir / "table.md").read_text()
    assert "Bayes-optimal" not in table and "| cal |" in table and "mine.npz" in table
    result = json.loads((out_dir / "results.json").read_text())
    assert result["data"] == {"file": str(path)} and result["bayes"] == {}
    assert (out_dir / "coalition_accuracy.png").exists()


def test_cli_bad_data_file_writes_nothing(tmp_path, capsys):
    bad = write(tmp_path / "bad.npz", x_train_a=np.zeros((5, 2)))
    out_dir = tmp_path / "cmp"
    assert main(["compare", "--data", str(bad), "--out", str(out_dir), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "missing key 'y_train'" in err and "Traceback" not in err
    assert not out_dir.exists()
    with pytest.raises(SystemExit):  # --preset and --data together: argparse refuses
        main(["train", "--data", str(bad), "--preset", "tiny"])
