"""joint: plain late fusion, L = CE(logits(all), y), no modulation - the model that shows the imbalance."""

from .base import Method
from .spec import MethodSpec


class Joint(Method):
    name = "joint"


SPEC = MethodSpec(
    name="joint",
    cls=Joint,
    order=0,
    compare_default=("joint",),
    search_space={"train.lr": [0.02, 0.05, 0.1], "train.weight_decay": [1e-4, 1e-3]},
    tuned={"joint": {"train.lr": 0.1, "train.weight_decay": 1e-4}},  # by `mini-cal sweep` (docs/results.md)
    diagnostics=("coef", "branch_grad_norm"),
)
