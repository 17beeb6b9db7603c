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
"""

from __future__ import annotations

import numpy as np

from .. import backend as B
from .. import layers as L
from ..contribution import SCORE_MODES, ContributionMetric
from .base import LossOutput, Method, MethodSpec, StepContext, check_number, cross_entropy_terms, scale_branches


def acceleration_coefficients(W) -> np.ndarray:
    """Asymmetric gradient acceleration: branch m's gradients are multiplied by 1 + W^m."""
    return 1.0 + np.asarray(W, dtype=float)


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
        if score_mode not in SCORE_MODES:
            raise ValueError(f"score_mode: expected one of {SCORE_MODES}, got {score_mode!r}")
        if beta_direction not in ("low", "high"):
            raise ValueError(f"beta_direction: expected 'low' or 'high', got {beta_direction!r}")
        self.gamma, self.beta0, self.temperature = float(gamma), float(beta0), float(temperature)
        self.warmup_epochs, self.ema, self.score_mode = warmup_epochs, float(ema), score_mode
        self.accelerate, self.aib, self.symmetric = bool(accelerate), bool(aib), bool(symmetric)
        self.beta_direction = beta_direction
        self._name = name

    @property
    def name(self):
        return self._name

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

    def in_warmup(self, epoch: int) -> bool:
        return epoch < self.warmup_epochs

    def contribution(self, ctx: StepContext, known_ce: dict | None = None) -> dict:
        """W^m and its parts for this batch (:class:`mini_cal.contribution.ContributionMetric`); constants.
        ``known_ce``: the loss's own CE values of some coalitions, reused by the metric."""
        return self.metric(ctx.model, ctx.params, ctx.out, ctx.y_onehot, known_ce)

    def loss(self, ctx: StepContext) -> LossOutput:
        M = ctx.model.M
        coalitions = [("ce_fused", tuple(range(M)), 1.0)]
        if self.gamma:
            coalitions += [(f"ce_{m}", (m,), self.gamma) for m in range(M)]
        total, terms, dlogits = cross_entropy_terms(ctx, coalitions)
        metric = self.contribution(ctx, {S: terms[name] for name, S, _ in coalitions})  # no gradient through W
        warm = self.in_warmup(ctx.epoch)
        W = np.full(M, 1.0 / M) if warm else metric["W"]
        diag = {"W": W.tolist(), "W_metric": metric["W"].tolist(), "I": metric["I"].tolist(), "D": metric["D"].tolist()}
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
        coef = acceleration_coefficients(lo.modulation["W"])  # W^m as this step's loss measured it
        scale_branches(ctx.model, grads, coef)
        return {"coef": coef.tolist()}

    def state_dict(self):
        """The metric's running state (the EMA of W); the only state CAL carries from one step to the next."""
        return {"metric": self.metric.state_dict()}

    def load_state_dict(self, state):
        self.metric.load_state_dict(state["metric"])


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
