"""One training run as a task (a JSON-ready dict), and the worker pool that runs many of them.

A task names its data (``{"preset": NAME}`` or ``{"file": PATH}``), the method, its configuration (method keyword
arguments and ``train.*`` overrides, see :func:`mini_cal.methods.split_config`) and the seed; the record a run
returns holds the metrics and a compact history. Workers load each data source once per process.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import socket
import stat
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import numpy as np

from .. import backend as B
from ..evaluate import attack_curves, imbalance_degree
from ..history import epoch_means
from ..methods import make_method, split_config
from ..train import TrainConfig, train
from .checkpoint import load_model, save_model
from .io import MANIFEST, Manifest, is_temporary, recording, sha256_file, write_json
from .presets import load_data_file, load_preset

_DATASETS = {}
_HASHES = {}


def data_source(preset: str | None = None, data: str | None = None) -> dict:
    """The task's description of its data: a preset name or an ``.npz`` file (the path as given: results files
    show it as the user typed it; workers share the parent's working folder)."""
    if data is not None:
        return {"file": os.fspath(data)}
    return {"preset": preset or "default"}


def load_source(source: dict):
    """The Dataset of a source, loaded once per process (once per version of a file: its size and time)."""
    key = _key(source)
    if key not in _DATASETS:
        _DATASETS[key] = (
            load_data_file(source["file"], standardize=source.get("standardize", False))
            if "file" in source
            else load_preset(source["preset"])
        )
    return _DATASETS[key]


def _key(source: dict) -> tuple:
    try:
        stat = os.stat(source["file"]) if "file" in source else None
    except OSError:
        stat = None  # load_data_file says what is wrong
    return (*sorted(source.items()), stat and (stat.st_size, stat.st_mtime_ns, stat.st_ino))


def data_sha256(source: dict) -> str:
    """SHA-256 of the source's data as loaded (every split's arrays, dtypes and shapes): what the records of a
    run were computed from, so that ``--resume`` never reuses a record of other data under the same file name."""
    key = _key(source)
    if key not in _HASHES:
        ds = load_source(source)
        h = hashlib.sha256()
        for a in (*ds.x_train, ds.y_train, *ds.x_val, ds.y_val, *ds.x_test, ds.y_test):
            a = np.ascontiguousarray(np.asarray(a))
            h.update(f"{a.dtype}{a.shape}".encode())
            h.update(a.tobytes())
        _HASHES[key] = h.hexdigest()
    return _HASHES[key]


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
        write_json({"task": task, "data_sha256": data_sha256(task["data"]), "record": record}, task["save_record"])
    return record


def task_outputs(task: dict) -> list:
    """The files a task writes (its model, then its record: a record on disk means the model is complete)."""
    return [task[k] for k in ("save_model", "save_record") if task.get(k)]


def finished_record(task: dict) -> tuple:
    """(record, None) when an earlier, interrupted run of this very task left its record in ``task["save_record"]``
    and it can be trusted; else (None, why not: None when there is simply no finished record to reuse).

    Trusted means: the record and model files are as mini-cal wrote them (their hashes in the folder's
    :class:`~mini_cal.lab.io.Manifest`, where one records the folder), the record was computed from the same data
    (:func:`data_sha256`) for the same task, and its method, seed and configuration are the task's."""
    path = task.get("save_record")
    if not path or not all(os.path.isfile(p) for p in task_outputs(task)):
        return None, None
    for p in task_outputs(task):
        manifest = recording(p)
        state = manifest.state(p) if manifest is not None else "same"
        if state == "planned":  # written by a run killed before it could record the file: run it again
            return None, None
        if state != "same":
            return None, f"{p} is not as mini-cal wrote it ({state})"
    try:
        with open(path, encoding="utf-8") as fh:
            saved = json.load(fh)
    except (OSError, ValueError) as exc:
        return None, f"{path} cannot be read ({exc})"
    plain = json.loads(json.dumps(task))
    if not isinstance(saved, dict) or not isinstance(saved.get("record"), dict) or saved.get("task") != plain:
        return None, f"{path} is the record of another task"
    if saved.get("data_sha256") != data_sha256(task["data"]):
        return None, f"{path} was computed from other data (the content of {task['data']} has changed)"
    record = saved["record"]
    wrong = [k for k in ("method", "seed", "config") if record.get(k) != plain[k]]
    if wrong:
        return None, f"{path}: its {', '.join(wrong)} differ from the task's"
    return record, None


def robust_one(task: dict) -> dict:
    """Attack curves of a model saved by ``compare`` (no training)."""
    ds = load_source(task["data"])
    model, params, meta = load_model(task["model_path"], expect_method=task["method"], expect_seed=task["seed"])
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


def run_tasks(tasks: list, jobs: int = 1, progress: bool = True, desc: str = "runs", fn=None, on_result=None) -> list:
    """Run tasks in ``jobs`` processes (1: in this process), with a progress bar; results in task order; each
    ``on_result(task, result)`` is called in this process as it comes. On any error or interruption (Ctrl-C,
    SIGTERM) the workers are stopped before the exception goes on; a worker killed by the operating system (out of
    memory, say) is a RuntimeError that says so."""
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
                if on_result:
                    on_result(t, results[-1])
                if bar:
                    bar.update(1)
        else:
            pool = ProcessPoolExecutor(max_workers=jobs, initializer=_worker_start, initargs=(os.getpid(),))
            try:
                # submit, not map: map's iterator cancels the pending futures as an exception leaves it, and the
                # pool's manager thread then fails on them (InvalidStateError, Python 3.11) once the workers stop
                futures = [pool.submit(fn or run_one, t) for t in tasks]
                for t, future in zip(tasks, futures):
                    results.append(future.result())
                    if on_result:
                        on_result(t, results[-1])
                    if bar:
                        bar.update(1)
            except BrokenProcessPool:
                _stop_workers(pool)
                raise RuntimeError(
                    f"a worker process of {desc} ended abruptly: the operating system killed it (out of memory, "
                    f"most often); fewer --jobs need less memory"
                ) from None
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
SOURCE_TREE = (".git", ".hg", "setup.py", "pyproject.toml")  # a folder holding one is a checkout, never an output


class OutFolder:
    """The ``--out`` folder of compare, robustness or sweep, claimed for one run.

    A file ``RUNNING`` (the marker: pid, host, command, start time) exists while a run writes into the folder and is
    removed only after its results are written, so a folder holding it never looks complete. The run holds an
    exclusive lock (``flock``) on the marker, so a second run into the same folder is refused while the first is
    alive, and a marker whose lock is free belongs to a run that died (interrupted, killed): the folder is then
    refused unless ``overwrite`` (clear the old outputs and models, start again) or ``resume`` (compare and sweep:
    keep the finished runs). ``option``: the name errors use (``--out``).

    Everything the run writes into the folder is recorded in its :class:`~mini_cal.lab.io.Manifest` (with its
    SHA-256), and ``overwrite`` and ``resume`` act on recorded files only: a folder holding a file the record does
    not list (the user's, or one of a mini-cal older than the record) is refused with its name, and ``overwrite``
    refuses to remove a recorded file that was changed since."""

    def __init__(self, path, *, overwrite: bool = False, resume: bool = False, command: str = "", option="--out"):
        if not isinstance(path, str) or not path.strip():
            raise ValueError(f"{option}: expected a folder path, got {path!r}")
        if os.path.exists(path) and not os.path.isdir(path):
            raise ValueError(f"{option}: {path!r} is a file, expected a folder (new, empty, or of an earlier run)")
        if resume and not os.path.isdir(path):
            raise ValueError(f"--resume: no folder {path!r} to continue")
        never = _never_an_output(path)
        if never:
            raise ValueError(f"{option}: {path!r} is {never}; mini-cal writes a run only into a folder of its own")
        existed = os.path.isdir(path)
        try:
            os.makedirs(path, exist_ok=True)
        except OSError as exc:
            raise ValueError(f"{option}: cannot create the folder {path!r} ({exc.strerror or exc})") from None
        self.path, self.marker = path, os.path.join(path, MARKER)
        had_marker, created, self.fd = os.path.lexists(self.marker), False, None
        try:
            if had_marker:  # a run that died, or one still alive (it holds the lock)
                self.fd = self._lock(os.O_RDWR, option)
            try:
                self.manifest = Manifest(path)
            except ValueError as exc:  # a damaged record, or one naming files outside the folder
                raise ValueError(f"{option}: {exc}") from None
            problem = self._problem(option, command, had_marker, overwrite, resume)
            if problem:
                raise ValueError(problem)
            if not had_marker:  # the marker is made only once every check passed
                self.fd = self._lock(os.O_RDWR | os.O_CREAT | os.O_EXCL, option)
                created = True
        except ValueError:
            if self.fd is not None:
                os.close(self.fd)
            if created:
                os.remove(self.marker)
            if not existed:
                with contextlib.suppress(OSError):
                    os.rmdir(path)
            raise
        self.manifest.__enter__()  # from now on, what this process writes into the folder is recorded
        if overwrite:
            self._clear()
        info = {"pid": os.getpid(), "host": socket.gethostname(), "command": command, "started": time.ctime()}
        os.ftruncate(self.fd, 0)
        os.write(self.fd, (json.dumps(info) + "\n").encode())
        os.fsync(self.fd)

    def _lock(self, flags: int, option: str) -> int:
        """Open the marker with ``flags`` and hold its lock; a ValueError when another run holds it."""
        import fcntl

        try:
            fd = os.open(self.marker, flags, 0o644)
        except FileExistsError:  # made by a run that started a moment ago
            raise ValueError(f"{option}: another mini-cal run is starting in {self.path!r}") from None
        except OSError as exc:
            raise ValueError(f"{option}: cannot write into {self.path!r} ({exc.strerror or exc})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            if flags & os.O_CREAT:
                os.remove(self.marker)
            raise ValueError(
                f"{option}: another mini-cal run is writing into {self.path!r} ({_marker_text(self.marker)}); wait "
                "for it to end or choose another folder"
            ) from None
        return fd

    def _files(self) -> list:
        """Every file (and link) in the folder except the marker, the record and atomic_write's temporaries."""
        found = []

        def fail(exc):
            raise exc

        for root, dirs, files in os.walk(self.path, onerror=fail):
            dirs.sort()
            links = [d for d in dirs if os.path.islink(os.path.join(root, d))]
            for name in sorted(files) + links:
                if not (root == self.path and name in (MARKER, MANIFEST)) and not is_temporary(name):
                    found.append(os.path.join(root, name))
        return found

    def _problem(self, option, command, had_marker, overwrite, resume):
        """Why the folder cannot be used this way (None: it can)."""
        try:
            return self._check(option, command, had_marker, overwrite, resume)
        except OSError as exc:  # an entry that cannot be read (a link to a folder we may not enter, say)
            entry = exc.filename or self.path
            where = os.path.relpath(entry, self.path) if entry != self.path else "the folder itself"
            return (
                f"{option}: cannot read {where!r} in {self.path!r} ({exc.strerror or exc}); mini-cal checks every "
                "entry of a folder it writes into: move it away, or choose another folder"
            )

    def _check(self, option, command, had_marker, overwrite, resume):
        path = self.path
        entries = [n for n in os.listdir(path) if n not in (MARKER, MANIFEST) and not is_temporary(n)]
        if had_marker and not (overwrite or resume):
            return (
                f"{option}: {path!r} holds an unfinished run ({_marker_text(self.marker)}, no longer running); "
                + ("continue it with --resume, or " if command in ("compare", "sweep") else "")
                + "start again with --overwrite"
            )
        if entries and not (overwrite or resume or had_marker):
            return f"{option}: folder {path!r} exists and is not empty; choose another or pass --overwrite"
        how = "--resume" if resume else "--overwrite"
        tree = [n for n in SOURCE_TREE if n in entries]
        if tree or (entries and os.path.realpath(path) == os.path.realpath(os.path.expanduser("~"))):
            what = f"a source checkout (it holds {tree[0]})" if tree else "your home folder"
            return f"{option}: {path!r} looks like {what}; {how} writes only into a folder of mini-cal's own runs"
        states = {}
        for p in self._files():
            try:
                states[p] = self.manifest.state(p)
            except OSError as exc:  # name the entry, not what it leads to
                exc.filename = p
                raise
        unlisted = [p for p, state in states.items() if state == "unlisted"]
        if unlisted:
            more = f" and {len(unlisted) - 1} more" if len(unlisted) > 1 else ""
            record = f"the folder's record, {MANIFEST}, does not list it"
            if not os.path.exists(self.manifest.path):
                record = f"the folder has no record {MANIFEST}: not mini-cal's, or written before folders had one"
            return (
                f"{option}: {path!r} holds {os.path.relpath(unlisted[0], path)!r}{more}, which mini-cal did not "
                f"write there ({record}); {how} acts only on mini-cal's own files: move it away, or choose another "
                "folder"
            )
        changed = [p for p, state in states.items() if state == "changed"]
        if overwrite and changed:
            return (
                f"{option}: {os.path.relpath(changed[0], path)!r} in {path!r} was changed after mini-cal wrote it; "
                "--overwrite removes only files mini-cal wrote, unchanged: move it away, or choose another folder"
            )
        return None

    def _clear(self) -> None:
        """Remove what earlier runs wrote here (only what the folder's record lists, checked by _problem)."""
        for name, digest in list(self.manifest.files.items()):
            full = os.path.join(self.path, *name.split("/"))
            try:
                regular = stat.S_ISREG(os.lstat(full).st_mode) and self.manifest.inside(name)
            except OSError:
                continue  # gone already
            # a planned file (no hash) is removed when it is a regular file; a finished one only when it is unchanged
            if regular and (digest is None or sha256_file(full) == digest):
                os.remove(full)
        self.manifest.files.clear()
        if os.path.exists(self.manifest.path):
            self.manifest.save()

    def done(self) -> None:
        """The results are written: remove the marker, release the folder."""
        self.manifest.__exit__()
        os.remove(self.marker)
        os.close(self.fd)

    def release(self) -> None:
        """The run failed or was interrupted: keep the marker (the folder is incomplete), release the lock."""
        self.manifest.__exit__()
        os.close(self.fd)


def _never_an_output(path) -> str:
    """What ``path`` is when it must never be an output folder (the root, a folder above the home folder or above
    the source checkout in use), else ''."""
    real = os.path.realpath(path)
    if os.path.dirname(real) == real:
        return "the root of the file system"
    home = os.path.realpath(os.path.expanduser("~"))
    if _above(real, home):
        return f"a folder above your home folder {home!r}"
    try:
        here = os.getcwd()
    except OSError:  # the current folder was removed
        here = None
    for start in (here, os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))):
        checkout = start and _checkout(start)
        if checkout and _above(real, checkout):
            return f"a folder above the source checkout {checkout!r}"
    return ""


def _above(folder: str, other: str) -> bool:
    return folder != other and other.startswith(folder.rstrip(os.sep) + os.sep)


def _checkout(start: str):
    """The nearest folder at or above ``start`` that holds a source tree (a .git, a setup.py ...), or None."""
    folder = os.path.realpath(start)
    while True:
        if any(os.path.exists(os.path.join(folder, n)) for n in SOURCE_TREE):
            return folder
        parent = os.path.dirname(folder)
        if parent == folder:
            return None
        folder = parent


def _marker_text(marker: str) -> str:
    try:
        with open(marker, encoding="utf-8") as fh:
            info = json.loads(fh.read() or "{}")
        return f"marker {marker!r}: pid {info.get('pid')}, started {info.get('started')}"
    except (OSError, ValueError, AttributeError):
        return f"marker {marker!r}"
