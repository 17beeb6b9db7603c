"""The one training loop. Every method plugs into it through :class:`mini_cal.methods.base.Method`.

Per step: forward (with reparameterisation noise when the model has a bottleneck) -> ``method.loss`` (terms on
coalition logits, KL) -> ``model.backward`` -> ``method.modify_gradients`` (per-branch scaling or noise) ->
global-norm clipping -> optimiser step -> per-step diagnostics into the history. Per epoch: validation accuracy
(fused and per modality); the parameters of the best validation epoch are kept (model selection on validation),
and every reported test metric, probe included, is measured on those parameters. Under heavy imbalance the best
validation epoch can come early (joint on the default preset: often before the weak branch has learned anything);
``history["epochs"]`` shows the whole run.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from . import backend as B
from . import layers as L
from .checkpoint import (capture_training_state, default_interrupt_path, load_training_checkpoint,
                         save_training_checkpoint)
from .contribution import label_entropy
from .data import Dataset, validate_split
from .evaluate import evaluate, linear_probe
from .model import Model, ModelConfig
from .methods.base import StepContext
from .optim import clip_by_global_norm, make_optimizer, squared_norms


class DivergenceError(FloatingPointError):
    """A loss term or gradient became NaN or inf; the message says where the last good checkpoint is."""


class TrainingInterrupted(KeyboardInterrupt):
    """Training was interrupted (Ctrl-C). ``path``: the checkpoint of the last completed epoch (``epoch``), or None
    when no epoch had completed; ``default_location``: True when no ``checkpoint_path`` was set."""

    def __init__(self, path, epoch: int, default_location: bool = False):
        self.path, self.epoch, self.default_location = path, epoch, default_location
        if path is None:
            text = "training interrupted; nothing was saved" + (" (no epoch had ended)" if epoch == 0 else "")
        else:
            text = (f"training interrupted; the state at the end of epoch {epoch} is saved in {str(path)!r}"
                    + (" (no checkpoint_path was set: the default location)" if default_location else "")
                    + "; continue with train(..., resume=PATH)")
        super().__init__(text)

    def __reduce__(self):  # picklable, so that it crosses from a worker process (experiments.run_tasks)
        return type(self), (self.path, self.epoch, self.default_location)


@dataclass
class TrainConfig:
    """Hyper-parameters of the training loop and the network's size (one config type for every method)."""

    epochs: int = 40
    batch_size: int = 64
    optimizer: str = "sgd"
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 1e-4
    clip_norm: float | None = 10.0
    hidden: tuple = (64, 32)
    z_dim: int | None = None
    sigma_shift: float = 5.0  # bottleneck: sigma = softplus(h Ws + bs - sigma_shift) + sigma_min starts small
    seed: int = 0
    dtype: str = "float32"
    progress: bool = True
    record_steps: bool = True
    probe: bool = True  # fit linear probes of each frozen encoder after training
    shapley: bool = True  # exact Shapley values of test accuracy after training
    checkpoint_path: str | None = None  # write a training checkpoint here (mini_cal/checkpoint.py) ...
    checkpoint_every: int = 1  # ... every this many epochs, and after the last
    save_on_interrupt: bool = True  # Ctrl-C without checkpoint_path writes checkpoints/...-interrupted.npz

    def validate(self):
        if not isinstance(self.epochs, int) or self.epochs < 1:
            raise ValueError(f"epochs: expected a positive integer, got {self.epochs!r}")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ValueError(f"batch_size: expected a positive integer, got {self.batch_size!r}")
        if not (isinstance(self.lr, (int, float)) and self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr: expected a positive finite learning rate, got {self.lr!r}")
        if self.clip_norm is not None and not self.clip_norm > 0:
            raise ValueError(f"clip_norm: expected a positive number or None, got {self.clip_norm!r}")
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"dtype: expected 'float32' or 'float64', got {self.dtype!r}")
        if self.optimizer not in ("sgd", "adam"):
            raise ValueError(f"optimizer: expected 'sgd' or 'adam', got {self.optimizer!r}")
        if not isinstance(self.checkpoint_every, int) or self.checkpoint_every < 1:
            raise ValueError(f"checkpoint_every: expected a positive integer, got {self.checkpoint_every!r}")
        if self.checkpoint_path is not None:
            self.checkpoint_path = os.fspath(self.checkpoint_path)  # a pathlib.Path too, stored as text
        return self


@dataclass
class TrainResult:
    """What a training run returns: the selected parameters, the history and the final metrics."""

    method: str
    hparams: dict
    model: Model
    params: dict
    history: dict  # {"epochs": [per-epoch dicts], "steps": [per-step dicts]}
    best_epoch: int
    val: dict
    test: dict
    probe_acc: list | None
    train_time_s: float
    config: TrainConfig = field(default_factory=TrainConfig)

    def summary(self) -> dict:
        """JSON-ready metrics (no arrays)."""
        return {"method": self.method, "hparams": self.hparams, "best_epoch": self.best_epoch,
                "val": self.val, "test": self.test, "probe_acc": self.probe_acc,
                "train_time_s": self.train_time_s, "config": asdict(self.config)}


def _branch_norms(model, sq: dict) -> list:
    """Per-branch gradient norms from the squared norms ``{name: ||g||^2}`` of :func:`squared_norms`."""
    return [math.sqrt(sum(sq[k] for k in model.branch_keys(m))) for m in range(model.M)]


def _copy_params(params: dict) -> dict:
    # astype copies in every backend (CuPy 13's asarray has no copy= keyword); the optimisers update in place
    return {k: B.astype(v, v.dtype) for k, v in params.items()}


def build_model(method, dataset: Dataset, config: TrainConfig) -> Model:
    return Model(ModelConfig(dataset.input_dims, dataset.num_classes, hidden=config.hidden,
                             bottleneck=method.uses_bottleneck, z_dim=config.z_dim, sigma_shift=config.sigma_shift))


def train(method, dataset: Dataset, config: TrainConfig | None = None, log=None, resume=None) -> TrainResult:
    """Train ``method`` on ``dataset``; select the epoch with the best validation accuracy; evaluate on test.

    ``log(row)`` is called with each epoch's history row. Checkpoints (format: :mod:`mini_cal.checkpoint`):

    * ``config.checkpoint_path``: the state is written there (atomically) every ``config.checkpoint_every``
      epochs and after the last;
    * ``resume=PATH`` continues the run saved in PATH from its epoch boundary, with the same method and
      hyper-parameters, data and config (``epochs`` may grow); the result - parameters, history, metrics - is
      bit-identical to the run that was never interrupted (``train_time_s`` adds up the sessions);
    * Ctrl-C raises :class:`TrainingInterrupted` after saving the last completed epoch to ``checkpoint_path``, or
      to ``checkpoints/<method>-seed<seed>-interrupted.npz`` when none is set (the steps of the epoch in progress
      are lost: they are repeated on resume);
    * :class:`DivergenceError` (NaN/inf loss, gradient or parameters) leaves in ``checkpoint_path`` the last
      epoch that ended with finite parameters, never a diverged state, and its message names the file.
    """
    config = (config or TrainConfig()).validate()
    K = dataset.num_classes
    for split in ("train", "val", "test"):
        xs, y = dataset.split(split)
        validate_split(xs, y, dataset.input_dims, K, split=split)
    xp = B.xp()
    dtype = B.float_dtype(config.dtype)
    start_time = time.perf_counter()

    model = build_model(method, dataset, config)
    rng = B.make_rng(config.seed)
    params = model.init_params(rng, dtype=config.dtype)
    optimizer = make_optimizer(config.optimizer, config.lr, config.momentum, config.weight_decay)
    h_y = label_entropy(dataset.y_train, K)
    method.setup(model, h_y)
    active = method.active_modalities(model.M)
    predict = method.predict_coalition(model.M)

    x_train = [B.asarray(x, dtype=dtype) for x in dataset.x_train]
    y_train = B.asarray(np.asarray(dataset.y_train, dtype=np.int64))
    Y_train = L.one_hot(y_train, K, dtype=dtype)  # (N, K)
    x_val = [B.asarray(x, dtype=dtype) for x in dataset.x_val]
    n = len(dataset.y_train)
    steps_per_epoch = math.ceil(n / config.batch_size)

    history = {"epochs": [], "steps": []}
    best = (-1.0, -1, None)
    step = start_epoch = 0
    elapsed_before = 0.0
    good = None  # the state at the last epoch boundary: what an interruption or a divergence leaves on disk
    if resume is not None:
        good = load_training_checkpoint(resume, method=method, config=config, model=model, dataset=dataset)
        # copies: the optimisers update in place, and `good` must keep the epoch-boundary state
        params = {k: B.asarray(v.copy()) for k, v in good.params.items()}
        optimizer.state = {k: B.asarray(v.copy()) if isinstance(v, np.ndarray) else v
                           for k, v in good.optimizer_state.items()}
        rng.set_state(good.rng_state)
        history = {"epochs": list(good.history["epochs"]), "steps": list(good.history["steps"])}
        step, start_epoch, elapsed_before = good.step, good.epoch, good.elapsed_s
        if good.best_params is not None:
            best = (good.best_val_acc, good.best_epoch, {k: B.asarray(v) for k, v in good.best_params.items()})
    # the epoch whose state config.checkpoint_path holds (None: not this run's)
    saved_epoch = start_epoch if resume is not None and config.checkpoint_path is not None and \
        os.path.realpath(resume) == os.path.realpath(config.checkpoint_path) else None

    def save(state, path):
        save_training_checkpoint(path, state, method=method, config=config, model=model, dataset=dataset)

    epochs = range(start_epoch, config.epochs)
    bar = None
    if config.progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=config.epochs, initial=start_epoch, desc=str(getattr(method, "name", method)),
                   unit="epoch", leave=False)
    try:
        for epoch in epochs:
            perm = B.asarray(rng.permutation(n))
            sums = {}
            for b in range(steps_per_epoch):
                idx = perm[b * config.batch_size:min((b + 1) * config.batch_size, n)]  # no stop past the end
                xb = [xp.take(x, idx, axis=0) for x in x_train]
                yb = xp.take(Y_train, idx, axis=0)
                eps = model.sample_eps(yb.shape[0], rng, config.dtype, active) if method.samples_noise else None
                out, cache = model.forward(params, xb, eps=eps, modalities=active)
                ctx = StepContext(model, params, out, yb, epoch, step, rng, h_y)
                lo = method.loss(ctx)
                for name, value in lo.terms.items():
                    if not math.isfinite(value):
                        raise DivergenceError(f"loss term {name!r} is {value} at epoch {epoch + 1}, step {step}")
                grads = model.backward(params, cache, lo.dlogits, lo.dmu, lo.dsigma)
                diag = method.modify_gradients(grads, ctx, lo)
                sq = squared_norms(grads)  # one device-to-host transfer for every norm of this step
                branch_norms = _branch_norms(model, sq)
                norm = clip_by_global_norm(grads, config.clip_norm, norm=math.sqrt(sum(sq.values())))
                if not math.isfinite(norm):
                    raise DivergenceError(f"gradient norm is {norm} at epoch {epoch + 1}, step {step}")
                optimizer.step(params, grads)
                total = B.to_float(lo.total)
                sums["loss"] = sums.get("loss", 0.0) + total
                for k, v in lo.terms.items():
                    sums[k] = sums.get(k, 0.0) + v
                if config.record_steps:
                    row = {"epoch": epoch, "step": step, "loss": total, **lo.terms, **lo.diagnostics, **diag,
                           "grad_norm": norm, "branch_grad_norm": branch_norms}
                    history["steps"].append(_jsonable(row))
                step += 1
            val = evaluate(model, params, x_val, dataset.y_val, predict)
            row = {"epoch": epoch, **{k: v / steps_per_epoch for k, v in sums.items()},
                   "val_acc": val["acc"], "val_coalition_acc": val["coalition_acc"]}
            history["epochs"].append(row)
            if val["acc"] > best[0]:
                best = (val["acc"], epoch, _copy_params(params))
            state = capture_training_state(epoch + 1, step, params, optimizer, rng, method, history, best,
                                           elapsed_before + time.perf_counter() - start_time, previous=good)
            if not state.all_finite():
                raise DivergenceError(f"a parameter is not finite at the end of epoch {epoch + 1}")
            good = state
            if config.checkpoint_path and ((epoch + 1) % config.checkpoint_every == 0 or epoch + 1 == config.epochs):
                save(good, config.checkpoint_path)
                saved_epoch = good.epoch
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{row['loss']:.3f}", val=f"{val['acc']:.3f}")
            if log is not None:
                log(row)
    except (KeyboardInterrupt, DivergenceError) as exc:
        interrupted = isinstance(exc, KeyboardInterrupt)
        path = config.checkpoint_path
        if interrupted and path is None and good is not None and config.save_on_interrupt:
            path = default_interrupt_path(str(getattr(method, "name", method)), config.seed)
        if path is not None and good is not None and not (path == config.checkpoint_path and
                                                          saved_epoch == good.epoch):
            save(good, path)
        if interrupted:
            raise TrainingInterrupted(None if good is None or path is None else path,
                                      0 if good is None else good.epoch,
                                      default_location=config.checkpoint_path is None) from None
        if path is None:
            where = "no checkpoint was written (no checkpoint_path was set)"
        elif good is None:
            where = "no checkpoint was written (no epoch had ended)"
        else:
            where = f"the last good checkpoint (end of epoch {good.epoch}) is {str(path)!r}"
        exc.args = (f"{exc}; {where}",)
        raise
    finally:
        if bar is not None:
            bar.close()

    train_time = elapsed_before + time.perf_counter() - start_time
    best_params = best[2]
    x_test = [B.asarray(x, dtype=dtype) for x in dataset.x_test]
    # branches that never trained (unimodal runs) are not evaluated: they report None
    val = evaluate(model, best_params, x_val, dataset.y_val, predict, modalities=active)
    test = evaluate(model, best_params, x_test, dataset.y_test, predict, with_shapley=config.shapley and not active,
                    modalities=active)
    probe = None
    if config.probe:
        probe = linear_probe(model, best_params, x_train, dataset.y_train, x_test, dataset.y_test,
                             modalities=active)
    return TrainResult(method=str(getattr(method, "name", method)), hparams=method.hparams(), model=model,
                       params=best_params, history=history, best_epoch=best[1], val=val, test=test,
                       probe_acc=probe, train_time_s=train_time, config=config)


def _jsonable(row: dict) -> dict:
    out = {}
    for k, v in row.items():
        if isinstance(v, np.ndarray):
            out[k] = v.tolist()
        elif isinstance(v, (np.floating, np.integer)):
            out[k] = v.item()
        elif isinstance(v, (list, tuple)):
            out[k] = [x.item() if isinstance(x, (np.floating, np.integer)) else x for x in v]
        else:
            out[k] = v
    return out
