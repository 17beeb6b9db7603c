"""CAL's design space (docs/method.md §3.8): the choices the paper's abstract leaves open, as options of a subclass
of :class:`~mini_cal.methods.cal.CAL`, and CAL's declaration (``SPEC``) with every named variant.

* ``score_mode``: s_m = I D (``product``, CAL's), ``sum`` I + D, ``I`` only or ``D`` only; ``ema`` in [0, 1):
  W_t = ema W_{t-1} + (1 - ema) W_batch (0: no smoothing) - both in :class:`ContributionMetric`;
* ``accel_toward``: ``"high"`` c^m = 1 + W^m (CAL's), or ``"low"`` c^m = 1 + (1 - W^m) / (M - 1), which
  accelerates the low-contribution modality; both have mean 1 + 1/M;
* ``accel_scale``: ``"raw"`` (CAL's), ``"matched"`` c^m / mean(c) (mean 1: only the asymmetry remains), or
  ``"uniform"`` c^m = 1 + 1/M for every m (the average scaling, no asymmetry: the control of ``matched``);
* ``beta_direction``: ``"low"`` (CAL's) or ``"high"`` beta^m = beta0 M W^m; ``symmetric=True``: beta^m = beta0;
* ``w_source``: where W is measured: ``"train"`` (CAL's) the training batch; ``"val-batch"`` a validation
  mini-batch of the same size drawn each step from the run's random generator; ``"val-epoch"`` the whole
  validation split once per epoch (after the epoch's validation), used during the next epoch. Held-out W is
  measured with the deterministic bottleneck (z = mu), as in evaluation, and the training batch's W is recorded
  next to it (``W_train``).
"""

from __future__ import annotations

import math

import numpy as np

from .. import backend as B
from .. import checks
from ..contribution import contribution_weights, softmax_weights
from .base import StepContext, split_on_device
from .cal import CAL, bottleneck_betas
from .spec import MethodSpec

SCORE_MODES = ("product", "sum", "I", "D")
ACCEL_TOWARD = ("high", "low")
ACCEL_SCALES = ("raw", "matched", "uniform")
W_SOURCES = ("train", "val-batch", "val-epoch")


def score(I, D, mode: str = "product") -> np.ndarray:
    """s_m = I(m) D(m) (``product``, CAL's, docs/method.md §3.2); ablations: ``sum`` I + D, ``I`` only, ``D`` only."""
    if mode == "product":
        return I * D
    if mode == "sum":
        return I + D
    if mode == "I":
        return np.array(I, dtype=float)
    if mode == "D":
        return np.array(D, dtype=float)
    raise ValueError(f"score mode: expected one of {SCORE_MODES}, got {mode!r}")


def acceleration_coefficients(W, toward: str = "high", scale: str = "raw") -> np.ndarray:
    """Gradient acceleration coefficients c^m, shape (M,). toward ``high``: c^m = 1 + W^m; ``low``:
    c^m = 1 + (1 - W^m) / (M - 1) (1 + W^m at M = 1); both have mean 1 + 1/M because the W^m sum to 1. scale
    ``raw``: c as is; ``matched``: c / mean(c); ``uniform``: 1 + 1/M for every branch."""
    W = np.asarray(W, dtype=float)
    M = len(W)
    if toward == "high" or (toward == "low" and M == 1):
        c = 1.0 + W
    elif toward == "low":
        c = 1.0 + (1.0 - W) / (M - 1)
    else:
        raise ValueError(f"accel_toward: expected one of {ACCEL_TOWARD}, got {toward!r}")
    if scale == "raw":
        return c
    if scale == "matched":
        return c / c.mean()
    if scale == "uniform":
        return np.full(M, 1.0 + 1.0 / M)
    raise ValueError(f"accel_scale: expected one of {ACCEL_SCALES}, got {scale!r}")


def directed_betas(W, beta0: float, direction: str = "low") -> np.ndarray:
    """``low``: CAL's :func:`~mini_cal.methods.cal.bottleneck_betas`; ``high``: beta^m = beta0 M W^m."""
    if direction == "low":
        return bottleneck_betas(W, beta0)
    if direction == "high":
        return beta0 * len(W) * np.asarray(W, dtype=float)
    raise ValueError(f"beta_direction: expected 'low' or 'high', got {direction!r}")


class ContributionMetric:
    """W^m of a batch with another score (``mode``) and an exponential moving average over steps (``ema``)."""

    def __init__(self, num_modalities, num_classes, temperature=1.0, mode="product", ema=0.0, h_y=None):
        self.mode = checks.choice("score mode", mode, SCORE_MODES)
        self.ema = checks.number("ema", ema, low=0, high=1, high_open=True)
        self.temperature = checks.number("temperature", temperature, low=0)
        self.M, self.K = num_modalities, num_classes
        self.h_y = math.log(num_classes) if h_y is None else h_y
        self.W = np.full(num_modalities, 1.0 / num_modalities)
        self.steps = 0

    def measure(self, model, params, out, y_onehot, known_ce: dict | None = None) -> dict:
        """v, I, D, s and W of this batch alone (``W_batch`` = ``W``); changes no state (no EMA step)."""
        res = contribution_weights(model, params, out, y_onehot, self.h_y, self.temperature, known_ce)
        if self.mode != "product":  # contribution_weights already scored the product, CAL's own
            res["s"] = score(res["I"], res["D"], self.mode)
            res["W"] = softmax_weights(res["s"], self.temperature)
        res["W_batch"] = res["W"]
        res["W"] = res["W_batch"].copy()
        return res

    def __call__(self, model, params, out, y_onehot, known_ce: dict | None = None) -> dict:
        """:meth:`measure` this batch, then one EMA step: ``W`` is the smoothed weight (``W_batch`` the batch's)."""
        res = self.measure(model, params, out, y_onehot, known_ce)
        if self.ema and self.steps:
            self.W = self.ema * self.W + (1 - self.ema) * res["W_batch"]
        else:
            self.W = res["W_batch"]
        self.steps += 1
        res["W"] = self.W.copy()
        return res

    def state_dict(self) -> dict:
        return {"W": self.W.tolist(), "steps": self.steps}

    def load_state_dict(self, state: dict) -> None:
        self.W = np.array(state["W"], dtype=float)
        self.steps = int(state["steps"])


class CALDesign(CAL):
    """CAL with every choice of its design space as an option (see the module docstring)."""

    def __init__(
        self,
        gamma=1.0,
        beta0=1e-3,
        temperature=1.0,
        warmup_epochs=5,
        accelerate=True,
        aib=True,
        *,
        ema=0.0,
        score_mode="product",
        symmetric=False,
        beta_direction="low",
        accel_toward="high",
        accel_scale="raw",
        w_source="train",
    ):
        super().__init__(gamma, beta0, temperature, warmup_epochs, accelerate, aib)
        self.ema = checks.number("ema", ema, low=0, high=1, high_open=True)
        self.score_mode = checks.choice("score_mode", score_mode, SCORE_MODES)
        self.symmetric = checks.flag("symmetric", symmetric)
        self.beta_direction = checks.choice("beta_direction", beta_direction, ("low", "high"))
        self.accel_toward = checks.choice("accel_toward", accel_toward, ACCEL_TOWARD)
        self.accel_scale = checks.choice("accel_scale", accel_scale, ACCEL_SCALES)
        self.w_source = checks.choice("w_source", w_source, W_SOURCES)

    def setup(self, model, h_y):
        super().setup(model, h_y)
        K = model.config.num_classes
        self.metric = ContributionMetric(model.M, K, self.temperature, self.score_mode, self.ema, h_y=h_y)
        self.heldout = {"W": np.full(model.M, 1.0 / model.M)}  # w_source="val-epoch": the last epoch's measurement

    def betas(self, W, warm):
        return (
            np.full(len(W), self.beta0)
            if warm or self.symmetric
            else directed_betas(W, self.beta0, self.beta_direction)
        )

    def coefficients(self, W):
        return acceleration_coefficients(W, self.accel_toward, self.accel_scale)

    # ------------------------------------------------------------------------------------- where W is measured
    def on_start(self, run):
        if self.w_source != "train":  # held-out W: the validation split stays on the device
            self._x_val, self._y_val = split_on_device(run.dataset, "val", run.config.dtype)

    def on_epoch_end(self, run):
        """``w_source="val-epoch"``: W on the whole validation split with this epoch's parameters (one EMA step
        of the metric per epoch); the next epoch uses it."""
        if self.w_source == "val-epoch":
            self.heldout = self.measure_heldout(run.model, run.params, self._x_val, self._y_val)

    def measure_heldout(self, model, params, xs, y_onehot) -> dict:
        """The metric (with its EMA step) on held-out inputs, deterministic bottleneck (z = mu)."""
        return self.metric(model, params, model.forward(params, xs, eps=None), y_onehot)

    def validation_batch(self, ctx: StepContext) -> tuple:
        """A validation mini-batch as large as this training batch, drawn from the run's generator."""
        n_val, n = int(self._y_val.shape[0]), int(ctx.y_onehot.shape[0])
        idx = B.asarray(np.sort(ctx.rng.host.choice(n_val, size=min(n, n_val), replace=False)))
        xp = B.xp()
        return [xp.take(x, idx, axis=0) for x in self._x_val], xp.take(self._y_val, idx, axis=0)

    def contribution(self, ctx: StepContext, known_ce: dict) -> dict:
        """W^m from the source ``w_source`` names; for held-out sources with the training batch's W (no EMA step)
        as ``W_train``, for comparison."""
        if self.w_source == "train":
            return self.metric(ctx.model, ctx.params, ctx.out, ctx.y_onehot, known_ce)
        if self.w_source == "val-batch":
            metric = dict(self.measure_heldout(ctx.model, ctx.params, *self.validation_batch(ctx)))
        else:
            metric = dict(self.heldout)
        metric["W_train"] = self.metric.measure(ctx.model, ctx.params, ctx.out, ctx.y_onehot, known_ce)["W"]
        return metric

    def state_dict(self):
        """The metric's running state (the EMA of W) and, for ``w_source="val-epoch"``, the last epoch's held-out
        measurement."""
        if not hasattr(self, "metric"):
            raise RuntimeError(f"{self.name}: state_dict() before setup(model, h_y): there is no state yet")
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

VARIANTS = {  # name: (class, fixed keyword arguments); the registry names each method
    "cal-no-accel": (CAL, {"accelerate": False}),
    "cal-no-aib": (CAL, {"aib": False}),
    "cal-sym-ib": (CALDesign, {"symmetric": True}),
    "cal-gamma0": (CAL, {"gamma": 0.0}),
    "cal-I-only": (CALDesign, {"score_mode": "I"}),
    "cal-D-only": (CALDesign, {"score_mode": "D"}),
    "cal-sum": (CALDesign, {"score_mode": "sum"}),
    "cal-ema": (CALDesign, {"ema": 0.9}),
    "cal-accel-low": (CALDesign, {"accel_toward": "low"}),
    "cal-lr-matched": (CALDesign, {"accel_scale": "matched"}),
    "cal-lr-control": (CALDesign, {"accel_scale": "uniform"}),
    "cal-W-val-batch": (CALDesign, {"w_source": "val-batch"}),
    "cal-W-val-epoch": (CALDesign, {"w_source": "val-epoch"}),
}

SPEC = MethodSpec(
    name="cal",
    cls=CAL,
    order=40,
    variants={name: fixed for name, (_, fixed) in VARIANTS.items()},
    classes={name: cls for name, (cls, _) in VARIANTS.items() if cls is not CAL},
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
)
