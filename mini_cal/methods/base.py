"""The interface every method implements, and the helpers they share.

A method changes training in up to three places, which the one training loop (:mod:`mini_cal.train`) calls in
order on every step:

1. :meth:`Method.loss` - the loss terms on coalition logits (and mu/sigma for a bottleneck) and their gradients;
   what it measures for step 2 (CAL's W, ARL's w, OGM-GE's k) travels in its return value, ``LossOutput.modulation``;
2. :meth:`Method.modify_gradients` - per-branch gradient scaling or noise after backward, from that
   ``LossOutput`` (a method keeps no hidden state between the two calls);
3. diagnostics - both return a dict that the loop appends to the per-step history.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field

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


def check_number(name: str, value, *, low=None, high=None, low_open=False, high_open=False, integer=False):
    """``value`` as a float (an int with ``integer=True``) after checking that it is a real number (not a bool,
    NaN or inf) in the range [low, high] (``low_open``/``high_open``: the bound excluded); a ValueError naming
    ``name``, the value and what was expected otherwise. Shared by the methods' and TrainConfig's checks."""
    kind = "an integer" if integer else "a finite number"
    ok = (
        not isinstance(value, bool)
        and isinstance(value, numbers.Integral if integer else numbers.Real)
        and (integer or math.isfinite(value))
        and (low is None or (value > low if low_open else value >= low))
        and (high is None or (value < high if high_open else value <= high))
    )
    if not ok:
        lo = "" if low is None else f"{'>' if low_open else '>='} {low}"
        hi = "" if high is None else f"{'<' if high_open else '<='} {high}"
        bounds = " and ".join(b for b in (lo, hi) if b)
        raise ValueError(f"{name}: expected {kind}{' ' + bounds if bounds else ''}, got {value!r}")
    return int(value) if integer else float(value)


def check_choice(name: str, value, allowed):
    """``value`` after checking that it is one of ``allowed``; a ValueError naming ``name`` otherwise."""
    if value not in allowed:
        raise ValueError(f"{name}: expected one of {tuple(allowed)}, got {value!r}")
    return value


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


UNIMODAL_LOGITS = ("coalition", "slice")


def unimodal_logits(model, params, out, m: int, convention: str = "coalition"):
    """Modality m's own logits, (N, K): ``coalition`` z^m Wh[m] + bh (docs/method.md §2.3, the default) or ``slice``
    z^m Wh[m] + bh / M (the head's weight slice with the bias split evenly, as OGM-GE's released code)."""
    if convention == "coalition":
        return model.coalition_logits(params, out, (m,))
    if convention == "slice":
        return out.u[m] + params["head.b"] / model.M
    raise ValueError(f"unimodal_logits: expected one of {UNIMODAL_LOGITS}, got {convention!r}")


def add_unimodal_gradient(dlogits: dict, m: int, d, convention: str, M: int) -> None:
    """Send d = dL/d unimodal_logits(m) into ``dlogits``: through the coalition {m}; for ``slice`` the bias gets only
    d / M, so the rest, -(1 - 1/M) d, goes through the empty coalition, whose key reaches bh alone."""
    dlogits[(m,)] = d if (m,) not in dlogits else dlogits[(m,)] + d
    if convention == "slice":
        back = -(1.0 - 1.0 / M) * d
        dlogits[()] = back if () not in dlogits else dlogits[()] + back


def unimodal_cross_entropy_terms(ctx: StepContext, weights, convention: str = "coalition") -> tuple:
    """Sum of ``weights[m] * CE(unimodal_logits(m), y)``; returns (total, terms, dlogits) as
    :func:`cross_entropy_terms` does, with terms named ``ce_m``."""
    total, terms, dlogits = 0.0, {}, {}
    for m, weight in enumerate(weights):
        logits = unimodal_logits(ctx.model, ctx.params, ctx.out, m, convention)
        ce, cache = L.softmax_ce_forward(logits, ctx.y_onehot)
        total = total + weight * ce
        terms[f"ce_{m}"] = B.to_float(ce)
        add_unimodal_gradient(dlogits, m, L.softmax_ce_backward(weight, cache), convention, ctx.model.M)
    return total, terms, dlogits


def scale_branches(model, grads: dict, coefficients) -> None:
    """Multiply every gradient of branch m's parameters (encoder and bottleneck) by ``coefficients[m]``."""
    for m, c in enumerate(coefficients):
        if c == 1.0:
            continue
        for k in model.branch_keys(m):
            grads[k] = grads[k] * c


class Method(Hook):
    """Base class: plain fused cross-entropy, no modulation (that is :class:`Joint`).

    A method is also a :class:`~mini_cal.hooks.Hook`: ``on_start``, ``on_step`` and ``on_epoch_end`` (no-ops
    here) run before the first epoch, after each step and after each epoch, before any other hook's; state a method
    carries across steps or epochs goes in :meth:`state_dict`, so that a checkpoint keeps it."""

    name = "base"  # a method whose variants differ by name sets ``self.name`` in __init__
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
        self.model = model
        self.h_y = h_y

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
            if not k.startswith("_")
            and k not in ("model", "h_y", "name")
            and isinstance(v, (int, float, str, bool, type(None)))
        }

    def state_dict(self) -> dict:
        """Running state that a checkpoint must keep (EMA, running scores)."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.hparams().items())
        return f"{type(self).__name__}({args})"


@dataclass
class MethodSpec:
    """A method's declaration, kept in the method's own file as ``SPEC``: everything the lab derives from it
    (registry, sweep, compare, tables, plots, selfcheck). ``mini_cal.methods.register(SPEC)`` adds a method
    defined anywhere; the files of this package are registered when it is imported.

    Fields that depend on the number of modalities M (``compare_default``, ``swept``) may be callables ``f(M)``.
    """

    name: str  # the registry name, e.g. "cal"
    cls: type  # the Method subclass
    variants: dict = field(default_factory=dict)  # {variant name: fixed keyword arguments}, e.g. "cal-gamma0"
    search_space: dict = field(default_factory=dict)  # {"train.lr": [...], "gamma": [...]}: what sweep draws
    tuned: dict = field(default_factory=dict)  # {name or variant: chosen configuration}; others reuse the base's
    compare_default: object = ()  # names in `mini-cal compare`'s default set (or f(M) -> names)
    swept: object = None  # names `mini-cal sweep` tunes by default (default: (name,) when there is a space)
    diagnostics: tuple = ()  # per-step history keys worth a figure: "W", "coef", "kl", "beta", ...
    gradcheck: dict = field(default_factory=dict)  # {variant: kwargs} checked by selfcheck (default: the name)
    order: int = 100  # position in tables and default lists
    description: str = ""

    @property
    def min_modalities(self) -> int:
        """The fewest modalities the method runs on (its class's ``min_modalities``)."""
        return self.cls.min_modalities

    def names(self) -> list:
        return [self.name] + [v for v in self.variants if v != self.name]

    def for_m(self, value, M: int):
        return tuple(value(M) if callable(value) else value)
