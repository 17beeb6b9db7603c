"""Numerical gradients by centred differences, and the relative error used to judge them.

Run checks in float64: with h = 1e-5 the centred difference has truncation error O(h^2) ~ 1e-10 and round-off
~ 1e-16 / h ~ 1e-11, so a correct backward pass agrees to about 1e-8 relative error or better.
Functions here work on host NumPy copies of the parameters and call ``f`` with backend arrays.
"""

from __future__ import annotations

import numpy as np

from . import backend as B


def rel_error(a, b, floor: float = 1e-8, elementwise: bool = False) -> float:
    """Relative error between two gradients, as a Python float.

    Default (ours): the tensor-wise ``||a - b|| / max(||a|| + ||b||, floor)`` in the 2-norm. The CS231n
    elementwise ``max_i |a_i - b_i| / max(|a_i| + |b_i|, floor)`` (``elementwise=True``) is harsher on entries
    whose true gradient is tiny but not zero: there the finite difference's round-off (~1e-11 in float64) is
    compared with a value of the same order, and the ratio says more about round-off than about the backward pass.
    """
    a, b = B.to_numpy(a).astype(np.float64), B.to_numpy(b).astype(np.float64)
    if a.shape != b.shape:
        raise ValueError(f"rel_error: shapes differ, {a.shape} vs {b.shape}")
    if a.size == 0:
        return 0.0
    if elementwise:
        return float(np.max(np.abs(a - b) / np.maximum(np.abs(a) + np.abs(b), floor)))
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(a) + np.linalg.norm(b), floor))


def _perturbed(x, index, value):
    host = B.to_numpy(x).copy()
    host[index] = value
    return B.asarray(host)


def numerical_gradient(f, x, h: float = 1e-5, indices=None):
    """Centred-difference gradient of a scalar function ``f(x)``.

    ``f`` takes a backend array shaped like ``x`` and returns a scalar. ``indices`` (iterable of index tuples)
    restricts the computation to those entries (the rest are 0). Returns a NumPy array shaped like ``x``.
    """
    x_host = B.to_numpy(x).astype(np.float64)
    grad = np.zeros_like(x_host)
    it = indices if indices is not None else np.ndindex(*x_host.shape)
    for ix in it:
        old = x_host[ix]
        fp = float(B.to_numpy(f(_perturbed(x, ix, old + h))))
        fm = float(B.to_numpy(f(_perturbed(x, ix, old - h))))
        grad[ix] = (fp - fm) / (2 * h)
    return grad


def numerical_gradient_array(f, x, dout, h: float = 1e-5):
    """Gradient of <f(x), dout> for an array-valued ``f``: the check projected onto an upstream gradient."""
    dout_host = B.to_numpy(dout).astype(np.float64)

    def projected(xv):
        return float(np.sum(B.to_numpy(f(xv)).astype(np.float64) * dout_host))

    return numerical_gradient(projected, x, h=h)


def sample_indices(shape, num: int, rng) -> list:
    """``num`` distinct random index tuples into an array of ``shape`` (all of them if it is smaller)."""
    size = int(np.prod(shape))
    flat = (
        rng.host.choice(size, size=min(num, size), replace=False)
        if hasattr(rng, "host")
        else rng.choice(size, size=min(num, size), replace=False)
    )
    return [np.unravel_index(int(i), shape) for i in flat]


def check_sampled(f, x, analytic, num: int = 20, rng=None, h: float = 1e-5) -> float:
    """Relative error on ``num`` randomly chosen entries of a large tensor."""
    rng = rng if rng is not None else np.random.default_rng(0)
    analytic = B.to_numpy(analytic)
    idx = sample_indices(analytic.shape, num, rng)
    numeric = numerical_gradient(f, x, h=h, indices=idx)
    return rel_error(np.array([analytic[i] for i in idx]), np.array([numeric[i] for i in idx]))


def check_params(loss_fn, params: dict, grads: dict, h: float = 1e-5, max_entries: int | None = None, rng=None) -> dict:
    """Check every parameter of a dict against its analytic gradient.

    ``loss_fn(params) -> scalar`` is evaluated with one entry of one parameter perturbed at a time.
    ``max_entries`` switches to the sampled check for parameters with more entries. Returns ``{name: rel_err}``.
    """
    rng = rng if rng is not None else np.random.default_rng(0)
    errors = {}
    for name in params:
        if name not in grads:
            raise KeyError(f"check_params: no gradient for parameter {name!r}")

        def f(value, name=name):
            trial = dict(params)
            trial[name] = value
            return loss_fn(trial)

        shape = tuple(params[name].shape)
        indices = None
        if max_entries is not None and int(np.prod(shape)) > max_entries:
            indices = sample_indices(shape, max_entries, rng)
        numeric = numerical_gradient(f, params[name], h=h, indices=indices)
        analytic = B.to_numpy(grads[name])
        if indices is None:
            errors[name] = rel_error(analytic, numeric)
        else:
            errors[name] = rel_error(np.array([analytic[i] for i in indices]), np.array([numeric[i] for i in indices]))
    return errors
