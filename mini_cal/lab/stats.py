"""Statistics over seeds: per-method values from run records, and paired tests of one method against the others
(docs/method.md §6.7)."""

from __future__ import annotations

import numpy as np


def values(records: list, method: str, getter) -> list:
    """``getter(record)`` of every record of ``method``, in seed order."""
    rows = sorted((r for r in records if r["method"] == method), key=lambda r: r["seed"])
    return [getter(r) for r in rows]


def significance(records: list, methods: list, reference: str = "cal", metric: str = "acc", skip=()) -> list:
    """Paired tests of ``reference`` against each other method over seeds on test ``metric``: mean difference,
    wins/losses, paired t-test and Wilcoxon signed-rank p-values (scipy.stats). ``skip``: names left out (the
    single-modality rows)."""
    from scipy import stats

    if reference not in methods:
        return []
    ref = values(records, reference, lambda r: r["test"][metric])
    rows = []
    for name in methods:
        if name == reference or name in skip:
            continue
        other = values(records, name, lambda r: r["test"][metric])
        diff = np.asarray(ref) - np.asarray(other)
        t_p = float(stats.ttest_rel(ref, other).pvalue) if len(ref) > 1 and np.any(diff) else float("nan")
        try:
            w_p = float(stats.wilcoxon(ref, other).pvalue) if np.any(diff) else float("nan")
        except ValueError:
            w_p = float("nan")
        rows.append(
            {
                "baseline": name,
                "mean_diff": float(diff.mean()),
                "wins": int(np.sum(diff > 0)),
                "losses": int(np.sum(diff < 0)),
                "n": len(diff),
                "t_test_p": t_p,
                "wilcoxon_p": w_p,
            }
        )
    return rows
