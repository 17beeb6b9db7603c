"""Input checks, in one place. They run where input enters (Dataset construction, a method's constructor, the
training configuration, the command line), never inside the loop, the layers or the contribution maths.

Every check raises ``ValueError`` naming the argument, what was expected and what it got, and returns the value
converted (a float, an int, ...), so that a constructor can write ``self.lr = number("lr", lr, low=0)``.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

# Sizes, bounded where they enter so that a typo or a damaged file gives a short error instead of a hang or a
# MemoryError. Each limit is far above what the teaching experiments use (2-3 modalities, 10 classes, 64 features,
# widths 64 and 32) and below where the cost explodes:
MAX_MODALITIES = 8  # exact Shapley values (CAL's I(m), Shapley of accuracy) evaluate all 2^M coalitions: 256 at M = 8
MAX_CLASSES = 1000  # macro-F1's confusion matrix has K^2 cells and every logit array is (N, K)
MAX_FEATURES = 100_000  # per modality: the first layer holds D x hidden[0] weights (25 MB at width 64)
MAX_WIDTH = 4096  # hidden layers and the bottleneck: a layer holds width_in x width_out weights (64 MB at the limit)
MAX_ROWS = 10_000_000  # per split: one float32 feature is 40 MB at the limit, and every epoch visits every row
MAX_VALUES = 500_000_000  # per array: 2 GB of float32, whatever its rows x features (each bounded above too)
SHOWN = 10  # at most this many offending values are quoted in a message (a message stays a line, not a dump)


def number(name: str, value, *, low=None, high=None, low_open=False, high_open=False, integer=False):
    """``value`` as a float (an int with ``integer=True``) after checking that it is a real number (not a bool,
    NaN or inf) in the range [low, high] (``low_open``/``high_open``: the bound excluded)."""
    kind = "an integer" if integer else "a finite number"
    ok = (
        not isinstance(value, bool)
        and isinstance(value, numbers.Integral if integer else numbers.Real)
        and (integer or math.isfinite(value))
        and (low is None or (value > low if low_open else value >= low))
        and (high is None or (value < high if high_open else value <= high))
    )
    if not ok:
        lo = "" if low is None else f"{'>' if low_open else '>='} {low}"
        hi = "" if high is None else f"{'<' if high_open else '<='} {high}"
        bounds = " and ".join(b for b in (lo, hi) if b)
        raise ValueError(f"{name}: expected {kind}{' ' + bounds if bounds else ''}, got {short(value)}")
    return int(value) if integer else float(value)


def choice(name: str, value, allowed):
    """``value`` after checking that it is one of ``allowed``."""
    if isinstance(value, bool) or value not in allowed:
        raise ValueError(f"{name}: expected one of {tuple(allowed)}, got {short(value)}")
    return value


def flag(name: str, value) -> bool:
    """``value`` after checking that it is ``True`` or ``False``."""
    if not isinstance(value, bool):
        raise ValueError(f"{name}: expected true or false, got {short(value)}")
    return value


def widths(name: str, values, high: int = MAX_WIDTH, most: int | None = None) -> tuple:
    """A non-empty sequence (of at most ``most`` entries) of integers in 1..``high`` (layer widths, feature counts),
    as a tuple of ints."""
    if isinstance(values, (str, bytes)) or not hasattr(values, "__len__") or len(values) == 0:
        raise ValueError(f"{name}: expected a non-empty list of positive integers, got {short(values)}")
    if most is not None and len(values) > most:
        raise ValueError(f"{name}: expected at most {most} entries, got {len(values)}")
    return tuple(number(name, v, low=1, high=high, integer=True) for v in values)


def names(name: str, values) -> list:
    """A list of names (strings, or values shown as strings), not one string, which would be split into letters."""
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise ValueError(f"{name}: expected a list of names, got {short(values)}")
    return [str(v) for v in values]


def labels(name: str, values, num_classes: int):
    """``values`` as a 1-D int64 array after checking that they are integers (or integer-valued floats) in
    0..``num_classes - 1``; an empty list is allowed."""
    a = np.asarray(values)
    whole = a.dtype.kind in "iu" or (a.dtype.kind == "f" and bool(np.all(np.isfinite(a) & (a == np.round(a)))))
    if a.ndim != 1 or not (whole or a.size == 0) or (a.size and (a.min() < 0 or a.max() >= num_classes)):
        raise ValueError(f"{name}: expected a 1-D list of integer labels in 0..{num_classes - 1}, got {short(values)}")
    return a.astype(np.int64)


def train_arguments(method, dataset, config, kinds) -> None:
    """What :func:`mini_cal.train.train` is given: a Method, a Dataset and a TrainConfig or None (``kinds``: those
    three classes, passed in: this module imports none of the library)."""
    Method, Dataset, TrainConfig = kinds
    if not isinstance(method, Method):
        hint = f"make_method({method!r})" if isinstance(method, str) else "make_method(name)"
        raise ValueError(f"method: expected a Method (e.g. {hint}), got {short(method)}")
    if not isinstance(dataset, Dataset):
        raise ValueError(f"dataset: expected a Dataset (from_arrays, load_npz or load_preset), got {short(dataset)}")
    if config is not None and not isinstance(config, TrainConfig):
        raise ValueError(f"config: expected a TrainConfig (or None for the defaults), got {short(config)}")


def short(value, limit: int = 80) -> str:
    """``repr(value)``, cut to ``limit`` characters: what a message quotes of a value that may be huge."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def modality_arrays(name: str, xs, input_dims) -> int:
    """A list of one (N, D_m) array per modality, every one with the same N; returns N."""
    M = len(input_dims)
    if not isinstance(xs, (list, tuple)) or len(xs) != M:
        got = len(xs) if isinstance(xs, (list, tuple)) else type(xs).__name__
        raise ValueError(f"{name}: expected a list of {M} modality arrays, got {got}")
    n = None
    for m, x in enumerate(xs):
        if len(getattr(x, "shape", ())) != 2 or x.shape[1] != input_dims[m]:
            raise ValueError(f"{name}[{m}]: expected shape (N, {input_dims[m]}), got {getattr(x, 'shape', None)}")
        if n is not None and x.shape[0] != n:
            raise ValueError(f"{name}[{m}]: expected {n} rows like {name}[0], got {x.shape[0]}")
        n = x.shape[0]
    return n
