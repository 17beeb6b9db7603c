"""CAL: Contribution-Guided Asymmetric Learning (Xu, Kou, Wu, Liu; arXiv 2510.26289).

The paper's abstract states the three ideas; the formulas are **ours** (docs/method.md §3):

* contribution metric W^m from the Shapley information quantity I(m) and the confidence D(m)
  (:mod:`mini_cal.contribution`);
* asymmetric gradient acceleration: after backward, every gradient of branch m (encoder and bottleneck) is
  multiplied by (1 + W^m); the head is untouched; nothing is scaled during warm-up;
* asymmetric information bottleneck (AIB): beta^m = beta0 * M * (1 - W^m) / (M - 1), so a low-contribution
  modality is compressed more (``beta_direction="high"`` gives the opposite, beta^m = beta0 * M * W^m);
  beta^m = beta0 during warm-up;
* total loss  L = CE(logits(all), y) + gamma * sum_m CE(logits({m}), y) + sum_m beta^m KL^m,
  with W^m and beta^m treated as constants.

Ablation flags: ``accelerate=False`` (no acceleration), ``aib=False`` (deterministic z = mu, no KL),
``symmetric=True`` (beta^m = beta0), ``gamma=0``, and the metric variants ``score_mode``/``ema``.

Design space (docs/method.md §3.8), each also a named variant in ``SPEC.variants``:

* ``accel_toward``: ``"high"`` (default) c^m = 1 + W^m, or ``"low"`` c^m = 1 + (1 - W^m) / (M - 1), which
  accelerates the low-contribution modality; both have mean 1 + 1/M;
* ``accel_scale``: ``"raw"`` (default), ``"matched"`` c^m / mean(c) (mean 1: only the asymmetry remains), or
  ``"uniform"`` c^m = 1 + 1/M for every m (the average scaling, no asymmetry: the control of ``matched``);
* ``w_source``: where W is measured: ``"train"`` (default) the training batch; ``"val-batch"`` a validation
  mini-batch of the same size drawn each step from the run's random generator; ``"val-epoch"`` the whole
  validation split once per epoch (after the epoch's validation), used during the next epoch.
  Held-out W is measured with the deterministic bottleneck (z = mu), as in evaluation.
"""

from __future__ import annotations

import numpy as np

from .. import backend as B
from .. import layers as L
from ..contribution import SCORE_MODES, ContributionMetric
from .base import (
    LossOutput,
    Method,
    MethodSpec,
    StepContext,
    check_choice,
    check_number,
    cross_entropy_terms,
    scale_branches,
)

ACCEL_TOWARD = ("high", "low")
ACCEL_SCALES = ("raw", "matched", "uniform")
W_SOURCES = ("train", "val-batch", "val-epoch")


def acceleration_coefficients(W, toward: str = "high", scale: str = "raw") -> np.ndarray:
    """Gradient acceleration coefficients c^m, shape (M,); branch m's gradients are multiplied by c^m.

    toward ``high`` (the abstract's reading): c^m = 1 + W^m; ``low``: c^m = 1 + (1 - W^m) / (M - 1) (1 + W^m at
    M = 1). Both have mean 1 + 1/M because the W^m sum to 1. scale ``raw``: c as is; ``matched``: c / mean(c)
    (mean 1, the asymmetry without the learning-rate change); ``uniform``: 1 + 1/M for every branch (the change
    of learning rate without the asymmetry)."""
    W = np.asarray(W, dtype=float)
    M = len(W)
    if toward == "high":
        c = 1.0 + W
    elif toward == "low":
        c = 1.0 + (1.0 - W) / (M - 1) if M > 1 else 1.0 + W
    else:
        raise ValueError(f"accel_toward: expected one of {ACCEL_TOWARD}, got {toward!r}")
    if scale == "raw":
        return c
    if scale == "matched":
        return c / c.mean()
    if scale == "uniform":
        return np.full(M, 1.0 + 1.0 / M)
    raise ValueError(f"accel_scale: expected one of {ACCEL_SCALES}, got {scale!r}")


def bottleneck_betas(W, beta0: float, direction: str = "low") -> np.ndarray:
    """AIB weights. ``low`` (default, the abstract's direction): beta^m = beta0 M (1 - W^m) / (M - 1), the
    low-contribution modality is compressed more; ``high``: beta^m = beta0 M W^m. Balanced W gives beta0 each."""
    W = np.asarray(W, dtype=float)
    M = len(W)
    if direction == "low":
        return beta0 * M * (1.0 - W) / (M - 1) if M > 1 else np.full(M, beta0)
    if direction == "high":
        return beta0 * M * W
    raise ValueError(f"beta_direction: expected 'low' or 'high', got {direction!r}")


class CAL(Method):
    """CAL with every component switchable for ablation (see the module docstring)."""

    def __init__(
        self,
        gamma: float = 1.0,
        beta0: float = 1e-3,
        temperature: float = 1.0,
        warmup_epochs: int = 5,
        ema: float = 0.0,
        score_mode: str = "product",
        accelerate: bool = True,
        aib: bool = True,
        symmetric: bool = False,
        beta_direction: str = "low",
        accel_toward: str = "high",
        accel_scale: str = "raw",
        w_source: str = "train",
        name: str = "cal",
    ):
        for arg, value in (("gamma", gamma), ("beta0", beta0), ("temperature", temperature)):
            check_number(arg, value, low=0)
        check_number("warmup_epochs", warmup_epochs, low=0, integer=True)
        check_number("ema", ema, low=0, high=1, high_open=True)
        for arg, value in (("accelerate", accelerate), ("aib", aib), ("symmetric", symmetric)):
            if not isinstance(value, bool):
                raise ValueError(f"{arg}: expected true or false, got {value!r}")
        if not isinstance(name, str) or not name:
            raise ValueError(f"name: expected a non-empty string, got {name!r}")
        check_choice("score_mode", score_mode, SCORE_MODES)
        check_choice("beta_direction", beta_direction, ("low", "high"))
        check_choice("accel_toward", accel_toward, ACCEL_TOWARD)
        check_choice("accel_scale", accel_scale, ACCEL_SCALES)
        check_choice("w_source", w_source, W_SOURCES)
        self.accel_toward, self.accel_scale, self.w_source = accel_toward, accel_scale, w_source
        self.gamma, self.beta0, self.temperature = float(gamma), float(beta0), float(temperature)
        self.warmup_epochs, self.ema, self.score_mode = warmup_epochs, float(ema), score_mode
        self.accelerate, self.aib, self.symmetric = bool(accelerate), bool(aib), bool(symmetric)
        self.beta_direction = beta_direction
        self.name = name

    @property
    def uses_bottleneck(self):
        return True  # without AIB the bottleneck is deterministic (z = mu) and has no KL

    @property
    def samples_noise(self):
        return self.aib

    def setup(self, model, h_y):
        super().setup(model, h_y)
        self.metric = ContributionMetric(
            model.M, model.config.num_classes, self.temperature, self.score_mode, self.ema, h_y=h_y
        )
        self.heldout = {"W": np.full(model.M, 1.0 / model.M)}  # w_source="val-epoch": the last epoch's measurement

    def on_start(self, run):
        """Held-out W: keep the validation split on the device (features and one-hot labels)."""
        if self.w_source == "train":
            return
        dtype = B.float_dtype(run.config.dtype)
        self._x_val = [B.asarray(x, dtype=dtype) for x in run.dataset.x_val]
        y = B.asarray(np.asarray(run.dataset.y_val, dtype=np.int64))
        self._y_val = L.one_hot(y, run.dataset.num_classes, dtype=run.config.dtype)

    def on_epoch_end(self, run):
        """``w_source="val-epoch"``: W on the whole validation split with this epoch's parameters (one EMA step
        of the metric per epoch); the next epoch uses it."""
        if self.w_source == "val-epoch":
            self.heldout = self.measure_heldout(run.model, run.params, self._x_val, self._y_val)

    def measure_heldout(self, model, params, xs, y_onehot) -> dict:
        """The metric (with its EMA step) on held-out inputs, deterministic bottleneck (z = mu)."""
        out, _ = model.forward(params, xs, eps=None)
        return self.metric(model, params, out, y_onehot)

    def validation_batch(self, ctx: StepContext) -> tuple:
        """A validation mini-batch as large as this training batch, drawn from the run's generator."""
        n_val, n = int(self._y_val.shape[0]), int(ctx.y_onehot.shape[0])
        idx = B.asarray(np.sort(ctx.rng.host.choice(n_val, size=min(n, n_val), replace=False)))
        xp = B.xp()
        return [xp.take(x, idx, axis=0) for x in self._x_val], xp.take(self._y_val, idx, axis=0)

    def in_warmup(self, epoch: int) -> bool:
        return epoch < self.warmup_epochs

    def contribution(self, ctx: StepContext, known_ce: dict | None = None) -> dict:
        """W^m and its parts for this batch (:class:`mini_cal.contribution.ContributionMetric`); constants.
        ``known_ce``: the loss's own CE values of some coalitions, reused by the metric."""
        return self.metric(ctx.model, ctx.params, ctx.out, ctx.y_onehot, known_ce)

    def measure_W(self, ctx: StepContext, known_ce: dict) -> tuple:
        """(metric, diagnostics): W^m and its parts from the source ``w_source`` names: this training batch
        (``known_ce``: the loss's own CE values, reused), a validation mini-batch, or the last epoch's validation
        split. For held-out sources the training batch's W (no EMA step) is recorded next to it, for comparison."""
        if self.w_source == "train":
            return self.contribution(ctx, known_ce), {}
        if self.w_source == "val-batch":
            metric = self.measure_heldout(ctx.model, ctx.params, *self.validation_batch(ctx))
        else:
            metric = self.heldout
        train_W = self.metric.measure(ctx.model, ctx.params, ctx.out, ctx.y_onehot, known_ce)["W"]
        return metric, {"W_train": train_W.tolist()}

    def loss(self, ctx: StepContext) -> LossOutput:
        M = ctx.model.M
        coalitions = [("ce_fused", tuple(range(M)), 1.0)]
        if self.gamma:
            coalitions += [(f"ce_{m}", (m,), self.gamma) for m in range(M)]
        total, terms, dlogits = cross_entropy_terms(ctx, coalitions)
        metric, diag = self.measure_W(ctx, {S: terms[name] for name, S, _ in coalitions})  # no gradient through W
        warm = self.in_warmup(ctx.epoch)
        W = np.full(M, 1.0 / M) if warm else np.asarray(metric["W"], dtype=float)
        diag.update({"W": W.tolist(), "W_metric": np.asarray(metric["W"]).tolist()})
        if "I" in metric:
            diag.update({"I": np.asarray(metric["I"]).tolist(), "D": np.asarray(metric["D"]).tolist()})
        dmu = dsigma = None
        if self.aib:
            if warm or self.symmetric:
                betas = np.full(M, self.beta0)
            else:
                betas = bottleneck_betas(W, self.beta0, self.beta_direction)
            dmu, dsigma, kls = [], [], []
            for m in range(M):
                kl, cache = L.gaussian_kl_forward(ctx.out.mu[m], ctx.out.sigma[m])
                total = total + float(betas[m]) * kl
                kls.append(B.to_float(kl))
                a, b = L.gaussian_kl_backward(float(betas[m]), cache)
                dmu.append(a)
                dsigma.append(b)
            terms["kl_weighted"] = float(np.dot(betas, kls))
            diag["kl"], diag["beta"] = kls, betas.tolist()
        return LossOutput(total, terms, dlogits, dmu, dsigma, diag, modulation={"W": W})

    def modify_gradients(self, grads, ctx, lo):
        M = ctx.model.M
        if not self.accelerate or self.in_warmup(ctx.epoch):
            return {"coef": [1.0] * M}
        W = lo.modulation["W"]  # W^m as this step's loss measured it
        coef = acceleration_coefficients(W, self.accel_toward, self.accel_scale)
        scale_branches(ctx.model, grads, coef)
        return {"coef": coef.tolist()}

    def state_dict(self):
        """The metric's running state (the EMA of W) and, for ``w_source="val-epoch"``, the last epoch's held-out
        measurement: the only state CAL carries from one step to the next."""
        state = {"metric": self.metric.state_dict()}
        if self.w_source == "val-epoch":
            state["heldout"] = {k: np.asarray(self.heldout[k]).tolist() for k in ("W", "I", "D") if k in self.heldout}
        return state

    def load_state_dict(self, state):
        self.metric.load_state_dict(state["metric"])
        if "heldout" in state:
            self.heldout = {k: np.asarray(v, dtype=float) for k, v in state["heldout"].items()}


# `mini-cal compare --suite cal-design`: CAL's design space, with ARL and the no-acceleration ablation as references
DESIGN_SPACE = (
    "cal",
    "cal-no-accel",
    "cal-accel-low",
    "cal-lr-matched",
    "cal-lr-control",
    "cal-W-val-batch",
    "cal-W-val-epoch",
    "cal-I-only",
    "cal-D-only",
    "cal-sum",
    "cal-ema",
)

SPEC = MethodSpec(
    name="cal",
    cls=CAL,
    order=40,
    variants={
        "cal-no-accel": {"accelerate": False, "name": "cal-no-accel"},
        "cal-no-aib": {"aib": False, "name": "cal-no-aib"},
        "cal-sym-ib": {"symmetric": True, "name": "cal-sym-ib"},
        "cal-gamma0": {"gamma": 0.0, "name": "cal-gamma0"},
        "cal-I-only": {"score_mode": "I", "name": "cal-I-only"},
        "cal-D-only": {"score_mode": "D", "name": "cal-D-only"},
        # design space (docs/method.md §3.8)
        "cal-sum": {"score_mode": "sum", "name": "cal-sum"},
        "cal-ema": {"ema": 0.9, "name": "cal-ema"},
        "cal-accel-low": {"accel_toward": "low", "name": "cal-accel-low"},
        "cal-lr-matched": {"accel_scale": "matched", "name": "cal-lr-matched"},
        "cal-lr-control": {"accel_scale": "uniform", "name": "cal-lr-control"},
        "cal-W-val-batch": {"w_source": "val-batch", "name": "cal-W-val-batch"},
        "cal-W-val-epoch": {"w_source": "val-epoch", "name": "cal-W-val-epoch"},
    },
    compare_default=("cal", "cal-no-accel", "cal-no-aib", "cal-sym-ib", "cal-gamma0"),
    search_space={
        "train.lr": [0.02, 0.05, 0.1],
        "gamma": [0.5, 1.0, 2.0],
        "beta0": [1e-4, 1e-3, 1e-2],
        "temperature": [1.0, 5.0],
    },
    tuned={"cal": {"beta0": 1e-3, "gamma": 0.5, "temperature": 1.0, "train.lr": 0.05}},  # by `mini-cal sweep`
    diagnostics=("W", "coef", "kl", "beta", "branch_grad_norm"),
    gradcheck={"cal": {"warmup_epochs": 0}, "cal-no-aib": {"warmup_epochs": 0}},
    description="contribution-guided acceleration and asymmetric information bottleneck (arXiv 2510.26289)",
)
