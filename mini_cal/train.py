"""The one training loop. Every method plugs into it through :class:`mini_cal.methods.base.Method`.

Per step: forward (with reparameterisation noise when the model has a bottleneck) -> ``method.loss`` (terms on
coalition logits, KL) -> ``model.backward`` -> ``method.modify_gradients`` (per-branch scaling or noise) ->
global-norm clipping -> optimiser step -> per-step diagnostics into the history. Per epoch: validation accuracy
(fused and per modality); the parameters of the best validation epoch are kept (model selection on validation),
and every reported test metric, probe included, is measured on those parameters. Under heavy imbalance the best
validation epoch can come early (joint on the default preset: often before the weak branch has learned anything);
``history["epochs"]`` shows the whole run.

Everything else attaches through :class:`~mini_cal.hooks.Hook` objects that see the loop's state (:class:`Run`) at
three moments: before the first epoch, after every step and after every epoch. :class:`FiniteGuard` (always on)
stops a diverging run; the method itself is a hook (for what it does once per epoch); :mod:`mini_cal.lab.checkpoint`
writes checkpoints, resumes runs bit for bit and saves on Ctrl-C.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from . import backend as B
from . import layers as L
from .contribution import label_entropy
from .data import Dataset, validate_split
from .evaluate import evaluate, linear_probe
from .hooks import Hook
from .methods.base import StepContext, check_number
from .model import Model, ModelConfig
from .optim import clip_by_global_norm, make_optimizer, squared_norms


class DivergenceError(FloatingPointError):
    """A loss term, the gradient norm or a parameter became NaN or inf."""


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

    def validate(self):
        """Check every field (type and range) and return ``self``; a ValueError names the field, the value and
        what was expected."""
        check_number("epochs", self.epochs, low=1, integer=True)
        check_number("batch_size", self.batch_size, low=1, integer=True)
        check_number("lr", self.lr, low=0, low_open=True)
        check_number("momentum", self.momentum, low=0, high=1, high_open=True)
        check_number("weight_decay", self.weight_decay, low=0)
        if self.clip_norm is not None:
            check_number("clip_norm", self.clip_norm, low=0, low_open=True)
        if not isinstance(self.hidden, (tuple, list)) or not self.hidden:
            raise ValueError(f"hidden: expected a non-empty list of layer widths, got {self.hidden!r}")
        for width in self.hidden:
            check_number("hidden", width, low=1, integer=True)
        if self.z_dim is not None:
            check_number("z_dim", self.z_dim, low=1, integer=True)
        check_number("sigma_shift", self.sigma_shift)
        check_number("seed", self.seed, low=0, integer=True)
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"dtype: expected 'float32' or 'float64', got {self.dtype!r}")
        if self.optimizer not in ("sgd", "adam"):
            raise ValueError(f"optimizer: expected 'sgd' or 'adam', got {self.optimizer!r}")
        for name in ("progress", "record_steps", "probe", "shapley"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name}: expected true or false, got {getattr(self, name)!r}")
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
        return {
            "method": self.method,
            "hparams": self.hparams,
            "best_epoch": self.best_epoch,
            "val": self.val,
            "test": self.test,
            "probe_acc": self.probe_acc,
            "train_time_s": self.train_time_s,
            "config": asdict(self.config),
        }


@dataclass
class Run:
    """The state of one training run, shared with the hooks: what a checkpoint saves and a resume restores."""

    method: object
    dataset: Dataset
    config: TrainConfig
    model: Model
    params: dict
    optimizer: object
    rng: object  # backend.Rng: shuffling, bottleneck noise and OGM-GE's noise all draw from it
    h_y: float  # entropy of the training labels (nats)
    epoch: int = 0  # epochs completed: the next epoch to run (0-based)
    step: int = 0  # steps completed
    history: dict = field(default_factory=lambda: {"epochs": [], "steps": []})
    best: tuple = (-1.0, -1, None)  # (validation accuracy, epoch, parameters) of the best epoch so far
    elapsed_before: float = 0.0  # training time of earlier sessions of this run (a resumed run)
    started: float = field(default_factory=time.perf_counter)

    def elapsed(self) -> float:
        return self.elapsed_before + time.perf_counter() - self.started


class FiniteGuard(Hook):
    """Stops the run with :class:`DivergenceError` as soon as a loss term, the gradient norm or (at the end of an
    epoch) a parameter is NaN or inf."""

    def on_step(self, run, row):
        for name, value in row["terms"].items():
            if not math.isfinite(value):
                raise DivergenceError(f"loss term {name!r} is {value} {self.where(row)}")
        if not math.isfinite(row["grad_norm"]):
            raise DivergenceError(f"gradient norm is {row['grad_norm']} {self.where(row)}")

    @staticmethod
    def where(row) -> str:
        return f"at epoch {row['epoch'] + 1}, step {row['step']}"

    def on_epoch_end(self, run):
        xp = B.xp()
        finite = B.to_numpy(xp.stack([xp.all(xp.isfinite(p)) for p in run.params.values()]))  # one transfer
        if not bool(np.all(finite)):
            raise DivergenceError(f"a parameter is not finite at the end of epoch {run.epoch}")


def start_run(method, dataset: Dataset, config: TrainConfig) -> Run:
    """Check the data, build the model, draw the initial parameters, make the optimiser, set the method up."""
    for split in ("train", "val", "test"):
        validate_split(*dataset.split(split), dataset.input_dims, dataset.num_classes, split=split)
    model = Model(
        ModelConfig(
            dataset.input_dims,
            dataset.num_classes,
            hidden=config.hidden,
            bottleneck=method.uses_bottleneck,
            z_dim=config.z_dim,
            sigma_shift=config.sigma_shift,
        )
    )
    rng = B.make_rng(config.seed)
    params = model.init_params(rng, dtype=config.dtype)
    optimizer = make_optimizer(config.optimizer, config.lr, config.momentum, config.weight_decay)
    h_y = label_entropy(dataset.y_train, dataset.num_classes)
    method.setup(model, h_y)
    return Run(method, dataset, config, model, params, optimizer, rng, h_y)


def train(method, dataset: Dataset, config: TrainConfig | None = None, log=None, hooks=()) -> TrainResult:
    """Train ``method`` on ``dataset``; keep the epoch with the best validation accuracy; evaluate it on test.

    ``log(row)`` is called with each epoch's history row; ``hooks``: :class:`Hook` objects (checkpoints, resume:
    :func:`mini_cal.lab.checkpoint.train_resumable`)."""
    config = (config or TrainConfig()).validate()
    run = start_run(method, dataset, config)
    model, xp, hooks = run.model, B.xp(), [FiniteGuard(), method, *hooks]  # a method is a hook too
    for hook in hooks:
        hook.on_start(run)
    active, predict = method.active_modalities(model.M), method.predict_coalition(model.M)
    x_train, Y_train = device_features(dataset.x_train, config), device_onehot(dataset.y_train, dataset, config)
    x_val = device_features(dataset.x_val, config)
    with progress_bar(config, method, run.epoch) as bar:
        for epoch in range(run.epoch, config.epochs):
            sums, steps = {}, 0
            for idx in batches(run.rng, len(dataset.y_train), config.batch_size):
                xb, yb = [xp.take(x, idx, axis=0) for x in x_train], xp.take(Y_train, idx, axis=0)
                eps = model.sample_eps(yb.shape[0], run.rng, config.dtype, active) if method.samples_noise else None
                out, cache = model.forward(run.params, xb, eps=eps, modalities=active)
                ctx = StepContext(model, run.params, out, yb, epoch, run.step, run.rng, run.h_y)
                lo = method.loss(ctx)
                grads = model.backward(run.params, cache, lo.dlogits, lo.dmu, lo.dsigma)
                diag = method.modify_gradients(grads, ctx, lo)
                sq = squared_norms(grads)  # one device-to-host transfer for every norm of this step
                norm = clip_by_global_norm(grads, config.clip_norm, norm=math.sqrt(sum(sq.values())))
                run.optimizer.step(run.params, grads)
                row = record_step(run, epoch, lo, diag, norm, sq, sums)
                for hook in hooks:
                    hook.on_step(run, row)
                run.step, steps = run.step + 1, steps + 1
            val = evaluate(model, run.params, x_val, dataset.y_val, predict)
            row = {
                "epoch": epoch,
                **{k: v / steps for k, v in sums.items()},
                "val_acc": val["acc"],
                "val_coalition_acc": val["coalition_acc"],
            }
            run.history["epochs"].append(row)
            if val["acc"] > run.best[0]:  # model selection on validation
                run.best = (val["acc"], epoch, copy_params(run.params))
            run.epoch = epoch + 1
            for hook in hooks:
                hook.on_epoch_end(run)
            bar(row)
            if log is not None:
                log(row)
    return finish(run, x_train, x_val)


# ------------------------------------------------------------------------------ the loop's plumbing, kept apart
def batches(rng, n: int, batch_size: int):
    """Index arrays of one epoch's mini-batches, in a fresh random order (the last batch may be smaller)."""
    perm = B.asarray(rng.permutation(n))
    for start in range(0, n, batch_size):
        yield perm[start : min(start + batch_size, n)]  # no slice stop past the end (the array API forbids it)


def device_features(xs, config: TrainConfig) -> list:
    return [B.asarray(x, dtype=B.float_dtype(config.dtype)) for x in xs]


def device_onehot(y, dataset: Dataset, config: TrainConfig):
    return L.one_hot(B.asarray(np.asarray(y, dtype=np.int64)), dataset.num_classes, dtype=config.dtype)  # (N, K)


def copy_params(params: dict) -> dict:
    # astype copies in every backend (CuPy 13's asarray has no copy= keyword); the optimisers update in place
    return {k: B.astype(v, v.dtype) for k, v in params.items()}


def record_step(run: Run, epoch: int, lo, diag: dict, norm: float, sq: dict, sums: dict) -> dict:
    """Add the step's loss terms to the epoch sums and, with ``record_steps``, a row to ``history["steps"]``;
    returns what the hooks see (``terms``: the loss terms with the total as ``loss``)."""
    terms = {"loss": B.to_float(lo.total), **lo.terms}
    for k, v in terms.items():
        sums[k] = sums.get(k, 0.0) + v
    branch_norms = [math.sqrt(sum(sq[k] for k in run.model.branch_keys(m))) for m in range(run.model.M)]
    row = {
        "epoch": epoch,
        "step": run.step,
        **terms,
        **lo.diagnostics,
        **diag,
        "grad_norm": norm,
        "branch_grad_norm": branch_norms,
    }
    if run.config.record_steps:
        run.history["steps"].append(_jsonable(row))  # a copy: the "terms" added below stay out of the history
    row["terms"] = lo.terms
    return row


@contextlib.contextmanager
def progress_bar(config: TrainConfig, method, start_epoch: int):
    """A tqdm bar over epochs (when ``config.progress``); yields ``update(row)``."""
    if not config.progress:
        yield lambda row: None
        return
    from tqdm.auto import tqdm

    bar = tqdm(
        total=config.epochs, initial=start_epoch, desc=str(getattr(method, "name", method)), unit="epoch", leave=False
    )

    def update(row):
        bar.update(1)
        bar.set_postfix(loss=f"{row['loss']:.3f}", val=f"{row['val_acc']:.3f}")

    try:
        yield update
    finally:
        bar.close()


def finish(run: Run, x_train, x_val) -> TrainResult:
    """Test metrics (and probes, Shapley values) of the best validation epoch's parameters."""
    method, dataset, config, model = run.method, run.dataset, run.config, run.model
    train_time = run.elapsed()
    active, predict = method.active_modalities(model.M), method.predict_coalition(model.M)
    best_params = run.best[2]
    x_test = device_features(dataset.x_test, config)
    # branches that never trained (unimodal runs) are not evaluated: they report None
    val = evaluate(model, best_params, x_val, dataset.y_val, predict, modalities=active)
    test = evaluate(
        model,
        best_params,
        x_test,
        dataset.y_test,
        predict,
        with_shapley=config.shapley and not active,
        modalities=active,
    )
    probe = None
    if config.probe:
        probe = linear_probe(model, best_params, x_train, dataset.y_train, x_test, dataset.y_test, modalities=active)
    return TrainResult(
        method=str(getattr(method, "name", method)),
        hparams=method.hparams(),
        model=model,
        params=best_params,
        history=run.history,
        best_epoch=run.best[1],
        val=val,
        test=test,
        probe_acc=probe,
        train_time_s=train_time,
        config=config,
    )


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
