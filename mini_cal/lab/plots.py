"""Figures drawn from training histories and comparison records (matplotlib, Agg backend)."""

from __future__ import annotations

import os

import numpy as np

from ..methods import spec_of
from .io import save_figure


def _plt():
    import matplotlib.pyplot as plt  # headless machines fall back to the Agg backend by themselves

    return plt


def _mean_curve(records, method, getter):
    curves = [getter(r) for r in records if r["method"] == method]
    curves = [np.asarray(c, dtype=float) for c in curves if c is not None and len(c)]
    if not curves:
        return None
    n = min(len(c) for c in curves)
    return np.mean([c[:n] for c in curves], axis=0)


def _single(result: dict) -> dict:
    """{method: the one modality it trains} for the single-modality rows of a result."""
    from .experiments import single_modality

    M = len(result["modality_names"])
    return {n: single_modality(n, M) for n in result.get("single_modality", [])}


def _exposing(result: dict, key: str) -> list:
    """The methods whose declaration lists ``key`` among the diagnostics worth a figure."""
    return [m for m in result["methods"] if key in spec_of(m).diagnostics]


def coalition_accuracy_curves(result: dict, path) -> str:
    """Validation coalition accuracy of each modality per epoch, one panel per modality, mean over seeds."""
    plt = _plt()
    names = result["modality_names"]
    fig, axes = plt.subplots(1, len(names), figsize=(5 * len(names), 3.6), sharey=True)
    axes = np.atleast_1d(axes)
    single = _single(result)
    for m, ax in enumerate(axes):
        for method in result["methods"]:
            if method in single and single[method] != m:
                continue
            curve = _mean_curve(
                result["records"], method, lambda r, m=m: [e["val_coalition_acc"][m] for e in r["epochs"]]
            )
            if curve is not None:
                ax.plot(np.arange(1, len(curve) + 1), curve, label=method, ls="--" if method in single else "-")
        if f"modality {m}" in (result.get("bayes") or {}):
            ax.axhline(result["bayes"][f"modality {m}"], color="k", lw=0.8, ls=":", label="Bayes-optimal")
        ax.set_title(f"modality {names[m]}: coalition accuracy (validation)")
        ax.set_xlabel("epoch")
    axes[0].set_ylabel("accuracy")
    axes[-1].legend(fontsize=7, loc="lower right")
    return save_figure(fig, path)


def diagnostic_curves(result: dict, key: str, path, title: str, methods=None, ylabel: str = "") -> str | None:
    """Per-epoch mean of a per-modality per-step diagnostic (W, coef, kl, beta, branch_grad_norm)."""
    plt = _plt()
    names = result["modality_names"]
    methods = [
        m
        for m in (result["methods"] if methods is None else methods)
        if any(key in r["step_means"] for r in result["records"] if r["method"] == m)
    ]
    if not methods:
        return None
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    styles = ["-", "--", ":", "-."]
    for i, method in enumerate(methods):
        curve = _mean_curve(result["records"], method, lambda r: r["step_means"].get(key))
        if curve is None:
            continue
        curve = curve[:, None] if curve.ndim == 1 else curve  # (epochs, modalities)
        for m in range(curve.shape[1]):
            ax.plot(
                np.arange(1, len(curve) + 1),
                curve[:, m],
                ls=styles[m % 4],
                color=f"C{i}",
                label=f"{method}: {names[m]}",
            )
    ax.set_title(title)
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel or key)
    ax.legend(fontsize=7)
    return save_figure(fig, path)


# The per-step diagnostics drawn by compare: (history key, file, title, y label). Each figure shows the methods
# whose declaration lists the key among its diagnostics.
DIAGNOSTIC_FIGURES = (
    ("W", "contribution_W.png", "contribution weight W^m per epoch", "W^m"),
    ("coef", "gradient_coefficients.png", "gradient coefficient applied to each branch", "coefficient"),
    ("kl", "kl.png", "KL^m to N(0, I) per modality", "KL (nats)"),
    ("beta", "beta.png", "bottleneck weight beta^m", "beta^m"),
    (
        "branch_grad_norm",
        "gradient_norms.png",
        "per-branch gradient norm (after modulation, before clipping)",
        "||g_m||",
    ),
)


def comparison_figures(result: dict, out_dir) -> list:
    """Every figure of ``mini-cal compare``; returns the paths written."""
    os.makedirs(out_dir, exist_ok=True)
    paths = [coalition_accuracy_curves(result, os.path.join(out_dir, "coalition_accuracy.png"))]
    for key, name, title, ylabel in DIAGNOSTIC_FIGURES:
        path = os.path.join(out_dir, name)
        paths.append(diagnostic_curves(result, key, path, title, methods=_exposing(result, key), ylabel=ylabel))
    return [p for p in paths if p]


def robustness_figure(result: dict, path) -> str:
    """Accuracy vs noise level, one panel per attack x target, mean over seeds with a ±1 std band."""
    from ..noise import ATTACKS

    plt = _plt()
    names = result["modality_names"]
    single = _single(result)
    targets = [str(m) for m in range(len(names))] + ["all"]
    levels = np.asarray(result["levels"])
    fig, axes = plt.subplots(
        len(ATTACKS),
        len(targets),
        figsize=(4.2 * len(targets), 3.2 * len(ATTACKS)),
        sharex=True,
        sharey=True,
        squeeze=False,
    )
    for i, attack in enumerate(ATTACKS):
        for j, target in enumerate(targets):
            ax = axes[i, j]
            for k, method in enumerate(result["methods"]):
                curves = np.array([r["attacks"][attack][target] for r in result["records"] if r["method"] == method])
                mean, std = curves.mean(0), curves.std(0)
                ax.plot(levels, mean, color=f"C{k % 10}", label=method, ls="--" if method in single else "-")
                ax.fill_between(levels, mean - std, mean + std, color=f"C{k % 10}", alpha=0.12)
            label = "all modalities" if target == "all" else f"modality {names[int(target)]}"
            ax.set_title(f"{attack} on {label}", fontsize=9)
            if i == len(ATTACKS) - 1:
                ax.set_xlabel("noise level eps")
            if j == 0:
                ax.set_ylabel("test accuracy")
    axes[0, -1].legend(fontsize=6, loc="lower left")
    return save_figure(fig, path)
