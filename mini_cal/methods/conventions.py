"""The two ways a peer can read one modality's own logits (docs/method.md §2.3), for G-Blending and MMPareto:

* ``coalition`` (our default): logits({m}) = z^m Wh[m] + bh, the coalition of modality m alone;
* ``slice``: z^m Wh[m] + bh / M, the head's weight slice with the bias split evenly, as OGM-GE's released code.
"""

from __future__ import annotations

from .. import backend as B
from .. import layers as L

UNIMODAL_LOGITS = ("coalition", "slice")


def unimodal_logits(model, params, out, m: int, convention: str = "coalition"):
    """Modality m's own logits, (N, K), by ``convention``."""
    if convention == "coalition":
        return model.coalition_logits(params, out, (m,))
    if convention == "slice":
        return out.u[m] + params["head.b"] / model.M
    raise ValueError(f"unimodal_logits: expected one of {UNIMODAL_LOGITS}, got {convention!r}")


def add_unimodal_gradient(dlogits: dict, m: int, d, convention: str, M: int) -> None:
    """Send d = dL/d unimodal_logits(m) into ``dlogits``: through the coalition {m}; for ``slice`` the bias gets only
    d / M, so the rest, -(1 - 1/M) d, goes through the empty coalition, whose key reaches bh alone."""
    dlogits[(m,)] = d if (m,) not in dlogits else dlogits[(m,)] + d
    if convention == "slice":
        back = -(1.0 - 1.0 / M) * d
        dlogits[()] = back if () not in dlogits else dlogits[()] + back


def unimodal_cross_entropy_terms(ctx, weights, convention: str = "coalition") -> tuple:
    """Sum of ``weights[m] * CE(unimodal_logits(m), y)``; returns (total, terms, dlogits) as
    :func:`mini_cal.methods.base.cross_entropy_terms` does, with terms named ``ce_m``."""
    total, terms, dlogits = 0.0, {}, {}
    for m, weight in enumerate(weights):
        logits = unimodal_logits(ctx.model, ctx.params, ctx.out, m, convention)
        ce, cache = L.softmax_ce_forward(logits, ctx.y_onehot)
        total = total + weight * ce
        terms[f"ce_{m}"] = B.to_float(ce)
        add_unimodal_gradient(dlogits, m, L.softmax_ce_backward(weight, cache), convention, ctx.model.M)
    return total, terms, dlogits
