"""One file per method on a shared interface (:mod:`mini_cal.methods.base`), grouped by what they change:

* loss only: ``joint`` (fused CE), ``unimodal`` (one branch alone), ``gblending`` (loss weights from held-out data);
* gradients: ``ogm-ge`` (suppress the dominant modality, add noise), ``agm`` (Shapley responses), ``mmpareto``
  (Pareto weights when fused and unimodal gradients conflict), ``pmr`` (prototypes), ``arl`` (unimodal CE terms +
  accelerate), ``cal`` (unimodal CE terms + contribution-guided acceleration + asymmetric information bottleneck).

Each method file ends with its declaration, ``SPEC = MethodSpec(...)`` (:mod:`mini_cal.methods.spec`): names and
variants, search space, tuned configuration, default comparison rows and diagnostics; CAL's is in
``cal_design.py``, beside its design space, so that ``cal.py`` holds the algorithm alone. The registry below lists
every declaration by hand; :func:`register` adds a method defined elsewhere.
"""

from __future__ import annotations

import inspect

from . import agm, arl, cal_design, gblending, joint, mmpareto, ogm_ge, pmr, unimodal
from .arl import ARL
from .base import LossOutput, Method, StepContext
from .cal import CAL
from .cal_design import CALDesign
from .joint import Joint
from .ogm_ge import OGMGE
from .spec import MethodSpec
from .unimodal import Unimodal

SPECS: dict = {}  # registry name -> MethodSpec
VARIANTS: dict = {}  # every runnable name (registry names included) -> (registry name, fixed keyword arguments)


def register(spec: MethodSpec) -> MethodSpec:
    """Add a declared method (and its variants) to the registry; returns ``spec``."""
    clash = [n for n in spec.names() if n in VARIANTS and VARIANTS[n][0] != spec.name]
    if clash:
        raise ValueError(f"register: name(s) {clash} already belong to another method")
    SPECS[spec.name] = spec
    VARIANTS[spec.name] = (spec.name, dict(spec.variants.get(spec.name, {})))
    for variant, fixed in spec.variants.items():
        VARIANTS[variant] = (spec.name, dict(fixed))
    return spec


def unregister(name: str) -> None:
    """Remove a registered method and its variants (the reverse of :func:`register`)."""
    spec = SPECS.pop(name)
    for variant in spec.names():
        VARIANTS.pop(variant, None)


for _spec in (
    joint.SPEC,
    unimodal.SPEC,
    ogm_ge.SPEC,
    arl.SPEC,
    agm.SPEC,
    gblending.SPEC,
    mmpareto.SPEC,
    pmr.SPEC,
    cal_design.SPEC,
):
    register(_spec)


def spec_of(name: str) -> MethodSpec:
    """The declaration behind a method or variant name."""
    if name not in VARIANTS:
        raise ValueError(f"method: expected one of {method_names()}, got {name!r}")
    return SPECS[VARIANTS[name][0]]


def method_names() -> list:
    """Every runnable name, in table order."""
    return [n for s in sorted(SPECS.values(), key=lambda s: (s.order, s.name)) for n in s.names()]


def _arguments(cls) -> list:
    return [p.name for p in inspect.signature(cls).parameters.values() if p.kind != p.VAR_KEYWORD]


def hyperparameters(name: str) -> list:
    """Every keyword argument ``make_method(name, ...)`` accepts (for CAL: its design space's too)."""
    spec = spec_of(name)
    classes = [spec.class_of(name), *spec.classes.values()]
    return list(dict.fromkeys(a for cls in classes for a in _arguments(cls)))


def make_method(name: str, **hparams) -> Method:
    """A method by registry name (``joint``, ``unimodal``, ``ogm-ge``, ``arl``, ``cal``, ...) or variant name
    (``unimodal-1``, ``cal-no-aib``, ...), named ``name``; ``hparams`` override the defaults, but never a variant's
    own flags: ``make_method("cal-gamma0", gamma=0.5)`` is refused (a ValueError naming the variant, the key and
    its fixed value), not silently turned back into CAL. A design-space option (``make_method("cal", ema=0.9)``)
    gives the class that has it (:class:`CALDesign`)."""
    if not isinstance(name, str):  # a list or a dict would fail as "unhashable" in the registry's lookup
        raise ValueError(f"method: expected a method name (a string), one of {method_names()}, got {name!r:.80}")
    spec = spec_of(name)
    fixed = VARIANTS[name][1]
    for key, value in hparams.items():
        if key in fixed and not (value == fixed[key] and isinstance(value, bool) == isinstance(fixed[key], bool)):
            raise ValueError(
                f"{name}: {key} is fixed to {fixed[key]!r} by this variant, got {value!r} (choose {key} with "
                f"{spec.name} instead)"
            )
    kwargs = {**hparams, **fixed}
    for cls in (spec.class_of(name), *spec.classes.values()):
        if set(kwargs) <= set(_arguments(cls)):
            method = cls(**kwargs)
            method.name = name
            return method
    unknown = sorted(set(kwargs) - set(hyperparameters(name)))
    raise ValueError(f"{name}: unknown hyper-parameter(s) {unknown}; expected some of {hyperparameters(name)}")


def default_methods(M: int = 2) -> list:
    """``mini-cal compare``'s default rows for data with M modalities, in table order."""
    specs = sorted(SPECS.values(), key=lambda s: (s.order, s.name))
    return [n for s in specs if M >= s.min_modalities for n in s.for_m(s.compare_default, M)]


def swept_methods(M: int = 2) -> list:
    """The names ``mini-cal sweep`` tunes by default (each tuned entry of the declarations)."""
    specs = sorted(SPECS.values(), key=lambda s: (s.order, s.name))
    return [
        n
        for s in specs
        if M >= s.min_modalities and s.search_space
        for n in s.for_m(s.swept if s.swept is not None else (s.name,), M)
    ]


def split_config(cfg: dict) -> tuple:
    """{"train.lr": .., "gamma": ..} -> (method keyword arguments, TrainConfig overrides)."""
    method_kw = {k: v for k, v in cfg.items() if not k.startswith("train.")}
    train_kw = {k[len("train.") :]: v for k, v in cfg.items() if k.startswith("train.")}
    return method_kw, train_kw


def tuned_config(name: str, tuned: dict | None = None) -> dict:
    """The configuration a method runs with in ``compare``: its own tuned entry, else its registry name's (so CAL's
    ablations and ``arl-released`` reuse CAL's and ARL's choice) less the keys the variant fixes itself
    (``cal-gamma0`` does not inherit CAL's gamma). ``tuned``: a table that replaces the declarations' (e.g. a
    sweep.json's ``chosen``)."""
    spec = spec_of(name)
    table = spec.tuned if tuned is None else tuned
    if name in table:
        return dict(table[name])
    return {k: v for k, v in table.get(spec.name, {}).items() if k not in VARIANTS[name][1]}


__all__ = [
    "Method",
    "MethodSpec",
    "StepContext",
    "LossOutput",
    "Joint",
    "Unimodal",
    "OGMGE",
    "ARL",
    "CAL",
    "CALDesign",
    "make_method",
    "hyperparameters",
    "register",
    "unregister",
    "spec_of",
    "method_names",
    "default_methods",
    "swept_methods",
    "split_config",
    "tuned_config",
    "SPECS",
    "VARIANTS",
]
