"""One file per method on a shared interface (:mod:`mini_cal.methods.base`), grouped by what they change:

* loss only: ``joint`` (fused CE), ``unimodal`` (one branch alone);
* gradients: ``ogm-ge`` (suppress the dominant modality, add noise), ``arl`` (unimodal CE terms + accelerate),
  ``cal`` (unimodal CE terms + contribution-guided acceleration + asymmetric information bottleneck).
"""
from .arl import ARL
from .base import LossOutput, Method, StepContext
from .cal import CAL
from .joint import Joint
from .ogm_ge import OGMGE
from .unimodal import Unimodal

REGISTRY = {"joint": Joint, "unimodal": Unimodal, "ogm-ge": OGMGE, "arl": ARL, "cal": CAL}

# Named variants used by `mini-cal compare`: (class name, fixed keyword arguments).
VARIANTS = {
    "joint": ("joint", {}),
    "unimodal-0": ("unimodal", {"modality": 0}),
    "unimodal-1": ("unimodal", {"modality": 1}),
    "unimodal-2": ("unimodal", {"modality": 2}),
    "ogm-ge": ("ogm-ge", {}),
    "ogm-ge-no-ge": ("ogm-ge", {"ge": False}),
    "arl": ("arl", {}),
    "arl-released": ("arl", {"as_released": True}),
    "cal": ("cal", {}),
    "cal-no-accel": ("cal", {"accelerate": False, "name": "cal-no-accel"}),
    "cal-no-aib": ("cal", {"aib": False, "name": "cal-no-aib"}),
    "cal-sym-ib": ("cal", {"symmetric": True, "name": "cal-sym-ib"}),
    "cal-gamma0": ("cal", {"gamma": 0.0, "name": "cal-gamma0"}),
    "cal-I-only": ("cal", {"score_mode": "I", "name": "cal-I-only"}),
    "cal-D-only": ("cal", {"score_mode": "D", "name": "cal-D-only"}),
}


def make_method(name: str, **hparams) -> Method:
    """A method by registry name (``joint``, ``unimodal``, ``ogm-ge``, ``arl``, ``cal``) or variant name
    (``unimodal-1``, ``cal-no-aib``, ...); ``hparams`` override the defaults, but never a variant's own flags
    (``cal-gamma0`` keeps gamma = 0 whatever configuration it is given)."""
    if name in VARIANTS:
        base, fixed = VARIANTS[name]
        return REGISTRY[base](**{**hparams, **fixed})
    if name not in REGISTRY:
        raise ValueError(f"method: expected one of {sorted(set(REGISTRY) | set(VARIANTS))}, got {name!r}")
    return REGISTRY[name](**hparams)


__all__ = ["Method", "StepContext", "LossOutput", "Joint", "Unimodal", "OGMGE", "ARL", "CAL", "make_method",
           "REGISTRY", "VARIANTS"]
