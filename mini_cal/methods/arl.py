"""ARL: Asymmetric Reinforcing against multimodal representation bias (Wei et al., ICCV 2025), as its paper
describes it (docs/method.md §4.4):

* L = CE(logits(all)) + gamma * sum_m CE(logits({m}));
* c_m = batch mean of sum_k |logits({m})_k|, normalised over modalities;
* H_m = batch mean entropy of softmax(logits({m})), normalised over modalities and clamped below at 0.3;
* a_m = 1 / H_m, normalised;
* for M = 2, w = softmax(T [c_b a_a, c_a a_b]); branch gradients multiplied by (1 + w_m);
* ``warmup_epochs`` (5) warm-up epochs with gamma = 1 and no scaling.

``as_released=True`` reproduces the released code, which never applies its computed w: both stay 0.5 (1/M), so
every branch is scaled by 1.5. For M > 2 (ours): w = softmax(T [a_m * mean_{j != m} c_j]).
"""

from __future__ import annotations

import numpy as np

from .. import backend as B
from .. import checks
from .. import layers as L
from ..contribution import softmax_weights
from .base import LossOutput, Method, StepContext, cross_entropy_terms, mean_of_others, scale_branches
from .spec import MethodSpec


def arl_weights(c, H, temperature: float = 1.0, h_floor: float = 0.3) -> np.ndarray:
    """w from raw per-modality magnitudes c_m and entropies H_m (host arrays)."""
    c = np.asarray(c, dtype=float)
    H = np.asarray(H, dtype=float)
    c_n = c / c.sum()
    H_n = np.maximum(H / H.sum(), h_floor)
    a = 1.0 / H_n
    a = a / a.sum()
    return softmax_weights(a * mean_of_others(c_n), temperature)  # for M = 2: the other modality's c


class ARL(Method):
    name = "arl"
    min_modalities = 2

    def __init__(self, gamma=1.0, temperature=1.0, warmup_epochs=5, h_floor=0.3, as_released=False):
        self.gamma = checks.number("gamma", gamma, low=0)
        self.temperature = checks.number("temperature", temperature, low=0)  # as CAL's: 0 gives equal weights
        self.warmup_epochs = checks.number("warmup_epochs", warmup_epochs, low=0, integer=True)
        self.h_floor = checks.number("h_floor", h_floor, low=0, high=1)  # a floor on entropies normalised to sum 1
        self.as_released = checks.flag("as_released", as_released)

    def loss(self, ctx: StepContext) -> LossOutput:
        xp = B.xp()
        M = ctx.model.M
        warm = ctx.epoch < self.warmup_epochs
        gamma = 1.0 if warm else self.gamma
        coalitions = [("ce_fused", tuple(range(M)), 1.0)] + [(f"ce_{m}", (m,), gamma) for m in range(M)]
        total, terms, dlogits = cross_entropy_terms(ctx, coalitions)
        c, H = [], []
        for m in range(M):
            logits = ctx.model.coalition_logits(ctx.params, ctx.out, (m,))
            c.append(B.to_float(xp.mean(xp.sum(xp.abs(logits), axis=1))))
            H.append(B.to_float(xp.mean(L.entropy(logits))))
        w = arl_weights(c, H, self.temperature, self.h_floor)
        applied = np.full(M, 1.0 / M) if self.as_released else w
        return LossOutput(
            total,
            terms,
            dlogits,
            diagnostics={"w_computed": w.tolist(), "w": applied.tolist()},
            modulation={"w": applied},
        )

    def modify_gradients(self, grads, ctx, lo):
        M = ctx.model.M
        if ctx.epoch < self.warmup_epochs:
            return {"coef": [1.0] * M}
        coef = 1.0 + lo.modulation["w"]
        scale_branches(ctx.model, grads, coef)
        return {"coef": coef.tolist()}


SPEC = MethodSpec(
    name="arl",
    cls=ARL,
    order=30,
    variants={"arl-released": {"as_released": True}},
    compare_default=lambda M: ("arl", "arl-released") if M == 2 else ("arl",),
    search_space={"train.lr": [0.02, 0.05, 0.1], "gamma": [0.5, 1.0, 2.0], "temperature": [1.0, 5.0]},
    tuned={"arl": {"gamma": 1.0, "temperature": 1.0, "train.lr": 0.1}},  # by `mini-cal sweep`; reused by the variant
    diagnostics=("coef", "branch_grad_norm"),
    gradcheck={"arl": {}},
)
