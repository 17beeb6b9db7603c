"""The M-branch late-fusion network (docs/method.md §2), with hand-written backward.

Per modality m a *branch*: an MLP encoder ``h = relu(... relu(x W1 + b1) ...)``, then optionally the Gaussian
bottleneck (``z = mu + sigma * eps``; ``z = mu`` in evaluation), else ``z = h``. The head is one linear layer over
the concatenation, written as a sum of per-modality blocks, so that any coalition S of modalities has logits

    logits(S) = sum_{m in S} z^m Wh[m] + bh        (others zeroed; logits({}) = bh).

Parameters and gradients are dicts with the same keys:
``b{m}.W{l}``, ``b{m}.b{l}`` (encoder layer l of branch m), ``b{m}.Wmu``, ``b{m}.bmu``, ``b{m}.Ws``, ``b{m}.bs``
(bottleneck), ``head.W{m}`` (Wh[m]) and ``head.b`` (bh).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import backend as B
from . import checks
from . import layers as L


@dataclass
class ModelConfig:
    """Shape of the network. ``input_dims[m]`` is modality m's feature count."""

    input_dims: tuple
    num_classes: int
    hidden: tuple = (64, 32)
    bottleneck: bool = False
    z_dim: int | None = None  # bottleneck width; defaults to hidden[-1]
    sigma_min: float = 1e-4
    sigma_shift: float = 5.0  # sigma = softplus(h Ws + bs - shift) + sigma_min starts small (ours, after Alemi et al.)
    head_init: float = 0.1  # head weights ~ N(0, (head_init^2) / fan_in): loss at init ~ log K

    def __post_init__(self):  # checked here: a configuration is where the network's shape enters
        self.input_dims = checks.widths("input_dims", self.input_dims, checks.MAX_FEATURES, checks.MAX_MODALITIES)
        self.hidden = checks.widths("hidden", self.hidden)
        checks.number("num_classes", self.num_classes, low=2, high=checks.MAX_CLASSES, integer=True)
        if self.z_dim is not None:
            checks.number("z_dim", self.z_dim, low=1, high=checks.MAX_WIDTH, integer=True)
        checks.number("sigma_min", self.sigma_min, low=0)
        checks.number("sigma_shift", self.sigma_shift)
        checks.number("head_init", self.head_init, low=0)
        checks.flag("bottleneck", self.bottleneck)

    @property
    def num_modalities(self) -> int:
        return len(self.input_dims)

    @property
    def out_dim(self) -> int:
        """Width of each branch's output z."""
        return (self.z_dim or self.hidden[-1]) if self.bottleneck else self.hidden[-1]


@dataclass
class Forward:
    """What a forward pass produces, and all its backward needs. Lists are indexed by modality; entries of inactive
    modalities are None."""

    u: list  # u[m] = z^m Wh[m], (N, K): modality m's additive share of every coalition's logits
    z: list  # (N, Z)
    mu: list  # (N, Z): the deterministic representation (z itself without bottleneck)
    sigma: list  # (N, Z), bottleneck only
    caches: list  # per-branch layer caches, for backward (see branch_backward)
    active: list  # the modalities that ran


class Model:
    """Functional model: holds the configuration; parameters live in a dict passed to every call."""

    def __init__(self, config: ModelConfig):
        self.config = config

    # ------------------------------------------------------------------------------------------ parameters
    @property
    def M(self) -> int:
        return self.config.num_modalities

    def branch_keys(self, m: int) -> list:
        """Names of branch m's parameters (encoder and bottleneck)."""
        c = self.config
        keys = []
        for l in range(1, len(c.hidden) + 1):
            keys += [f"b{m}.W{l}", f"b{m}.b{l}"]
        if c.bottleneck:
            keys += [f"b{m}.Wmu", f"b{m}.bmu", f"b{m}.Ws", f"b{m}.bs"]
        return keys

    def head_keys(self) -> list:
        return [f"head.W{m}" for m in range(self.M)] + ["head.b"]

    def init_params(self, rng, dtype="float32") -> dict:
        """He-normal encoder weights, zero biases, small head; reproducible from ``rng``."""
        c = self.config
        g = rng.host if hasattr(rng, "host") else rng
        host = {}
        for m, d_in in enumerate(c.input_dims):
            fan_in = d_in
            for l, width in enumerate(c.hidden, start=1):
                host[f"b{m}.W{l}"] = g.standard_normal((fan_in, width)) * np.sqrt(2.0 / fan_in)
                host[f"b{m}.b{l}"] = np.zeros(width)
                fan_in = width
            if c.bottleneck:
                zd = c.out_dim
                host[f"b{m}.Wmu"] = g.standard_normal((fan_in, zd)) * np.sqrt(1.0 / fan_in)
                host[f"b{m}.bmu"] = np.zeros(zd)
                host[f"b{m}.Ws"] = g.standard_normal((fan_in, zd)) * np.sqrt(1.0 / fan_in)
                host[f"b{m}.bs"] = np.zeros(zd)
        fan_in = c.out_dim * self.M
        for m in range(self.M):
            host[f"head.W{m}"] = g.standard_normal((c.out_dim, c.num_classes)) * (c.head_init / np.sqrt(fan_in))
        host["head.b"] = np.zeros(c.num_classes)
        return {k: B.asarray(v, dtype=dtype) for k, v in host.items()}

    def sample_eps(self, n: int, rng, dtype="float32", modalities=None) -> list:
        """Reparameterisation noise eps^m ~ N(0, I), (N, Z) per modality (None without a bottleneck)."""
        if not self.config.bottleneck:
            return [None] * self.M
        active = range(self.M) if modalities is None else modalities
        return [rng.normal((n, self.config.out_dim), dtype) if m in active else None for m in range(self.M)]

    # --------------------------------------------------------------------------------------------- forward
    def forward(self, params: dict, xs, eps=None, modalities=None) -> Forward:
        """Run every (or each listed) branch and the head's per-modality blocks.

        xs: list of (N, D_m). eps: list of (N, Z) noise from :meth:`sample_eps` for a stochastic pass, or None
        for the deterministic one (z = mu).
        """
        c = self.config
        active = list(range(self.M)) if modalities is None else list(modalities)
        out = Forward(*([None] * self.M for _ in range(5)), active=active)
        for m in active:
            h = xs[m]
            enc_caches = []
            for l in range(1, len(c.hidden) + 1):
                h, cache = L.linear_relu_forward(h, params[f"b{m}.W{l}"], params[f"b{m}.b{l}"])
                enc_caches.append(cache)
            bn_cache = None
            if c.bottleneck:
                e = None if eps is None else eps[m]
                (z, mu, sigma), bn_cache = L.gaussian_bottleneck_forward(
                    h,
                    params[f"b{m}.Wmu"],
                    params[f"b{m}.bmu"],
                    params[f"b{m}.Ws"],
                    params[f"b{m}.bs"],
                    eps=e,
                    sigma_min=c.sigma_min,
                    shift=c.sigma_shift,
                )
                out.mu[m], out.sigma[m] = mu, sigma
            else:
                z = out.mu[m] = h  # deterministic: the representation is its own mean
            out.z[m] = z
            out.u[m] = z @ params[f"head.W{m}"]  # (N, K)
            out.caches[m] = (enc_caches, bn_cache)
        return out

    def coalition_logits(self, params: dict, out: Forward, S) -> object:
        """logits(S) = sum_{m in S} u[m] + bh; S an iterable of modality indices (empty: the bias alone)."""
        xp = B.xp()
        S = tuple(S)
        if not S:
            n = next(u for u in out.u if u is not None).shape[0]
            return xp.zeros((n, self.config.num_classes), dtype=params["head.b"].dtype) + params["head.b"]
        logits = out.u[S[0]] + params["head.b"]
        for m in S[1:]:
            logits = logits + out.u[m]
        return logits

    def logits(self, params: dict, xs, S=None):
        """Deterministic (evaluation) logits of coalition S (default: all modalities), for your own inputs."""
        checks.modality_arrays("xs", xs, self.config.input_dims)
        S = tuple(range(self.M)) if S is None else tuple(S)
        out = self.forward(params, xs, eps=None, modalities=S or None)
        return self.coalition_logits(params, out, S)

    # -------------------------------------------------------------------------------------------- backward
    def backward(self, params: dict, out: Forward, dlogits: dict, dmu=None, dsigma=None) -> dict:
        """Gradients of a loss that reached the coalition logits and, optionally, mu and sigma, through the
        forward pass ``out``.

        dlogits: {S (tuple of modalities): dL/dlogits(S), (N, K)}. dmu, dsigma: per-modality lists or None; dmu is
        the gradient on the representation mu^m (the bottleneck's mean; z^m itself without a bottleneck), through
        which a loss on the features (the KL, PMR's prototypes) reaches the encoder.
        Returns a gradient dict with the same keys as ``params`` (zeros for inactive branches).
        """
        xp = B.xp()
        du = [None] * self.M
        dbh = xp.zeros_like(params["head.b"])
        for S, d in dlogits.items():
            dbh = dbh + xp.sum(d, axis=0)
            for m in S:
                du[m] = d if du[m] is None else du[m] + d
        grads = {"head.b": dbh}
        for m in range(self.M):
            w = params[f"head.W{m}"]
            if m not in out.active:
                grads[f"head.W{m}"] = xp.zeros_like(w)
                grads.update({k: xp.zeros_like(params[k]) for k in self.branch_keys(m)})
                continue
            if du[m] is None:
                du[m] = xp.zeros_like(out.u[m])
            grads[f"head.W{m}"] = out.z[m].T @ du[m]  # (Z, K)
            dz = du[m] @ w.T  # (N, Z)
            grads.update(
                self.branch_backward(out, m, dz, None if dmu is None else dmu[m], None if dsigma is None else dsigma[m])
            )
        return {k: grads[k] for k in params}

    def branch_backward(self, out: Forward, m: int, dz, dmu=None, dsigma=None) -> dict:
        """Gradients of branch m's parameters (encoder and bottleneck) from dL/dz^m (N, Z) and, optionally, dL/dmu^m
        and dL/dsigma^m; ``out`` is the forward pass that produced z^m. A method can backpropagate one loss term
        through one branch with it (MMPareto's per-loss gradients)."""
        c = self.config
        enc_caches, bn_cache = out.caches[m]
        grads = {}
        if c.bottleneck:
            dh, grads[f"b{m}.Wmu"], grads[f"b{m}.bmu"], grads[f"b{m}.Ws"], grads[f"b{m}.bs"] = (
                L.gaussian_bottleneck_backward(dz, bn_cache, dmu, dsigma)
            )
        else:
            dh = dz if dmu is None else dz + dmu  # z = mu = h
        for l in range(len(c.hidden), 0, -1):
            dh, grads[f"b{m}.W{l}"], grads[f"b{m}.b{l}"] = L.linear_relu_backward(dh, enc_caches[l - 1])
        return grads
