"""Saving and loading trained models, and training checkpoints that let an interrupted run continue.

Files are ``.npz`` archives with a JSON ``meta`` entry carrying ``kind`` and ``format_version``; they are written
atomically (temporary file in the same folder, then rename) so that an interrupted write never leaves a
half-written file under the final name.

Model files (``kind: "model"``, :func:`save_model` / :func:`load_model`): ``param/<name>`` arrays and the
``model_config`` that rebuilds the network.

Training checkpoints (``kind: "training"``, version :data:`TRAIN_FORMAT_VERSION`; :func:`save_training_checkpoint`
/ :func:`load_training_checkpoint`) hold the state of :func:`mini_cal.train.train` at an epoch boundary:

==========================  ===================================================================================
``param/<name>``            the current parameters (what the next epoch starts from)
``best/<name>``             the parameters of the best validation epoch so far (absent before the first epoch)
``optim/<name>``            the optimiser's arrays (SGD velocity; Adam ``m.<name>``, ``v.<name>``)
``history_json``            the history so far, ``{"epochs": [...], "steps": [...]}``, as UTF-8 JSON bytes
``meta`` (JSON)             ``epoch`` (epochs completed), ``step`` (steps completed), ``best_epoch``,
                            ``best_val_acc``, ``elapsed_s``; ``rng`` (:meth:`mini_cal.backend.Rng.get_state`);
                            ``optimizer`` (name and scalar state, e.g. Adam's ``t``); ``method`` (name, class,
                            hyper-parameters, :meth:`~mini_cal.methods.base.Method.state_dict`); ``config`` (the
                            :class:`~mini_cal.train.TrainConfig`); ``model_config``; ``dataset`` (name, input dims,
                            classes, training-set size and a SHA-256 of the training split); ``backend``
==========================  ===================================================================================

Everything the next epoch depends on is in the file (parameters, optimiser state, the one random generator that
draws the shuffling permutation, the bottleneck noise and OGM-GE's noise, the method's running state), so
continuing from a checkpoint gives the same numbers, bit for bit, as the run that was never interrupted. JSON keeps
floats exactly (``repr`` round-trips). Loading checks that the checkpoint belongs to this run - same method and
hyper-parameters, same data, same network, same training options except ``epochs`` (which may grow), ``progress``,
``probe``, ``shapley`` and the checkpoint options - and raises :class:`CheckpointError` naming what differs. The
counters and the method's running state are then checked against their schemas (:mod:`mini_cal.lab.schema`:
shapes from the network, finite numbers, ranges), before anything uses them. A run writing a checkpoint holds
``PATH.lock`` (:func:`checkpoint_lock`), so that two runs never write one file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .. import backend as B
from ..hooks import Hook
from ..model import Model, ModelConfig
from ..train import DivergenceError, Run, train
from . import schema
from .io import pid_alive, write_npz

MODEL_FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint file is missing, truncated, corrupted, of another format version or of another model."""


def save_model(path, model: Model, params: dict, meta: dict | None = None) -> None:
    """Write a model's parameters and configuration (plus free-form ``meta``: method, seed, metrics...)."""
    info = {
        "format_version": MODEL_FORMAT_VERSION,
        "kind": "model",
        "model_config": asdict(model.config),
        **(meta or {}),
    }
    arrays = {f"param/{k}": B.to_numpy(v) for k, v in params.items()}
    arrays["meta"] = np.array(json.dumps(info))
    write_npz(arrays, path)


def read_npz(path) -> tuple:
    """(meta dict, {name: array}) of a mini_cal ``.npz`` file, with clear errors for bad files."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
        meta = json.loads(str(arrays.pop("meta")))
    except Exception as exc:  # zipfile/ValueError/KeyError/JSON errors all mean the same to a user
        raise CheckpointError(
            f"checkpoint {str(path)!r} is truncated or corrupted ({type(exc).__name__}: {exc})"
        ) from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"checkpoint {str(path)!r} is truncated or corrupted (its meta is not an object)")
    return meta, arrays


def load_model(path, dtype: str = "float32", *, expect_method=None, expect_seed=None) -> tuple:
    """(Model, params, meta) from a file written by :func:`save_model`; ``expect_method``, ``expect_seed``: what
    the caller takes the file to be (its name, say ``cal-seed0.npz``), checked against the ``method`` and ``seed``
    saved in it."""
    meta, arrays = read_npz(path)
    if meta.get("kind") != "model" or meta.get("format_version") != MODEL_FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {str(path)!r}: expected a model file of format version "
            f"{MODEL_FORMAT_VERSION}, got kind {meta.get('kind')!r} version "
            f"{meta.get('format_version')!r}"
        )
    wanted = {k: v for k, v in (("method", expect_method), ("seed", expect_seed)) if v is not None}
    if any(meta.get(k) != v for k, v in wanted.items()):
        raise CheckpointError(
            f"model file {str(path)!r} holds method {meta.get('method')!r} seed {meta.get('seed')!r}, expected "
            + " ".join(f"{k} {v!r}" for k, v in wanted.items())
            + " (another run's model under this name)"
        )
    try:
        model = Model(ModelConfig(**meta["model_config"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"checkpoint {str(path)!r}: damaged model_config ({type(exc).__name__}: {exc})") from None
    params = {k[len("param/") :]: B.asarray(v, dtype=dtype) for k, v in arrays.items() if k.startswith("param/")}
    expected = model.init_params(B.make_rng(0), dtype=dtype)
    for k, v in expected.items():
        if k not in params or tuple(params[k].shape) != tuple(v.shape):
            raise CheckpointError(f"checkpoint {str(path)!r}: parameter {k!r} missing or of the wrong shape")
    return model, params, meta


# ------------------------------------------------------------------------------------------ training checkpoints
TRAIN_FORMAT_VERSION = 1

# TrainConfig fields a resumed run may change: none of them alters the numbers of the epochs that are run
RESUMABLE_CHANGES = ("epochs", "progress", "probe", "shapley")


@dataclass
class TrainingState:
    """The training loop at an epoch boundary, as host copies that later steps cannot change."""

    epoch: int  # epochs completed; the next epoch to run (0-based)
    step: int  # steps completed
    params: dict  # {name: np.ndarray}
    optimizer_state: dict  # {name: np.ndarray or scalar}
    rng_state: dict  # backend.Rng.get_state()
    method_state: dict  # method.state_dict()
    history: dict  # {"epochs": [...], "steps": [...]}
    best_epoch: int  # -1 before the first epoch
    best_val_acc: float
    best_params: dict | None
    elapsed_s: float  # training time so far, over every session of this run
    history_json: dict | None = field(default=None, repr=False)  # each row of history as JSON text (a cache)


def _host_copy(arrays: dict) -> dict:
    return {k: np.array(B.to_numpy(v), copy=True) for k, v in arrays.items()}


def _plain(obj):
    """``obj`` as it reads back from JSON (tuples become lists): what a loaded checkpoint is compared with."""
    return json.loads(json.dumps(obj))


def _rows_json(history: dict, done: dict) -> dict:
    """JSON text of every history row, reusing the text ``done`` of a prefix of the history (it only grows), so
    that writing a checkpoint each epoch costs the new rows, not the whole history."""
    return {k: done[k] + [json.dumps(row) for row in history[k][len(done[k]) :]] for k in ("epochs", "steps")}


def capture_training_state(run: Run, previous: TrainingState | None = None) -> TrainingState:
    """Snapshot of the loop after ``run.epoch`` epochs; ``previous``: the snapshot of an earlier epoch of the same
    run, whose serialised history rows are reused."""
    opt = {
        k: v if isinstance(v, (int, float)) else np.array(B.to_numpy(v), copy=True)
        for k, v in run.optimizer.state.items()
    }
    history = run.history
    return TrainingState(
        epoch=run.epoch,
        step=run.step,
        params=_host_copy(run.params),
        optimizer_state=opt,
        rng_state=run.rng.get_state(),
        method_state=_plain(run.method.state_dict()),
        history={"epochs": list(history["epochs"]), "steps": list(history["steps"])},
        best_epoch=run.best_epoch,
        best_val_acc=run.best_acc,
        best_params=None if run.best_params is None else _host_copy(run.best_params),
        elapsed_s=run.elapsed(),
        history_json=None
        if previous is None or previous.history_json is None
        else _rows_json(history, previous.history_json),
    )


def restore_training_state(run: Run, state: TrainingState) -> None:
    """Put ``state`` into ``run`` (copies: the optimisers update in place, and ``state`` must stay as saved)."""
    run.params = {k: B.asarray(v.copy()) for k, v in state.params.items()}
    run.optimizer.state = {
        k: B.asarray(v.copy()) if isinstance(v, np.ndarray) else v for k, v in state.optimizer_state.items()
    }
    run.rng.set_state(state.rng_state)
    run.history = {"epochs": list(state.history["epochs"]), "steps": list(state.history["steps"])}
    run.step, run.epoch, run.elapsed_before = state.step, state.epoch, state.elapsed_s
    if state.best_params is not None:
        run.best_acc, run.best_epoch = state.best_val_acc, state.best_epoch
        run.best_params = {k: B.asarray(v) for k, v in state.best_params.items()}


def dataset_signature(dataset) -> dict:
    """What identifies the training data: its shape and a SHA-256 of the training split."""
    h = hashlib.sha256()
    for a in (*dataset.x_train, dataset.y_train):
        a = np.ascontiguousarray(np.asarray(a))
        h.update(f"{a.dtype}{a.shape}".encode())
        h.update(a.tobytes())
    return {
        "name": dataset.name,
        "input_dims": list(dataset.input_dims),
        "num_classes": int(dataset.num_classes),
        "n_train": int(len(dataset.y_train)),
        "sha256": h.hexdigest(),
    }


def default_interrupt_path(method_name: str, seed: int) -> Path:
    """Where an interrupted run with no ``checkpoint_path`` saves itself: a new file in ``checkpoints/`` named by
    method, seed and time, never one that exists (another run's)."""
    import time

    stem = f"{method_name}-seed{seed}-{time.strftime('%Y%m%d-%H%M%S')}-interrupted"
    path, n = Path("checkpoints") / f"{stem}.npz", 1
    while path.exists():
        n += 1
        path = Path("checkpoints") / f"{stem}-{n}.npz"
    return path


def save_training_checkpoint(path, state: TrainingState, *, method, config, model: Model, dataset) -> None:
    """Write ``state`` (and what identifies the run) atomically to ``path``; creates the folder."""
    scalars = {k: v for k, v in state.optimizer_state.items() if not isinstance(v, np.ndarray)}
    meta = {
        "format_version": TRAIN_FORMAT_VERSION,
        "kind": "training",
        "epoch": state.epoch,
        "step": state.step,
        "best_epoch": state.best_epoch,
        "best_val_acc": state.best_val_acc,
        "elapsed_s": state.elapsed_s,
        "rng": state.rng_state,
        "optimizer": {"name": config.optimizer, "scalars": scalars},
        "method": {
            "name": str(method.name),
            "class": type(method).__name__,
            "hparams": method.hparams(),
            "state": state.method_state,
        },
        "config": asdict(config),
        "model_config": asdict(model.config),
        "dataset": dataset_signature(dataset),
        "backend": B.get_backend(),
    }
    arrays = {f"param/{k}": v for k, v in state.params.items()}
    arrays.update({f"best/{k}": v for k, v in (state.best_params or {}).items()})
    arrays.update({f"optim/{k}": v for k, v in state.optimizer_state.items() if isinstance(v, np.ndarray)})
    if state.history_json is None:  # kept in the state, for the next snapshot to extend
        state.history_json = _rows_json(state.history, {"epochs": [], "steps": []})
    rows = state.history_json
    text = '{"epochs": [' + ", ".join(rows["epochs"]) + '], "steps": [' + ", ".join(rows["steps"]) + "]}"
    arrays["history_json"] = np.frombuffer(text.encode(), dtype=np.uint8)
    arrays["meta"] = np.array(json.dumps(meta))
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    write_npz(arrays, path)


def _differences(saved: dict, current: dict, skip=()) -> list:
    return [
        f"{k}={saved.get(k)!r} in the checkpoint, {current[k]!r} here"
        for k in current
        if k not in skip and saved.get(k) != current[k]
    ]


def _check_same_run(where: str, meta: dict, method, config, model: Model, dataset) -> None:
    name = str(method.name)
    if meta["method"]["name"] != name:
        raise CheckpointError(f"{where} was written by method {meta['method']['name']!r}, not {name!r}")
    diff = _differences(meta["method"]["hparams"], _plain(method.hparams()))
    if diff:
        raise CheckpointError(f"{where}: method hyper-parameters differ: " + "; ".join(diff))
    saved, current = meta["dataset"], dataset_signature(dataset)
    diff = _differences(saved, current, skip=("name", "sha256"))
    if diff:
        raise CheckpointError(f"{where} was trained on other data (dataset {saved['name']!r}): " + "; ".join(diff))
    if saved["sha256"] != current["sha256"]:
        raise CheckpointError(
            f"{where} was trained on other data: dataset {saved['name']!r} has the same shape as "
            f"{current['name']!r} but different training samples"
        )
    diff = _differences(meta["config"], _plain(asdict(config)), skip=RESUMABLE_CHANGES)
    if diff:
        raise CheckpointError(f"{where}: training options differ: " + "; ".join(diff))
    diff = _differences(meta["model_config"], _plain(asdict(model.config)))
    if diff:
        raise CheckpointError(f"{where}: the network differs: " + "; ".join(diff))
    if meta["epoch"] > config.epochs:
        raise CheckpointError(f"{where} has already run {meta['epoch']} epochs, more than epochs={config.epochs}")


def _check_progress(where: str, meta: dict, history, config, dataset) -> None:
    """The loop's counters (:data:`schema.TRAINING`: integers and numbers in their ranges) and how they fit each
    other: one history row per epoch (and per step when steps are recorded), ``step`` = ``epoch`` epochs of
    mini-batches, and the best epoch the first one of the history's highest validation accuracy."""
    schema.check(meta, schema.TRAINING, {}, where, error=CheckpointError)
    epoch, step, best_epoch, best_acc = meta["epoch"], meta["step"], meta["best_epoch"], meta["best_val_acc"]
    rows = history.get("epochs") if isinstance(history, dict) else None
    steps = history.get("steps") if isinstance(history, dict) else None
    if not isinstance(rows, list) or not isinstance(steps, list):
        raise CheckpointError(f"{where}: the history is damaged (expected lists of epoch and step rows)")
    if len(rows) != epoch:
        raise CheckpointError(f"{where}: epoch is {epoch}, but the history holds {len(rows)} epochs")
    n, size = len(dataset.y_train), config.batch_size
    if step != epoch * math.ceil(n / size):
        raise CheckpointError(
            f"{where}: step is {step}, expected {epoch * math.ceil(n / size)} ({epoch} epochs of "
            f"{math.ceil(n / size)} batches of {size} from {n} training samples)"
        )
    if config.record_steps and len(steps) != step:
        raise CheckpointError(f"{where}: step is {step}, but the history holds {len(steps)} steps")
    if best_epoch >= epoch or (epoch > 0 and best_epoch < 0):
        raise CheckpointError(f"{where}: best_epoch {best_epoch} does not fit epoch {epoch}")
    if epoch == 0:
        if best_acc != -1:
            raise CheckpointError(f"{where}: best_val_acc is {best_acc!r}, expected -1 before the first epoch")
        return
    if not 0 <= best_acc <= 1:
        raise CheckpointError(f"{where}: best_val_acc is {best_acc!r}, expected a number in [0, 1] after an epoch")
    accs = [row.get("val_acc") if isinstance(row, dict) else None for row in rows]
    bad = [i for i, a in enumerate(accs) if not schema.Number(0, 1).ok(a, {})]
    if bad:
        raise CheckpointError(f"{where}: the history's epoch {bad[0]} has val_acc {accs[bad[0]]!r}, expected [0, 1]")
    top = max(accs)
    if (best_epoch, best_acc) != (accs.index(top), top):
        raise CheckpointError(
            f"{where}: best_epoch {best_epoch} and best_val_acc {best_acc!r}, expected the best validation "
            f"accuracy in the history, {top!r} (epoch {accs.index(top)})"
        )


def _check_optimizer(where: str, meta: dict, optim: dict, expected: dict, config) -> None:
    """Every optimiser array the run has after its steps (SGD's velocity when momentum > 0, Adam's m and v), of
    its parameter's shape and dtype, finite; no other."""
    if meta["optimizer"].get("name") != config.optimizer:
        raise CheckpointError(f"{where}: optimiser {meta['optimizer'].get('name')!r}, expected {config.optimizer!r}")
    if meta["step"] == 0:
        prefixes = ()
    elif config.optimizer == "adam":
        prefixes = ("m.", "v.")
        t = meta["optimizer"]["scalars"].get("t")
        if isinstance(t, bool) or t != meta["step"]:
            raise CheckpointError(f"{where}: Adam's step count t is {t!r}, expected {meta['step']}")
    else:
        prefixes = ("",) if config.momentum else ()
    wanted = {p + k: v for p in prefixes for k, v in expected.items()}
    for k in sorted(set(wanted) | set(optim)):
        got = optim.get(k)
        if k not in wanted:
            raise CheckpointError(f"{where}: unexpected optimiser array {k!r}")
        if got is None or got.shape != tuple(wanted[k].shape) or got.dtype != np.dtype(config.dtype):
            raise CheckpointError(f"{where}: optimiser array {k!r} is missing or of the wrong shape or dtype")
        if not np.all(np.isfinite(got)):
            raise CheckpointError(f"{where}: optimiser array {k!r} holds NaN or inf values")


def _check_rng(where: str, state) -> None:
    """A state that the run's random generator accepts (tried on a fresh generator of the same kind)."""
    probe = B.make_rng(0)
    kind = probe.get_state()["host"].get("bit_generator")
    ok = isinstance(state, dict) and isinstance(state.get("host"), dict) and state["host"].get("bit_generator") == kind
    if ok:
        try:
            probe.set_state(state)
        except Exception:  # numpy raises TypeError, ValueError or KeyError for a malformed state
            ok = False
    if not ok:
        raise CheckpointError(f"{where}: the random generator state is missing or damaged (expected a {kind} state)")


def load_training_checkpoint(path, *, method, config, model: Model, dataset) -> TrainingState:
    """The :class:`TrainingState` saved in ``path``, after checking that it continues this run (method and
    hyper-parameters, data, training options, network); loads the method's running state into ``method``
    (which must be set up). Raises :class:`CheckpointError` on any mismatch or damage."""
    where = f"checkpoint {str(path)!r}"
    meta, arrays = read_npz(path)
    if meta.get("kind") != "training":
        raise CheckpointError(
            f"{where} is not a training checkpoint (kind {meta.get('kind')!r}); a model file is "
            "read with mini_cal.lab.checkpoint.load_model"
        )
    if meta.get("format_version") != TRAIN_FORMAT_VERSION:
        raise CheckpointError(
            f"{where} has format version {meta.get('format_version')!r}; this mini_cal reads "
            f"training checkpoints of version {TRAIN_FORMAT_VERSION}"
        )
    try:
        _check_same_run(where, meta, method, config, model, dataset)
        expected = model.init_params(B.make_rng(0), dtype=config.dtype)
        groups = {
            g: {k[len(g) + 1 :]: v for k, v in arrays.items() if k.startswith(g + "/")}
            for g in ("param", "best", "optim")
        }
        history = json.loads(bytes(arrays["history_json"]).decode())
        _check_progress(where, meta, history, config, dataset)
        for group in ("param", "best") if meta["best_epoch"] >= 0 else ("param",):
            for k, v in expected.items():
                got = groups[group].get(k)
                if got is None or got.shape != tuple(v.shape) or got.dtype != np.dtype(config.dtype):
                    raise CheckpointError(f"{where}: {group} array {k!r} is missing or of the wrong shape or dtype")
                if not np.all(np.isfinite(got)):
                    raise CheckpointError(f"{where}: {group} array {k!r} holds NaN or inf values")
        _check_optimizer(where, meta, groups["optim"], expected, config)
        _check_rng(where, meta["rng"])
        schema.check_method_state(method, meta["method"]["state"], model, where, CheckpointError)
        method.load_state_dict(meta["method"]["state"])
        return TrainingState(
            epoch=meta["epoch"],
            step=meta["step"],
            params=groups["param"],
            optimizer_state={**meta["optimizer"]["scalars"], **groups["optim"]},
            rng_state=meta["rng"],
            method_state=meta["method"]["state"],
            history=history,
            best_epoch=meta["best_epoch"],
            best_val_acc=meta["best_val_acc"],
            best_params=groups["best"] if meta["best_epoch"] >= 0 else None,
            elapsed_s=meta["elapsed_s"],
        )
    except CheckpointError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CheckpointError(f"{where} is incomplete or damaged ({type(exc).__name__}: {exc})") from None


# ------------------------------------------------------------------------------- resume and Ctrl-C, as a hook
class TrainingInterrupted(KeyboardInterrupt):
    """Training was interrupted (Ctrl-C). ``path``: the checkpoint of the last completed epoch (``epoch``), or None
    when nothing was saved; ``default_location``: True when no checkpoint path was set."""

    def __init__(self, path, epoch: int, default_location: bool = False, unsaved: str | None = None):
        self.path, self.epoch, self.default_location, self.unsaved = path, epoch, default_location, unsaved
        if unsaved is not None:  # the save itself failed: say both what happened and why nothing was kept
            text = f"training interrupted; the state at the end of epoch {epoch} could not be saved ({unsaved})"
        elif path is None:
            text = "training interrupted; nothing was saved" + (" (no epoch had ended)" if epoch == 0 else "")
        else:
            text = (
                f"training interrupted; the state at the end of epoch {epoch} is saved in {str(path)!r}"
                + (" (no checkpoint path was set: the default location)" if default_location else "")
                + "; continue with train_resumable(..., resume=PATH)"
            )
        super().__init__(text)

    def __reduce__(self):  # picklable, so that it crosses from a worker process
        return type(self), (self.path, self.epoch, self.default_location, self.unsaved)


class Checkpointing(Hook):
    """Keeps the state at the last epoch boundary; writes it to ``path`` every ``every`` epochs and after the last;
    with ``resume``, restores the run saved there before the first epoch (checked to be the same run)."""

    def __init__(self, path=None, every: int = 1, resume=None):
        if not isinstance(every, int) or isinstance(every, bool) or every < 1:
            raise ValueError(f"checkpoint_every: expected a positive integer, got {every!r}")
        self.path = None if path is None else os.fspath(path)
        self.every, self.resume = every, resume
        self.good = None  # the state at the last epoch boundary: what an interruption or a divergence leaves
        self.saved_epoch = None  # the epoch whose state self.path holds (None: not this run's)
        self.run = None  # the run this hook is attached to (what train_resumable saves after an exception)

    def on_start(self, run):
        self.run = run
        if self.resume is None:
            return
        self.good = load_training_checkpoint(
            self.resume, method=run.method, config=run.config, model=run.model, dataset=run.dataset
        )
        restore_training_state(run, self.good)
        if self.path is not None and os.path.realpath(self.resume) == os.path.realpath(self.path):
            self.saved_epoch = self.good.epoch

    def on_epoch_end(self, run):
        self.good = capture_training_state(run, previous=self.good)
        if self.path and (run.epoch % self.every == 0 or run.epoch == run.config.epochs):
            self.save(run, self.path)

    def save(self, run, path) -> None:
        save_training_checkpoint(
            path, self.good, method=run.method, config=run.config, model=run.model, dataset=run.dataset
        )
        if path == self.path:
            self.saved_epoch = self.good.epoch

    def save_last_good(self, run, path) -> None:
        """Write the last epoch-boundary state to ``path`` unless that file already holds it."""
        if (
            path is not None
            and self.good is not None
            and not (path == self.path and self.saved_epoch == self.good.epoch)
        ):
            self.save(run, path)


# ---------------------------------------------------------------------------------- one writer per checkpoint
class CheckpointLocked(CheckpointError):
    """Another live process is writing this checkpoint (its lock file names the process)."""


def _lock_owner(lock: Path):
    """The PID in ``lock`` when that process runs, "?" for a lock being written right now, else None (stale)."""
    try:
        text, age = lock.read_text(), time.time() - lock.stat().st_mtime
    except FileNotFoundError:
        return None
    except OSError:
        return "?"
    try:
        pid = int(text.strip())
    except ValueError:  # empty for the instant between its creation and the PID's write
        return "?" if age < 10 else None
    return pid if pid > 0 and pid_alive(pid) else None


@contextlib.contextmanager
def checkpoint_lock(path):
    """Hold ``PATH.lock`` while this process writes the checkpoint ``path``, so that two runs never write one
    file: the lock is created with O_EXCL and holds this process's PID; a second writer (of any process, this
    one included) gets :class:`CheckpointLocked` at once; a lock whose process is gone (``kill -9``) is taken
    over; the lock is removed on the way out, after an exception or Ctrl-C too."""
    lock = Path(f"{os.fspath(path)}.lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(3):
        try:
            fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            owner = _lock_owner(lock)
            if owner is not None:
                raise CheckpointLocked(
                    f"checkpoint {os.fspath(path)!r} is in use by another process (PID {owner}, lock file "
                    f"{str(lock)!r}): wait until that run ends, or choose another checkpoint path"
                ) from None
            with contextlib.suppress(FileNotFoundError):
                os.remove(lock)  # stale: its process is gone
            continue
        with os.fdopen(fd, "w") as fh:
            fh.write(f"{os.getpid()}\n")
        break
    else:
        raise CheckpointLocked(f"checkpoint {os.fspath(path)!r}: could not take its lock file {str(lock)!r}")
    try:
        yield lock
    finally:
        with contextlib.suppress(OSError, ValueError):
            if int(lock.read_text().strip()) == os.getpid():
                os.remove(lock)


def train_resumable(
    method,
    dataset,
    config=None,
    *,
    checkpoint_path=None,
    checkpoint_every: int = 1,
    resume=None,
    save_on_interrupt: bool = True,
    log=None,
):
    """:func:`mini_cal.train.train` with checkpoints, resume and Ctrl-C handling.

    * ``checkpoint_path``: the state is written there (atomically) every ``checkpoint_every`` epochs and after the
      last;
    * ``resume=PATH`` continues the run saved in PATH from its epoch boundary, with the same method and
      hyper-parameters, data and config (``epochs`` may grow); the result - parameters, history, metrics - is
      bit-identical to the run that was never interrupted (``train_time_s`` adds up the sessions);
    * Ctrl-C raises :class:`TrainingInterrupted` after saving the last completed epoch to ``checkpoint_path``, or
      to :func:`default_interrupt_path` when none is set and ``save_on_interrupt`` (the steps of the epoch in
      progress are lost: they are repeated on resume);
    * :class:`~mini_cal.train.DivergenceError` leaves in ``checkpoint_path`` the last epoch that ended with finite
      parameters, never a diverged state, and its message names the file.
    """
    hook = Checkpointing(checkpoint_path, checkpoint_every, resume)
    with checkpoint_lock(checkpoint_path) if checkpoint_path is not None else contextlib.nullcontext():
        return _train_saving(hook, method, dataset, config, log, save_on_interrupt)


def _train_saving(hook, method, dataset, config, log, save_on_interrupt):
    """:func:`train` with ``hook``, saving the last completed epoch on Ctrl-C and divergence."""
    try:
        return train(method, dataset, config, log=log, hooks=[hook])
    except KeyboardInterrupt:
        path = hook.path
        if path is None and hook.good is not None and save_on_interrupt:
            path = default_interrupt_path(str(getattr(method, "name", method)), hook.run.config.seed)
        epoch = 0 if hook.good is None else hook.good.epoch
        try:
            hook.save_last_good(hook.run, path)
        except OSError as exc:  # a read-only folder or a full disk: the interruption is still the news
            raise TrainingInterrupted(None, epoch, hook.path is None, f"{path}: {exc.strerror or exc}") from None
        raise TrainingInterrupted(
            None if hook.good is None or path is None else path, epoch, default_location=hook.path is None
        ) from None
    except DivergenceError as exc:
        hook.save_last_good(hook.run, hook.path)
        if hook.path is None:
            where = "no checkpoint was written (no checkpoint_path was set)"
        elif hook.good is None:
            where = "no checkpoint was written (no epoch had ended)"
        else:
            where = f"the last good checkpoint (end of epoch {hook.good.epoch}) is {hook.path!r}"
        exc.args = (f"{exc}; {where}",)
        raise
