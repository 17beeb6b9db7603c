"""Runners behind ``mini-cal sweep``, ``compare`` and ``robustness``: many (method, seed) runs and their summary.

Protocol (ours; docs/method.md §5.6). Hyper-parameters are chosen on the **validation** split with the **same
budget** for every method: ``SWEEP_BUDGET`` configurations drawn (without replacement, from a fixed seed) from
each method's declared search space (``SPEC.search_space`` in its file under ``mini_cal/methods/``), every
configuration trained with the sweep seeds (disjoint from the test seeds); the best mean validation accuracy wins
(a tie goes to the configuration drawn first, in the grid's order: on a small validation split ties are common).
The winners are recorded in each method's declaration (``SPEC.tuned``) together with the command that chose them.
Variants reuse their method's chosen configuration, so that each ablation changes one component only. ``compare``
then trains every method with its tuned configuration on seeds 0..S-1 and reports test metrics.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import sys
import time

import numpy as np

from ..methods import (
    VARIANTS,
    default_methods,
    hyperparameters,
    make_method,
    method_names,
    spec_of,
    split_config,
    swept_methods,
    tuned_config,
)
from ..methods.cal_design import DESIGN_SPACE
from ..noise import LEVELS
from ..train import TrainConfig
from . import stats
from .io import recording
from .runs import finished_record, load_source, robust_one, run_one, run_tasks, task_outputs

SWEEP_BUDGET = 8
SWEEP_SEEDS = (1000, 1001)


def sample_configs(name: str, budget: int = SWEEP_BUDGET, seed: int = 0) -> list:
    """``budget`` distinct configurations of the method's search space (all of them if it is smaller), without the
    keys a variant fixes itself (``cal-gamma0`` sweeps no gamma)."""
    space = {k: v for k, v in spec_of(name).search_space.items() if k not in VARIANTS[name][1]}
    keys = sorted(space)
    grid = [dict(zip(keys, values)) for values in itertools.product(*(space[k] for k in keys))]
    if len(grid) <= budget:
        return grid
    rng = np.random.default_rng([seed, sum(map(ord, name))])
    return [grid[i] for i in sorted(rng.choice(len(grid), size=budget, replace=False))]


def single_modality(name: str, M: int):
    """The one modality a method trains (unimodal runs), or None for a fusion method."""
    active = make_method(name).active_modalities(M)
    return None if active is None else active[0]


def validate_methods(methods, M: int, where: str = "the data") -> None:
    """Fail before any training (or any output) on an unknown method or one the data's modalities cannot run."""
    twice = sorted({n for n in methods if list(methods).count(n) > 1})
    if twice:
        raise ValueError(f"methods: {twice} given more than once (each method's runs write the same files)")
    same = {}  # two names of one method (unimodal and unimodal-0) would train it twice under different settings
    for name in methods:
        method = make_method(name)
        key = (type(method), tuple(sorted(method.hparams().items())))
        if key in same:
            raise ValueError(f"methods: {same[key]!r} and {name!r} are the same method: keep one")
        same[key] = name
    for name in methods:
        spec = spec_of(name)
        if M < spec.min_modalities:
            raise ValueError(f"methods: {name!r} needs at least {spec.min_modalities} modalities, {where} has {M}")
        m = single_modality(name, M)
        if m is not None and m >= M:
            raise ValueError(f"methods: {name!r} needs modality {m}, {where} has {M}")


# TrainConfig fields a configuration may not set: each run sets them itself (seed from the seed list, the rest
# from what the command measures), so a value in a configuration would be silently ignored
RUN_OWNED = ("seed", "progress", "probe", "shapley", "record_steps")


def check_config(name: str, config, where: str = "configuration") -> None:
    """Fail (ValueError naming ``where``, the method, the key and the value) unless ``config`` is a dict of the
    method's keyword arguments (its ``__init__`` parameters) and ``train.<TrainConfig field>`` overrides, with
    values the method and TrainConfig accept."""
    if not isinstance(config, dict):
        raise ValueError(f"{where}: {name!r}: expected an object of {{key: value}}, got {config!r}")
    known = hyperparameters(name)
    fields = [f.name for f in dataclasses.fields(TrainConfig) if f.name not in RUN_OWNED]
    for key in config:
        if not isinstance(key, str) or (
            key not in known and not (key.startswith("train.") and key[len("train.") :] in fields)
        ):
            raise ValueError(
                f"{where}: {name!r} has an unknown key {key!r}; expected one of {known} or train.<field> with a "
                f"field of {fields}"
            )
    method_kw, train_kw = split_config(config)
    try:
        make_method(spec_of(name).name, **method_kw)  # as given (a variant's own flags would replace some)
        make_method(name, **method_kw)
        TrainConfig(**train_kw).validate()
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{where}: {name!r}: {exc}") from None


def check_tuned(tuned, where: str = "hparams") -> dict:
    """Check a table of configurations ``{method name: {key: value}}`` (every entry, by :func:`check_config`)
    before anything runs; returns it."""
    if not isinstance(tuned, dict):
        raise ValueError(f"{where}: expected a JSON object {{method: {{key: value}}}}, got {type(tuned).__name__}")
    for name, config in tuned.items():
        if name not in method_names():
            raise ValueError(f"{where}: unknown method {name!r}; expected one of {method_names()}")
        check_config(name, config, where)
    return tuned


def check_methods(methods, ds, tuned: dict | None = None) -> list:
    """The methods of a comparison (or robustness run) on dataset ``ds``, as a list, after checking before anything
    runs or is written: each known, given once and runnable on the data's modalities (:func:`validate_methods`);
    ``tuned`` (:func:`check_tuned`); and the configuration each method will run with (:func:`check_config`)."""
    methods = list(methods)
    validate_methods(methods, ds.num_modalities, ds.name)
    if tuned is not None:
        check_tuned(tuned)
    for name in methods:
        check_config(name, tuned_config(name, tuned), f"configuration of {name}")
    return methods


def _task(source: dict, name: str, config: dict, seed: int, epochs: int | None, **extra) -> dict:
    task = {"data": source, "method": name, "config": config, "seed": seed, **extra}
    if epochs:
        task["train"] = {"epochs": epochs}  # wins over a configuration's train.epochs
    return task


def run_or_reuse(tasks: list, jobs: int, progress: bool, desc: str, resume: bool) -> tuple:
    """(records in task order, how many were reused): with ``resume``, a task whose record an interrupted run left
    in its ``save_record`` file, and that :func:`~mini_cal.lab.runs.finished_record` trusts, is not run again (the
    record is the one a rerun would give); a record it does not trust is run again, with a note on stderr.

    The files the tasks write are recorded in their folder's Manifest, where one records it: planned before any
    task runs, hashed in this process as each task ends (a worker never writes the record)."""
    done = {}
    for i, task in enumerate(tasks if resume else []):
        record, why_not = finished_record(task)
        if record is not None:
            done[i] = record
        elif why_not:
            print(f"mini-cal {desc}: note: not reused, run again: {why_not}", file=sys.stderr)
    todo = [t for i, t in enumerate(tasks) if i not in done]
    _record_outputs(todo, "plan")
    fresh = iter(
        run_tasks(todo, jobs, progress, desc=desc, on_result=lambda t, _: _record_outputs([t], "add")) if todo else []
    )
    return [done[i] if i in done else next(fresh) for i in range(len(tasks))], len(done)


def _record_outputs(tasks: list, how: str) -> None:
    """Plan (before) or add (after) the tasks' output files in the Manifests that record their folders."""
    by_manifest = {}
    for path in (p for t in tasks for p in task_outputs(t)):
        manifest = recording(path)
        if manifest is not None:
            by_manifest.setdefault(id(manifest), (manifest, []))[1].append(path)
    for manifest, paths in by_manifest.values():
        getattr(manifest, how)(paths)


# --------------------------------------------------------------------------------------------------- sweep
def check_sweep(methods, ds, budget: int = SWEEP_BUDGET) -> list:
    """The methods a sweep on dataset ``ds`` tunes (None: the declared ones), as a list, after checking before
    anything runs or is written: each known, given once, runnable on the data and declaring a search space whose
    sampled configurations the method accepts."""
    methods = list(methods or swept_methods(ds.num_modalities))
    validate_methods(methods, ds.num_modalities, ds.name)
    for name in methods:
        for cfg in sample_configs(name, budget):
            check_config(name, cfg, f"search space of {name}")
    untunable = [n for n in methods if not spec_of(n).search_space]
    if untunable:
        raise ValueError(f"methods: {untunable} declare no search space to sweep")
    return methods


def sweep(
    source: dict,
    methods=None,
    budget: int = SWEEP_BUDGET,
    seeds=SWEEP_SEEDS,
    jobs: int = 1,
    progress: bool = True,
    epochs: int | None = None,
    runs_dir=None,
    resume: bool = False,
) -> dict:
    """Equal-budget hyper-parameter search on the validation split; returns {"chosen": .., "trials": ..}.

    ``runs_dir``, ``resume``: as for :func:`compare` (each trial run's record in ``METHOD-trialK-seedS.json``)."""
    ds = load_source(source)
    methods = check_sweep(methods, ds, budget)
    tasks = [
        _task(
            source,
            name,
            cfg,
            seed,
            epochs,
            probe=False,
            shapley=False,
            **({"save_record": os.path.join(runs_dir, f"{name}-trial{k}-seed{seed}.json")} if runs_dir else {}),
        )
        for name in methods
        for k, cfg in enumerate(sample_configs(name, budget))
        for seed in seeds
    ]
    records, resumed = run_or_reuse(tasks, jobs, progress, "sweep", resume)
    trials, chosen = [], {}
    for name in methods:
        best = None
        for cfg in sample_configs(name, budget):
            accs = [r["val"]["acc"] for r in records if r["method"] == name and r["config"] == cfg]
            trials.append({"method": name, "config": cfg, "val_acc": float(np.mean(accs)), "val_accs": accs})
            if best is None or np.mean(accs) > best[0]:
                best = (float(np.mean(accs)), cfg)
        chosen[name] = best[1]
    return {
        "data": source,
        "dataset": ds.name,
        "budget": budget,
        "seeds": list(seeds),
        "chosen": chosen,
        "trials": trials,
        "resumed_runs": resumed,
    }


# ------------------------------------------------------------------------------------------------- compare
# Named method sets of `mini-cal compare --suite NAME`; None: the methods' declared default set (default_methods).
SUITES = {
    "peers": None,  # CAL, its ablations and its peers
    "cal-design": ("arl", *DESIGN_SPACE),  # CAL's design space (docs/method.md §3.8), ARL as the reference peer
}
SIGNIFICANCE_REFERENCES = ("cal", "arl")  # every comparison tests each method against both, where present


def suite_methods(suite: str, M: int = 2):
    """The methods of a named suite for data with M modalities (None: the declared default set)."""
    if suite not in SUITES:
        raise ValueError(f"suite: expected one of {sorted(SUITES)}, got {suite!r}")
    return None if SUITES[suite] is None else list(SUITES[suite])


def _seed_list(seeds) -> list:
    seeds = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    if not seeds:
        raise ValueError("seeds: expected at least one seed")
    return seeds


def model_filename(method: str, seed: int) -> str:
    return f"{method}-seed{seed}.npz"


def compare(
    source: dict,
    methods=None,
    seeds=10,
    jobs: int = 1,
    progress: bool = True,
    tuned: dict | None = None,
    epochs: int | None = None,
    models_dir=None,
    reference: str = "cal",
    runs_dir=None,
    resume: bool = False,
) -> dict:
    """Train every method with its tuned configuration on seeds 0..seeds-1; return all records and statistics.

    ``runs_dir``: each finished run's record is also written there (``METHOD-seedS.json``); with ``resume``, a run
    whose record is there for the very same task is not run again (its record is reused, so the results equal
    those of an uninterrupted comparison)."""
    seeds = _seed_list(seeds)
    ds = load_source(source)
    M = ds.num_modalities
    methods = check_methods(methods or default_methods(M), ds, tuned)
    tasks = [
        _task(
            source,
            name,
            tuned_config(name, tuned),
            seed,
            epochs,
            **({"save_model": os.path.join(models_dir, model_filename(name, seed))} if models_dir else {}),
            **({"save_record": os.path.join(runs_dir, f"{name}-seed{seed}.json")} if runs_dir else {}),
        )
        for seed in seeds
        for name in methods
    ]
    start = time.perf_counter()
    records, resumed = run_or_reuse(tasks, jobs, progress, "compare", resume)
    wall = time.perf_counter() - start
    single = [n for n in methods if single_modality(n, M) is not None]
    return {
        "data": source,
        "dataset": ds.name,
        "methods": methods,
        "seeds": seeds,
        "bayes": ds.bayes,
        "modality_names": ds.modality_names,
        "single_modality": single,
        "records": records,
        "wall_time_s": wall,
        "resumed_runs": resumed,
        "reference": reference,
        "significance": stats.significance(records, methods, reference, skip=single),
        # the same paired tests against the other references (ARL: the peer CAL must beat), {reference: rows}
        "significance_vs": {
            ref: stats.significance(records, methods, ref, skip=single)
            for ref in SIGNIFICANCE_REFERENCES
            if ref != reference and ref in methods
        },
    }


# ---------------------------------------------------------------------------------------------- robustness
def check_saved_models(models_dir, methods, seeds, source: dict) -> None:
    """Fail early (before any output) when ``models_dir`` lacks a (method, seed) model, holds a damaged one
    (CheckpointError), or models trained on other data than each other or than ``source``; nothing to check
    without ``models_dir``."""
    from .checkpoint import read_npz

    if not models_dir:
        return
    if not os.path.isdir(models_dir):
        raise ValueError(f"--models: {models_dir!r} is not a folder (expected the OUT/models of a compare run)")
    sources = {}
    for seed in _seed_list(seeds):
        for name in methods:
            path = os.path.join(models_dir, model_filename(name, seed))
            if not os.path.exists(path):
                raise ValueError(f"--models: no saved model {path!r} (run compare with the same methods and seeds)")
            meta = read_npz(path)[0]
            if meta.get("kind") != "model" or not isinstance(meta.get("data"), dict):
                raise ValueError(f"--models: {path!r} is not a model file saved by compare")
            if (meta.get("method"), meta.get("seed")) != (name, seed):
                raise ValueError(
                    f"--models: {path!r} holds a model of {meta.get('method')!r} seed {meta.get('seed')!r}, not "
                    f"of {name!r} seed {seed} as its name says"
                )
            sources.setdefault(json_key(meta["data"]), (meta["data"], path))
    if len(sources) > 1:
        (a, pa), (b, pb) = list(sources.values())[:2]
        raise ValueError(f"--models: the models were trained on different data: {a} ({pa!r}) and {b} ({pb!r})")
    trained_on = next(iter(sources.values()))[0]
    if json_key(trained_on) != json_key(source):
        raise ValueError(
            f"--models: the models in {models_dir!r} were trained on {trained_on}, not on {source}; "
            "leave out --preset/--data to use theirs"
        )


def json_key(obj) -> str:
    return json.dumps(obj, sort_keys=True)


def robustness(
    source: dict,
    methods=None,
    seeds=5,
    jobs: int = 1,
    progress: bool = True,
    tuned: dict | None = None,
    epochs: int | None = None,
    models_dir=None,
) -> dict:
    """Accuracy under every attack x target x level for each method and seed; trains the models unless
    ``models_dir`` holds the ones ``compare`` saved."""
    seeds = _seed_list(seeds)
    ds = load_source(source)
    methods = check_methods(methods or default_methods(ds.num_modalities), ds, tuned)
    check_saved_models(models_dir, methods, seeds, source)
    if models_dir:
        tasks = [
            {
                "data": source,
                "method": name,
                "seed": seed,
                "model_path": os.path.join(models_dir, model_filename(name, seed)),
            }
            for seed in seeds
            for name in methods
        ]
    else:
        tasks = [
            _task(source, name, tuned_config(name, tuned), seed, epochs, attacks=True, probe=False, shapley=False)
            for seed in seeds
            for name in methods
        ]
    start = time.perf_counter()
    records = run_tasks(tasks, jobs, progress, desc="robustness", fn=robust_one if models_dir else run_one)
    return {
        "data": source,
        "dataset": ds.name,
        "methods": methods,
        "seeds": seeds,
        "modality_names": ds.modality_names,
        "single_modality": [n for n in methods if single_modality(n, ds.num_modalities) is not None],
        "levels": list(LEVELS),
        "records": records,
        "wall_time_s": time.perf_counter() - start,
    }
