"""Issue 20, the outside battery's findings in the core (data, evaluate, noise, model, train, make_method): bad input
is refused where it enters with a short ValueError naming the argument, never a NumPy or Python error from inside."""

import warnings
import zipfile

import numpy as np
import pytest

from mini_cal import checks, noise
from mini_cal import evaluate as E
from mini_cal.data import DataError, DataWarning, from_arrays, load_npz
from mini_cal.methods import make_method
from mini_cal.model import ModelConfig
from mini_cal.train import TrainConfig, train


def arrays(n=60, K=3, scale=1.0, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % K
    return [scale * (rng.standard_normal((n, 3)) + y[:, None]), scale * rng.standard_normal((n, 2))], y


def one_line(exc_info, *words, limit=300):
    text = str(exc_info.value)
    assert "\n" not in text and len(text) < limit, text
    for word in words:
        assert word in text, text


# ------------------------------------------------------------------------------------- 1. from_arrays' numbers
@pytest.mark.parametrize(
    "option, value",
    [
        ("test_fraction", "0.2"),
        ("val_fraction", "0.2"),
        ("test_fraction", float("nan")),
        ("val_fraction", 1.0),
        ("split_seed", -1),
        ("split_seed", 1.5),
        ("split_seed", "0"),
        ("split_seed", True),
    ],
)
def test_from_arrays_checks_fractions_and_split_seed(option, value):
    xs, y = arrays()
    with pytest.raises(ValueError) as exc:
        from_arrays(xs, y, **{option: value})
    one_line(exc, option)


def test_load_npz_checks_split_seed(tmp_path):
    xs, y = arrays()
    path = tmp_path / "d.npz"
    np.savez(path, x_train_a=xs[0], x_train_b=xs[1], y_train=y)
    with pytest.raises(DataError) as exc:
        load_npz(path, split_seed=-1)
    one_line(exc, "split_seed", str(path))


# ------------------------------------------------------------------------------------------ 2. make_method
@pytest.mark.parametrize("name", [["cal"], {"cal": 1}, None, 3])
def test_make_method_refuses_a_name_that_is_not_a_string(name):
    with pytest.raises(ValueError) as exc:
        make_method(name)
    one_line(exc, "method", "a string", "'cal'", limit=1200)  # the names listed, as for an unknown name


# ------------------------------------------------------------------------------------- 3. train's arguments
@pytest.fixture(scope="module")
def ds():
    xs, y = arrays()
    return from_arrays(xs, y)


FAST = dict(epochs=1, progress=False, probe=False, shapley=False)


@pytest.mark.parametrize(
    "args, words",
    [
        (({"x": 1}, "DS", TrainConfig(**FAST)), ["method", "make_method"]),
        (("cal", "DS", TrainConfig(**FAST)), ["method", "make_method('cal')"]),
        ((None, "DS", TrainConfig(**FAST)), ["method"]),
        (("METHOD", "cal", TrainConfig(**FAST)), ["dataset", "Dataset"]),
        (("METHOD", {"x_train": 1}, TrainConfig(**FAST)), ["dataset", "from_arrays"]),
        (("METHOD", "DS", {"epochs": 1}), ["config", "TrainConfig"]),
        (("METHOD", "DS", "fast"), ["config", "TrainConfig"]),
    ],
)
def test_train_checks_method_dataset_and_config(ds, args, words):
    method, dataset, config = args
    method = make_method("joint") if method == "METHOD" else method
    dataset = ds if dataset == "DS" else dataset
    with pytest.raises(ValueError) as exc:
        train(method, dataset, config)
    one_line(exc, *words)


def test_train_still_takes_no_config(ds):
    result = train(make_method("joint"), ds, TrainConfig(**FAST))
    assert 0 <= result.test["acc"] <= 1


# -------------------------------------------------------------------------------------------- 4. macro_f1
@pytest.mark.parametrize(
    "pred, y, K, word",
    [
        ([0], [0], 0, "num_classes"),
        ([0], [0], -2, "num_classes"),
        ([0], [0], 2.5, "num_classes"),
        ([0], [0], "3", "num_classes"),
        ([0, 1], [0], 2, "pred, y"),
        ([0, -1], [0, 1], 3, "pred"),
        ([0, 3], [0, 1], 3, "pred"),
        ([0, 1], [0, -1], 3, "y"),
        ([0, 1], [0, 5], 3, "y"),
        ([0.5, 1], [0, 1], 3, "pred"),
        ([0, 1], [0.0, 1.5], 3, "y"),
    ],
)
def test_macro_f1_checks_its_arguments(pred, y, K, word):
    with pytest.raises(ValueError) as exc:
        E.macro_f1(pred, y, K)
    one_line(exc, word)


def test_macro_f1_still_scores_valid_labels():
    assert E.macro_f1([0, 1, 1], [0, 1, 0], 2) == pytest.approx((2 / 3 + 2 / 3) / 2)
    assert E.macro_f1([], [], 3) == 0.0  # no class seen: nothing to average (test_speed_metrics relies on it)


# ------------------------------------------------------------------------------------------- 5. noise seed
@pytest.mark.parametrize("seed", [-1, 1.5, "0", None, True])
def test_attack_names_a_bad_seed(seed):
    xs, _ = arrays()
    with pytest.raises(ValueError) as exc:
        noise.attack(xs, "gaussian", 5, seed=seed)
    one_line(exc, "seed")


# ------------------------------------------------------------------------------------ 6. rows in the header
def _npz_with_header(path, key, shape):
    """An .npz whose member ``key`` declares ``shape`` in its header but holds no data (a 200-byte file)."""
    from numpy.lib import format as npy

    header = {"descr": "<f8", "fortran_order": False, "shape": shape}
    with zipfile.ZipFile(path, "w") as z, z.open(f"{key}.npy", "w") as fh:
        npy.write_array_header_1_0(fh, header)


@pytest.mark.parametrize("key, shape", [("x_train_a", (10**13, 3)), ("y_train", (10**13,))])
def test_load_npz_bounds_rows_from_the_header(tmp_path, key, shape):
    path = tmp_path / "huge.npz"
    _npz_with_header(path, key, shape)
    assert path.stat().st_size < 400
    with pytest.raises(DataError) as exc:
        load_npz(path)
    one_line(exc, key, f"{checks.MAX_ROWS:,}", str(path))


# ---------------------------------------------------------------------------------------- 7. tiny features
def test_features_all_tiny_are_reported():
    xs, y = arrays(scale=1e-6)
    with pytest.warns(DataWarning, match="standardize"):
        from_arrays(xs, y)


def test_unit_scale_features_are_not_reported():
    xs, y = arrays()
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        from_arrays(xs, y)
        from_arrays([x * 1e-2 for x in xs], y)  # small, but not tiny


# ------------------------------------------------------------------------------------- 8. duplicate classes
def test_duplicate_class_names_are_refused():
    xs, y = arrays()
    with pytest.raises(DataError) as exc:
        from_arrays(xs, y, class_names=["x", "x", "y"])
    one_line(exc, "class_names", "distinct")


# ----------------------------------------------------------------------------------------- 9. ModelConfig
@pytest.mark.parametrize(
    "field, value",
    [
        ("head_init", float("nan")),
        ("head_init", -0.1),
        ("head_init", "0.1"),
        ("sigma_shift", float("nan")),
        ("sigma_shift", float("inf")),
        ("bottleneck", "no"),
        ("bottleneck", 1),
    ],
)
def test_model_config_checks_head_init_sigma_shift_and_bottleneck(field, value):
    with pytest.raises(ValueError) as exc:
        ModelConfig((3, 2), 3, **{field: value})
    one_line(exc, field)


def test_load_npz_bounds_the_values_of_an_array_from_its_header(tmp_path):
    """Rows and features are each within their limits, but (10**7, 10**5) would still ask for 4 TB."""
    import io as _io

    from numpy.lib import format as npy

    path = tmp_path / "big.npz"
    with zipfile.ZipFile(path, "w") as z:
        for key, shape in (("x_train_a", (10**7, 10**5)), ("y_train", (10**7,))):
            buf = _io.BytesIO()
            npy.write_array_header_1_0(buf, {"descr": "<f4", "fortran_order": False, "shape": shape})
            z.writestr(f"{key}.npy", buf.getvalue())
    with pytest.raises(DataError, match="x_train_a: expected at most 500,000,000 values"):
        load_npz(path)
