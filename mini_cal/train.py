"""The one training loop. Every method plugs into it through :class:`mini_cal.methods.base.Method`.

Per step: forward (with reparameterisation noise when the model has a bottleneck) -> ``method.loss`` (terms on
coalition logits, KL) -> ``model.backward`` -> ``method.modify_gradients`` (per-branch scaling or noise) ->
global-norm clipping -> optimiser step -> per-step diagnostics into the history. Per epoch: validation accuracy
(fused and per modality); the parameters of the best validation epoch are kept (model selection on validation),
and every reported test metric, probe included, is measured on those parameters. Under heavy imbalance the best
validation epoch can come early (joint on the default preset: often before the weak branch has learned anything);
``history["epochs"]`` shows the whole run.

Everything else attaches through :class:`~mini_cal.hooks.Hook` objects that see the loop's state (:class:`Run`) at
three moments: before the first epoch, after every step and after every epoch. :class:`~mini_cal.hooks.FiniteGuard`
(always on) stops a diverging run; the method itself is a hook (for what it does once per epoch);
:mod:`mini_cal.lab.checkpoint` writes checkpoints, resumes runs bit for bit and saves on Ctrl-C.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field

from . import backend as B
from . import checks
from .contribution import label_entropy
from .data import Dataset
from .evaluate import linear_probe, metrics
from .history import record_step
from .hooks import DivergenceError, FiniteGuard, progress_bar  # noqa: F401  (DivergenceError: what train raises)
from .methods.base import Method, StepContext, split_on_device
from .model import Model, ModelConfig
from .optim import clip_by_global_norm, make_optimizer, squared_norms


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
        """Check every field (type and range), store numbers as Python ints and floats, return ``self``."""
        for name, low in (("epochs", 1), ("batch_size", 1), ("seed", 0)):
            setattr(self, name, checks.number(name, getattr(self, name), low=low, integer=True))
        self.lr = checks.number("lr", self.lr, low=0, low_open=True)
        self.momentum = checks.number("momentum", self.momentum, low=0, high=1, high_open=True)
        self.weight_decay = checks.number("weight_decay", self.weight_decay, low=0)
        if self.clip_norm is not None:
            self.clip_norm = checks.number("clip_norm", self.clip_norm, low=0, low_open=True)
        checks.widths("hidden", self.hidden)
        if self.z_dim is not None:
            checks.number("z_dim", self.z_dim, low=1, high=checks.MAX_WIDTH, integer=True)
        self.sigma_shift = checks.number("sigma_shift", self.sigma_shift)
        checks.choice("dtype", self.dtype, ("float32", "float64"))
        checks.choice("optimizer", self.optimizer, ("sgd", "adam"))
        for name in ("progress", "record_steps", "probe", "shapley"):
            checks.flag(name, getattr(self, name))
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
        keys = ("method", "hparams", "best_epoch", "val", "test", "probe_acc", "train_time_s")
        return {**{k: getattr(self, k) for k in keys}, "config": asdict(self.config)}


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
    best_acc: float = -1.0  # the best epoch so far by validation accuracy: its accuracy, index and parameters
    best_epoch: int = -1
    best_params: dict | None = None
    elapsed_before: float = 0.0  # training time of earlier sessions of this run (a resumed run)
    started: float = field(default_factory=time.perf_counter)

    def elapsed(self) -> float:
        return self.elapsed_before + time.perf_counter() - self.started


def start_run(method, dataset: Dataset, config: TrainConfig) -> Run:
    """Build the model, draw the initial parameters, make the optimiser, set the method up."""
    bottleneck, dims, K = method.uses_bottleneck, dataset.input_dims, dataset.num_classes
    model = Model(ModelConfig(dims, K, config.hidden, bottleneck, config.z_dim, sigma_shift=config.sigma_shift))
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
    checks.train_arguments(method, dataset, config, (Method, Dataset, TrainConfig))  # not an AttributeError later
    config = (config or TrainConfig()).validate()
    run = start_run(method, dataset, config)
    model, xp, hooks = run.model, B.xp(), [FiniteGuard(), method, *hooks]  # a method is a hook too
    for hook in hooks:
        hook.on_start(run)
    active, predict = method.active_modalities(model.M), method.predict_coalition(model.M)
    x_train, Y_train = split_on_device(dataset, "train", config.dtype)
    x_val = split_on_device(dataset, "val", config.dtype)[0]
    with progress_bar(config, method, run.epoch) as bar:
        for epoch in range(run.epoch, config.epochs):
            sums, steps = {}, 0
            for idx in batches(run.rng, len(dataset.y_train), config.batch_size):
                xb, yb = [xp.take(x, idx, axis=0) for x in x_train], xp.take(Y_train, idx, axis=0)
                eps = model.sample_eps(yb.shape[0], run.rng, config.dtype, active) if method.samples_noise else None
                out = model.forward(run.params, xb, eps=eps, modalities=active)
                ctx = StepContext(model, run.params, out, yb, epoch, run.step, run.rng, run.h_y)
                lo = method.loss(ctx)
                grads = model.backward(run.params, out, lo.dlogits, lo.dmu, lo.dsigma)
                diag = method.modify_gradients(grads, ctx, lo)
                sq = squared_norms(grads)  # one device-to-host transfer for every norm of this step
                norm = clip_by_global_norm(grads, config.clip_norm, norm=math.sqrt(sum(sq.values())))
                run.optimizer.step(run.params, grads)
                row = record_step(run, epoch, lo, diag, norm, sq, sums)
                for hook in hooks:
                    hook.on_step(run, row)
                run.step, steps = run.step + 1, steps + 1
            val = metrics(model, run.params, x_val, dataset.y_val, predict)
            row = {
                "epoch": epoch,
                **{k: v / steps for k, v in sums.items()},
                "val_acc": val["acc"],
                "val_coalition_acc": val["coalition_acc"],
            }
            run.history["epochs"].append(row)
            if val["acc"] > run.best_acc:  # model selection on validation
                run.best_acc, run.best_epoch, run.best_params = val["acc"], epoch, copy_params(run.params)
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


def copy_params(params: dict) -> dict:
    # astype copies in every backend (CuPy 13's asarray has no copy= keyword); the optimisers update in place
    return {k: B.astype(v, v.dtype) for k, v in params.items()}


def finish(run: Run, x_train, x_val) -> TrainResult:
    """Test metrics (and probes, Shapley values) of the best validation epoch's parameters."""
    method, dataset, config, model = run.method, run.dataset, run.config, run.model
    train_time = run.elapsed()
    active, predict = method.active_modalities(model.M), method.predict_coalition(model.M)
    best = run.best_params
    x_test = split_on_device(dataset, "test", config.dtype)[0]
    # branches that never trained (unimodal runs) are not evaluated: they report None
    val = metrics(model, best, x_val, dataset.y_val, predict, modalities=active)
    shapley = config.shapley and not active
    test = metrics(model, best, x_test, dataset.y_test, predict, with_shapley=shapley, modalities=active)
    probe = None
    if config.probe:
        probe = linear_probe(model, best, x_train, dataset.y_train, x_test, dataset.y_test, modalities=active)
    name = str(getattr(method, "name", method))
    hp = method.hparams()
    return TrainResult(name, hp, model, best, run.history, run.best_epoch, val, test, probe, train_time, config)
