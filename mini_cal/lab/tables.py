"""Every markdown table ``mini-cal`` prints or writes: one run, a comparison, significance, configurations,
robustness, a sweep."""

from __future__ import annotations

import numpy as np

from ..methods import VARIANTS
from ..noise import ATTACKS, auc
from .stats import values


def fmt(numbers, digits: int = 3) -> str:
    """mean ± std of a list of numbers (just the number for one value; '-' for none)."""
    numbers = [v for v in numbers if v is not None]
    if not numbers:
        return "-"
    if len(numbers) == 1:
        return f"{numbers[0]:.{digits}f}"
    return f"{np.mean(numbers):.{digits}f} ± {np.std(numbers, ddof=1):.{digits}f}"


def markdown_table(header, rows) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def train_table(result, dataset) -> str:
    """One run: fused metrics, per-modality coalition/probe accuracy and Shapley values, Bayes ceilings."""
    names = dataset.modality_names
    t = result.test

    def bayes(key):
        return f"{dataset.bayes[key]:.3f}" if key in dataset.bayes else ""

    rows = [["fused accuracy", f"{t['acc']:.3f}", bayes("fused")], ["fused macro-F1", f"{t['macro_f1']:.3f}", ""]]
    for m, name in enumerate(names):
        acc = t["coalition_acc"][m]
        rows.append([f"{name}: coalition accuracy", "-" if acc is None else f"{acc:.3f}", bayes(f"modality {m}")])
        if result.probe_acc is not None and result.probe_acc[m] is not None:
            rows.append([f"{name}: linear-probe accuracy", f"{result.probe_acc[m]:.3f}", ""])
        if "shapley_acc" in t:
            rows.append([f"{name}: Shapley value of accuracy", f"{t['shapley_acc'][m]:.3f}", ""])
    head = (
        f"method {result.method} on {dataset.name}: best validation epoch {result.best_epoch + 1} of "
        f"{result.config.epochs} (best_epoch {result.best_epoch} in --json and the history, which count from 0), "
        f"val accuracy {result.val['acc']:.3f}, training time {result.train_time_s:.1f} s\n\n"
    )
    header = ["test metric", "value", "Bayes-optimal"] if dataset.bayes else ["test metric", "value"]
    return head + markdown_table(header, [r[: len(header)] for r in rows])


def results_table(result: dict) -> str:
    """Markdown table, mean ± std over seeds, plus the Bayes-optimal row."""
    names = result["modality_names"]
    M = len(names)
    header = (
        ["method", "fused acc", "macro-F1"]
        + [f"{n} coalition acc" for n in names]
        + [f"{n} probe acc" for n in names]
        + [f"{n} Shapley" for n in names]
        + ["imbalance", "time (s)"]
    )
    b = result.get("bayes") or {}
    rows = (
        []
        if "fused" not in b
        else [
            ["Bayes-optimal", f"{b['fused']:.3f}", ""]
            + [f"{b[f'modality {m}']:.3f}" for m in range(M)]
            + [""] * (2 * M + 2)
        ]
    )  # only where the Bayes-optimal accuracy is known (synthetic data)
    recs = result["records"]
    for name in result["methods"]:

        def get(f, name=name):
            return values(recs, name, f)

        row = [name, fmt(get(lambda r: r["test"]["acc"])), fmt(get(lambda r: r["test"]["macro_f1"]))]
        row += [fmt(get(lambda r, m=m: r["test"]["coalition_acc"][m])) for m in range(M)]
        row += [fmt(get(lambda r, m=m: (r["probe_acc"] or [None] * M)[m])) for m in range(M)]
        row += [fmt(get(lambda r, m=m: r["test"].get("shapley_acc", [None] * M)[m])) for m in range(M)]
        row += [fmt(get(lambda r: r.get("imbalance"))), fmt(get(lambda r: r["train_time_s"]), 1)]
        rows.append(row)
    return markdown_table(header, rows)


def significance_table(result: dict, key: str = "significance", reference: str = "cal") -> str:
    if not result.get(key):
        return f"({reference} is not in this comparison)"
    rows = [
        [
            s["baseline"],
            f"{s['mean_diff']:+.3f}",
            f"{s['wins']}/{s['losses']}/{s['n'] - s['wins'] - s['losses']}",
            f"{s['t_test_p']:.3g}",
            f"{s['wilcoxon_p']:.3g}",
        ]
        for s in result[key]
    ]
    return markdown_table([f"{reference} vs", "mean diff (acc)", "wins/losses/ties", "paired t p", "Wilcoxon p"], rows)


def contribution_table(result: dict) -> str:
    """CAL-family rows: the contribution weight W^m that steered training (``W``), the metric's measurement
    (``W_metric``: on held-out data for the held-out variants) and the training batch's (``W_train``), each the
    mean over seeds of the mean over post-warm-up epochs of the per-step values. Empty when no row records W."""
    names = result["modality_names"]
    rows = []
    for name in result["methods"]:
        recs = [r for r in result["records"] if r["method"] == name and "W_metric" in r.get("step_means", {})]
        if not recs:
            continue
        row = [name]
        for key in ("W", "W_metric", "W_train"):
            per_seed = []
            for r in recs:
                series = r["step_means"].get(key)
                if series:
                    start = min(int(r.get("hparams", {}).get("warmup_epochs", 0)), len(series) - 1)
                    per_seed.append(np.mean(np.asarray(series[start:], dtype=float), axis=0))
            row.append(" / ".join(f"{v:.3f}" for v in np.mean(per_seed, axis=0)) if per_seed else "-")
        rows.append(row)
    if not rows:
        return ""
    who = " / ".join(names)
    return (
        "\n\n### Contribution weights (mean over seeds and post-warm-up epochs, "
        + who
        + ")\n\n"
        + markdown_table(["method", "W used", "W measured (held-out for W-val rows)", "W on the training batch"], rows)
    )


def config_table(result: dict) -> str:
    rows = []
    for name in result["methods"]:
        cfg = dict(values(result["records"], name, lambda r: r["config"])[0])
        fixed = {k: v for k, v in VARIANTS.get(name, ("", {}))[1].items() if k not in ("name", "modality")}
        cfg.update(fixed)  # a variant's own flags win over the tuned configuration
        rows.append([name, ", ".join(f"{k}={v}" for k, v in sorted(cfg.items())) or "(defaults)"])
    return markdown_table(["method", "configuration (tuned on validation)"], rows)


def robustness_auc_summary(result: dict, stat: str = "auc") -> str:
    """One row per method and a column per attack x target, mean ± std over seeds, of ``stat``: ``auc`` (the
    normalised area under the accuracy-vs-level curve) or ``drop`` (clean accuracy minus accuracy at eps = 10,
    how much the attack costs whatever the clean level)."""
    if stat not in ("auc", "drop"):
        raise ValueError(f"stat: expected 'auc' or 'drop', got {stat!r}")
    measure = (lambda c: auc(result["levels"], c)) if stat == "auc" else (lambda c: c[0] - c[-1])
    names = result["modality_names"]
    targets = [str(m) for m in range(len(names))] + ["all"]
    short = {"gaussian": "gauss", "salt_pepper": "s&p", "missing": "missing"}
    header = ["method"] + [f"{short[a]} {'all' if t == 'all' else names[int(t)]}" for a in ATTACKS for t in targets]
    rows = []
    for method in result["methods"]:
        row = [method]
        for name in ATTACKS:
            for target in targets:
                curves = values(result["records"], method, lambda r, a=name, t=target: r["attacks"][a][t])
                row.append(fmt([measure(c) for c in curves]))
        rows.append(row)
    return markdown_table(header, rows)


def robustness_tables(result: dict, shown_levels=(0, 2, 4, 6, 8, 10)) -> str:
    """One markdown table per attack x target: accuracy at some levels and the normalised AUC, mean ± std."""
    names = result["modality_names"]
    levels = result["levels"]
    parts = []
    for name in ATTACKS:
        for target in [str(m) for m in range(len(names))] + ["all"]:
            label = "all modalities" if target == "all" else f"modality {names[int(target)]}"
            rows = []
            for method in result["methods"]:
                curves = values(result["records"], method, lambda r, a=name, t=target: r["attacks"][a][t])
                row = [method] + [fmt([c[levels.index(lv)] for c in curves]) for lv in shown_levels]
                row.append(fmt([auc(levels, c) for c in curves]))
                rows.append(row)
            parts.append(
                f"#### {name} on {label}\n\n"
                + markdown_table(["method"] + [f"eps={lv}" for lv in shown_levels] + ["AUC"], rows)
            )
    return "\n\n".join(parts)


def sweep_table(result: dict) -> str:
    """Every configuration tried by ``sweep`` with its mean validation accuracy; the chosen one marked."""
    rows = [
        [
            t["method"],
            ", ".join(f"{k}={v}" for k, v in sorted(t["config"].items())),
            f"{t['val_acc']:.4f}",
            "<- chosen" if result["chosen"][t["method"]] == t["config"] else "",
        ]
        for t in result["trials"]
    ]
    return markdown_table(["method", "configuration", "val acc (mean over sweep seeds)", ""], rows)
