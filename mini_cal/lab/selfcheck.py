"""Every hand-written backward pass checked against centred finite differences in float64, as one report
(``mini-cal gradcheck``). Each entry is the worst tensor-wise relative error over that check's parameters; the
methods checked, and with which arguments, come from their declarations (``SPEC.gradcheck``)."""

from __future__ import annotations

import math

import numpy as np

from .. import backend as B
from .. import layers as L
from ..gradcheck import check_params, numerical_gradient, numerical_gradient_array, rel_error
from ..methods import SPECS, StepContext, make_method
from ..model import Model, ModelConfig


def _layer_checks(rng) -> dict:
    g = rng.host
    res = {}
    x, w, b = g.standard_normal((5, 4)), g.standard_normal((4, 3)), g.standard_normal(3)
    dout = g.standard_normal((5, 3))
    dx, dw, db = L.linear_backward(dout, L.linear_forward(x, w, b)[1])
    res["linear"] = max(
        rel_error(dx, numerical_gradient_array(lambda v: L.linear_forward(v, w, b)[0], x, dout)),
        rel_error(dw, numerical_gradient_array(lambda v: L.linear_forward(x, v, b)[0], w, dout)),
        rel_error(db, numerical_gradient_array(lambda v: L.linear_forward(x, w, v)[0], b, dout)),
    )
    a = g.standard_normal((6, 5))
    a[np.abs(a) < 1e-3] = 0.5
    d = g.standard_normal(a.shape)
    res["relu"] = rel_error(
        L.relu_backward(d, L.relu_forward(a)[1]), numerical_gradient_array(lambda v: L.relu_forward(v)[0], a, d)
    )
    logits = g.standard_normal((7, 4))
    Y = L.one_hot(B.asarray(g.integers(4, size=7)), 4, dtype="float64")
    res["softmax_ce"] = rel_error(
        L.softmax_ce_backward(1.0, L.softmax_ce_forward(logits, Y)[1]),
        numerical_gradient(lambda v: L.softmax_ce_forward(v, Y)[0], logits),
    )
    h = g.standard_normal((5, 4))
    ps = [h, g.standard_normal((4, 3)), g.standard_normal(3), g.standard_normal((4, 3)), g.standard_normal(3)]
    eps = g.standard_normal((5, 3))
    dz, dmu, ds = (g.standard_normal((5, 3)) for _ in range(3))

    def bn(*args):
        (z, mu, sigma), _ = L.gaussian_bottleneck_forward(*args, eps=eps, shift=1.0)
        return np.sum(z * dz) + np.sum(mu * dmu) + np.sum(sigma * ds)

    grads = L.gaussian_bottleneck_backward(dz, L.gaussian_bottleneck_forward(*ps, eps=eps, shift=1.0)[1], dmu, ds)
    errs = []
    for i, gr in enumerate(grads):

        def f(v, i=i):
            trial = list(ps)
            trial[i] = v
            return bn(*trial)

        errs.append(rel_error(gr, numerical_gradient(f, ps[i])))
    res["gaussian_bottleneck"] = max(errs)
    mu, sigma = g.standard_normal((6, 3)), np.exp(0.3 * g.standard_normal((6, 3)))
    dm, dsg = L.gaussian_kl_backward(1.0, L.gaussian_kl_forward(mu, sigma)[1])
    res["gaussian_kl"] = max(
        rel_error(dm, numerical_gradient(lambda v: L.gaussian_kl_forward(v, sigma)[0], mu)),
        rel_error(dsg, numerical_gradient(lambda v: L.gaussian_kl_forward(mu, v)[0], sigma)),
    )
    return res


def _model_check(M: int, method_name: str, rng, **kwargs) -> float:
    """Worst relative error of the full model loss of ``method_name`` (constructed with ``kwargs``) at M
    modalities, with a bottleneck's noise fixed and any contribution weights frozen."""
    dims = (5, 4, 3)[:M]
    method = make_method(method_name, **kwargs)
    model = Model(
        ModelConfig(dims, 3, hidden=(6, 5), bottleneck=method.uses_bottleneck, z_dim=4, sigma_shift=1.0, head_init=1.0)
    )
    params = model.init_params(rng, dtype="float64")
    for k in params:  # zero biases put a pre-activation exactly on ReLU's kink when a layer's input is all zero
        if k.split(".")[1].startswith("b"):
            params[k] = params[k] + 0.1 * rng.host.standard_normal(params[k].shape)
    xs = [rng.host.standard_normal((6, d)) for d in dims]
    Y = L.one_hot(B.asarray(rng.host.integers(3, size=6)), 3, dtype="float64")
    eps = model.sample_eps(6, rng, "float64") if method.samples_noise else None
    method.setup(model, math.log(3))
    if hasattr(method, "contribution"):  # freeze W so that the loss is a function of the parameters alone
        W = np.linspace(1.0, 2.0, M) / np.linspace(1.0, 2.0, M).sum()
        method.contribution = lambda ctx, known_ce=None: {"W": W, "I": np.zeros(M), "D": np.zeros(M)}

    def loss(p):
        out = model.forward(p, xs, eps=eps)
        lo = method.loss(StepContext(model, p, out, Y, 10, 0, rng, math.log(3)))
        return lo, out

    lo, out = loss(params)
    grads = model.backward(params, out, lo.dlogits, lo.dmu, lo.dsigma)
    return max(check_params(lambda p: loss(p)[0].total, params, grads).values())


def run_all(seed: int = 0) -> dict:
    """{check name: worst relative error}, all on the NumPy backend in float64."""
    rng = B.make_rng(seed)
    res = {f"layer {k}": v for k, v in _layer_checks(rng).items()}
    for M in (2, 3):
        for spec in sorted(SPECS.values(), key=lambda s: (s.order, s.name)):
            if M < spec.min_modalities:
                continue
            for name, kwargs in (spec.gradcheck or {spec.name: {}}).items():
                res[f"model M={M} {name} loss"] = _model_check(M, name, rng, **kwargs)
    return res
