"""MMPareto: boosting multimodal learning with innocent unimodal assistance (Wei and Hu, ICML 2024).

As docs/method.md §4.7 defines it (following the paper and its released code, GeWu-Lab/MMPareto_ICML2024):

* loss L = CE(logits(all), y) + sum_m CE(logits({m}), y)  (unimodal logits through the coalition, our convention;
  ``unimodal_logits="slice"``: z^m Wh[m] + bh / M; the paper and its code use a separate unimodal head per modality);
* on each encoder m, the gradients of its two loss terms are taken apart: g_mm (fused term) and g_m (unimodal term),
  each the concatenation of every parameter of branch m;
* if cos(g_mm, g_m) > 0 the two are combined with equal weights (a, b) = (1/2, 1/2); otherwise with the min-norm
  (Pareto, MGDA) weights of the two: a = clip((g_m.g_m - g_mm.g_m) / ||g_mm - g_m||^2, 0, 1), b = 1 - a;
* each parameter tensor of branch m gets g = 2 (a g_mm + b g_m), rescaled to the norm of the summed gradient
  g_mm + g_m of that tensor when it is smaller, then multiplied by ``boost`` (1.5 in the released code; the paper
  keeps the summed gradient's magnitude, boost = 1). The head keeps the plain gradient of L.

With no conflict the step is boost * (g_mm + g_m): the released code then scales every encoder by 1.5, as ARL's
released code does. M > 2 needs nothing new: every encoder still sees exactly two loss terms.
"""

from __future__ import annotations

import math

import numpy as np

from .. import backend as B
from .. import checks
from .base import LossOutput, Method, StepContext, cross_entropy_terms
from .conventions import UNIMODAL_LOGITS, unimodal_cross_entropy_terms
from .spec import MethodSpec


def pareto_weights(gg_mm: float, gg_mu: float, gg_uu: float) -> tuple:
    """Weights (a, b) of (g_mm, g_m) from their inner products: (1/2, 1/2) when they agree (cosine > 0), else the
    minimiser of ||a g_mm + (1 - a) g_m||^2 over a in [0, 1]. Returns (a, b, cosine)."""
    cos = gg_mu / max(math.sqrt(gg_mm * gg_uu), 1e-30)
    if cos > 0:
        return 0.5, 0.5, cos
    denom = gg_mm + gg_uu - 2.0 * gg_mu  # ||g_mm - g_m||^2 > 0 when they conflict
    a = min(max((gg_uu - gg_mu) / max(denom, 1e-30), 0.0), 1.0)
    return a, 1.0 - a, cos


def combine(g_mm: dict, g_m: dict, a: float, b: float, boost: float) -> tuple:
    """Per tensor: g = 2 (a g_mm + b g_m), raised to ||g_mm + g_m|| when smaller, times ``boost``.
    Returns (new gradient dict, norm of the result / norm of g_mm + g_m over the branch)."""
    xp = B.xp()
    keys = list(g_mm)
    new = {k: 2.0 * (a * g_mm[k] + b * g_m[k]) for k in keys}
    sums = [xp.sqrt(xp.sum((g_mm[k] + g_m[k]) ** 2)) for k in keys]
    norms = B.to_numpy(xp.stack(sums + [xp.sqrt(xp.sum(new[k] ** 2)) for k in keys]))  # one device transfer
    summed, combined = norms[: len(keys)], norms[len(keys) :]  # per tensor: ||g_mm + g_m||, ||2 (a g_mm + b g_m)||
    scales = [boost * float(s / c if c > 0 and s > c else 1.0) for s, c in zip(summed, combined)]
    out = {k: new[k] * scale for k, scale in zip(keys, scales)}
    final = math.sqrt(sum((scale * c) ** 2 for scale, c in zip(scales, combined)))
    return out, final / max(math.sqrt(float(np.sum(summed**2))), 1e-30)


class MMPareto(Method):
    name = "mmpareto"
    min_modalities = 2

    def __init__(self, boost=1.5, modulation_start=0, unimodal_logits="coalition"):
        self.boost = checks.number("boost", boost, low=0, low_open=True)
        self.modulation_start = checks.number("modulation_start", modulation_start, low=0, integer=True)
        self.unimodal_logits = checks.choice("unimodal_logits", unimodal_logits, UNIMODAL_LOGITS)

    def loss(self, ctx: StepContext) -> LossOutput:
        M = ctx.model.M
        total, terms, dlogits = cross_entropy_terms(ctx, [("ce_fused", tuple(range(M)), 1.0)])
        uni_total, uni_terms, uni_dlogits = unimodal_cross_entropy_terms(ctx, [1.0] * M, self.unimodal_logits)
        return LossOutput(total + uni_total, {**terms, **uni_terms}, {**dlogits, **uni_dlogits})

    def branch_gradients(self, ctx: StepContext, lo: LossOutput, m: int) -> tuple:
        """(g_mm, g_m): branch m's gradients of the fused term and of its own unimodal term, taken apart."""
        w = ctx.params[f"head.W{m}"]
        g_mm = ctx.model.branch_backward(ctx.out, m, lo.dlogits[tuple(range(ctx.model.M))] @ w.T)
        g_m = ctx.model.branch_backward(ctx.out, m, lo.dlogits[(m,)] @ w.T)
        return g_mm, g_m

    def modify_gradients(self, grads, ctx, lo):
        M = ctx.model.M
        if ctx.epoch < self.modulation_start:
            return {"coef": [1.0] * M}
        xp = B.xp()
        coef, cosines, a_mm = [], [], []
        for m in range(M):
            g_mm, g_m = self.branch_gradients(ctx, lo, m)
            dots = B.to_numpy(
                xp.stack(
                    [
                        sum(xp.sum(g_mm[k] * g_mm[k]) for k in g_mm),
                        sum(xp.sum(g_mm[k] * g_m[k]) for k in g_mm),
                        sum(xp.sum(g_m[k] * g_m[k]) for k in g_mm),
                    ]
                )
            )
            a, b, cos = pareto_weights(*dots.tolist())
            new, ratio = combine(g_mm, g_m, a, b, self.boost)
            grads.update(new)
            coef.append(ratio)
            cosines.append(cos)
            a_mm.append(a)
        return {"coef": coef, "cos": cosines, "a_fused": a_mm}


SPEC = MethodSpec(
    name="mmpareto",
    cls=MMPareto,
    order=37,
    variants={
        "mmpareto-released": {"boost": 1.5},
        "mmpareto-slice": {"unimodal_logits": "slice"},
    },
    compare_default=("mmpareto",),
    search_space={"train.lr": [0.02, 0.05, 0.1], "boost": [1.0, 1.5], "modulation_start": [0, 5]},
    # tuned by `mini-cal sweep --preset default --methods gblending agm mmpareto pmr --jobs 2` (docs/results/peers.md)
    tuned={"mmpareto": {"boost": 1.0, "modulation_start": 0, "train.lr": 0.1}},
    diagnostics=("coef", "cos", "a_fused", "branch_grad_norm"),
    gradcheck={"mmpareto": {}, "mmpareto-slice": {}},
)
