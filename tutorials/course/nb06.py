"""Notebook 06 (noise robustness): checkers for its two exercises, its figures, and the script that writes its
five-seed robustness results file.

Exercises (each checker returns a :class:`course.grading.Result` and never raises):

* :func:`check_gaussian_attack` - ``fn(x, eps, seed=0, p_attack=0.5) -> (x_attacked, attacked)``: the Gaussian
  attack on ONE modality's array ``x`` (N, D), with common random numbers across levels. The checker tests the
  properties the attack must have (it cannot ask for the library's exact random draws): a copy, the attacked share,
  untouched clean rows, the same samples and the same noise at every level, the noise's scale per feature;
* :func:`check_auc` - ``fn(levels, accs) -> float``: the normalised area under an accuracy-vs-level curve.

Results file: ``python tutorials/course/nb06.py`` trains joint, ARL and CAL (tuned) for five seeds on the default
preset, attacks each model with every attack, target and level, and writes :data:`RESULTS` (about a minute).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # run as a script: make `course` and `mini_cal` importable
    sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parents[2])]

from course import grading as G  # noqa: E402
from mini_cal import noise  # noqa: E402

RESULTS = Path(__file__).resolve().parents[1] / "data" / "nb06_robustness.json"
RESULT_SEEDS = (0, 1, 2, 3, 4)
METHODS = {"joint": "joint", "arl": "ARL", "cal": "CAL"}
COLORS = {"joint": "C0", "arl": "C1", "cal": "C3"}


# --------------------------------------------------------------------------- exercise 1: the Gaussian attack
def _test_data(seed=0, n=4000):
    """Features whose spreads differ by four orders of magnitude and whose means are far from 0, so that a noise
    scaled by one number for all features, or by the variance, or not centred, shows."""
    rng = np.random.default_rng(seed)
    stds = np.array([0.01, 0.1, 1.0, 10.0, 3.0, 0.3])
    return (5.0 + rng.standard_normal((n, len(stds))) * stds).astype(np.float64), stds


def _run(fn, x, eps, seed, p_attack):
    """Call the student's attack with the library's hidden; -> ((x', attacked), None) or (None, failure)."""
    where = f"at eps = {eps}, seed = {seed}, p_attack = {p_attack}"
    with G.hide((noise, "attack")):
        got, failure = G.call_student(fn, x, eps, seed=seed, p_attack=p_attack, where=where)
    if failure:
        return None, failure
    if not isinstance(got, (tuple, list)) or len(got) != 2:
        form = f"{len(got)} values" if isinstance(got, (tuple, list)) else f"a {type(got).__name__}"
        return None, f"FAILED {where}: expected two values (the attacked copy of x, the boolean mask), got {form}."
    out, mask = got
    try:
        out, mask = np.asarray(out, dtype=np.float64), np.asarray(mask)
    except (TypeError, ValueError):
        return None, f"FAILED {where}: expected arrays, got {type(out).__name__} and {type(mask).__name__}."
    if out.shape != x.shape:
        return None, f"FAILED {where}: the attacked x has shape {out.shape}, expected {x.shape} (the same as x)."
    if mask.shape != (len(x),) or mask.dtype != bool:
        return None, (
            f"FAILED {where}: the mask should be a boolean array of shape ({len(x)},), one entry per "
            f"sample; got {mask.dtype} of shape {mask.shape}."
        )
    return (out, mask), None


def check_gaussian_attack(fn, seed: int = 0) -> G.Result:
    """Grade ``fn(x, eps, seed=0, p_attack=0.5) -> (x_attacked, attacked)`` by the properties of the attack."""
    x, stds = _test_data(seed)
    original = x.copy()
    n = len(x)
    runs = {}
    for eps, s, p in ((10, 0, 0.5), (0, 0, 0.5), (3, 0, 0.5), (7, 0, 0.5), (10, 1, 0.5), (10, 0, 0.2)):
        got, failure = _run(fn, x, eps, s, p)
        if failure:
            return G.failed(failure)
        if not np.array_equal(x, original):
            return G.failed(
                f"your attack changed its input x (at eps = {eps}): work on a copy, so that the clean "
                f"test set stays clean for the next level and the next model."
            )
        runs[eps, s, p] = got
    out10, mask = runs[10, 0, 0.5]
    share = mask.mean()
    for (eps, s, p), (_, m) in runs.items():
        if abs(m.mean() - p) > 4 * np.sqrt(p * (1 - p) / n):
            return G.failed(
                f"at p_attack = {p}, {m.mean():.1%} of the samples are attacked: each sample should "
                f"be attacked with probability p_attack (use the argument, drawn once per sample)."
            )
    if not np.array_equal(runs[0, 0, 0.5][0], x):
        return G.failed("at eps = 0 the data changed: level 0 is the clean test set.")
    for eps in (3, 7):
        if not np.array_equal(runs[eps, 0, 0.5][1], mask):
            return G.failed(
                f"the attacked samples at eps = {eps} differ from those at eps = 10 (same seed): use "
                f"common random numbers, draws that depend on the seed but not on the level, so that "
                f"every level attacks the same samples."
            )
    if np.array_equal(runs[10, 1, 0.5][1], mask):
        return G.failed("seeds 0 and 1 attack exactly the same samples: draw from a generator seeded with `seed`.")
    changed = np.any(out10 != x, axis=1)
    if np.any(changed & ~mask):
        return G.failed(
            f"{int(np.sum(changed & ~mask))} samples outside your mask were changed: only attacked samples get noise."
        )
    if not np.all(changed[mask]):
        return G.failed(f"{int(np.sum(mask & ~changed))} samples in your mask were not changed at eps = 10.")
    delta10 = (out10 - x)[mask]
    for eps in (3, 7):
        delta = (runs[eps, 0, 0.5][0] - x)[mask]
        if G.rel_error(delta * 10 / eps, delta10) > 1e-6:
            return G.failed(
                f"the noise at eps = {eps} is not the noise at eps = 10 scaled by {eps}/10: draw it once "
                f"(the same draw at every level, common random numbers) and scale it with the level."
            )
    # The noise per feature, in units of that feature's spread: c * std(x_j) * (eps/10) at eps = 10.
    spread = x.std(axis=0)
    size = delta10.std(axis=0)
    centre = delta10.mean(axis=0) / np.maximum(size, 1e-300)
    if np.any(np.abs(centre) > 0.3):
        return G.failed(
            "the noise is not centred on 0 (its mean is a sizable fraction of its spread): Gaussian noise "
            "is drawn from a standard normal, not a uniform [0, 1)."
        )
    shape = _noise_shape((delta10 - delta10.mean(axis=0)) / np.maximum(size, 1e-300))
    if shape:
        return G.failed(shape)
    ratio = size / (noise.GAUSSIAN_C * spread)
    if np.max(ratio) / np.min(ratio) > 1.5:
        slope = np.polyfit(np.log(spread), np.log(size), 1)[0]
        if abs(slope) < 0.2:
            return G.failed(
                "your noise has the same size for every feature: the attack is relative to each "
                "feature's own spread (a standard deviation per feature, over the samples)."
            )
        if abs(slope - 2) < 0.3:
            return G.failed(
                "your noise grows with the square of each feature's spread: scale by the standard "
                "deviation, not the variance."
            )
        return G.failed("your noise is not proportional to each feature's standard deviation over the samples.")
    r = float(np.median(ratio))
    if abs(r - 1) > 0.1:
        for factor, message in (
            (10.0, "the level enters as eps / 10 (eps = 10 is the strongest)"),
            (1 / noise.GAUSSIAN_C, f"the noise carries the factor GAUSSIAN_C = {noise.GAUSSIAN_C}"),
            (
                0.1 / noise.GAUSSIAN_C,
                f"the level enters as eps / 10, and the noise carries the factor GAUSSIAN_C = {noise.GAUSSIAN_C}",
            ),
        ):
            if abs(r / factor - 1) < 0.1:
                return G.failed(f"at eps = 10 your noise is {r:.3g} times its expected size: {message}.")
        return G.failed(
            f"at eps = 10 your noise is {r:.3g} times its expected size, (eps / 10) * GAUSSIAN_C times "
            f"each feature's standard deviation."
        )
    return G.passed(
        f"your attack has every property checked: a copy, {share:.1%} of samples attacked at "
        f"p_attack = 0.5, clean rows untouched, the same samples and the same noise at every level "
        f"(common random numbers), noise of the right size for each feature.",
        share=share,
    )


def _noise_shape(z) -> str | None:
    """None if the standardised noise ``z`` (about 2000 x 6 draws) looks Gaussian, else what it looks like.

    Two statistics, each far outside what a Gaussian sample of this size gives: the excess kurtosis (0 for a
    Gaussian, -1.2 for a uniform, +3 for a Laplace; its standard error here is about 0.05) and the largest gap
    between the empirical distribution function and the normal one (a Kolmogorov-Smirnov statistic; 1.63 /
    sqrt(n) is its 1% critical value, and a uniform of the same variance reaches 0.06 at n = 12,000)."""
    from math import erf

    z = np.sort(np.ravel(z))
    n = z.size
    kurtosis = float(np.mean(z**4) - 3.0)
    normal_cdf = 0.5 * (1.0 + np.array([erf(v / np.sqrt(2.0)) for v in z]))
    ks = float(np.max(np.maximum(np.arange(1, n + 1) / n - normal_cdf, normal_cdf - np.arange(n) / n)))
    if abs(kurtosis) < 0.5 and ks < 2.0 / np.sqrt(n):
        return None
    looks = (
        "lighter-tailed than a Gaussian (uniform noise has excess kurtosis -1.2)"
        if kurtosis < -0.5
        else "heavier-tailed than a Gaussian"
        if kurtosis > 0.5
        else "not Gaussian"
    )
    return (
        f"your noise has the right size but is {looks} (excess kurtosis {kurtosis:.2f}, a Gaussian's is 0; "
        f"largest gap to the normal distribution function {ks:.3f}): draw it with rng.standard_normal."
    )


# ------------------------------------------------------------------------------------- exercise 2: the AUC
AUC_CASES = [
    (
        "the library's levels 0..10, a falling curve",
        list(range(11)),
        [0.92, 0.91, 0.9, 0.88, 0.85, 0.82, 0.8, 0.77, 0.75, 0.72, 0.7],
    ),
    ("uneven levels (0, 1, 2, 5, 10)", [0, 1, 2, 5, 10], [0.9, 0.85, 0.8, 0.6, 0.3]),
    ("levels 2 to 6", [2, 3, 4, 5, 6], [0.8, 0.8, 0.6, 0.6, 0.4]),
    ("a flat curve (accuracy 0.75 at every level)", list(range(11)), [0.75] * 11),
]


def _auc_mistakes(levels, accs):
    levels, accs = np.asarray(levels, float), np.asarray(accs, float)
    span = levels[-1] - levels[0]
    area = float(np.sum((accs[1:] + accs[:-1]) * np.diff(levels)) / 2)
    return [
        (
            area,
            f"your AUC is the raw area (level range {span:g} times too large): divide by the range of levels, "
            f"so that a flat curve scores its own accuracy.",
        ),
        (
            float(accs.mean()),
            "your AUC is the mean of the accuracies: with unevenly spaced levels each accuracy must "
            "be weighted by the width of level it covers (the trapezoid rule).",
        ),
        (area / len(levels), "your AUC divides the area by the number of levels; divide by the range of levels."),
        (
            float(np.sum(accs[:-1] * np.diff(levels)) / span),
            "your AUC uses left rectangles; the trapezoid rule averages the two ends of each interval.",
        ),
        (
            float(np.sum((accs[1:] + accs[:-1]) / 2) / span),
            "your AUC ignores the spacing of the levels (as if every step were 1).",
        ),
        (float(accs.sum()), "your AUC is the sum of the accuracies."),
    ]


def check_auc(fn) -> G.Result:
    """Grade ``fn(levels, accs) -> float``: trapezoid area under the curve divided by the level range."""
    for name, levels, accs in AUC_CASES:
        expected = noise.auc(levels, accs)
        with G.hide((noise, "auc")):
            got, failure = G.call_student(fn, list(levels), list(accs), where=f"on '{name}'")
        if failure:
            return G.failed(failure, case=name)
        try:
            value = float(np.asarray(got, dtype=float).reshape(()))
        except (TypeError, ValueError):
            return G.failed(
                f"on '{name}': expected one number, got {type(got).__name__}"
                f"{' of shape ' + str(np.shape(got)) if hasattr(got, 'shape') else ''}.",
                case=name,
            )
        if abs(value - expected) < 1e-9:
            continue
        for wrong, message in _auc_mistakes(levels, accs):
            if abs(wrong - expected) > 1e-9 and abs(value - wrong) < 1e-9:
                return G.failed(f"on '{name}': {message}", case=name)
        return G.failed(  # the expected value is the answer: say which way it is off, not what it is
            f"on '{name}': your AUC {value:.4f} is too {'large' if value > expected else 'small'}. Area under the "
            f"accuracy-vs-level curve by the trapezoid rule, divided by the range of levels.",
            case=name,
        )
    return G.passed(
        f"all {len(AUC_CASES)} curves agree with the normalised trapezoid AUC (even and uneven levels, "
        f"a range not starting at 0, a flat curve).",
        cases=len(AUC_CASES),
    )


# -------------------------------------------------------------------------------------------------- figures
def plot_attacks_on_a(ds, attack, shown=(0, 3, 6, 10), rows=16, path=None):
    """Figure 1: modality A of the first test samples under each attack at four levels (target "all")."""
    from course import plots

    clean = ds.x_test[0][:rows]
    lim = np.abs(ds.x_test[0]).max()
    fig, axes = plots.figure(len(shown), len(noise.ATTACKS), width=10, height=7.5, sharex=True, sharey=True)
    for i, name in enumerate(noise.ATTACKS):
        for j, eps in enumerate(shown):
            xs, _ = attack(ds.x_test, name, eps, target="all", seed=0)
            changed = np.any(xs[0][:rows] != clean, axis=1)
            ax = axes[i, j]
            image = ax.imshow(xs[0][:rows], cmap="RdBu_r", vmin=-lim, vmax=lim, aspect="auto")
            for r in np.flatnonzero(changed):
                ax.plot(-1.2, r, ">", color="C3", ms=4, clip_on=False)
            ax.set_xlim(-0.5, clean.shape[1] - 0.5)
            ax.set_title(f"{name}, eps = {eps}", fontsize=9)
            if j == 0:
                ax.set_ylabel("test sample")
            if i == len(noise.ATTACKS) - 1:
                ax.set_xlabel("feature of A")
    fig.suptitle("Figure 1. Modality A of 16 test samples under each attack (red: samples the attack changed)")
    fig.colorbar(image, ax=axes, shrink=0.6, label="feature value")
    _show(fig, path)


def _show(fig, path=None):
    import matplotlib.pyplot as plt

    if path:
        fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.show()


def plot_strength(strength, names, path=None):
    """Figure 2: mean relative change of an attacked sample against the level, per attack and modality."""
    from course import plots

    fig, ax = plots.figure(width=8, height=4.0)
    for name, color in zip(noise.ATTACKS, ("C0", "C1", "C2")):
        for m, ls in [(0, "-"), (1, "--")]:
            ax.plot(
                noise.LEVELS,
                [strength(name, eps, m) for eps in noise.LEVELS],
                color=color,
                ls=ls,
                marker="o",
                ms=3,
                label=f"{name}, {names[m]}",
            )
    ax.set(
        xlabel="noise level eps",
        ylabel="mean ||x' - x|| / ||x||, attacked samples",
        title="Figure 2. How much each attack changes an attacked sample",
    )
    ax.legend(loc="upper left")
    plots.finish(fig, path)


def curves_of(records, method, name, target):
    return np.array([r["attacks"][name][target] for r in records if r["method"] == method])  # (seeds, levels)


def plot_curves(records, names, bayes, auc, levels=noise.LEVELS, path=None):
    """Figure 3: mean accuracy-vs-level curve over the records' seeds, per attack (rows) and target (columns)."""
    from course import plots

    targets = ["0", "1", "all"]
    fig, axes = plots.figure(len(targets), len(noise.ATTACKS), width=10, height=8.5, sharex=True, sharey=True)
    for i, name in enumerate(noise.ATTACKS):
        for j, target in enumerate(targets):
            ax = axes[i, j]
            for method in METHODS:
                c = curves_of(records, method, name, target)
                ax.plot(
                    levels,
                    c.mean(0),
                    color=COLORS[method],
                    marker="o",
                    ms=2.5,
                    label=f"{METHODS[method]} ({np.mean([auc(levels, row) for row in c]):.3f})",
                )
            ax.axhline(bayes, color="k", ls="--", lw=0.8)
            ax.set_title(f"{name} on {'all' if target == 'all' else names[int(target)]}", fontsize=9)
            ax.legend(loc="lower left", fontsize=9, title="method (AUC)", title_fontsize=9)
            ax.grid(alpha=0.3)
            if j == 0:
                ax.set_ylabel("test accuracy")
            if i == len(noise.ATTACKS) - 1:
                ax.set_xlabel("noise level eps")
    axes[0, 0].set_ylim(0.4, 1.0)
    n_seeds = len({r["seed"] for r in records})
    fig.suptitle(
        f"Figure 3. Test accuracy against noise level (mean over {n_seeds} seeds; dashed: fused "
        f"Bayes-optimal on clean data)"
    )
    plots.finish(fig, path)


def plot_corrupted_training(series, auc, levels=noise.LEVELS, path=None):
    """Figure 4: attacks on V, for models trained on clean and on corrupted V. ``series``: [(label, curves by
    attack {name: accs}, color, linestyle)]."""
    from course import plots

    fig, axes = plots.figure(len(noise.ATTACKS), width=10, height=4.2, sharey=True)
    for ax, name in zip(axes, noise.ATTACKS):
        for label, curves, color, ls in series:
            ax.plot(
                levels,
                curves[name],
                color=color,
                ls=ls,
                marker="o",
                ms=3,
                label=f"{label} ({auc(levels, curves[name]):.3f})",
            )
        ax.set(title=f"{name} on V", xlabel="noise level eps", ylim=(0.4, 1.0))
        ax.grid(alpha=0.3)
        ax.legend(loc="lower left", fontsize=9, title="model (AUC)", title_fontsize=9)
    axes[0].set_ylabel("test accuracy")
    fig.suptitle("Figure 4. Attacks on V: CAL trained on clean against CAL trained on corrupted V (seed 0)")
    plots.finish(fig, path)


# ----------------------------------------------------------------------------------------- results file
def load_results(path=RESULTS):
    """The five-seed robustness results (a ``robustness_auc_summary``-ready dict), or None when missing."""
    path = Path(path)
    return json.loads(path.read_text()) if path.exists() else None


def make_results(path=RESULTS, seeds=RESULT_SEEDS, epochs=40):
    """Train joint, ARL and CAL (tuned) on the default preset for ``seeds`` and attack each model."""
    import mini_cal
    from mini_cal.evaluate import attack_curves
    from mini_cal.methods import make_method, split_config, tuned_config
    from mini_cal.synthetic import load_preset
    from mini_cal.train import TrainConfig, train

    start = time.perf_counter()
    ds = load_preset("default")
    records = []
    for name in METHODS:
        method_kw, train_kw = split_config(tuned_config(name))
        for seed in seeds:
            method = make_method(name, **method_kw)
            r = train(
                method,
                ds,
                TrainConfig(epochs=epochs, seed=seed, progress=False, probe=False, shapley=False, **train_kw),
            )
            predict = method.predict_coalition(r.model.M)
            records.append(
                {
                    "method": name,
                    "seed": seed,
                    "test_acc": r.test["acc"],
                    "attacks": attack_curves(r.model, r.params, ds.x_test, ds.y_test, predict, seed=seed),
                }
            )
    data = {
        "command": "python tutorials/course/nb06.py",
        "preset": "default",
        "epochs": epochs,
        "methods": list(METHODS),
        "modality_names": list(ds.modality_names),
        "levels": list(noise.LEVELS),
        "seeds": list(seeds),
        "mini_cal": mini_cal.__version__,
        "wall_s": round(time.perf_counter() - start, 1),
        "records": records,
    }
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(data))
    return data


if __name__ == "__main__":
    result = make_results()
    print(f"wrote {RESULTS} in {result['wall_s']} s")


def train_and_attack(name, data, epochs, seed=0, levels=noise.LEVELS):
    """Train method ``name`` with its tuned configuration (``tuned_config``), then attack the trained model with
    ``attack_curves``; returns {"result", "predict", "attacks"}."""
    from mini_cal.evaluate import attack_curves
    from mini_cal.methods import make_method, split_config, tuned_config
    from mini_cal.train import TrainConfig, train

    method_kw, train_kw = split_config(tuned_config(name))
    method = make_method(name, **method_kw)
    result = train(
        method, data, TrainConfig(epochs=epochs, seed=seed, progress=False, probe=False, shapley=False, **train_kw)
    )
    predict = method.predict_coalition(result.model.M)
    return {
        "result": result,
        "predict": predict,
        "attacks": attack_curves(
            result.model, result.params, data.x_test, data.y_test, predict, seed=seed, levels=levels
        ),
    }
