"""The per-step history a training run records, and its per-epoch means (for figures and results files)."""

from __future__ import annotations

import math

import numpy as np

from . import backend as B


def record_step(run, epoch: int, lo, diag: dict, norm: float, sq: dict, sums: dict) -> dict:
    """Add the step's loss terms to the epoch sums and, with ``record_steps``, a row to ``history["steps"]``;
    returns what the hooks see (``terms``: the loss terms with the total as ``loss``)."""
    terms = {"loss": B.to_float(lo.total), **lo.terms}
    for k, v in terms.items():
        sums[k] = sums.get(k, 0.0) + v
    branch_norms = [math.sqrt(sum(sq[k] for k in run.model.branch_keys(m))) for m in range(run.model.M)]
    row = {
        "epoch": epoch,
        "step": run.step,
        **terms,
        **lo.diagnostics,
        **diag,
        "grad_norm": norm,
        "branch_grad_norm": branch_norms,
    }
    if run.config.record_steps:
        run.history["steps"].append(_jsonable(row))  # a copy: the "terms" added below stay out of the history
    row["terms"] = lo.terms
    return row


def epoch_means(steps: list) -> dict:
    """Per-epoch means of each per-step diagnostic (lists stay per modality): {name: [[...] per epoch]}."""
    by_epoch = {}
    for row in steps:
        by_epoch.setdefault(row["epoch"], []).append(row)
    out = {}
    for epoch in sorted(by_epoch):
        rows = by_epoch[epoch]
        for key in rows[0]:
            if key in ("epoch", "step"):
                continue
            values = [r[key] for r in rows if key in r]
            try:
                out.setdefault(key, []).append(np.mean(np.asarray(values, dtype=float), axis=0).tolist())
            except (TypeError, ValueError):
                continue
    return out


def _jsonable(row: dict) -> dict:
    out = {}
    for k, v in row.items():
        if isinstance(v, np.ndarray):
            out[k] = v.tolist()
        elif isinstance(v, (np.floating, np.integer)):
            out[k] = v.item()
        elif isinstance(v, (list, tuple)):
            out[k] = [x.item() if isinstance(x, (np.floating, np.integer)) else x for x in v]
        else:
            out[k] = v
    return out
