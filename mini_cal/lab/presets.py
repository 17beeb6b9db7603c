"""Write the synthetic presets as ``.npz`` files with a manifest (parameters, sizes, checksums, Bayes accuracies).

Entry points: ``mini-cal data generate`` and ``python synthetic_data/generate.py``. The file layout is read back by
:func:`mini_cal.synthetic.load_file`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from .. import synthetic
from ..data import Dataset
from .io import write_json, write_npz

WRITTEN_PRESETS = ("default", "balanced", "corrupted", "three", "tiny")


def save_preset(ds: Dataset, path) -> None:
    """Write a generated dataset to ``path`` (.npz, compressed) atomically, with its config and Bayes accuracies."""
    arrays = {}
    for split in ("train", "val", "test"):
        xs, y = ds.split(split)
        for m, x in enumerate(xs):
            arrays[f"{split}_x{m}"] = x
        arrays[f"{split}_y"] = y
    arrays["clean_y_train"] = ds.clean_y_train
    arrays["corrupted_mask"] = ds.corrupted_mask
    arrays["meta"] = np.array(
        json.dumps({"name": ds.name, "config": synthetic.config_to_dict(ds.config), "bayes": ds.bayes})
    )
    write_npz(arrays, path, compressed=True)


def default_out_dir() -> Path:
    """Where ``data generate`` writes without ``--out``: ``$MINI_CAL_DATA``, else the source checkout's
    ``synthetic_data/`` when it is writable, else the user cache (never the installed package)."""
    env = os.environ.get("MINI_CAL_DATA")
    if env:
        return Path(env)
    repo = Path(synthetic.__file__).resolve().parent.parent / "synthetic_data"
    if (repo / "generate.py").is_file() and os.access(repo, os.W_OK):
        return repo
    return synthetic.cache_dir()


def write_presets(names=None, out_dir=None, log=print) -> dict:
    """Generate each preset deterministically and write it; returns the manifest."""
    names = list(names or WRITTEN_PRESETS)
    for name in names:
        synthetic.preset_config(name)  # fail before writing anything
    out = Path(out_dir) if out_dir else default_out_dir()
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out: {str(out)!r} is a file, expected a folder")
    out.mkdir(parents=True, exist_ok=True)
    manifest_path = out / "manifest.json"
    try:
        manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
        if not isinstance(manifest, dict):
            raise ValueError("not a JSON object")
    except (ValueError, OSError) as exc:
        if set(WRITTEN_PRESETS) - set(names):  # the other presets' checksums would be lost
            raise ValueError(
                f"manifest {str(manifest_path)!r} is damaged ({exc}); regenerate every preset with: "
                "mini-cal data generate"
            ) from None
        manifest = {}  # every preset is written below, each with its entry
    for name in names:
        ds = synthetic.generate(synthetic.preset_config(name), name=name)
        path = out / f"{name}.npz"
        save_preset(ds, path)
        manifest[name] = {
            "file": path.name,
            "bytes": path.stat().st_size,
            "sha256": synthetic.checksum(path),
            "sizes": {"train": ds.config.n_train, "val": ds.config.n_val, "test": ds.config.n_test},
            "input_dims": list(ds.input_dims),
            "bayes": ds.bayes,
            "config": synthetic.config_to_dict(ds.config),
        }
        log(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB): Bayes fused {ds.bayes['fused']:.4f}")
    write_text_sorted = json.loads(json.dumps(manifest, sort_keys=True))
    write_json(write_text_sorted, manifest_path)
    log(f"wrote {manifest_path}")
    return manifest
