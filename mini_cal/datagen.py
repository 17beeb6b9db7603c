"""Write the named presets as ``.npz`` files with a manifest (parameters, sizes, checksums, Bayes accuracies).

Entry point: ``python synthetic_data/generate.py`` or ``mini-cal data generate``.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from . import data

WRITTEN_PRESETS = ("default", "balanced", "corrupted", "three", "tiny")


def write_presets(names=None, out_dir=None, log=print) -> dict:
    """Generate each preset deterministically and write it; returns the manifest."""
    names = list(names or WRITTEN_PRESETS)
    for name in names:
        data.preset_config(name)  # fail before writing anything
    out = Path(out_dir) if out_dir else data.data_dir()
    out.mkdir(parents=True, exist_ok=True)
    manifest_path = out / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    for name in names:
        ds = data.generate(data.preset_config(name), name=name)
        path = out / f"{name}.npz"
        data.save(ds, path)
        manifest[name] = {
            "file": path.name,
            "bytes": path.stat().st_size,
            "sha256": data.checksum(path),
            "sizes": {"train": ds.config.n_train, "val": ds.config.n_val, "test": ds.config.n_test},
            "input_dims": list(ds.input_dims),
            "bayes": ds.bayes,
            "config": data.config_to_dict(ds.config),
        }
        log(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB): Bayes fused {ds.bayes['fused']:.4f}")
    tmp = manifest_path.with_name("manifest.json.tmp")
    tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, manifest_path)
    log(f"wrote {manifest_path}")
    return manifest
