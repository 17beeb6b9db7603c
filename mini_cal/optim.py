"""Optimisers over parameter dicts, and global gradient-norm clipping.

Each optimiser updates ``params`` in place from ``grads`` (dicts with the same keys) and keeps its state in plain
dicts so that a checkpoint can save and restore it.
"""

from __future__ import annotations

import math

from . import backend as B
from . import checks


def squared_norms(grads: dict) -> dict:
    """{name: ||g||^2} as Python floats, fetched from the device in one transfer rather than one per parameter."""
    xp = B.xp()
    sq = B.to_numpy(xp.stack([xp.sum(g * g) for g in grads.values()]))
    return dict(zip(grads, sq.tolist()))


def global_norm(grads: dict) -> float:
    """sqrt(sum over every parameter of ||g||^2)."""
    return math.sqrt(sum(squared_norms(grads).values()))


def clip_by_global_norm(grads: dict, max_norm: float | None, norm: float | None = None) -> float:
    """Scale all gradients in place so that their global norm is at most ``max_norm``; returns the norm before.

    ``norm``: the global norm when the caller has it already (it saves a pass over the gradients).
    """
    norm = global_norm(grads) if norm is None else norm
    if max_norm is not None and max_norm > 0 and math.isfinite(norm) and norm > max_norm:
        scale = max_norm / (norm + 1e-12)
        for g in grads.values():
            g *= scale
    return norm


class SGD:
    """SGD with momentum and (coupled, L2) weight decay: v = momentum v + (g + wd w); w -= lr v."""

    def __init__(self, lr: float = 0.05, momentum: float = 0.9, weight_decay: float = 0.0):
        self.lr = checks.number("lr", lr, low=0, low_open=True)
        self.momentum = checks.number("momentum", momentum, low=0, high=1, high_open=True)
        self.weight_decay = checks.number("weight_decay", weight_decay, low=0)
        self.state = {}

    def step(self, params: dict, grads: dict) -> None:
        xp = B.xp()
        for k, g in grads.items():
            if self.weight_decay:
                g = g + self.weight_decay * params[k]
            if self.momentum:
                if k not in self.state:
                    self.state[k] = xp.zeros_like(g)
                v = self.state[k]
                v *= self.momentum  # in place: the velocity and the parameters are updated without new arrays
                v += g
                g = v
            params[k] -= self.lr * g


class Adam:
    """Adam (Kingma & Ba) with bias correction and L2 weight decay added to the gradient."""

    def __init__(self, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0):
        self.lr = checks.number("lr", lr, low=0, low_open=True)
        self.betas = tuple(checks.number("betas", b, low=0, high=1, high_open=True) for b in betas)
        self.eps, self.weight_decay = eps, checks.number("weight_decay", weight_decay, low=0)
        self.state = {"t": 0}

    def step(self, params: dict, grads: dict) -> None:
        xp = B.xp()
        b1, b2 = self.betas
        self.state["t"] += 1
        t = self.state["t"]
        for k, g in grads.items():
            if self.weight_decay:
                g = g + self.weight_decay * params[k]
            if "m." + k not in self.state:
                self.state["m." + k], self.state["v." + k] = xp.zeros_like(g), xp.zeros_like(g)
            m, v = self.state["m." + k], self.state["v." + k]
            m *= b1  # in place, as in SGD
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * (g * g)
            m_hat = m / (1 - b1**t)
            v_hat = v / (1 - b2**t)
            params[k] -= self.lr * m_hat / (xp.sqrt(v_hat) + self.eps)


def make_optimizer(name: str, lr: float, momentum: float = 0.9, weight_decay: float = 0.0):
    """``"sgd"`` or ``"adam"``."""
    if checks.choice("optimizer", name, ("sgd", "adam")) == "sgd":
        return SGD(lr=lr, momentum=momentum, weight_decay=weight_decay)
    return Adam(lr=lr, weight_decay=weight_decay)
