"""Saving and loading trained models (parameters + the configuration that rebuilds the network).

Files are ``.npz`` archives with a JSON ``meta`` entry carrying ``format_version``; they are written atomically
(temporary file, then rename) so that an interrupted write never leaves a half-written file under the final name.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path

import numpy as np

from . import backend as B
from .model import Model, ModelConfig

MODEL_FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint file is missing, truncated, corrupted, of another format version or of another model."""


def atomic_savez(path, arrays: dict) -> None:
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def save_model(path, model: Model, params: dict, meta: dict | None = None) -> None:
    """Write a model's parameters and configuration (plus free-form ``meta``: method, seed, metrics...)."""
    info = {"format_version": MODEL_FORMAT_VERSION, "kind": "model", "model_config": asdict(model.config),
            **(meta or {})}
    arrays = {f"param/{k}": B.to_numpy(v) for k, v in params.items()}
    arrays["meta"] = np.array(json.dumps(info))
    atomic_savez(path, arrays)


def read_npz(path) -> tuple:
    """(meta dict, {name: array}) of a mini_cal ``.npz`` file, with clear errors for bad files."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
        meta = json.loads(str(arrays.pop("meta")))
    except Exception as exc:  # zipfile/ValueError/KeyError/JSON errors all mean the same to a user
        raise CheckpointError(f"checkpoint {str(path)!r} is truncated or corrupted ({type(exc).__name__}: {exc})") \
            from None
    return meta, arrays


def load_model(path, dtype: str = "float32") -> tuple:
    """(Model, params, meta) from a file written by :func:`save_model`."""
    meta, arrays = read_npz(path)
    if meta.get("kind") != "model" or meta.get("format_version") != MODEL_FORMAT_VERSION:
        raise CheckpointError(f"checkpoint {str(path)!r}: expected a model file of format version "
                              f"{MODEL_FORMAT_VERSION}, got kind {meta.get('kind')!r} version "
                              f"{meta.get('format_version')!r}")
    model = Model(ModelConfig(**meta["model_config"]))
    params = {k[len("param/"):]: B.asarray(v, dtype=dtype) for k, v in arrays.items() if k.startswith("param/")}
    expected = model.init_params(B.make_rng(0), dtype=dtype)
    for k, v in expected.items():
        if k not in params or tuple(params[k].shape) != tuple(v.shape):
            raise CheckpointError(f"checkpoint {str(path)!r}: parameter {k!r} missing or of the wrong shape")
    return model, params, meta
