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
``probe``, ``shapley`` and the checkpoint options - and raises :class:`CheckpointError` naming what differs.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from . import backend as B
from .model import Model, ModelConfig

MODEL_FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint file is missing, truncated, corrupted, of another format version or of another model."""


def atomic_savez(path, arrays: dict) -> None:
    """Write ``arrays`` to ``path`` (an ``.npz``) so that ``path`` is either the old file or the complete new one.

    The temporary name is unique, so two processes writing the same path cannot interleave their bytes.
    """
    path = Path(path)
    tmp = path.with_name(f"{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "xb") as fh:
            np.savez(fh, **arrays)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:  # KeyboardInterrupt included: never leave the temporary file behind
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


def save_model(path, model: Model, params: dict, meta: dict | None = None) -> None:
    """Write a model's parameters and configuration (plus free-form ``meta``: method, seed, metrics...)."""
    info = {"format_version": MODEL_FORMAT_VERSION, "kind": "model", "model_config": asdict(model.config),
            **(meta or {})}
    arrays = {f"param/{k}": B.to_numpy(v) for k, v in params.items()}
    arrays["meta"] = np.array(json.dumps(info))
    atomic_savez(path, arrays)


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
        raise CheckpointError(f"checkpoint {str(path)!r} is truncated or corrupted ({type(exc).__name__}: {exc})") \
            from None
    return meta, arrays


def load_model(path, dtype: str = "float32") -> tuple:
    """(Model, params, meta) from a file written by :func:`save_model`."""
    meta, arrays = read_npz(path)
    if meta.get("kind") != "model" or meta.get("format_version") != MODEL_FORMAT_VERSION:
        raise CheckpointError(f"checkpoint {str(path)!r}: expected a model file of format version "
                              f"{MODEL_FORMAT_VERSION}, got kind {meta.get('kind')!r} version "
                              f"{meta.get('format_version')!r}")
    model = Model(ModelConfig(**meta["model_config"]))
    params = {k[len("param/"):]: B.asarray(v, dtype=dtype) for k, v in arrays.items() if k.startswith("param/")}
    expected = model.init_params(B.make_rng(0), dtype=dtype)
    for k, v in expected.items():
        if k not in params or tuple(params[k].shape) != tuple(v.shape):
            raise CheckpointError(f"checkpoint {str(path)!r}: parameter {k!r} missing or of the wrong shape")
    return model, params, meta


# ------------------------------------------------------------------------------------------ training checkpoints
TRAIN_FORMAT_VERSION = 1

# TrainConfig fields a resumed run may change: none of them alters the numbers of the epochs that are run
RESUMABLE_CHANGES = ("epochs", "progress", "probe", "shapley", "checkpoint_path", "checkpoint_every")


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

    def all_finite(self) -> bool:
        return all(bool(np.isfinite(a).all()) for a in self.params.values())


def _host_copy(arrays: dict) -> dict:
    return {k: np.array(B.to_numpy(v), copy=True) for k, v in arrays.items()}


def _plain(obj):
    """``obj`` as it reads back from JSON (tuples become lists): what a loaded checkpoint is compared with."""
    return json.loads(json.dumps(obj))


def _rows_json(history: dict, done: dict) -> dict:
    """JSON text of every history row, reusing the text ``done`` of a prefix of the history (it only grows), so
    that writing a checkpoint each epoch costs the new rows, not the whole history."""
    return {k: done[k] + [json.dumps(row) for row in history[k][len(done[k]):]] for k in ("epochs", "steps")}


def capture_training_state(epoch: int, step: int, params: dict, optimizer, rng, method, history: dict, best: tuple,
                           elapsed_s: float, previous: TrainingState | None = None) -> TrainingState:
    """Snapshot of the loop after ``epoch`` epochs; ``best`` is (val_acc, epoch, params or None); ``previous``:
    the snapshot of an earlier epoch of the same run, whose serialised history rows are reused."""
    opt = {k: v if isinstance(v, (int, float)) else np.array(B.to_numpy(v), copy=True)
           for k, v in optimizer.state.items()}
    return TrainingState(epoch=epoch, step=step, params=_host_copy(params), optimizer_state=opt,
                         rng_state=rng.get_state(), method_state=_plain(method.state_dict()),
                         history={"epochs": list(history["epochs"]), "steps": list(history["steps"])},
                         best_epoch=best[1], best_val_acc=best[0],
                         best_params=None if best[2] is None else _host_copy(best[2]), elapsed_s=elapsed_s,
                         history_json=None if previous is None or previous.history_json is None else
                         _rows_json(history, previous.history_json))


def dataset_signature(dataset) -> dict:
    """What identifies the training data: its shape and a SHA-256 of the training split."""
    h = hashlib.sha256()
    for a in (*dataset.x_train, dataset.y_train):
        a = np.ascontiguousarray(np.asarray(a))
        h.update(f"{a.dtype}{a.shape}".encode())
        h.update(a.tobytes())
    return {"name": dataset.name, "input_dims": list(dataset.input_dims), "num_classes": int(dataset.num_classes),
            "n_train": int(len(dataset.y_train)), "sha256": h.hexdigest()}


def default_interrupt_path(method_name: str, seed: int) -> Path:
    """Where an interrupted run with no ``checkpoint_path`` saves itself."""
    return Path("checkpoints") / f"{method_name}-seed{seed}-interrupted.npz"


def save_training_checkpoint(path, state: TrainingState, *, method, config, model: Model, dataset) -> None:
    """Write ``state`` (and what identifies the run) atomically to ``path``; creates the folder."""
    scalars = {k: v for k, v in state.optimizer_state.items() if not isinstance(v, np.ndarray)}
    meta = {"format_version": TRAIN_FORMAT_VERSION, "kind": "training", "epoch": state.epoch, "step": state.step,
            "best_epoch": state.best_epoch, "best_val_acc": state.best_val_acc, "elapsed_s": state.elapsed_s,
            "rng": state.rng_state, "optimizer": {"name": config.optimizer, "scalars": scalars},
            "method": {"name": str(method.name), "class": type(method).__name__, "hparams": method.hparams(),
                       "state": state.method_state},
            "config": asdict(config), "model_config": asdict(model.config), "dataset": dataset_signature(dataset),
            "backend": B.get_backend()}
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
    atomic_savez(path, arrays)


def _differences(saved: dict, current: dict, skip=()) -> list:
    return [f"{k}={saved.get(k)!r} in the checkpoint, {current[k]!r} here" for k in current
            if k not in skip and saved.get(k) != current[k]]


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
        raise CheckpointError(f"{where} was trained on other data: dataset {saved['name']!r} has the same shape as "
                              f"{current['name']!r} but different training samples")
    diff = _differences(meta["config"], _plain(asdict(config)), skip=RESUMABLE_CHANGES)
    if diff:
        raise CheckpointError(f"{where}: training options differ: " + "; ".join(diff))
    diff = _differences(meta["model_config"], _plain(asdict(model.config)))
    if diff:
        raise CheckpointError(f"{where}: the network differs: " + "; ".join(diff))
    if meta["epoch"] > config.epochs:
        raise CheckpointError(f"{where} has already run {meta['epoch']} epochs, more than epochs={config.epochs}")


def load_training_checkpoint(path, *, method, config, model: Model, dataset) -> TrainingState:
    """The :class:`TrainingState` saved in ``path``, after checking that it continues this run (method and
    hyper-parameters, data, training options, network); loads the method's running state into ``method``
    (which must be set up). Raises :class:`CheckpointError` on any mismatch or damage."""
    where = f"checkpoint {str(path)!r}"
    meta, arrays = read_npz(path)
    if meta.get("kind") != "training":
        raise CheckpointError(f"{where} is not a training checkpoint (kind {meta.get('kind')!r}); a model file is "
                              "read with mini_cal.checkpoint.load_model")
    if meta.get("format_version") != TRAIN_FORMAT_VERSION:
        raise CheckpointError(f"{where} has format version {meta.get('format_version')!r}; this mini_cal reads "
                              f"training checkpoints of version {TRAIN_FORMAT_VERSION}")
    try:
        _check_same_run(where, meta, method, config, model, dataset)
        expected = model.init_params(B.make_rng(0), dtype=config.dtype)
        groups = {g: {k[len(g) + 1:]: v for k, v in arrays.items() if k.startswith(g + "/")}
                  for g in ("param", "best", "optim")}
        for group in ("param", "best") if meta["best_epoch"] >= 0 else ("param",):
            for k, v in expected.items():
                got = groups[group].get(k)
                if got is None or got.shape != tuple(v.shape) or got.dtype != np.dtype(config.dtype):
                    raise CheckpointError(f"{where}: {group} array {k!r} is missing or of the wrong shape or dtype")
        history = json.loads(bytes(arrays["history_json"]).decode())
        method.load_state_dict(meta["method"]["state"])
        return TrainingState(epoch=meta["epoch"], step=meta["step"], params=groups["param"],
                             optimizer_state={**meta["optimizer"]["scalars"], **groups["optim"]},
                             rng_state=meta["rng"], method_state=meta["method"]["state"], history=history,
                             best_epoch=meta["best_epoch"], best_val_acc=meta["best_val_acc"],
                             best_params=groups["best"] if meta["best_epoch"] >= 0 else None,
                             elapsed_s=meta["elapsed_s"])
    except CheckpointError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CheckpointError(f"{where} is incomplete or damaged ({type(exc).__name__}: {exc})") from None
