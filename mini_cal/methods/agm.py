"""AGM: Adaptive Gradient Modulation (Li, Li, Hu, Zhang; ICCV 2023), as docs/method.md §4.6 defines it, following its
paper and its released code:

* coalition outputs f(S): the model's fused logits with the modalities outside S masked. ``masking="input"``
  (default, the released code): a masked modality's *input* is zeroed, so its branch still contributes the constant
  u_m(0) = z^m(0) Wh[m]; ``masking="feature"`` (ours): its feature is zeroed, f(S) = logits(S) of our coalition;
* Shapley mono-modal responses o^m = sum_{S not containing m} |S|!(M-|S|-1)!/M! (f(S u {m}) - f(S)),
  with f({}) := 0 (the released code leaves the empty coalition out), so the o^m sum to f(all);
* scores s^m = batch mean of -log softmax(o^m)[y] (probabilities floored at 1e-8);
* ratios r^m = exp(M/(M-1) (mean_j s^j - s^m)) (> 1 for a modality better than average) and the target ratios
  rbar^m from the running means sbar^m of the scores over every step so far;
* coefficient kappa^m = exp(alpha * min(rbar^m - r^m, 7)): a modality doing better than its history is slowed,
  one doing worse is sped up; branch m's gradients are multiplied by kappa^m (modulation epochs only);
* the loss is plain fused CE; sbar is updated after kappa is computed (cross-step state, in ``state_dict``).
"""

from __future__ import annotations

import numpy as np

from .. import backend as B
from .. import checks
from .. import layers as L
from ..contribution import all_coalitions, shapley
from .base import LossOutput, Method, StepContext, cross_entropy_terms, in_epochs, scale_branches
from .spec import MethodSpec

MASKINGS = ("input", "feature")


def coalition_outputs(model, params, out, masking: str = "input") -> dict:
    """{S: f(S)} for every non-empty coalition S, (N, K) each; f({}) := 0 is left out."""
    xp = B.xp()
    M = model.M
    if masking == "input":  # a zeroed input still passes through its branch: u_m(0), the same for every row
        zeros = [xp.zeros((1, d), dtype=out.u[0].dtype) for d in model.config.input_dims]
        u0 = model.forward(params, zeros).u
    outputs = {}
    for S in all_coalitions(M):
        if not S:
            continue
        f = model.coalition_logits(params, out, S)
        if masking == "input":
            for m in range(M):
                if m not in S:
                    f = f + u0[m]
        outputs[S] = f
    return outputs


def shapley_responses(outputs: dict, M: int) -> list:
    """o^m = sum_{S not containing m} |S|!(M-|S|-1)!/M! (f(S u {m}) - f(S)), with f({}) = 0; (N, K) each."""
    return shapley({(): 0.0, **outputs}, M)


def response_scores(responses: list, y_onehot) -> np.ndarray:
    """s^m = mean_i -log max(softmax(o^m_i)[y_i], 1e-8), host array (M,)."""
    xp = B.xp()
    s = [-xp.mean(xp.log(xp.maximum(xp.sum(L.softmax(o) * y_onehot, axis=1), 1e-8))) for o in responses]
    return B.to_numpy(xp.stack(s)).astype(float)


def discrepancy_ratios(s) -> np.ndarray:
    """r^m = exp(M/(M-1) (mean_j s^j - s^m))."""
    s = np.asarray(s, dtype=float)
    M = len(s)
    return np.exp(M / (M - 1) * (s.mean() - s))


def agm_coefficients(s, s_bar, alpha: float, cap: float = 7.0) -> np.ndarray:
    """kappa^m = exp(alpha * min(rbar^m - r^m, cap)), r from this batch's scores, rbar from the running means."""
    return np.exp(alpha * np.minimum(discrepancy_ratios(s_bar) - discrepancy_ratios(s), cap))


class AGM(Method):
    name = "agm"
    min_modalities = 2

    def __init__(self, alpha=0.1, masking="input", modulation_start=0, modulation_end=None):
        self.alpha, self.masking = checks.number("alpha", alpha, low=0), checks.choice("masking", masking, MASKINGS)
        self.modulation_start = checks.number("modulation_start", modulation_start, low=0, integer=True)
        if modulation_end is not None:
            checks.number("modulation_end", modulation_end, low=modulation_start, integer=True)
        self.modulation_end = modulation_end

    def setup(self, model, h_y):
        super().setup(model, h_y)
        self.s_bar, self._count = np.zeros(model.M), 0

    def loss(self, ctx: StepContext) -> LossOutput:
        M = ctx.model.M
        total, terms, dlogits = cross_entropy_terms(ctx, [("ce_fused", tuple(range(M)), 1.0)])
        outputs = coalition_outputs(ctx.model, ctx.params, ctx.out, self.masking)
        s = response_scores(shapley_responses(outputs, M), ctx.y_onehot)
        kappa = agm_coefficients(s, self.s_bar, self.alpha)
        diag = {
            "s": s.tolist(),
            "r": discrepancy_ratios(s).tolist(),
            "r_target": discrepancy_ratios(self.s_bar).tolist(),
        }
        self._count += 1  # running mean over every step so far, updated after kappa (as the released code)
        self.s_bar = self.s_bar + (s - self.s_bar) / self._count
        return LossOutput(total, terms, dlogits, diagnostics=diag, modulation={"kappa": kappa})

    def modify_gradients(self, grads, ctx, lo):
        M = ctx.model.M
        if not in_epochs(ctx.epoch, self.modulation_start, self.modulation_end):
            return {"coef": [1.0] * M}
        kappa = lo.modulation["kappa"]
        scale_branches(ctx.model, grads, kappa.tolist())  # Python floats: any backend multiplies by them
        return {"coef": kappa.tolist()}

    def state_dict(self):
        """The running mean of the scores and the number of steps behind it."""
        return {"s_bar": self.s_bar.tolist(), "count": self._count}

    def load_state_dict(self, state):
        self.s_bar, self._count = np.asarray(state["s_bar"], dtype=float), int(state["count"])


SPEC = MethodSpec(
    name="agm",
    cls=AGM,
    order=35,
    variants={"agm-feature": {"masking": "feature"}},
    compare_default=("agm",),
    search_space={"train.lr": [0.02, 0.05, 0.1], "alpha": [0.05, 0.1, 0.3, 0.5, 1.0]},
    # tuned by `mini-cal sweep --preset default --methods gblending agm mmpareto pmr --jobs 2` (docs/results/peers.md)
    tuned={"agm": {"alpha": 1.0, "train.lr": 0.1}},
    diagnostics=("coef", "s", "r", "r_target", "branch_grad_norm"),
    gradcheck={"agm": {}},
)
