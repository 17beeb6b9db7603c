"""Runners behind ``mini-cal sweep`` and ``mini-cal compare``: many (method, seed) runs, statistics, tables.

Protocol (ours). Hyper-parameters are chosen on the **validation** split with the **same budget** for every method:
``SWEEP_BUDGET`` configurations drawn (without replacement, from a fixed seed) from each method's search space in
:data:`SEARCH_SPACES`, every configuration trained with the sweep seeds (disjoint from the test seeds), the best
mean validation accuracy wins. The winners are recorded in :data:`TUNED` together with the command that chose
them. CAL's ablations reuse CAL's chosen configuration, so that each ablation changes one component only.
``compare`` then trains every method with its tuned configuration on seeds 0..S-1 and reports test metrics.
"""
from __future__ import annotations

import itertools
import json
import os
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from . import data
from .evaluate import imbalance_degree
from .checkpoint import load_model, save_model
from .methods import VARIANTS, make_method
from .noise import ATTACKS, LEVELS, attack, auc
from .report import fmt, markdown_table
from .train import TrainConfig, train

DEFAULT_METHODS = ("joint", "unimodal-0", "unimodal-1", "ogm-ge", "arl", "arl-released", "cal", "cal-no-accel",
                   "cal-no-aib", "cal-sym-ib", "cal-gamma0")
BASE_TRAIN = {"epochs": 40, "batch_size": 64, "optimizer": "sgd", "lr": 0.05, "momentum": 0.9,
              "weight_decay": 1e-4}

# Search spaces: "train.*" keys override TrainConfig, the others are the method's own hyper-parameters.
_LR = {"train.lr": [0.02, 0.05, 0.1]}
SEARCH_SPACES = {
    "joint": {**_LR, "train.weight_decay": [1e-4, 1e-3]},
    "unimodal": {**_LR, "train.weight_decay": [1e-4, 1e-3]},
    "ogm-ge": {**_LR, "alpha": [0.1, 0.3, 0.5, 0.8, 1.0]},
    "arl": {**_LR, "gamma": [0.5, 1.0, 2.0], "temperature": [1.0, 5.0]},
    "cal": {**_LR, "gamma": [0.5, 1.0, 2.0], "beta0": [1e-4, 1e-3, 1e-2], "temperature": [1.0, 5.0]},
}
SWEEP_BUDGET = 8
SWEEP_SEEDS = (1000, 1001)
SWEEP_COMMAND = "mini-cal sweep --preset default --jobs 2"

# Chosen by SWEEP_COMMAND (validation accuracy, mean over SWEEP_SEEDS); see README "Results".
TUNED = {
    "joint": {"train.lr": 0.1, "train.weight_decay": 1e-4},
    "unimodal-0": {"train.lr": 0.02, "train.weight_decay": 1e-4},
    "unimodal-1": {"train.lr": 0.05, "train.weight_decay": 1e-4},
    "ogm-ge": {"alpha": 0.8, "train.lr": 0.05},
    "arl": {"gamma": 1.0, "temperature": 1.0, "train.lr": 0.1},
    "cal": {"beta0": 1e-3, "gamma": 0.5, "temperature": 1.0, "train.lr": 0.05},
}


def space_of(name: str) -> dict:
    base = VARIANTS[name][0] if name in VARIANTS else name
    return SEARCH_SPACES[base]


def sample_configs(name: str, budget: int = SWEEP_BUDGET, seed: int = 0) -> list:
    """``budget`` distinct configurations of the method's search space (all of them if it is smaller)."""
    space = space_of(name)
    keys = sorted(space)
    grid = [dict(zip(keys, values)) for values in itertools.product(*(space[k] for k in keys))]
    if len(grid) <= budget:
        return grid
    rng = np.random.default_rng([seed, sum(map(ord, name))])
    return [grid[i] for i in sorted(rng.choice(len(grid), size=budget, replace=False))]


def split_config(cfg: dict) -> tuple:
    """{"train.lr": .., "gamma": ..} -> (method kwargs, TrainConfig overrides)."""
    method_kw = {k: v for k, v in cfg.items() if not k.startswith("train.")}
    train_kw = {k[len("train."):]: v for k, v in cfg.items() if k.startswith("train.")}
    return method_kw, train_kw


def tuned_config(name: str, tuned: dict | None = None) -> dict:
    """The configuration a method runs with in ``compare``: its own tuned entry, else its base method's (so CAL's
    ablations and ``arl-released`` reuse CAL's and ARL's choice; the variant's own flags still apply)."""
    tuned = TUNED if tuned is None else tuned
    if name in tuned:
        return dict(tuned[name])
    base = VARIANTS[name][0] if name in VARIANTS else name
    return dict(tuned.get(base, {}))


# ------------------------------------------------------------------------------------------------ workers
_DATASETS = {}


def _dataset(preset: str):
    if preset not in _DATASETS:
        _DATASETS[preset] = data.load_preset(preset)
    return _DATASETS[preset]


def run_one(task: dict) -> dict:
    """Train one (method, configuration, seed) and return a JSON-ready record (metrics + compact history)."""
    ds = _dataset(task["preset"])
    method_kw, train_kw = split_config(task["config"])
    method = make_method(task["method"], **method_kw)
    cfg = TrainConfig(**{**BASE_TRAIN, **task.get("train", {}), **train_kw, "seed": task["seed"],
                         "progress": False, "probe": task.get("probe", True), "shapley": task.get("shapley", True),
                         "record_steps": True, "save_on_interrupt": False})  # Ctrl-C stops the sweep, saves no runs
    result = train(method, ds, cfg)
    summary = result.summary()
    record = {**summary, "method": task["method"], "seed": task["seed"], "config": task["config"],
              "train_config": summary["config"]}
    if "shapley_acc" in result.test:
        record["imbalance"] = imbalance_degree(result.test["shapley_acc"])
    record["epochs"] = result.history["epochs"]
    record["step_means"] = epoch_means(result.history["steps"])
    if task.get("save_model"):
        save_model(task["save_model"], result.model, result.params,
                   {"method": task["method"], "seed": task["seed"], "preset": task["preset"],
                    "config": task["config"], "predict": list(method.predict_coalition(result.model.M))})
    if task.get("attacks"):
        record["attacks"] = attack_curves(result.model, result.params, ds, method.predict_coalition(result.model.M),
                                          seed=task["seed"])
    return record


def attack_curves(model, params, ds, predict, seed: int = 0, attacks=ATTACKS, levels=LEVELS) -> dict:
    """Test accuracy under every attack x target x level: {attack: {target: [acc per level]}}."""
    from . import backend as B
    from .evaluate import accuracy

    xp = B.xp()
    dtype = params["head.b"].dtype
    targets = [str(m) for m in range(model.M)] + ["all"]
    curves = {}
    for name in attacks:
        curves[name] = {}
        for target in targets:
            accs = []
            for eps in levels:
                xs, _ = attack(ds.x_test, name, eps, "all" if target == "all" else int(target), seed=seed)
                logits = model.logits(params, [B.asarray(x, dtype=dtype) for x in xs], predict)
                accs.append(accuracy(B.to_numpy(xp.argmax(logits, axis=1)), ds.y_test))
            curves[name][target] = accs
    return curves


def robust_one(task: dict) -> dict:
    """Attack curves of a model saved by ``compare`` (no training)."""
    ds = _dataset(task["preset"])
    model, params, meta = load_model(task["model_path"])
    if tuple(model.config.input_dims) != tuple(ds.input_dims):
        raise ValueError(f"--models: {task['model_path']} was trained on data of another shape")
    return {"method": task["method"], "seed": task["seed"], "config": meta.get("config", {}),
            "attacks": attack_curves(model, params, ds, tuple(meta["predict"]), seed=task["seed"])}


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


def run_tasks(tasks: list, jobs: int = 1, progress: bool = True, desc: str = "runs", fn=None) -> list:
    """Run tasks in ``jobs`` processes (1: in this process), with a progress bar; results in task order."""
    from . import backend as B

    if B.get_backend() == "cupy":  # a CUDA context does not survive fork(), and there is one GPU: run in turn
        jobs = 1
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(tasks), desc=desc, unit="run")
    results = []
    try:
        if jobs <= 1:
            for t in tasks:
                results.append((fn or run_one)(t))
                if bar:
                    bar.update(1)
        else:
            with ProcessPoolExecutor(max_workers=jobs) as pool:
                for r in pool.map(fn or run_one, tasks):
                    results.append(r)
                    if bar:
                        bar.update(1)
    finally:
        if bar:
            bar.close()
    return results


# --------------------------------------------------------------------------------------------------- sweep
def sweep(preset: str = "default", methods=None, budget: int = SWEEP_BUDGET, seeds=SWEEP_SEEDS, jobs: int = 1,
          progress: bool = True, epochs: int | None = None) -> dict:
    """Equal-budget hyper-parameter search on the validation split; returns {"chosen": .., "trials": ..}."""
    methods = list(methods or ["joint", "unimodal-0", "unimodal-1", "ogm-ge", "arl", "cal"])
    tasks = []
    for name in methods:
        for cfg in sample_configs(name, budget):
            for seed in seeds:
                task = {"preset": preset, "method": name, "config": cfg, "seed": seed, "probe": False,
                        "shapley": False}
                if epochs:
                    task["train"] = {"epochs": epochs}
                tasks.append(task)
    records = run_tasks(tasks, jobs, progress, desc="sweep")
    trials, chosen = [], {}
    for name in methods:
        best = None
        for cfg in sample_configs(name, budget):
            accs = [r["val"]["acc"] for r in records if r["method"] == name and r["config"] == cfg]
            trials.append({"method": name, "config": cfg, "val_acc": float(np.mean(accs)), "val_accs": accs})
            if best is None or np.mean(accs) > best[0]:
                best = (float(np.mean(accs)), cfg)
        chosen[name] = best[1]
    return {"preset": preset, "budget": budget, "seeds": list(seeds), "chosen": chosen, "trials": trials}


# ------------------------------------------------------------------------------------------------- compare
def validate_methods(methods, preset: str) -> None:
    """Fail before any training (or any output) on an unknown method or a modality the preset lacks."""
    M = len(data.preset_config(preset).modalities)
    for name in methods:
        make_method(name)
        if name.startswith("unimodal-") and int(name.split("-")[1]) >= M:
            raise ValueError(f"methods: {name!r} needs modality {name.split('-')[1]}, preset {preset!r} has {M}")


def compare(preset: str = "default", methods=DEFAULT_METHODS, seeds=10, jobs: int = 1, progress: bool = True,
            tuned: dict | None = None, epochs: int | None = None, models_dir=None) -> dict:
    """Train every method with its tuned configuration on seeds 0..seeds-1; return all records and statistics."""
    seeds = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    if not seeds:
        raise ValueError("seeds: expected at least one seed")
    validate_methods(methods, preset)
    ds = _dataset(preset)
    tasks = []
    for seed in seeds:
        for name in methods:
            task = {"preset": preset, "method": name, "config": tuned_config(name, tuned), "seed": seed}
            if epochs:
                task["train"] = {"epochs": epochs}
            if models_dir:
                task["save_model"] = os.path.join(models_dir, model_filename(name, seed))
            tasks.append(task)
    start = time.perf_counter()
    records = run_tasks(tasks, jobs, progress, desc="compare")
    wall = time.perf_counter() - start
    return {"preset": preset, "methods": list(methods), "seeds": seeds, "bayes": ds.bayes,
            "modality_names": ds.modality_names, "records": records, "wall_time_s": wall,
            "significance": significance(records, list(methods))}


def _values(records, method, getter):
    rows = sorted((r for r in records if r["method"] == method), key=lambda r: r["seed"])
    return [getter(r) for r in rows]


def significance(records: list, methods: list, reference: str = "cal", metric: str = "acc") -> list:
    """Paired tests of ``reference`` against each other method over seeds on test ``metric``:
    mean difference, paired t-test and Wilcoxon signed-rank p-values (scipy.stats)."""
    from scipy import stats

    if reference not in methods:
        return []
    ref = _values(records, reference, lambda r: r["test"][metric])
    rows = []
    for name in methods:
        if name == reference or name.startswith("unimodal"):
            continue
        other = _values(records, name, lambda r: r["test"][metric])
        diff = np.asarray(ref) - np.asarray(other)
        t_p = float(stats.ttest_rel(ref, other).pvalue) if len(ref) > 1 and np.any(diff) else float("nan")
        try:
            w_p = float(stats.wilcoxon(ref, other).pvalue) if np.any(diff) else float("nan")
        except ValueError:
            w_p = float("nan")
        rows.append({"baseline": name, "mean_diff": float(diff.mean()), "wins": int(np.sum(diff > 0)),
                     "losses": int(np.sum(diff < 0)), "n": len(diff), "t_test_p": t_p, "wilcoxon_p": w_p})
    return rows


def results_table(result: dict) -> str:
    """Markdown table, mean ± std over seeds, plus the Bayes-optimal row."""
    names = result["modality_names"]
    M = len(names)
    header = ["method", "fused acc", "macro-F1"] + [f"{n} coalition acc" for n in names] + \
             [f"{n} probe acc" for n in names] + [f"{n} Shapley" for n in names] + ["imbalance", "time (s)"]
    b = result["bayes"]
    rows = [["Bayes-optimal", f"{b['fused']:.3f}", ""] + [f"{b[f'modality {m}']:.3f}" for m in range(M)] +
            [""] * (2 * M + 2)]
    recs = result["records"]
    for name in result["methods"]:
        get = lambda f: _values(recs, name, f)  # noqa: E731
        row = [name, fmt(get(lambda r: r["test"]["acc"])), fmt(get(lambda r: r["test"]["macro_f1"]))]
        row += [fmt(get(lambda r, m=m: r["test"]["coalition_acc"][m])) for m in range(M)]
        row += [fmt(get(lambda r, m=m: (r["probe_acc"] or [None] * M)[m])) for m in range(M)]
        row += [fmt(get(lambda r, m=m: r["test"].get("shapley_acc", [None] * M)[m])) for m in range(M)]
        row += [fmt(get(lambda r: r.get("imbalance"))), fmt(get(lambda r: r["train_time_s"]), 1)]
        rows.append(row)
    return markdown_table(header, rows)


def significance_table(result: dict) -> str:
    if not result["significance"]:
        return "(CAL is not in this comparison)"
    rows = [[s["baseline"], f"{s['mean_diff']:+.3f}", f"{s['wins']}/{s['losses']}/{s['n'] - s['wins'] - s['losses']}",
             f"{s['t_test_p']:.3g}", f"{s['wilcoxon_p']:.3g}"] for s in result["significance"]]
    return markdown_table(["CAL vs", "mean diff (acc)", "wins/losses/ties", "paired t p", "Wilcoxon p"], rows)


def config_table(result: dict) -> str:
    rows = []
    for name in result["methods"]:
        cfg = dict(_values(result["records"], name, lambda r: r["config"])[0])
        fixed = {k: v for k, v in VARIANTS.get(name, ("", {}))[1].items() if k not in ("name", "modality")}
        cfg.update(fixed)  # a variant's own flags win over the tuned configuration
        rows.append([name, ", ".join(f"{k}={v}" for k, v in sorted(cfg.items())) or "(defaults)"])
    return markdown_table(["method", "configuration (tuned on validation)"], rows)


def write_text_atomic(text: str, path) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder, then rename: a reader never sees
    a half-written file, and a failed write leaves no temporary behind."""
    import tempfile

    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def write_json_atomic(obj, path) -> None:
    write_text_atomic(json.dumps(obj, indent=1), path)


# ---------------------------------------------------------------------------------------------- robustness
def model_filename(method: str, seed: int) -> str:
    return f"{method}-seed{seed}.npz"


def check_saved_models(models_dir, methods, seeds) -> None:
    """Fail early (before any output) when ``models_dir`` lacks a (method, seed) model."""
    if not models_dir:
        return
    for seed in (range(seeds) if isinstance(seeds, int) else seeds):
        for name in methods:
            path = os.path.join(models_dir, model_filename(name, seed))
            if not os.path.exists(path):
                raise ValueError(f"--models: no saved model {path!r} (run compare with the same methods and seeds)")


def robustness(preset: str = "default", methods=DEFAULT_METHODS, seeds=5, jobs: int = 1, progress: bool = True,
               tuned: dict | None = None, epochs: int | None = None, models_dir=None) -> dict:
    """Accuracy under every attack x target x level for each method and seed; trains the models unless
    ``models_dir`` holds the ones ``compare`` saved."""
    seeds = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    if not seeds:
        raise ValueError("seeds: expected at least one seed")
    validate_methods(methods, preset)
    check_saved_models(models_dir, methods, seeds)
    tasks = []
    for seed in seeds:
        for name in methods:
            if models_dir:
                path = os.path.join(models_dir, model_filename(name, seed))
                tasks.append({"preset": preset, "method": name, "seed": seed, "model_path": path})
            else:
                task = {"preset": preset, "method": name, "config": tuned_config(name, tuned), "seed": seed,
                        "attacks": True, "probe": False, "shapley": False}
                if epochs:
                    task["train"] = {"epochs": epochs}
                tasks.append(task)
    start = time.perf_counter()
    records = run_tasks(tasks, jobs, progress, desc="robustness", fn=robust_one if models_dir else run_one)
    ds = _dataset(preset)
    return {"preset": preset, "methods": list(methods), "seeds": seeds, "modality_names": ds.modality_names,
            "levels": list(LEVELS), "records": records, "wall_time_s": time.perf_counter() - start}


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
                curves = _values(result["records"], method, lambda r: r["attacks"][name][target])
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
                curves = _values(result["records"], method, lambda r: r["attacks"][name][target])
                row = [method] + [fmt([c[levels.index(lv)] for c in curves]) for lv in shown_levels]
                row.append(fmt([auc(levels, c) for c in curves]))
                rows.append(row)
            parts.append(f"#### {name} on {label}\n\n" + markdown_table(
                ["method"] + [f"eps={lv}" for lv in shown_levels] + ["AUC"], rows))
    return "\n\n".join(parts)
