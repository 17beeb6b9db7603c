"""Notebook 01 (the imbalance problem): the checker of its exercise (the effective learning rate of a branch whose
inputs are scaled by s), a results-file loader, and its figures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from . import grading as G
from . import plots

RESULTS = Path(__file__).resolve().parents[1] / "data" / "compare_default.json"


# -------------------------------------------------------------------------------- exercise: effective lr
def _output_change(x, w, dout, lr, s):
    """The change of out = (s x) w after one SGD step on w with learning rate lr, for the upstream gradient dout."""
    grad = (s * x).T @ dout  # dL/dw for out = (s x) w
    return (s * x) @ (w - lr * grad) - (s * x) @ w


@G.checker
def check_effective_lr(fn, seed: int = 0) -> G.Result:
    """Grade ``fn(lr, s) -> lr_eff``: the learning rate at which one SGD step on a linear map fed the *unscaled*
    inputs x changes its output as much as a step with ``lr`` does when the inputs are ``s * x``.

    The checker measures it: it takes one step on out = (s x) w with ``lr``, one on out = x w' with the student's
    ``lr_eff``, and compares the two output changes, for several ``(lr, s)``.
    """
    rng = np.random.default_rng(seed)
    x, w, dout = rng.standard_normal((8, 5)), rng.standard_normal((5, 3)), rng.standard_normal((8, 3))
    cases = [(0.05, 0.03), (0.1, 0.03), (0.05, 0.5), (0.2, 2.0), (0.01, 10.0)]
    measured = {}
    for lr, s in cases:
        where = f"for lr = {lr}, s = {s}"
        got, failure = G.call_student(fn, lr, s, where=where)
        if failure:
            return G.failed(failure)
        try:
            got = float(got)
        except (TypeError, ValueError):
            return G.failed(f"FAILED {where}: expected a number, got {type(got).__name__}.")
        target = _output_change(x, w, dout, lr, s)
        reached = _output_change(x, w, dout, got, 1.0)
        ratio = float(np.sum(reached * target) / np.sum(target * target))  # how much of the change your lr makes
        measured[(lr, s)] = ratio
        if abs(ratio - 1.0) > 1e-6:
            return G.failed(f"FAILED {where}: {_effective_lr_mistake(got, lr, s, ratio)}", measured=measured)
    return G.passed(
        f"in all {len(cases)} cases a step with your learning rate on the unscaled inputs changes the "
        f"output exactly as much as a step with lr on the scaled ones.",
        measured=measured,
    )


def _effective_lr_mistake(got, lr, s, ratio):
    tell = f"your {got:.3g} changes the output {ratio:.3g} times as much as lr = {lr} on inputs scaled by {s}"
    if np.isclose(got, lr * s):
        return (
            f"{tell}: you have one factor s, the one in the gradient (dL/dw = (s x)^T dout). The step dw "
            f"reaches the output through the scaled input too."
        )
    if np.isclose(got, lr / s**2) or np.isclose(got, lr / s):
        return (
            f"{tell}: the factor is inverted. Smaller inputs give smaller gradients, and a weight change "
            f"fed smaller inputs moves the output less."
        )
    if np.isclose(got, lr):
        return f"{tell}: the scale s changes both the gradient and how much a weight change moves the output."
    return f"{tell}. Follow s through the gradient of w, then through the effect of the step on the output."


# --------------------------------------------------------------------------------------------- results file
def load_results(path=RESULTS):
    """The 10-seed results file (written by ``tutorials/course/make_results.py``), or None if it is missing."""
    path = Path(path)
    return json.loads(path.read_text()) if path.exists() else None


def seed_values(results, method, get):
    """Per-seed values ``get(row)`` of ``method`` in the results file."""
    return np.array([get(row) for row in results["per_seed"][method]], dtype=float)


# --------------------------------------------------------------------------------------------------- helpers
def curves(results, get):
    """(seeds, epochs) array of ``get(epoch row)`` from each run's per-epoch history."""
    return np.array([[get(row) for row in r.history["epochs"]] for r in results])


def step_means(results, get):
    """Per-step ``get(step row)``, averaged over seeds."""
    return np.array([[get(row) for row in r.history["steps"]] for r in results]).mean(0)


def smooth(values, window=20):
    return np.convolve(values, np.ones(window) / window, mode="valid")


def print_table(runs):
    """One line per entry of ``runs`` ({label: [TrainResult per seed]}): test accuracy of the prediction, each
    modality's coalition accuracy and linear probe (mean over seeds, '-' where a branch was not trained), the
    kept epochs and the seconds per run."""
    n = len(next(iter(runs.values())))
    print(f"test accuracy, mean over {n} seed(s); '-' where a branch was not trained")
    width = max(len(label) for label in runs) + 2
    print(
        f"{'run':<{width}}{'prediction':>11}{'coal. A':>9}{'coal. V':>9}{'probe A':>9}{'probe V':>9}"
        f"{'kept epochs':>13}{'s/run':>7}"
    )
    for label, results in runs.items():
        trained = [m for m in range(2) if results[0].probe_acc[m] is not None]
        mean = lambda get: f"{np.mean([get(r) for r in results]):.3f}"
        cells = [mean(lambda r: r.test["acc"])]
        cells += [mean(lambda r, m=m: r.test["coalition_acc"][m]) if m in trained else "-" for m in range(2)]
        cells += [mean(lambda r, m=m: r.probe_acc[m]) if m in trained else "-" for m in range(2)]
        kept = ",".join(str(r.best_epoch + 1) for r in results)
        seconds = np.mean([r.train_time_s for r in results])
        print(f"{label:<{width}}{cells[0]:>11}" + "".join(f"{c:>9}" for c in cells[1:]) + f"{kept:>13}{seconds:>7.2f}")


# --------------------------------------------------------------------------------------------------- figures
def plot_projections(proj_a, proj_v, y, num_classes, path=None):
    """Figure 1: A in the plane of its class means; V on the same axes; V zoomed in."""
    fig, axes = plots.figure(ncols=3, width=10, height=3.9)
    colors = [f"C{k}" for k in range(num_classes)]
    panels = [
        (proj_a, "A, in the plane of its class means", ("A: class-mean direction 1", "A: direction 2")),
        (proj_v, "V, on the same axes as A", ("V: class-0 spread direction", "V: class-1 direction")),
        (proj_v, "V, zoomed in", ("V: class-0 spread direction", "V: class-1 direction")),
    ]
    lim_a, lim_v = 1.05 * np.abs(proj_a).max(), 1.05 * np.abs(proj_v).max()
    for ax, (p, title, (xlabel, ylabel)), lim in zip(axes, panels, (lim_a, lim_a, lim_v)):
        for k in range(num_classes):
            ax.scatter(p[y == k, 0], p[y == k, 1], s=3, alpha=0.5, color=colors[k], label=f"class {k}")
        ax.set(title=title, xlabel=xlabel, ylabel=ylabel, xlim=(-lim, lim), ylim=(-lim, lim), aspect="equal")
    axes[1].legend(markerscale=4, loc="upper left", fontsize=9)
    fig.suptitle("Figure 1. The default preset's training data, projected onto informative directions")
    plots.finish(fig, path)


def plot_validation_curves(epochs, panels, chance, path=None):
    """Figure 2: per-epoch validation accuracy; ``panels`` = [(title, bayes, [(label, (seeds, epochs) array,
    color, linestyle)])]; thin lines per seed, a bold mean."""
    fig, axes = plots.figure(ncols=len(panels), width=10, height=5.2, sharey=True)
    for ax, (title, bayes, lines) in zip(axes, panels):
        for label, c, color, ls in lines:
            for row in c:
                ax.plot(epochs, row, color=color, ls=ls, alpha=0.25, lw=1)
            ax.plot(epochs, c.mean(0), color=color, ls=ls, lw=2, label=label)
        ax.axhline(bayes, ls="--", color="k", lw=1, label=f"Bayes-optimal ({bayes:.2f})")
        ax.axhline(chance, ls=":", color="grey", lw=1, label="chance")
        ax.set(title=title, xlabel="epoch", ylim=(0, 1))
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.17), fontsize=9)
    axes[0].set_ylabel("validation accuracy")
    fig.suptitle("Figure 2. Validation accuracy per epoch: joint training against each modality alone")
    plots.finish(fig, path)


def plot_dots(rows, chance, title, path=None):
    """A dot plot on a zero-based axis: ``rows`` = [(label, per-seed values, color)]; one small dot per seed, a
    bar-free mean marker, the value written next to it."""
    fig, ax = plots.figure(width=9, height=0.36 * len(rows) + 1.2)
    for i, (label, values, color) in enumerate(rows):
        values = np.atleast_1d(values)
        ax.scatter(values, np.full(len(values), i), s=14, color=color, alpha=0.5, zorder=2)
        ax.scatter([values.mean()], [i], s=70, marker="D", color=color, zorder=3)
        ax.text(max(values.max(), values.mean()) + 0.02, i, f"{values.mean():.2f}", va="center", fontsize=9)
    ax.axvline(chance, ls=":", color="grey", lw=1)
    ax.text(chance + 0.005, len(rows) - 0.5, "chance", color="grey", fontsize=9)
    ax.set_yticks(range(len(rows)), [r[0] for r in rows])
    ax.set(xlim=(0, 1.05), ylim=(len(rows) - 0.4, -0.6), xlabel="test accuracy (diamond: mean; dots: seeds)")
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(title)
    plots.finish(fig, path)


def plot_mechanism(x_epochs, grads, epochs, losses, log_k, path=None):
    """Figure 3: per-step branch gradient norms (left) and per-epoch training loss (right)."""
    fig, (left, right) = plots.figure(ncols=2, width=10, height=4.8)
    for label, (values, color, ls) in grads.items():
        left.plot(x_epochs, values, color=color, ls=ls, label=label)
    left.set(
        yscale="log",
        xlabel="epoch",
        ylabel="gradient norm of the branch's parameters",
        title="branch gradient norms (20-step average)",
    )
    left.legend(fontsize=9, loc="upper center", bbox_to_anchor=(0.5, -0.17), ncol=2)
    for label, (values, color, ls) in losses.items():
        right.plot(epochs, values, color=color, ls=ls, label=label)
    right.axhline(log_k, ls=":", color="grey", lw=1, label="log K (uniform guess)")
    right.set(
        xlabel="epoch", ylabel="training loss (mean over the epoch)", title="training loss per epoch", ylim=(0, None)
    )
    right.legend(fontsize=9, loc="upper center", bbox_to_anchor=(0.5, -0.17), ncol=2)
    fig.suptitle("Figure 3. The mechanism: V's gradients are small, and A drives the shared loss down without V")
    plots.finish(fig, path)


def plot_control(epochs, panels, chance, path=None):
    """Figure 5: [(title, bayes, [(label, mean curve, color, ls)])] for the standardised-V control."""
    fig, axes = plots.figure(ncols=len(panels), width=10, height=4.9, sharey=True)
    for ax, (title, bayes, lines) in zip(axes, panels):
        for label, values, color, ls in lines:
            ax.plot(epochs, values, color=color, ls=ls, label=label)
        ax.axhline(bayes, ls="--", color="k", lw=1, label=f"Bayes-optimal ({bayes:.2f})")
        ax.axhline(chance, ls=":", color="grey", lw=1)
        ax.set(title=title, xlabel="epoch", ylim=(0, 1))
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.17), fontsize=9)
    axes[0].set_ylabel("validation accuracy (mean over seeds)")
    fig.suptitle("Figure 5. Control: with V standardised, joint training uses V")
    plots.finish(fig, path)


# ------------------------------------------------------------------------------------------- projections
def projections(xa, xv, y, num_classes):
    """Two informative 2-D views of the training data: A in the plane of its class means; V on the directions along
    which class 0 and class 1 spread more than the data as a whole (each V class is a +/- pair of clusters, so its
    mean sits at the origin and a class-mean plane would show nothing). Returns (proj_a, proj_v), each (N, 2)."""
    means_a = np.stack([xa[y == k].mean(0) for k in range(num_classes)])
    _, _, vt = np.linalg.svd(means_a - means_a.mean(0))
    second_moment = xv.T @ xv / len(xv)

    def spread_direction(k):  # top eigenvector of the class's second-moment matrix minus the overall one
        xk = xv[y == k]
        return np.linalg.eigh(xk.T @ xk / len(xk) - second_moment)[1][:, -1]

    return xa @ vt[:2].T, xv @ np.stack([spread_direction(0), spread_direction(1)]).T
