"""unimodal: one branch and its own head trained alone, L = CE(logits({m}), y) - modality m's ceiling.

Only branch m runs; its head block Wh[m] and the bias bh form its own linear head.
"""
from .base import Method, LossOutput, StepContext, cross_entropy_terms


class Unimodal(Method):
    def __init__(self, modality: int = 0):
        if not isinstance(modality, int) or modality < 0:
            raise ValueError(f"modality: expected a modality index >= 0, got {modality!r}")
        self.modality = modality

    @property
    def name(self):
        return f"unimodal-{self.modality}"

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
