"""unimodal: one branch and its own head trained alone, L = CE(logits({m}), y) - modality m's ceiling.

Only branch m runs; its head block Wh[m] and the bias bh form its own linear head.
"""

from .. import checks
from .base import LossOutput, Method, StepContext, cross_entropy_terms
from .spec import MethodSpec


class Unimodal(Method):
    name = "unimodal"

    def __init__(self, modality: int = 0):
        self.modality = checks.number("modality", modality, low=0, integer=True)

    def setup(self, model, h_y):
        if self.modality >= model.M:
            raise ValueError(f"modality: expected an index in 0..{model.M - 1}, got {self.modality}")
        super().setup(model, h_y)

    def active_modalities(self, M):
        return (self.modality,)

    def predict_coalition(self, M):
        return (self.modality,)

    def loss(self, ctx: StepContext) -> LossOutput:
        total, terms, dlogits = cross_entropy_terms(ctx, [("ce_unimodal", (self.modality,), 1.0)])
        return LossOutput(total, terms, dlogits)


def _unimodal_names(M: int) -> tuple:
    return tuple(f"unimodal-{m}" for m in range(M))


SPEC = MethodSpec(
    name="unimodal",
    cls=Unimodal,
    order=10,
    variants={f"unimodal-{m}": {"modality": m} for m in range(8)},
    compare_default=_unimodal_names,
    swept=_unimodal_names,
    search_space={"train.lr": [0.02, 0.05, 0.1], "train.weight_decay": [1e-4, 1e-3]},
    tuned={
        "unimodal-0": {"train.lr": 0.02, "train.weight_decay": 1e-4},  # by `mini-cal sweep`
        "unimodal-1": {"train.lr": 0.05, "train.weight_decay": 1e-4},
    },
)
