"""One training run as a task (a JSON-ready dict), and the worker pool that runs many of them.

A task names its data (``{"preset": NAME}`` or ``{"file": PATH}``), the method, its configuration (method keyword
arguments and ``train.*`` overrides, see :func:`mini_cal.methods.split_config`) and the seed; the record a run
returns holds the metrics and a compact history. Workers load each data source once per process.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor

from .. import backend as B
from .. import synthetic
from ..data import load_npz
from ..evaluate import attack_curves, imbalance_degree
from ..methods import make_method, split_config
from ..train import TrainConfig, epoch_means, train
from .checkpoint import load_model, save_model

# The protocol's training recipe (docs/method.md §5.4); `train.*` keys of a configuration override it.
BASE_TRAIN = {"epochs": 40, "batch_size": 64, "optimizer": "sgd", "lr": 0.05, "momentum": 0.9, "weight_decay": 1e-4}

_DATASETS = {}


def data_source(preset: str | None = None, data: str | None = None) -> dict:
    """The task's description of its data: a preset name or an ``.npz`` file (the path as given: results files
    show it as the user typed it; workers share the parent's working folder)."""
    if data is not None:
        return {"file": os.fspath(data)}
    return {"preset": preset or "default"}


def load_source(source: dict):
    """The Dataset of a source, loaded once per process."""
    key = tuple(sorted(source.items()))
    if key not in _DATASETS:
        _DATASETS[key] = load_npz(source["file"]) if "file" in source else synthetic.load_preset(source["preset"])
    return _DATASETS[key]


def run_one(task: dict) -> dict:
    """Train one (method, configuration, seed) and return a JSON-ready record (metrics + compact history)."""
    ds = load_source(task["data"])
    method_kw, train_kw = split_config(task["config"])
    method = make_method(task["method"], **method_kw)
    cfg = TrainConfig(
        **{
            **BASE_TRAIN,
            **train_kw,
            **task.get("train", {}),
            "seed": task["seed"],
            "progress": False,
            "probe": task.get("probe", True),
            "shapley": task.get("shapley", True),
            "record_steps": True,
        }
    )
    result = train(method, ds, cfg)
    summary = result.summary()
    record = {
        **summary,
        "method": task["method"],
        "seed": task["seed"],
        "config": task["config"],
        "train_config": summary["config"],
    }
    if "shapley_acc" in result.test:
        record["imbalance"] = imbalance_degree(result.test["shapley_acc"])
    record["epochs"] = result.history["epochs"]
    record["step_means"] = epoch_means(result.history["steps"])
    predict = method.predict_coalition(result.model.M)
    if task.get("save_model"):
        save_model(
            task["save_model"],
            result.model,
            result.params,
            {
                "method": task["method"],
                "seed": task["seed"],
                "data": task["data"],
                "dataset": ds.name,
                "config": task["config"],
                "predict": list(predict),
            },
        )
    if task.get("attacks"):
        record["attacks"] = attack_curves(result.model, result.params, ds.x_test, ds.y_test, predict, seed=task["seed"])
    return record


def robust_one(task: dict) -> dict:
    """Attack curves of a model saved by ``compare`` (no training)."""
    ds = load_source(task["data"])
    model, params, meta = load_model(task["model_path"])
    if tuple(model.config.input_dims) != tuple(ds.input_dims):
        raise ValueError(f"--models: {task['model_path']} was trained on data of another shape")
    return {
        "method": task["method"],
        "seed": task["seed"],
        "config": meta.get("config", {}),
        "attacks": attack_curves(model, params, ds.x_test, ds.y_test, tuple(meta["predict"]), seed=task["seed"]),
    }


def run_tasks(tasks: list, jobs: int = 1, progress: bool = True, desc: str = "runs", fn=None) -> list:
    """Run tasks in ``jobs`` processes (1: in this process), with a progress bar; results in task order."""
    if B.get_backend() == "cupy":  # a CUDA context does not survive fork(), and there is one GPU: run in turn
        jobs = 1
    jobs = max(1, min(jobs, len(tasks)))  # never more workers than tasks
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
