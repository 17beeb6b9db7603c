"""OGM-GE: On-the-fly Gradient Modulation with Generalisation Enhancement (Peng et al., CVPR 2022).

As docs/method.md §4.3 defines it (following the paper and its released code):

* per batch, s_m = sum_i softmax(z^m Wh[m] + bh / M)_i[y_i]  (weight-slice logits, bias split evenly);
* for M = 2, rho_m = s_m / s_other; the dominant modality (rho_m > 1) has its encoder gradients multiplied by
  k = 1 - tanh(alpha * rho_m)                (``variant="paper"``: paper and current code; k jumps from 1 to
                                              1 - tanh(alpha) as rho crosses 1), or
  k = 1 - tanh(alpha * relu(rho_m - 1))      (``variant="continuous"``: an early release);
* generalisation enhancement: g <- k g + N(0, std(g)^2), with std(g) of the *un-modulated* gradient of each
  parameter, on every branch (both encoders);
* active in epochs modulation_start..modulation_end (0-based, inclusive); the loss is CE on the fused logits.

For M > 2 (ours): rho_m = s_m / mean_{j != m} s_j, and every modality with rho_m > 1 is modulated.
"""

from __future__ import annotations

import math

import numpy as np

from .. import backend as B
from .. import checks
from .. import layers as L
from .base import Method, StepContext, in_epochs, ratio_to_others
from .spec import MethodSpec

VARIANTS = ("paper", "continuous")


def discrepancy_scores(model, params, out, y_onehot) -> np.ndarray:
    """s_m = sum_i softmax(u_m + bh / M)_i[y_i] for each modality (host array, shape (M,))."""
    xp = B.xp()
    M = model.M
    bias = params["head.b"] / M
    return np.array([B.to_float(xp.sum(L.softmax(out.u[m] + bias) * y_onehot)) for m in range(M)])


def modulation_coefficient(rho: float, alpha: float, variant: str = "paper") -> float:
    """k for one modality with ratio rho (1 when it is not dominant)."""
    if rho <= 1:
        return 1.0
    if variant == "paper":
        return 1.0 - math.tanh(alpha * rho)
    return 1.0 - math.tanh(alpha * max(rho - 1.0, 0.0))


class OGMGE(Method):
    name = "ogm-ge"
    min_modalities = 2

    def __init__(self, alpha=0.5, variant="paper", ge=True, modulation_start=0, modulation_end=None):
        self.alpha = checks.number("alpha", alpha, low=0)
        self.variant, self.ge = checks.choice("variant", variant, VARIANTS), checks.flag("ge", ge)
        self.modulation_start = checks.number("modulation_start", modulation_start, low=0, integer=True)
        if modulation_end is not None:
            checks.number("modulation_end", modulation_end, low=modulation_start, integer=True)
        self.modulation_end = modulation_end

    def loss(self, ctx: StepContext):
        lo = super().loss(ctx)
        s = discrepancy_scores(ctx.model, ctx.params, ctx.out, ctx.y_onehot)
        rho = ratio_to_others(s)
        lo.modulation["k"] = np.array([modulation_coefficient(r, self.alpha, self.variant) for r in rho])
        lo.diagnostics.update({"s": s.tolist(), "rho": rho.tolist()})
        return lo

    def modify_gradients(self, grads, ctx, lo):
        M = ctx.model.M
        if not in_epochs(ctx.epoch, self.modulation_start, self.modulation_end):
            return {"coef": [1.0] * M}
        xp = B.xp()
        keys = [key for m in range(M) for key in ctx.model.branch_keys(m)]
        if self.ge:  # std of every un-modulated gradient, fetched from the device in one transfer
            stds = dict(zip(keys, B.to_numpy(xp.stack([xp.std(grads[key]) for key in keys])).tolist()))
        k_all = lo.modulation["k"]
        for m in range(M):
            k = float(k_all[m])
            for key in ctx.model.branch_keys(m):
                g = grads[key]
                if self.ge:
                    grads[key] = k * g + stds[key] * ctx.rng.normal(tuple(g.shape), B.dtype_name(g))
                elif k != 1.0:
                    grads[key] = k * g
        return {"coef": k_all.tolist()}


SPEC = MethodSpec(
    name="ogm-ge",
    cls=OGMGE,
    order=20,
    variants={"ogm-ge-no-ge": {"ge": False}},
    compare_default=("ogm-ge",),
    search_space={"train.lr": [0.02, 0.05, 0.1], "alpha": [0.1, 0.3, 0.5, 0.8, 1.0]},
    tuned={"ogm-ge": {"alpha": 0.8, "train.lr": 0.05}},  # by `mini-cal sweep`; ogm-ge-no-ge reuses it
    diagnostics=("coef", "branch_grad_norm"),
    gradcheck={"ogm-ge": {}},
)
