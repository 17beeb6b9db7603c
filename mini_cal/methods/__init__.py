"""One file per method on a shared interface (:mod:`mini_cal.methods.base`)."""
from .base import LossOutput, Method, StepContext
from .joint import Joint
from .unimodal import Unimodal


def make_method(name: str, **hparams) -> Method:
    """A method by name: ``joint``, ``unimodal`` (``modality=m``)."""
    registry = {"joint": Joint, "unimodal": Unimodal}
    if name not in registry:
        raise ValueError(f"method: expected one of {sorted(registry)}, got {name!r}")
    return registry[name](**hparams)


__all__ = ["Method", "StepContext", "LossOutput", "Joint", "Unimodal", "make_method"]
