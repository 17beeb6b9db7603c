"""Example data files built from a small real dataset that installs with a package (never a download at run time).

``make_example("digits", out)`` writes one ``.npz`` in the format of :func:`mini_cal.data.load_npz` (README
"Your own data"), ready for ``mini-cal train/sweep/compare --data FILE``. It needs scikit-learn, whose wheel ships
the dataset: ``pip install -e '.[example]'``. A copy of the file is committed as ``docs/data/digits_two_views.npz``
(the tutorial ``09_your_own_data.ipynb`` reads it, so it runs without scikit-learn); ``make_example`` rewrites it
byte for byte.

``digits`` (two views of one handwritten digit, learned at different speeds):

* source: :func:`sklearn.datasets.load_digits`, a copy of the *test* set of "Optical Recognition of Handwritten
  Digits" (E. Alpaydin, C. Kaynak, 1998; UCI Machine Learning Repository, dataset 80,
  https://archive.ics.uci.edu/dataset/80, licensed CC BY 4.0 there; redistributed in scikit-learn, BSD-3-Clause):
  1797 images of 8x8 ink counts (integers 0..16, each the number of inked pixels in a 4x4 block of a 32x32 bitmap),
  10 classes (digits 0..9);
* view ``pixels`` (64 features): the 8x8 image, row by row, as ink fractions ``count / 16`` in [0, 1];
* view ``profiles`` (16 features): the image's 8 row means then its 8 column means of the same ink fractions (a
  cheap handcrafted view: the ink profile along each axis), also in [0, 1]. Both views are in the same unit and
  neither was rescaled to create the imbalance, but the imbalance depends on that unit. Measured with the library
  defaults (``mini-cal train --data FILE --method unimodal --modality M --epochs N``, seed 0; test accuracy):
  ``pixels`` 0.861 / 0.930 / 0.967 and ``profiles`` 0.652 / 0.808 / 0.911 after 3 / 10 / 40 epochs, and joint
  training leaves ``profiles`` near chance as a coalition (docs/results/digits/table.md). With every feature
  standardised the gap mostly closes, and with row *sums* instead of means the profiles start faster
  (docs/results/digits/README_section.md). ``profiles`` is a linear function of ``pixels``: it brings no information
  the pixels lack, only a coarser summary of them, so fusion has little to gain over a good pixel model;
* splits: the rule :func:`mini_cal.data.from_arrays` applies to data without val/test (stratified by class,
  ``data.SPLIT_SEED`` = 0: ``test`` 20 % of each class, then ``val`` 20 % of each class of the rest):
  train/val/test = 1151/287/359, written out here so that the file alone defines the split.
  The images carry no writer id, so one writer's images (13 writers in all) can fall in several splits: test
  accuracy is writer-dependent, like the UCI authors' validation set, not their writer-independent test;
* arrays: ``x_<split>_pixels`` (N, 64) and ``x_<split>_profiles`` (N, 16) float32 (exact: every value is a multiple of
  1/128), ``y_<split>`` int64, ``modalities`` = ["pixels", "profiles"], ``classes`` = ["0", ..., "9"]; stored
  uncompressed (about 0.6 MB), so that the file's bytes depend on nothing but these arrays.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data import from_arrays
from .io import write_npz

EXAMPLES = {
    "digits": "scikit-learn's 8x8 handwritten digits (1797 images, 10 classes; UCI optdigits test set, CC BY 4.0) as "
    "two views: 'pixels' (64 ink fractions) and 'profiles' (8 row + 8 column mean ink), which mini_cal's "
    "unimodal training learns at clearly different speeds; stratified 1151/287/359 split, seed 0",
}
DEFAULT_FILES = {"digits": "digits_two_views.npz"}
INSTALL_HINT = "pip install -e '.[example]'  (or: pip install 'scikit-learn>=1.3')"


def digits_views(images) -> dict:
    """The two views of 8x8 ink-count images ``(N, 8, 8)`` (integers 0..16): ``{"pixels": (N, 64),
    "profiles": (N, 16)}``, float32 ink fractions in [0, 1] (the profiles: 8 row means, then 8 column means)."""
    ink = np.asarray(images, dtype=np.float64) / 16.0
    if ink.ndim != 3 or ink.shape[1:] != (8, 8):
        raise ValueError(f"images: expected shape (N, 8, 8), got {ink.shape}")
    pixels = ink.reshape(len(ink), 64)
    profiles = np.concatenate([ink.mean(axis=2), ink.mean(axis=1)], axis=1)
    return {"pixels": pixels.astype(np.float32), "profiles": profiles.astype(np.float32)}


def _load_digits():
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise ImportError(
            "the 'digits' example needs scikit-learn, whose wheel ships the dataset (no download): "
            f"install the 'example' extra: {INSTALL_HINT}"
        ) from None
    d = load_digits()
    return d.images, d.target


def example_arrays(name: str = "digits") -> dict:
    """The arrays of example ``name``, keyed as in the ``.npz`` file (``x_<split>_<view>``, ``y_<split>``,
    ``modalities``, ``classes``). Raises ImportError naming the ``example`` extra when scikit-learn is missing."""
    if name not in EXAMPLES:
        raise ValueError(f"example: expected one of {sorted(EXAMPLES)}, got {name!r}")
    images, y = _load_digits()
    views = digits_views(images)
    # the split load_npz would make (mini_cal.data.from_arrays: stratified, seed 0), written into the file
    ds = from_arrays(views, np.asarray(y, dtype=np.int64))
    arrays = {}
    for split in ("train", "val", "test"):
        xs, y_split = ds.split(split)
        for view, x in zip(views, xs):
            arrays[f"x_{split}_{view}"] = np.ascontiguousarray(x)
        arrays[f"y_{split}"] = y_split
    arrays["modalities"] = np.array(list(views))
    arrays["classes"] = np.array([str(k) for k in range(10)])
    return arrays


def make_example(name: str = "digits", out=None) -> Path:
    """Write example ``name`` (see :data:`EXAMPLES`) as an ``.npz`` for ``--data`` and return its path.

    ``out``: the file to write (its folder is created), or an existing folder (the file is then
    ``DEFAULT_FILES[name]`` inside it); default ``DEFAULT_FILES[name]`` in the current folder. The write is atomic
    and the bytes are the same on every call. Raises ImportError (naming ``pip install -e '.[example]'``) when
    scikit-learn is missing, ValueError for an unknown name.
    """
    if name not in EXAMPLES:
        raise ValueError(f"example: expected one of {sorted(EXAMPLES)}, got {name!r}")
    path = Path(out) if out is not None else Path(DEFAULT_FILES[name])
    if path.is_dir():
        path = path / DEFAULT_FILES[name]
    arrays = example_arrays(name)  # before touching the disk: a missing scikit-learn writes nothing
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_npz(arrays, path)
