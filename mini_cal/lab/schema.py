"""One schema per saved state, and the one validator that reads them.

A checkpoint keeps what the next epoch depends on as JSON: the loop's counters and each method's running state
(:meth:`~mini_cal.methods.base.Method.state_dict`). Read back, it is checked here against a table before anything
uses it, so that a damaged or hand-edited file is a :class:`~mini_cal.lab.checkpoint.CheckpointError` naming the
file, the field and what was expected - never a traceback, and never numbers that broadcast silently.

A schema is a dict ``{"path.to.field": spec}``; a path ending in ``?`` may be absent, and a field the schema does
not name is refused (so the state of a method that keeps none, ``{}``, holds nothing). The specs:

* :class:`Integer` - an integer (not a bool) >= ``low``;
* :class:`Number` - a finite number in ``[low, high]``, or one of ``also`` (-1 before the first epoch);
* :class:`Floats` - an array of finite numbers of ``shape``, whose entries name the model's sizes: ``M``
  modalities, ``K`` classes, ``Z`` = ``model.config.out_dim``, or ``M+1``; optionally non-negative, or a
  probability vector (``simplex``: non-negative, summing to 1 within 1e-6);
* :class:`Records` - a list of dicts, each meeting a schema of its own;
* :data:`ANY` - checked elsewhere (the random generator's state, the configuration, the data's signature).

:data:`METHOD_STATE` has one schema per method class (a subclass inherits its parent's); a method outside the
table - one a user registered - gets the shape of its own freshly set-up state (:func:`derived_schema`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..checks import short
from ..methods import ARL, CAL, OGMGE, CALDesign, Joint, Unimodal
from ..methods.agm import AGM
from ..methods.gblending import GBlending
from ..methods.mmpareto import MMPareto
from ..methods.pmr import PMR


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class Spec:
    """What a field holds: ``ok(value, dims)``, ``describe(dims)`` (what was expected), ``found(value)``."""

    def found(self, value) -> str:
        return short(value, 60)


@dataclass(frozen=True)
class Integer(Spec):
    low: int = 0

    def describe(self, dims) -> str:
        return f"an integer >= {self.low}"

    def ok(self, value, dims) -> bool:
        return _is_int(value) and value >= self.low


@dataclass(frozen=True)
class Number(Spec):
    low: float = -math.inf
    high: float = math.inf
    also: tuple = ()  # values allowed outside [low, high]

    def describe(self, dims) -> str:
        if self.high == math.inf:
            text = f"a finite number >= {self.low:g}"
        else:
            text = f"a number in [{self.low:g}, {self.high:g}]"
        return text + "".join(f" or {v:g}" for v in self.also)

    def ok(self, value, dims) -> bool:
        if not _is_number(value):
            return False
        return value in self.also or (math.isfinite(value) and self.low <= value <= self.high)


_AXES = {"M": "modalities", "K": "classes", "Z": "representation width", "M+1": "fused term, then modalities"}


@dataclass(frozen=True)
class Floats(Spec):
    shape: tuple  # entries: "M", "K", "Z" or "M+1"
    low: float | None = None
    simplex: bool = False
    finite: bool = True

    def size(self, dims) -> tuple:
        return tuple(dims[d[0]] + (1 if d.endswith("+1") else 0) for d in self.shape)

    def describe(self, dims) -> str:
        shape = self.size(dims)
        kind = "finite numbers" if self.finite else "numbers"
        if self.simplex:
            kind = "non-negative finite numbers that sum to 1"
        elif self.low == 0:
            kind = "non-negative " + kind
        if len(shape) == 1:
            return f"{shape[0]} {kind} ({_AXES[self.shape[0]]})"
        return f"an array of shape {shape} ({', '.join(_AXES[d] for d in self.shape)}) of {kind}"

    def found(self, value) -> str:
        """What ``value`` is, in a few words: large arrays by their shape."""
        try:
            a = np.asarray(value, dtype=float)
        except (TypeError, ValueError):
            return short(value, 60)
        if a.ndim <= 1 and a.size <= 6:
            return short(value, 60)
        return f"an array of shape {a.shape}" + ("" if np.isfinite(a).all() else " holding NaN or inf")

    def ok(self, value, dims) -> bool:
        if not isinstance(value, list):
            return False
        try:
            a = np.asarray(value)
        except ValueError:  # ragged nesting
            return False
        if a.dtype.kind not in "if" or a.shape != self.size(dims):
            return False
        if self.finite and not np.isfinite(a).all():
            return False
        if (self.low is not None or self.simplex) and not (a >= (self.low or 0)).all():
            return False
        return not self.simplex or abs(float(a.sum()) - 1.0) <= 1e-6


@dataclass(frozen=True)
class Records(Spec):
    fields: dict  # the schema of each record

    def describe(self, dims) -> str:
        return "a list of records"

    def ok(self, value, dims) -> bool:
        return isinstance(value, list)


class _Any(Spec):
    def describe(self, dims) -> str:
        return "anything"

    def ok(self, value, dims) -> bool:
        return True


ANY = _Any()  # a field whose content another check reads (the random generator, the run's identity)

# --------------------------------------------------------------------------------------------- the tables
# A training checkpoint's meta (mini_cal/lab/checkpoint.py): the loop's counters, and what is checked elsewhere.
TRAINING = {
    "format_version": ANY,
    "kind": ANY,
    "epoch": Integer(0),
    "step": Integer(0),
    "best_epoch": Integer(-1),
    "best_val_acc": Number(0, 1, also=(-1,)),  # -1 before the first epoch
    "elapsed_s": Number(0),
    "rng": ANY,
    "optimizer": ANY,
    "method": ANY,
    "config": ANY,
    "model_config": ANY,
    "dataset": ANY,
    "backend": ANY,
}

_W = Floats(("M",), simplex=True)  # CAL's contribution weights W^m: a probability vector over modalities

METHOD_STATE = {
    Joint: {},
    Unimodal: {},
    OGMGE: {},
    ARL: {},
    MMPareto: {},
    CAL: {},
    CALDesign: {
        "metric.W": _W,
        "metric.steps": Integer(0),
        "heldout?.W": _W,  # w_source="val-epoch": the last epoch's held-out measurement
        "heldout?.I?": Floats(("M",)),
        "heldout?.D?": Floats(("M",)),
    },
    AGM: {"s_bar": Floats(("M",)), "count": Integer(0)},
    GBlending: {
        "weights": Floats(("M+1",), low=0),  # one per term, the fused term first
        "estimates": Records(
            {
                "epoch": Integer(0),
                "G": Floats(("M+1",)),
                "O": Floats(("M+1",)),
                "w_raw": Floats(("M+1",), finite=False),  # G / O^2 before the fall-back: may be inf
                "w": Floats(("M+1",), low=0),
            }
        ),
    },
    PMR: {"prototypes": Floats(("M", "K", "Z")), "updates": Integer(0)},
}


# ---------------------------------------------------------------------------------------------- the validator
def problems(state, schema: dict, dims: dict, prefix: str = "") -> list:
    """Every way ``state`` differs from ``schema``, as ``(field, what was found, what was expected)``."""
    if not isinstance(state, dict):
        return [(prefix.rstrip(".") or "state", short(state, 60), "an object {field: value}")]
    found, groups = [], {}
    for path, spec in schema.items():  # "a?.b" -> group "a" (optional), field "b"
        head, _, rest = path.partition(".")
        groups.setdefault(head, {})[rest] = spec
    known = {h.rstrip("?") for h in groups}
    for key in state:
        if key not in known:
            found.append((prefix + str(key), short(state[key], 60), None))
    for head, parts in groups.items():
        key, optional = head.rstrip("?"), head.endswith("?")
        name = prefix + key
        if key not in state:
            if not optional:
                found.append((name, "missing", _expected(parts, dims)))
            continue
        value = state[key]
        if "" in parts:  # a leaf
            spec = parts[""]
            if not spec.ok(value, dims):
                found.append((name, spec.found(value), spec.describe(dims)))
            elif isinstance(spec, Records):
                for i, record in enumerate(value):
                    found += problems(record, spec.fields, dims, f"{name}[{i}].")
        else:
            found += problems(value, parts, dims, name + ".")
    return found


def _expected(parts: dict, dims) -> str:
    return parts[""].describe(dims) if "" in parts else "an object {field: value}"


def check(state, schema: dict, dims: dict, where: str, what: str = "", error=ValueError) -> None:
    """Raise ``error`` (:class:`~mini_cal.lab.checkpoint.CheckpointError` for a checkpoint) naming ``where`` (the
    file), the first field of ``state`` that ``schema`` refuses, what it holds and what was expected."""
    found = problems(state, schema, dims)
    if found:
        field, value, expected = found[0]
        label = f"{what} {field!r}" if what else field
        if expected is None:
            raise error(f"{where}: {label} holds {value}, but there is no such field")
        if value == "missing":
            raise error(f"{where} is incomplete or damaged: {label} is missing (expected {expected})")
        raise error(f"{where}: {label} is {value}, expected {expected}")


def dims_of(model) -> dict:
    """The sizes a schema's shapes name."""
    return {"M": model.M, "K": model.config.num_classes, "Z": model.config.out_dim}


def derived_schema(fresh) -> dict:
    """The schema of a method outside the table: the fields of its freshly set-up state (nested objects kept),
    each holding JSON of the same kind with every number finite."""
    schema = {}
    for key, value in fresh.items():
        if isinstance(value, dict) and value:
            schema.update({f"{key}.{k}": v for k, v in derived_schema(value).items()})
        else:
            schema[key] = _Like(value)
    return schema


@dataclass(frozen=True)
class _Like(Spec):
    example: object

    def describe(self, dims) -> str:
        return f"finite values shaped like {short(self.example, 40)}"

    def ok(self, value, dims) -> bool:
        return _same_kind(value, self.example)


def _same_kind(value, example) -> bool:
    if _is_number(example):
        return _is_number(value) and math.isfinite(value)
    if isinstance(example, (list, tuple)):
        return isinstance(value, list) and all(_finite(v) for v in value)
    if isinstance(example, dict):
        return isinstance(value, dict) and all(_finite(v) for v in value.values())
    return type(value) is type(example)


def _finite(value) -> bool:
    if isinstance(value, (list, tuple)):
        return all(_finite(v) for v in value)
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    return not _is_number(value) or math.isfinite(value)


def method_schema(method) -> dict:
    """The table's schema of ``method``'s class (or of its nearest ancestor in the table), else the one derived
    from its own fresh state."""
    for cls in type(method).__mro__:
        if cls in METHOD_STATE:
            return METHOD_STATE[cls]
    return derived_schema(method.state_dict())


def check_method_state(method, state, model, where: str, error=ValueError) -> None:
    """``state`` (read from ``where``) fits ``method`` (set up for ``model``): the fields of its schema, the
    shapes of the model, finite numbers in their ranges."""
    check(state, method_schema(method), dims_of(model), where, "method state field", error)
