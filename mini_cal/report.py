"""Markdown tables of results (what ``mini-cal`` prints)."""
from __future__ import annotations

import numpy as np


def fmt(values, digits: int = 3) -> str:
    """mean ± std of a list of numbers (just the number for one value; '-' for none)."""
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{np.mean(values):.{digits}f} ± {np.std(values, ddof=1):.{digits}f}"


def markdown_table(header, rows) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def train_table(result, dataset) -> str:
    """One run: fused metrics, per-modality coalition/probe accuracy and Shapley values, Bayes ceilings."""
    names = dataset.modality_names
    t = result.test
    rows = [["fused accuracy", f"{t['acc']:.3f}", f"{dataset.bayes.get('fused', float('nan')):.3f}"],
            ["fused macro-F1", f"{t['macro_f1']:.3f}", ""]]
    for m, name in enumerate(names):
        acc = t["coalition_acc"][m]
        rows.append([f"{name}: coalition accuracy", "-" if acc is None else f"{acc:.3f}",
                     f"{dataset.bayes.get(f'modality {m}', float('nan')):.3f}"])
        if result.probe_acc is not None and result.probe_acc[m] is not None:
            rows.append([f"{name}: linear-probe accuracy", f"{result.probe_acc[m]:.3f}", ""])
        if "shapley_acc" in t:
            rows.append([f"{name}: Shapley value of accuracy", f"{t['shapley_acc'][m]:.3f}", ""])
    head = (f"method {result.method} on {dataset.name}: best validation epoch {result.best_epoch + 1}, "
            f"val accuracy {result.val['acc']:.3f}, training time {result.train_time_s:.1f} s\n\n")
    return head + markdown_table(["test metric", "value", "Bayes-optimal"], rows)
