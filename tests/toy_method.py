"""A method declared in one file, as a user would add one: fused cross-entropy plus ``weight`` times each
modality's own cross-entropy, with every branch's gradients scaled by ``1 + weight``. Importing this module
registers it; nothing else in mini_cal is edited (tests/test_architecture.py)."""

from mini_cal.methods import register
from mini_cal.methods.base import LossOutput, Method, cross_entropy_terms, scale_branches
from mini_cal.methods.spec import MethodSpec


class Toy(Method):
    def __init__(self, weight: float = 0.5):
        self.weight = float(weight)

    def loss(self, ctx):
        M = ctx.model.M
        terms = [("ce_fused", tuple(range(M)), 1.0)] + [(f"ce_{m}", (m,), self.weight) for m in range(M)]
        total, values, dlogits = cross_entropy_terms(ctx, terms)
        return LossOutput(total, values, dlogits, modulation={"coef": [1.0 + self.weight] * M})

    def modify_gradients(self, grads, ctx, lo):
        scale_branches(ctx.model, grads, lo.modulation["coef"])
        return {"coef": lo.modulation["coef"]}


SPEC = register(
    MethodSpec(
        name="toy",
        cls=Toy,
        order=90,
        variants={"toy-strong": {"weight": 1.0}},
        search_space={"train.lr": [0.05, 0.1], "weight": [0.25, 0.5]},
        tuned={"toy": {"train.lr": 0.1, "weight": 0.25}},
        compare_default=("toy", "toy-strong"),
        diagnostics=("coef", "branch_grad_norm"),
    )
)
