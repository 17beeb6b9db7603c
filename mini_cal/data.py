"""Datasets: three splits of per-modality feature arrays and integer labels, from any source.

A :class:`Dataset` knows nothing of where its arrays came from. Three ways to make one:

* :func:`from_arrays` - your own features, as arrays (one per modality) and labels;
* :func:`load_npz` - your own features, from one ``.npz`` file in the format below;
* :func:`mini_cal.synthetic.load_preset` - the synthetic benchmark, which attaches its generator configuration and
  the Bayes-optimal accuracies (``ds.config``, ``ds.bayes``).

File format of :func:`load_npz` (``docs/method.md`` section 7 and ``docs/data.md``): one ``.npz`` holding,
for each split ``s`` in ``train``, ``val``, ``test`` and each modality name ``m``, the features ``x_<s>_<m>``
(floats, shape ``(N_s, D_m)``) and the labels ``y_<s>`` (integers ``0..K-1``, shape ``(N_s,)``). Optional:
``modalities`` (the modality names, in order; default: the names found in the ``x_train_*`` keys, sorted) and
``classes`` (class names, in label order). ``train`` is required; when ``val`` or ``test`` is absent it is carved
out of ``train`` by a stratified split (:func:`stratified_split`: seed 0, ``test`` 20 % and then ``val`` 20 % of
what remains; a class with three or more samples lands in every split).
"""

from __future__ import annotations

import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import checks

SPLITS = ("train", "val", "test")
SPLIT_SEED = 0  # the seed of the stratified split used when a file or from_arrays lacks val or test
VAL_FRACTION = 0.2
TEST_FRACTION = 0.2


SCALE_RATIO = 1e3  # features whose magnitudes differ by more than this (or exceed it) are reported: DataWarning
TINY_SCALE = 1e-3  # ... and so are features whose magnitudes are all below this (a network's unit scale swamps them)
FILE_FORMAT = "an .npz archive (numpy.savez) with keys x_<split>_<modality> and y_<split> (docs/data.md)"


class DataError(ValueError):
    """Malformed input data; the message names the array, the key or the file and what was expected."""


class DataWarning(UserWarning):
    """Data that loads but will likely train badly as it is (features of very different scales); says what to do."""


@dataclass(frozen=True)
class Dataset:
    """Three splits as lists of per-modality host arrays (``x_train[m]`` has shape ``(N, D_m)``) and labels.

    ``bayes``: Bayes-optimal accuracies when they are known (``{"modality 0": .., "fused": ..}``; the synthetic
    benchmark only), else empty. ``config``: the generator's configuration (synthetic data only), else None.
    ``provenance``: free-form facts about the source (file, generator, license).

    The constructor is where data is checked, once: every split (shapes, rows, labels, finiteness), raising
    :class:`DataError` naming the problem. It keeps read-only copies of the arrays and the fields cannot be
    reassigned, so nothing downstream (training, evaluation) checks them again; ``dataclasses.replace`` makes a
    new, checked Dataset.
    """

    x_train: list
    y_train: np.ndarray
    x_val: list
    y_val: np.ndarray
    x_test: list
    y_test: np.ndarray
    modality_names: list | None = None
    num_classes: int | None = None
    class_names: list | None = None
    name: str = "custom"
    bayes: dict = field(default_factory=dict)
    config: object = None
    provenance: dict = field(default_factory=dict)
    clean_y_train: np.ndarray | None = None  # synthetic data with label noise: the labels before flipping
    corrupted_mask: np.ndarray | None = None  # synthetic data: training samples whose modality was corrupted

    def __post_init__(self):
        def put(name, value):  # the constructor's own writes (the instance is frozen afterwards)
            object.__setattr__(self, name, value)

        for s in SPLITS:
            put(f"x_{s}", _feature_list(getattr(self, f"x_{s}"), f"x_{s}"))
            put(f"y_{s}", _labels(getattr(self, f"y_{s}"), f"y_{s}"))
        M = len(self.x_train)
        if M > checks.MAX_MODALITIES:
            raise DataError(
                f"x_train: expected at most {checks.MAX_MODALITIES} modalities, got {M}; exact Shapley values "
                f"evaluate all 2^M coalitions (2^{M} = {2**M:,} here)"
            )
        if self.modality_names is None:
            put(
                "modality_names",
                [s.name for s in self.config.modalities]
                if self.config is not None and hasattr(self.config, "modalities")
                else [f"m{m}" for m in range(M)],
            )
        put("modality_names", _names("modality_names", self.modality_names))
        if len(self.modality_names) != M or len(set(self.modality_names)) != M:
            raise DataError(
                f"modality_names: expected {M} distinct names (one per modality), got {self.modality_names!r}"
            )
        if self.num_classes is None:
            put(
                "num_classes",
                getattr(self.config, "num_classes", None)
                or int(max(int(getattr(self, f"y_{s}").max(initial=-1)) for s in SPLITS)) + 1,
            )
            if self.num_classes > checks.MAX_CLASSES:  # before anything of K entries is allocated
                raise DataError(
                    f"y: labels up to {self.num_classes - 1} mean {self.num_classes} classes; expected at most "
                    f"{checks.MAX_CLASSES} classes (labels 0..K-1)"
                )
            if self.num_classes < 2:
                raise DataError(f"y_train: expected labels of at least two classes, got only {self.num_classes}")
        if (
            isinstance(self.num_classes, bool)
            or not isinstance(self.num_classes, (int, np.integer))
            or not 2 <= self.num_classes <= checks.MAX_CLASSES
        ):
            raise DataError(
                f"num_classes: expected an integer in 2..{checks.MAX_CLASSES}, got {checks.short(self.num_classes)}"
            )
        put("num_classes", int(self.num_classes))
        if self.class_names is not None:
            put("class_names", _names("class_names", self.class_names))
            if len(self.class_names) != self.num_classes or len(set(self.class_names)) != self.num_classes:
                raise DataError(
                    f"class_names: expected {self.num_classes} names (one per class, all distinct), got "
                    f"{checks.short(self.class_names)}"
                )
        for s in SPLITS:
            xs, y = self.split(s)
            validate_split(xs, y, self.input_dims, self.num_classes, split=s)
        missing = np.setdiff1d(np.arange(self.num_classes), self.y_train)
        if missing.size:
            shown = ", ".join(map(str, missing[: checks.SHOWN].tolist()))
            shown += f", ... ({missing.size} in all)" if missing.size > checks.SHOWN else ""
            raise DataError(
                f"y_train: class(es) [{shown}] have no training sample; labels must be "
                f"0..K-1 with every class present in train (K = {self.num_classes})"
            )
        if not isinstance(self.bayes, dict):
            raise DataError(f"bayes: expected a dict of accuracies, got {type(self.bayes).__name__}")
        for key, value in self.bayes.items():  # printed as Bayes-optimal accuracies: they must be accuracies
            try:
                checks.number(f"bayes[{key!r}]", value, low=0, high=1)
            except ValueError as exc:
                raise DataError(str(exc)) from None

    @property
    def input_dims(self) -> tuple:
        return tuple(int(x.shape[1]) for x in self.x_train)

    @property
    def num_modalities(self) -> int:
        return len(self.x_train)

    def split(self, name: str):
        """(xs, y) of ``"train"``, ``"val"`` or ``"test"``."""
        if name not in SPLITS:
            raise ValueError(f"split: expected 'train', 'val' or 'test', got {name!r}")
        return getattr(self, f"x_{name}"), getattr(self, f"y_{name}")

    def describe(self) -> str:
        """A few lines: name, splits, modalities and their dimensions, classes, Bayes accuracies if known."""
        sizes = "/".join(str(len(getattr(self, f"y_{s}"))) for s in SPLITS)
        lines = [f"dataset {self.name}: {self.num_classes} classes, train/val/test = {sizes}"]
        for m, (n, d) in enumerate(zip(self.modality_names, self.input_dims)):
            b = self.bayes.get(f"modality {m}")
            lines.append(
                f"  modality {m} ({n}): {d} features" + ("" if b is None else f", Bayes-optimal accuracy {b:.4f}")
            )
        if "fused" in self.bayes:
            lines.append(f"  fused Bayes-optimal accuracy {self.bayes['fused']:.4f}")
        if self.class_names:
            lines.append("  classes: " + ", ".join(self.class_names))
        lines += [f"  {k}: {_cut(str(v))}" for k, v in self.provenance.items()]
        return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ construction
def stratified_split(y, fraction: float, seed: int = SPLIT_SEED) -> tuple:
    """Indices (kept, held out) with about ``fraction`` of each class held out (at least one sample of every class
    that has two or more), drawn from ``seed``; both index arrays are sorted."""
    y = np.asarray(y)
    rng = np.random.default_rng(seed)
    held = []
    for k in np.unique(y):
        idx = np.flatnonzero(y == k)
        n = int(round(fraction * len(idx)))
        n = min(max(n, 1), len(idx) - 1) if len(idx) > 1 else 0
        held.append(rng.permutation(idx)[:n])
    held = np.sort(np.concatenate(held)) if held else np.array([], dtype=int)
    kept = np.setdiff1d(np.arange(len(y)), held)
    return kept, held


def from_arrays(
    x_train,
    y_train,
    x_val=None,
    y_val=None,
    x_test=None,
    y_test=None,
    *,
    modality_names=None,
    class_names=None,
    name: str = "custom",
    provenance: dict | None = None,
    val_fraction: float = VAL_FRACTION,
    test_fraction: float = TEST_FRACTION,
    split_seed: int = SPLIT_SEED,
    standardize: bool = False,
) -> Dataset:
    """A :class:`Dataset` from your own arrays.

    ``x_*``: a list of per-modality arrays ``(N, D_m)`` or a dict ``{name: array}`` (its keys name the modalities,
    in order); ``y_*``: integer labels ``0..K-1``. When ``val`` or ``test`` is not given it is carved out of the
    training data by :func:`stratified_split` (``test_fraction`` first, then ``val_fraction`` of the rest),
    reproducibly from ``split_seed``. ``standardize``: rescale every feature of every split to the training split's
    mean 0 and std 1 (:func:`standardized`; recorded in ``provenance["standardize"]``); without it, features of very
    different scales are reported by a :class:`DataWarning`. Raises :class:`DataError` naming the problem.
    """
    try:  # the options' types and ranges, before any array is touched
        checks.flag("standardize", standardize)
        val_fraction, test_fraction = (
            checks.number(n, f, low=0, high=1, low_open=True, high_open=True)
            for n, f in (("val_fraction", val_fraction), ("test_fraction", test_fraction))
        )
        split_seed = checks.number("split_seed", split_seed, low=0, integer=True)
    except ValueError as exc:
        raise DataError(str(exc)) from None
    if isinstance(x_train, dict):
        if modality_names is not None and _names("modality_names", modality_names) != [str(k) for k in x_train]:
            raise DataError(
                f"modality_names: {checks.short(list(modality_names))} differs from the keys of x_train "
                f"{checks.short(list(x_train))}, which name the modalities; leave modality_names out"
            )
        modality_names = list(x_train)
    xs = {"train": x_train, "val": x_val, "test": x_test}
    ys = {"train": y_train, "val": y_val, "test": y_test}
    for s in SPLITS:
        if (xs[s] is None) != (ys[s] is None):
            raise DataError(f"x_{s}, y_{s}: give both or neither (got only {'x' if ys[s] is None else 'y'}_{s})")
        if isinstance(xs[s], dict):
            keys = list(xs[s])
            if s != "train" and modality_names is not None and keys != list(modality_names):
                raise DataError(f"x_{s}: expected the modalities {list(modality_names)!r} in that order, got {keys!r}")
            xs[s] = list(xs[s].values())
    if x_train is None:
        raise DataError("x_train: the training split is required")
    xs["train"] = _feature_list(xs["train"], "x_train")
    ys["train"] = _labels(ys["train"], "y_train")
    for s, fraction in (("test", test_fraction), ("val", val_fraction)):
        if xs[s] is not None:
            continue
        validate_split(xs["train"], ys["train"], split="train")
        kept, held = stratified_split(ys["train"], fraction, split_seed)
        if held.size == 0:
            raise DataError(f"y_train: too few samples per class to hold out a {s} split")
        xs[s], ys[s] = [x[held] for x in xs["train"]], ys["train"][held]
        xs["train"], ys["train"] = [x[kept] for x in xs["train"]], ys["train"][kept]
    provenance = dict(provenance or {})
    if standardize:
        dims = tuple(x.shape[1] for x in xs["train"])
        for s in SPLITS:
            xs[s], ys[s] = _feature_list(xs[s], f"x_{s}"), _labels(ys[s], f"y_{s}")
            validate_split(xs[s], ys[s], dims, split=s)
        mean, std = feature_statistics(xs["train"])
        for s in SPLITS:
            xs[s] = [standardized(x, mu, sd) for x, mu, sd in zip(xs[s], mean, std)]
        provenance["standardize"] = {"mean": [m.tolist() for m in mean], "std": [d.tolist() for d in std]}
    else:
        warn_on_scales(xs["train"], modality_names)
    return Dataset(
        xs["train"],
        ys["train"],
        xs["val"],
        ys["val"],
        xs["test"],
        ys["test"],
        modality_names=modality_names,
        class_names=class_names,
        name=name,
        provenance=provenance,
    )


# --------------------------------------------------------------------------------------------- feature scale
def feature_statistics(xs) -> tuple:
    """(means, stds): per modality, each feature's mean and standard deviation (float64, ``(D_m,)``) over the
    rows of ``xs``, the training split; a constant feature gets std 1 (it becomes 0 after centring). Constant means
    max == min: ``np.std`` of a constant column is often a rounding residue (1e-16 for 0.3 repeated 100 times), not 0,
    and dividing by it would send every other split's values to about 1e15."""
    xs = [x.astype(np.float64) for x in xs]
    mean = [x.mean(axis=0) for x in xs]
    std = [np.where(np.ptp(x, axis=0) > 0, x.std(axis=0), 1.0) for x in xs]
    return mean, std


def standardized(x, mean, std) -> np.ndarray:
    """``(x - mean) / std`` computed in float64, in ``x``'s floating dtype."""
    return ((x.astype(np.float64) - mean) / std).astype(x.dtype)


def warn_on_scales(xs, names=None) -> None:
    """A :class:`DataWarning` when the training features' magnitudes (root mean square of each non-zero column: what
    the first layer sees) differ by more than ``SCALE_RATIO``, exceed it, or are all below ``TINY_SCALE``:
    networks started at unit scale train such features badly (often to chance), and standardising them is the usual
    cure."""
    rms = [np.sqrt(np.mean(np.square(x, dtype=np.float64), axis=0)) for x in xs]
    nonzero = [(r[r > 0].min(), r.max()) if np.any(r > 0) else None for r in rms]
    present = [m for m, v in enumerate(nonzero) if v is not None]
    if not present:
        return
    lo = min(present, key=lambda m: nonzero[m][0])
    hi = max(present, key=lambda m: nonzero[m][1])
    small, large = nonzero[lo][0], nonzero[hi][1]
    if large / small <= SCALE_RATIO and TINY_SCALE <= large <= SCALE_RATIO:
        return
    name = (lambda m: repr(names[m])) if names is not None and len(names) == len(xs) else (lambda m: str(m))
    warnings.warn(
        f"feature magnitudes range from {small:.3g} (modality {name(lo)}) to {large:.3g} (modality {name(hi)}) "
        "(root mean square per feature); raw features like these often train to chance: standardize them with the "
        "training split's statistics (standardize=True, or --standardize on the command line)",
        DataWarning,
        stacklevel=3,
    )


def load_npz(path, **split_options) -> Dataset:
    """A :class:`Dataset` from an ``.npz`` file in the format of this module's docstring (``split_options`` go to
    :func:`from_arrays`: ``standardize=True`` among them). Any other format (.npy, gzip, CSV, pickle), an array of
    Python objects, or more modalities, rows or features than :mod:`mini_cal.checks` allows (read from the arrays'
    headers, before loading) is refused. Raises :class:`DataError` naming the file and the key, shape or label
    problem. (A preset file written by ``mini-cal data generate`` has a format of its own:
    :func:`mini_cal.lab.presets.load_data_file` reads either.)"""
    path = Path(path)
    where = f"--data {str(path)!r}"
    if not path.is_file():
        raise DataError(f"{where}: no such file")
    kind = _other_format(path)
    if kind:
        raise DataError(f"{where}: {kind}; expected {FILE_FORMAT}")
    try:
        _check_headers(path, where)
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        if isinstance(exc, DataError):
            raise
        raise DataError(f"{where}: not a readable .npz file ({type(exc).__name__}: {_cut(str(exc))})") from None
    if "y_train" not in arrays:
        raise DataError(
            f"{where}: missing key 'y_train' (the training labels); keys found: {checks.short(sorted(arrays))}"
        )
    found = [k[len("x_train_") :] for k in arrays if k.startswith("x_train_")]
    if "modalities" in arrays:
        names = [str(n) for n in np.atleast_1d(arrays["modalities"]).tolist()]
        absent = [n for n in names if f"x_train_{n}" not in arrays]
        if absent:
            raise DataError(
                f"{where}: 'modalities' names {checks.short(absent)}, but keys x_train_<name> for them are missing"
            )
    else:
        names = sorted(found)
    if not names:
        raise DataError(f"{where}: no features: expected keys x_train_<modality> (e.g. x_train_audio)")
    known = {f"x_{s}_{n}" for s in SPLITS for n in names} | {f"y_{s}" for s in SPLITS} | {"modalities", "classes"}
    unknown = sorted(set(arrays) - known)
    if unknown:
        raise DataError(
            f"{where}: unexpected key(s) {checks.short(unknown)}; expected x_<split>_<modality> for modalities "
            f"{checks.short(names)}, y_<split>, and optionally 'modalities', 'classes'"
        )
    parts = {}
    for s in SPLITS:
        present = [n for n in names if f"x_{s}_{n}" in arrays]
        if not present and f"y_{s}" not in arrays:
            continue
        if len(present) != len(names) or f"y_{s}" not in arrays:
            lacking = [f"x_{s}_{n}" for n in names if n not in present] + ([] if f"y_{s}" in arrays else [f"y_{s}"])
            raise DataError(f"{where}: split {s!r} is incomplete: missing {lacking}")
        parts[f"x_{s}"] = [_named_features(arrays[f"x_{s}_{n}"], f"{where}: x_{s}_{n}") for n in names]
        parts[f"y_{s}"] = arrays[f"y_{s}"]
    classes = [str(c) for c in np.atleast_1d(arrays["classes"]).tolist()] if "classes" in arrays else None
    try:
        return from_arrays(
            **parts,
            modality_names=names,
            class_names=classes,
            name=path.stem,
            provenance={"file": str(path)},
            **split_options,
        )
    except DataError as exc:
        raise DataError(f"{where}: {exc}") from None


def _other_format(path: Path) -> str | None:
    """What the file is when it is not a zip archive (an .npz is one), from its first bytes; None for a zip."""
    with path.open("rb") as fh:
        head = fh.read(8)
    if head.startswith(b"PK"):
        return None
    known = {b"\x93NUMPY": "a single .npy array (numpy.save)", b"\x1f\x8b": "a gzip-compressed file"}
    known[b"\x80"] = "a Python pickle (never loaded: unpickling can run code)"
    for magic, what in known.items():
        if head.startswith(magic):
            return what
    if not head:
        return "an empty file"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return "not an .npz archive"
    return "a text file (CSV?), not an .npz archive"


def _check_headers(path: Path, where: str) -> None:
    """Refuse, from the arrays' headers alone (before any is read), Python objects, more modalities, rows or features
    than :mod:`mini_cal.checks` allows: a small compressed file can expand to gigabytes."""
    from numpy.lib import format as npy

    with zipfile.ZipFile(path) as z:
        members = [n for n in z.namelist() if n.endswith(".npy")]
        modalities = sum(n.startswith("x_train_") for n in members)
        if modalities > checks.MAX_MODALITIES:
            raise DataError(
                f"{where}: expected at most {checks.MAX_MODALITIES} modalities (x_train_<modality> keys), got "
                f"{modalities}; exact Shapley values evaluate all 2^M coalitions"
            )
        for member in members:
            key = member[: -len(".npy")]
            with z.open(member) as fh:
                version = npy.read_magic(fh)
                if version not in ((1, 0), (2, 0)):
                    continue  # a rarer header version: checked after loading
                read = npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0
                shape, _, dtype = read(fh)
            if dtype.hasobject:
                raise DataError(f"{where}: {key} holds Python objects; expected numbers (or strings for names)")
            if key.startswith(("x_", "y_")) and len(shape) >= 1 and shape[0] > checks.MAX_ROWS:
                raise DataError(f"{where}: {key}: expected at most {checks.MAX_ROWS:,} rows, got {shape[0]:,}")
            if key.startswith("x_") and len(shape) == 2 and shape[1] > checks.MAX_FEATURES:
                raise DataError(
                    f"{where}: {key}: expected at most {checks.MAX_FEATURES:,} features per modality, got {shape[1]:,}"
                )
            if int(np.prod(shape, dtype=np.float64)) > checks.MAX_VALUES:
                raise DataError(f"{where}: {key}: expected at most {checks.MAX_VALUES:,} values, got shape {shape}")


# -------------------------------------------------------------------------------------------------- validation
def _feature_list(xs, what: str):
    if xs is None:
        return None
    if isinstance(xs, np.ndarray) or not isinstance(xs, (list, tuple)):
        raise DataError(f"{what}: expected a list of per-modality arrays (N, D_m), got {type(xs).__name__}")
    return [_named_features(x, f"{what}[{m}]") for m, x in enumerate(xs)]


def _named_features(x, what: str):
    x = np.asarray(x)
    if x.dtype == object or not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise DataError(f"{what}: expected real-valued (float or integer) features, got dtype {x.dtype}")
    if x.ndim != 2:
        raise DataError(f"{what}: expected a 2-D array (N, D), got shape {x.shape}")
    if x.shape[1] > checks.MAX_FEATURES or x.shape[0] > checks.MAX_ROWS:
        raise DataError(
            f"{what}: expected at most {checks.MAX_ROWS:,} rows and {checks.MAX_FEATURES:,} features per modality, "
            f"got shape {x.shape}"
        )
    if x.dtype.itemsize > 4 and np.issubdtype(x.dtype, np.floating):  # the model computes in float32
        big = np.abs(x) > np.finfo(np.float32).max
        if np.any(big & np.isfinite(x)):
            raise DataError(f"{what}: values beyond float32's range (|x| > 3.4e38); the model computes in float32")
    return _read_only(x.astype(x.dtype if np.issubdtype(x.dtype, np.floating) else np.float32))


def _names(what: str, values) -> list:
    try:
        return checks.names(what, values)
    except ValueError as exc:
        raise DataError(str(exc)) from None


def _cut(text: str, limit: int = 100) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _labels(y, what: str):
    if y is None:
        return None
    y = np.asarray(y)
    if y.ndim != 1:
        raise DataError(f"{what}: expected a 1-D array of labels, got shape {y.shape}")
    if np.issubdtype(y.dtype, np.integer):
        return _read_only(y.astype(np.int64))
    if np.issubdtype(y.dtype, np.floating) and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
        return _read_only(y.astype(np.int64))  # integer-valued floats, e.g. labels stored as 0.0, 1.0, ...
    raise DataError(
        f"{what}: expected integer labels 0..K-1, got dtype {y.dtype}"
        + (" with non-integer values" if np.issubdtype(y.dtype, np.floating) else "")
    )


def _read_only(a: np.ndarray) -> np.ndarray:
    """``a`` (a fresh copy made by ``astype``) made read-only: what the Dataset checked cannot change afterwards."""
    a.flags.writeable = False
    return a


def validate_split(xs, y, input_dims=None, num_classes=None, split: str = "data") -> None:
    """Raise :class:`DataError` naming the problem for malformed inputs (host NumPy arrays)."""
    if not isinstance(xs, (list, tuple)) or len(xs) == 0:
        raise DataError(f"{split}: expected a non-empty list of per-modality arrays")
    if input_dims is not None and len(xs) != len(input_dims):
        raise DataError(f"{split}: expected {len(input_dims)} modalities, got {len(xs)}")
    y = np.asarray(y)
    if y.ndim != 1:
        raise DataError(f"{split} labels: expected a 1-D array, got shape {y.shape}")
    if len(y) == 0:
        raise DataError(f"{split}: the split is empty")
    if not np.issubdtype(y.dtype, np.integer):
        if not (np.issubdtype(y.dtype, np.floating) and np.all(np.isfinite(y)) and np.all(y == np.round(y))):
            raise DataError(f"{split} labels: expected integers 0..K-1, got dtype {y.dtype}")
    if y.min() < 0 or (num_classes is not None and y.max() >= num_classes):
        top = "K-1" if num_classes is None else num_classes - 1
        raise DataError(f"{split} labels: expected integers in 0..{top}, got values in {int(y.min())}..{int(y.max())}")
    for m, x in enumerate(xs):
        x = np.asarray(x)
        if x.ndim != 2:
            raise DataError(f"{split} modality {m}: expected a 2-D array (N, D), got shape {x.shape}")
        if np.iscomplexobj(x) or not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
            raise DataError(f"{split} modality {m}: expected real-valued features, got dtype {x.dtype}")
        if x.shape[0] != len(y):
            raise DataError(f"{split} modality {m}: expected {len(y)} rows (one per label), got {x.shape[0]}")
        if input_dims is not None and x.shape[1] != input_dims[m]:
            raise DataError(f"{split} modality {m}: expected {input_dims[m]} features, got {x.shape[1]}")
        if x.shape[1] == 0:
            raise DataError(f"{split} modality {m}: expected at least one feature, got shape {x.shape}")
        if not np.all(np.isfinite(x)):
            raise DataError(f"{split} modality {m}: contains NaN or inf features")
