"""CAL: Contribution-Guided Asymmetric Learning (Xu, Kou, Wu, Liu; arXiv 2510.26289).

The paper's abstract states the three ideas; the formulas are **ours** (docs/method.md §3):

1. contribution metric W^m from the Shapley information quantity I(m) and the confidence D(m), measured on the
   training batch and treated as a constant (:func:`mini_cal.contribution.contribution_weights`);
2. asymmetric gradient acceleration: after backward, every gradient of branch m (encoder and bottleneck) is
   multiplied by c^m = 1 + W^m; the head is untouched;
3. asymmetric information bottleneck (AIB): beta^m = beta0 * M * (1 - W^m) / (M - 1), so a low-contribution
   modality is compressed more; balanced W gives beta0 each;
4. total loss  L = CE(logits(all), y) + gamma * sum_m CE(logits({m}), y) + sum_m beta^m KL^m.

During the ``warmup_epochs`` first epochs W = 1/M: no acceleration and beta^m = beta0. Ablations:
``accelerate=False``, ``aib=False`` (deterministic z = mu, no KL), ``gamma=0``. Every other choice (where W is
measured, its score, an EMA, the direction and scale of acceleration and compression) is in CAL's design space,
:mod:`mini_cal.methods.cal_design`, a subclass of this one.
"""

from __future__ import annotations

import numpy as np

from .. import backend as B
from .. import checks
from .. import layers as L
from ..contribution import contribution_weights
from .base import LossOutput, Method, StepContext, cross_entropy_terms, scale_branches


def acceleration_coefficients(W) -> np.ndarray:
    """c^m = 1 + W^m, shape (M,): branch m's gradients are multiplied by c^m (mean 1 + 1/M)."""
    return 1.0 + np.asarray(W, dtype=float)


def bottleneck_betas(W, beta0: float) -> np.ndarray:
    """beta^m = beta0 M (1 - W^m) / (M - 1): the low-contribution modality is compressed more (beta0 at M = 1)."""
    W = np.asarray(W, dtype=float)
    M = len(W)
    return beta0 * M * (1.0 - W) / (M - 1) if M > 1 else np.full(M, beta0)


class CAL(Method):
    name = "cal"
    uses_bottleneck = True  # without AIB the bottleneck is deterministic (z = mu) and has no KL

    def __init__(self, gamma=1.0, beta0=1e-3, temperature=1.0, warmup_epochs=5, accelerate=True, aib=True):
        self.gamma, self.beta0 = checks.number("gamma", gamma, low=0), checks.number("beta0", beta0, low=0)
        self.temperature = checks.number("temperature", temperature, low=0)
        self.warmup_epochs = checks.number("warmup_epochs", warmup_epochs, low=0, integer=True)
        self.accelerate, self.aib = checks.flag("accelerate", accelerate), checks.flag("aib", aib)

    @property
    def samples_noise(self):
        return self.aib

    def contribution(self, ctx: StepContext, known_ce: dict) -> dict:
        """W^m and its parts I, D on this training batch; ``known_ce``: the loss's own CE values, reused."""
        return contribution_weights(ctx.model, ctx.params, ctx.out, ctx.y_onehot, ctx.h_y, self.temperature, known_ce)

    def betas(self, W, warm: bool) -> np.ndarray:
        return np.full(len(W), self.beta0) if warm else bottleneck_betas(W, self.beta0)

    def coefficients(self, W) -> np.ndarray:
        return acceleration_coefficients(W)

    def loss(self, ctx: StepContext) -> LossOutput:
        M = ctx.model.M
        coalitions = [("ce_fused", tuple(range(M)), 1.0)]
        if self.gamma:
            coalitions += [(f"ce_{m}", (m,), self.gamma) for m in range(M)]
        total, terms, dlogits = cross_entropy_terms(ctx, coalitions)
        metric = self.contribution(ctx, {S: terms[name] for name, S, _ in coalitions})  # no gradient through W
        warm = ctx.epoch < self.warmup_epochs
        W = np.full(M, 1.0 / M) if warm else np.asarray(metric["W"], dtype=float)
        diag = {"W": W.tolist(), "W_metric": np.asarray(metric["W"]).tolist()}
        diag.update({k: np.asarray(metric[k]).tolist() for k in ("I", "D", "W_train") if k in metric})
        dmu = dsigma = None
        if self.aib:  # the KL of each branch's bottleneck, weighted by beta^m
            betas = self.betas(W, warm)
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
        if not self.accelerate or ctx.epoch < self.warmup_epochs:
            return {"coef": [1.0] * M}
        coef = self.coefficients(lo.modulation["W"])  # from W^m as this step's loss measured it
        scale_branches(ctx.model, grads, coef)
        return {"coef": coef.tolist()}
