"""The interface every method implements, and the helpers they share.

A method changes training in up to two places, which the one training loop (:mod:`mini_cal.train`) calls in
order on every step:

1. :meth:`Method.loss` - the loss terms on coalition logits (and mu/sigma for a bottleneck) and their gradients;
   what it measures for step 2 (CAL's W, ARL's w, OGM-GE's k) travels in its return value, ``LossOutput.modulation``;
2. :meth:`Method.modify_gradients` - per-branch gradient scaling or noise after backward, from that
   ``LossOutput`` (a method keeps no hidden state between the two calls).

Both return diagnostics that the loop appends to the per-step history.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .. import backend as B
from .. import layers as L
from ..hooks import Hook


@dataclass
class StepContext:
    """Everything a method may look at during one training step."""

    model: object
    params: dict
    out: object  # model.Forward of this batch
    y_onehot: object  # (N, K)
    epoch: int  # 0-based
    step: int  # global step, 0-based
    rng: object  # backend.Rng
    h_y: float  # entropy of the training labels, nats


@dataclass
class LossOutput:
    """A method's loss for one batch: its value, named terms, and the gradients it sends into the model."""

    total: object  # 0-d backend array
    terms: dict  # {name: float}
    dlogits: dict  # {coalition tuple: (N, K)}
    dmu: list | None = None
    dsigma: list | None = None
    diagnostics: dict = field(default_factory=dict)  # per-step values for the history (JSON-ready)
    modulation: dict = field(default_factory=dict)  # what modify_gradients needs (e.g. CAL's W), measured here


class Method(Hook):
    """Base class: plain fused cross-entropy, no modulation (that is :class:`Joint`).

    A method is also a :class:`~mini_cal.hooks.Hook`: ``on_start``, ``on_step`` and ``on_epoch_end`` (no-ops
    here) run before the first epoch, after each step and after each epoch; state a method carries across steps
    or epochs goes in :meth:`state_dict`, so that a checkpoint keeps it."""

    name = "base"  # the registry sets each method's name (mini_cal.methods.make_method)
    uses_bottleneck = False
    min_modalities = 1  # setup() refuses data with fewer modalities

    @property
    def samples_noise(self) -> bool:
        """Whether training draws reparameterisation noise (a stochastic bottleneck)."""
        return self.uses_bottleneck

    def setup(self, model, h_y: float) -> None:
        """Called once before training with the model and the training-label entropy."""
        if model.M < self.min_modalities:
            raise ValueError(f"{self.name} needs at least {self.min_modalities} modalities, the data have {model.M}")

    def active_modalities(self, M: int):
        """Branches to run in the forward pass (None: all)."""
        return None

    def predict_coalition(self, M: int) -> tuple:
        """The coalition whose logits are this method's prediction."""
        return tuple(range(M))

    def loss(self, ctx: StepContext) -> LossOutput:
        M = ctx.model.M
        total, terms, dlogits = cross_entropy_terms(ctx, [("ce_fused", tuple(range(M)), 1.0)])
        return LossOutput(total, terms, dlogits)

    def modify_gradients(self, grads: dict, ctx: StepContext, lo: LossOutput) -> dict:
        """Change grads in place, using what ``loss`` measured (``lo.modulation``); return diagnostics, at least
        the coefficient applied to each branch."""
        return {"coef": [1.0] * ctx.model.M}

    def hparams(self) -> dict:
        """The method's hyper-parameters, for results files."""
        return {
            k: v
            for k, v in vars(self).items()
            if not k.startswith("_") and k != "name" and isinstance(v, (int, float, str, bool, type(None)))
        }

    def state_dict(self) -> dict:
        """Running state that a checkpoint must keep (EMA, running scores)."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.hparams().items())
        return f"{type(self).__name__}({args})"


# ------------------------------------------------------------------------------------- helpers the methods share
def cross_entropy_terms(ctx: StepContext, weighted_coalitions) -> tuple:
    """Sum of ``weight * CE(logits(S), y)`` over (name, S, weight); returns (total, terms, dlogits)."""
    total, terms, dlogits = 0.0, {}, {}
    for name, S, weight in weighted_coalitions:
        logits = ctx.model.coalition_logits(ctx.params, ctx.out, S)
        ce, cache = L.softmax_ce_forward(logits, ctx.y_onehot)
        total = total + weight * ce
        terms[name] = B.to_float(ce)
        d = L.softmax_ce_backward(weight, cache)
        dlogits[S] = d if S not in dlogits else dlogits[S] + d
    return total, terms, dlogits


def scale_branches(model, grads: dict, coefficients) -> None:
    """Multiply every gradient of branch m's parameters (encoder and bottleneck) by ``coefficients[m]``."""
    for m, c in enumerate(coefficients):
        if c == 1.0:
            continue
        for k in model.branch_keys(m):
            grads[k] = grads[k] * c


def mean_of_others(s) -> np.ndarray:
    """mean_{j != m} s_j for every m, shape (M,): for M = 2, the other modality's value."""
    s = np.asarray(s, dtype=float)
    return (s.sum() - s) / (len(s) - 1)


def ratio_to_others(s) -> np.ndarray:
    """rho_m = s_m / mean_{j != m} s_j (OGM-GE's and PMR's discrepancy ratio)."""
    s = np.asarray(s, dtype=float)
    return s / np.maximum(mean_of_others(s), 1e-12)


def in_epochs(epoch: int, start: int, end: int | None) -> bool:
    """start <= epoch <= end (0-based; ``end`` None: no end): a modulation's active window."""
    return start <= epoch and (end is None or epoch <= end)


def split_on_device(dataset, split: str, dtype: str) -> tuple:
    """(features, one-hot labels) of a split, on the device: ([(N, D_m)], (N, K))."""
    xs, y = dataset.split(split)
    features = [B.asarray(x, dtype=B.float_dtype(dtype)) for x in xs]
    return features, L.one_hot(B.asarray(np.asarray(y, dtype=np.int64)), dataset.num_classes, dtype=dtype)
