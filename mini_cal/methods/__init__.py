"""One file per method on a shared interface (:mod:`mini_cal.methods.base`), grouped by what they change:

* loss only: ``joint`` (fused CE), ``unimodal`` (one branch alone);
* gradients: ``ogm-ge`` (suppress the dominant modality, add noise), ``arl`` (unimodal CE terms + accelerate),
  ``cal`` (unimodal CE terms + contribution-guided acceleration + asymmetric information bottleneck).

Each method file ends with a declaration, ``SPEC = MethodSpec(...)``: its names and variants, search space, tuned
configuration, default comparison rows and the diagnostics it exposes. Every file of this package that declares a
``SPEC`` is registered on import, so a new method is one new file; :func:`register` adds one defined elsewhere.
"""

from __future__ import annotations

import importlib
import pkgutil

from .arl import ARL
from .base import LossOutput, Method, MethodSpec, StepContext
from .cal import CAL
from .joint import Joint
from .ogm_ge import OGMGE
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


def _discover() -> None:
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if info.name != "base":
            module = importlib.import_module(f"{__name__}.{info.name}")
            if isinstance(getattr(module, "SPEC", None), MethodSpec):
                register(module.SPEC)


def spec_of(name: str) -> MethodSpec:
    """The declaration behind a method or variant name."""
    if name not in VARIANTS:
        raise ValueError(f"method: expected one of {method_names()}, got {name!r}")
    return SPECS[VARIANTS[name][0]]


def method_names() -> list:
    """Every runnable name, in table order."""
    return [n for s in sorted(SPECS.values(), key=lambda s: (s.order, s.name)) for n in s.names()]


def make_method(name: str, **hparams) -> Method:
    """A method by registry name (``joint``, ``unimodal``, ``ogm-ge``, ``arl``, ``cal``, ...) or variant name
    (``unimodal-1``, ``cal-no-aib``, ...); ``hparams`` override the defaults, but never a variant's own flags
    (``cal-gamma0`` keeps gamma = 0 whatever configuration it is given)."""
    spec = spec_of(name)
    return spec.cls(**{**hparams, **VARIANTS[name][1]})


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
    ablations and ``arl-released`` reuse CAL's and ARL's choice; the variant's own flags still apply). ``tuned``:
    a table that replaces the declarations' (e.g. a sweep.json's ``chosen``)."""
    spec = spec_of(name)
    table = spec.tuned if tuned is None else tuned
    if name in table:
        return dict(table[name])
    return dict(table.get(spec.name, {}))


_discover()

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
    "make_method",
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
