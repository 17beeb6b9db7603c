"""One training run as a task (a JSON-ready dict), and the worker pool that runs many of them.

A task names its data (``{"preset": NAME}`` or ``{"file": PATH}``), the method, its configuration (method keyword
arguments and ``train.*`` overrides, see :func:`mini_cal.methods.split_config`) and the seed; the record a run
returns holds the metrics and a compact history. Workers load each data source once per process.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
from concurrent.futures import ProcessPoolExecutor

from .. import backend as B
from ..evaluate import attack_curves, imbalance_degree
from ..history import epoch_means
from ..methods import make_method, split_config
from ..train import TrainConfig, train
from .checkpoint import load_model, save_model
from .io import write_json
from .presets import load_data_file, load_preset

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
        _DATASETS[key] = load_data_file(source["file"]) if "file" in source else load_preset(source["preset"])
    return _DATASETS[key]


def run_one(task: dict) -> dict:
    """Train one (method, configuration, seed) and return a JSON-ready record (metrics + compact history)."""
    ds = load_source(task["data"])
    method_kw, train_kw = split_config(task["config"])
    method = make_method(task["method"], **method_kw)
    cfg = TrainConfig(  # the protocol's recipe is TrainConfig's defaults (docs/method.md §5.4); train.* overrides
        **{
            **train_kw,
            **task.get("train", {}),
            "seed": task["seed"],
            "progress": False,
            "probe": task.get("probe", True),
            "shapley": task.get("shapley", True),
            "record_steps": True,
        }
    )
    try:
        result = train(method, ds, cfg)
    except FloatingPointError as exc:  # DivergenceError: say which of the many runs diverged
        exc.args = (f"{task['method']} seed {task['seed']} ({task['config']}): {exc}",)
        raise
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
    if task.get("save_record"):  # after the model: a record on disk means the run finished (compare --resume)
        write_json({"task": task, "record": record}, task["save_record"])
    return record


def finished_record(task: dict):
    """The record that an earlier, interrupted run of this very task left in ``task["save_record"]`` (None when
    there is none, or it belongs to another task)."""
    path = task.get("save_record")
    if not path or not os.path.isfile(path) or (task.get("save_model") and not os.path.isfile(task["save_model"])):
        return None
    try:
        with open(path, encoding="utf-8") as fh:
            saved = json.load(fh)
    except (OSError, ValueError):
        return None
    return saved["record"] if isinstance(saved, dict) and saved.get("task") == json.loads(json.dumps(task)) else None


def robust_one(task: dict) -> dict:
    """Attack curves of a model saved by ``compare`` (no training)."""
    ds = load_source(task["data"])
    model, params, meta = load_model(task["model_path"])
    if tuple(model.config.input_dims) != tuple(ds.input_dims) or meta.get("data", task["data"]) != task["data"]:
        raise ValueError(f"--models: {task['model_path']} was trained on other data ({meta.get('data')!r})")
    return {
        "method": task["method"],
        "seed": task["seed"],
        "config": meta.get("config", {}),
        "attacks": attack_curves(model, params, ds.x_test, ds.y_test, tuple(meta["predict"]), seed=task["seed"]),
    }


def _worker_start(parent: int) -> None:
    """In each worker: Ctrl-C is the parent's to handle (it stops the workers), SIGTERM ends the worker, and a
    thread ends the worker as soon as its parent is gone (killed with SIGKILL, say), so no worker outlives it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)

    def watch():
        while os.getppid() == parent:
            time.sleep(0.2)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="mini-cal-parent-watch").start()


def _stop_workers(pool: ProcessPoolExecutor) -> None:
    """Cancel the queued tasks and end the workers now (a worker in mid-run would otherwise finish its run)."""
    workers = list((getattr(pool, "_processes", None) or {}).values())  # shutdown() forgets them
    for proc in workers:
        if proc.is_alive():
            proc.terminate()
    # no cancel_futures=True: the pool's manager thread marks every pending future broken once its workers are gone,
    # and on Python 3.11 it fails with InvalidStateError (a traceback) on a future that was cancelled first
    pool.shutdown(wait=False)
    for proc in workers:
        proc.join(timeout=5)


def run_tasks(tasks: list, jobs: int = 1, progress: bool = True, desc: str = "runs", fn=None) -> list:
    """Run tasks in ``jobs`` processes (1: in this process), with a progress bar; results in task order. On any
    error or interruption (Ctrl-C, SIGTERM) the workers are stopped before the exception goes on."""
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
            pool = ProcessPoolExecutor(max_workers=jobs, initializer=_worker_start, initargs=(os.getpid(),))
            try:
                # submit, not map: map's iterator cancels the pending futures as an exception leaves it, and the
                # pool's manager thread then fails on them (InvalidStateError, Python 3.11) once the workers stop
                futures = [pool.submit(fn or run_one, t) for t in tasks]
                for future in futures:
                    results.append(future.result())
                    if bar:
                        bar.update(1)
            except BaseException:
                _stop_workers(pool)
                raise
            pool.shutdown()
    finally:
        if bar:
            bar.close()
    return results


# ------------------------------------------------------------------------------------------- the run marker
MARKER = "RUNNING"
# what a multi-run command writes into its --out folder: removed by --overwrite before anything else is written
OUTPUTS = ("results.json", "table.md", "robustness.json", "robustness.md", "robustness.png", "sweep.json")


class OutFolder:
    """The ``--out`` folder of compare, robustness or sweep, claimed for one run.

    A file ``RUNNING`` (the marker: pid, host, command, start time) exists while a run writes into the folder and is
    removed only after its results are written, so a folder holding it never looks complete. The run holds an
    exclusive lock (``flock``) on the marker, so a second run into the same folder is refused while the first is
    alive, and a marker whose lock is free belongs to a run that died (interrupted, killed): the folder is then
    refused unless ``overwrite`` (clear the old outputs and models, start again) or ``resume`` (compare and sweep:
    keep the finished runs). ``option``: the name errors use (``--out``)."""

    def __init__(self, path, *, overwrite: bool = False, resume: bool = False, command: str = "", option="--out"):
        import fcntl

        if not isinstance(path, str) or not path.strip():
            raise ValueError(f"{option}: expected a folder path, got {path!r}")
        if os.path.exists(path) and not os.path.isdir(path):
            raise ValueError(f"{option}: {path!r} is a file, expected a folder (new, empty, or of an earlier run)")
        if resume and not os.path.isdir(path):
            raise ValueError(f"--resume: no folder {path!r} to continue")
        existed = os.path.isdir(path)
        try:
            os.makedirs(path, exist_ok=True)
        except OSError as exc:
            raise ValueError(f"{option}: cannot create the folder {path!r} ({exc.strerror or exc})") from None
        self.path, self.marker = path, os.path.join(path, MARKER)
        had_marker = os.path.exists(self.marker)
        try:
            self.fd = os.open(self.marker, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise ValueError(f"{option}: cannot write into {path!r} ({exc.strerror or exc})") from None
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self.fd)
            raise ValueError(
                f"{option}: another mini-cal run is writing into {path!r} ({_marker_text(self.marker)}); wait for "
                "it to end or choose another folder"
            ) from None
        others = [n for n in os.listdir(path) if n != MARKER and not n.startswith(".")]
        problem = None
        if had_marker and not (overwrite or resume):
            problem = (
                f"{option}: {path!r} holds an unfinished run ({_marker_text(self.marker)}, no longer running); "
                + ("continue it with --resume, or " if command in ("compare", "sweep") else "")
                + "start again with --overwrite"
            )
        elif others and not (overwrite or resume or had_marker):
            problem = f"{option}: folder {path!r} exists and is not empty; choose another or pass --overwrite"
        if problem:
            os.close(self.fd)
            if not had_marker:
                os.remove(self.marker)
                if not existed:
                    os.rmdir(path)
            raise ValueError(problem)
        if overwrite:
            self._clear()
        info = {"pid": os.getpid(), "host": socket.gethostname(), "command": command, "started": time.ctime()}
        os.ftruncate(self.fd, 0)
        os.write(self.fd, (json.dumps(info) + "\n").encode())
        os.fsync(self.fd)

    def _clear(self) -> None:
        """Remove what an earlier run wrote here (its results first, then its models and run records)."""
        for name in OUTPUTS:
            if os.path.isfile(os.path.join(self.path, name)):
                os.remove(os.path.join(self.path, name))
        for sub in ("models", "runs"):
            folder = os.path.join(self.path, sub)
            if os.path.isdir(folder):
                for name in os.listdir(folder):
                    if name.endswith((".npz", ".json", ".tmp")):
                        os.remove(os.path.join(folder, name))

    def done(self) -> None:
        """The results are written: remove the marker, release the folder."""
        os.remove(self.marker)
        os.close(self.fd)

    def release(self) -> None:
        """The run failed or was interrupted: keep the marker (the folder is incomplete), release the lock."""
        os.close(self.fd)


def _marker_text(marker: str) -> str:
    try:
        with open(marker, encoding="utf-8") as fh:
            info = json.loads(fh.read() or "{}")
        return f"marker {marker!r}: pid {info.get('pid')}, started {info.get('started')}"
    except (OSError, ValueError, AttributeError):
        return f"marker {marker!r}"
