"""A method's declaration: what the lab needs to know about it (names, variants, search space, tuned
configuration, default rows, diagnostics). It is not part of the algorithm; the registry in
:mod:`mini_cal.methods` lists every declaration by hand."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class MethodSpec:
    """Fields that depend on the number of modalities M (``compare_default``, ``swept``) may be callables ``f(M)``."""

    name: str  # the registry name, e.g. "cal"
    cls: type  # the Method subclass
    variants: dict = field(default_factory=dict)  # {variant name: fixed keyword arguments}, e.g. "cal-gamma0"
    classes: dict = field(default_factory=dict)  # {variant name: its class} where it is not ``cls``
    search_space: dict = field(default_factory=dict)  # {"train.lr": [...], "gamma": [...]}: what sweep draws
    tuned: dict = field(default_factory=dict)  # {name or variant: chosen configuration}; others reuse the base's
    compare_default: object = ()  # names in `mini-cal compare`'s default set (or f(M) -> names)
    swept: object = None  # names `mini-cal sweep` tunes by default (default: (name,) when there is a space)
    diagnostics: tuple = ()  # per-step history keys worth a figure: "W", "coef", "kl", "beta", ...
    gradcheck: dict = field(default_factory=dict)  # {variant: kwargs} checked by selfcheck (default: the name)
    order: int = 100  # position in tables and default lists

    @property
    def min_modalities(self) -> int:
        """The fewest modalities the method runs on (its class's ``min_modalities``)."""
        return self.cls.min_modalities

    def names(self) -> list:
        return [self.name] + [v for v in self.variants if v != self.name]

    def class_of(self, name: str) -> type:
        return self.classes.get(name, self.cls)

    def for_m(self, value, M: int):
        return tuple(value(M) if callable(value) else value)
