"""Notebook 02 (backprop by hand): the checkers of its four exercises and its figure.

Each checker grades a student's backward pass against the library's own (computed before the library function is
hidden) on a few cases, and names the first wrong output and the likely mistake in one sentence. A checker never
raises: it returns a :class:`course.grading.Result`.
"""

from __future__ import annotations

import numpy as np

from mini_cal import backend as B
from mini_cal import layers as L

from . import grading as G
from . import plots

# -------------------------------------------------------------------------------------------- hints (concepts)
SHAPE = "Each gradient has the shape of the input it belongs to."
LINEAR_HINTS = {
    "dx": {
        "default": "Write out one entry out[n, j] and see which entries of w multiply x[n, d]; " + SHAPE,
        "transpose": SHAPE,
        "shape": SHAPE,
        "scale_inv_n": "A layer's backward does not average: the 1/N lives in the loss, and dout already carries it.",
        "sign": "Nothing in out = x w + b has a minus sign.",
    },
    "dw": {
        "default": "w[d, j] touches out[n, j] for every sample n: sum those contributions. " + SHAPE,
        "transpose": "dw must be shaped like w, (D, H). " + SHAPE,
        "shape": SHAPE,
        "scale_inv_n": "A layer's backward does not average: the 1/N lives in the loss, and dout already carries it.",
        "scale_n": "Sum over the batch once, not N times.",
        "sign": "Nothing in out = x w + b has a minus sign.",
    },
    "db": {
        "sum_batch": "b is added to every sample's output, so its gradient collects the contributions of all N "
        "samples into one vector shaped like b.",
        "scale_inv_n": "A sum, not a mean: the 1/N lives in the loss, and dout already carries it.",
        "default": "b is added to every sample's output: collect each sample's contribution. " + SHAPE,
        "shape": SHAPE,
        "sign": "Nothing in out = x w + b has a minus sign.",
    },
}
RELU_HINTS = {
    "sign": "The ReLU's slope is 0 or +1, never negative.",
    "default": "The chain rule: upstream gradient times the ReLU's local slope, entry by entry.",
    "shape": SHAPE,
}
CE_HINTS = {
    "scale_n": "The loss is a MEAN over the batch, so every gradient of it carries a 1/N.",
    "scale_inv_n": "Divide by the batch size once: the loss is a mean over N samples, not N^2.",
    "sign": "Raising the logit of the true class must lower the loss: check the sign of that entry.",
    "transpose": SHAPE,
    "shape": "dlogits has the shape of the logits, (N, K).",
    "default": "Write -log p_y for one sample in terms of its logits, differentiate with respect to one "
    "logit, then remember the loss is a mean over the batch.",
}
BOTTLENECK_NAMES = ("dh", "dw_mu", "db_mu", "dw_s", "db_s")
BOTTLENECK_ORDER = ("dw_mu", "db_mu", "dw_s", "db_s", "dh")  # check the mu path, then the sigma path, then h
BOTTLENECK_HINTS = {
    "dw_mu": {"default": "z depends on mu with slope 1, and the KL term adds its own gradient on mu."},
    "db_mu": {
        "default": "z depends on mu with slope 1, and the KL term adds its own gradient on mu.",
        "sum_batch": "b_mu is shared by every sample: collect their contributions.",
    },
    "dw_s": {
        "default": "Follow sigma back to a: sigma = softplus(a) + sigma_min, and the KL term adds its own "
        "gradient on sigma."
    },
    "db_s": {
        "default": "Follow sigma back to a: sigma = softplus(a) + sigma_min, and the KL term adds its own "
        "gradient on sigma.",
        "sum_batch": "b_s is shared by every sample: collect their contributions.",
        "not_array": "When nothing reaches sigma, its parameters' gradients are zeros shaped like them.",
    },
    "dh": {"default": "h feeds both linear maps: count every path from h to the loss."},
}
BOTTLENECK_HINTS["dw_s"]["not_array"] = BOTTLENECK_HINTS["db_s"]["not_array"]


def _arrays(*arrays):
    return tuple(np.array(a, dtype=np.float64, copy=True) for a in arrays)


# --------------------------------------------------------------------------------------------------- linear
def _linear_cases(rng):
    """(name, x, w, b, dout): D != H first (so a transpose shows as a wrong shape), then a square w, one sample."""
    cases = []
    for name, n, d, h in [
        ("batch of 4, D = 5, H = 3", 4, 5, 3),
        ("batch of 6, D = H = 4", 6, 4, 4),
        ("batch of 3, D = 2, H = 6", 3, 2, 6),
    ]:
        cases.append(
            (
                name,
                rng.standard_normal((n, d)),
                rng.standard_normal((d, h)),
                rng.standard_normal(h),
                rng.standard_normal((n, h)),
            )
        )
    return cases


@G.checker
def check_linear_backward(fn, seed: int = 0) -> G.Result:
    """Grade ``fn(dout, cache) -> (dx, dw, db)``, the backward of :func:`mini_cal.layers.linear_forward` whose cache
    is ``(x, w)``, against the library's ``linear_backward`` on three cases."""
    with B.use_backend("numpy"):
        rng = np.random.default_rng(seed)
        cases = _linear_cases(rng)
        expected = [L.linear_backward(dout, (x, w)) for _, x, w, _, dout in cases]
        errors = {}
        with G.hide((L, "linear_backward"), (L, "linear_relu_backward")):
            for (name, x, w, b, dout), want in zip(cases, expected):
                got, failure = G.call_student(fn, *_arrays(dout), _arrays(x, w), where=f"in case '{name}'")
                if failure:
                    return G.failed(failure, errors=errors)
                message = G.compare_outputs(
                    got, want, ("dx", "dw", "db"), n=x.shape[0], hints=LINEAR_HINTS, where=f"in case '{name}'"
                )
                if message:
                    return G.failed(message, errors=errors, case=name)
                errors[name] = max(G.rel_error(g, e) for g, e in zip(got, want))
    return G.passed(
        f"dx, dw and db are right in all {len(cases)} cases (largest relative error {max(errors.values()):.0e}).",
        errors=errors,
    )


# ----------------------------------------------------------------------------------------------------- relu
def _relu_cases(rng):
    x1 = rng.standard_normal((6, 4))
    x2 = rng.standard_normal((5, 7))
    x2[0, :3] = 0.0  # inputs exactly at the kink: the convention is slope 0 there
    return [
        ("random 6 x 4 input", x1, rng.standard_normal(x1.shape)),
        ("5 x 7 input with three entries exactly 0", x2, rng.standard_normal(x2.shape)),
    ]


@G.checker
def check_relu_backward(fn, seed: int = 0) -> G.Result:
    """Grade ``fn(dout, cache) -> dx``, the backward of :func:`mini_cal.layers.relu_forward` whose cache is its
    output ``out = max(x, 0)``, against the library's ``relu_backward`` (slope 0 at x = 0)."""
    with B.use_backend("numpy"):
        rng = np.random.default_rng(seed)
        cases = _relu_cases(rng)
        expected = []
        for _, x, dout in cases:
            out, cache = L.relu_forward(x)
            expected.append(L.relu_backward(dout, cache))
        with G.hide((L, "relu_backward"), (L, "linear_relu_backward")):
            for (name, x, dout), want in zip(cases, expected):
                out = np.maximum(x, 0.0)
                got, failure = G.call_student(fn, *_arrays(dout, out), where=f"in case '{name}'")
                if failure:
                    return G.failed(failure)
                where = f"in case '{name}'"
                if isinstance(got, (tuple, list)) and len(got) == 1:
                    got = got[0]
                message = _relu_mistake(got, want, dout, out)
                if message:
                    return G.failed(f"FAILED {where}: {message}", case=name)
                message = G.compare_outputs(got, want, ("dx",), n=x.shape[0], hints=RELU_HINTS, where=where)
                if message:
                    return G.failed(message, case=name)
    return G.passed("dx is right in both cases, including inputs exactly at the kink.")


def _relu_mistake(got, want, dout, out):
    """One sentence for the typical ReLU mistakes, or None."""
    try:
        got = np.asarray(got, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    if got.shape != want.shape or G.rel_error(got, want) < G.TOLERANCE:
        return None
    off, on = out <= 0, out > 0
    if G.rel_error(got[on], want[on]) < G.TOLERANCE:
        return (
            "dx is right where the input was positive but not where it was <= 0: there the ReLU is flat, so "
            "no gradient flows back through it."
        )
    if np.allclose(got[on], 0) and not np.allclose(got[off], 0):
        return (
            "dx is zero where the input was positive and non-zero where it was <= 0: the mask is inverted "
            "(which side of the kink does the signal pass?)."
        )
    if np.allclose(got, on.astype(float)):
        return "dx is the ReLU's local slope alone: the chain rule multiplies it by the upstream gradient dout."
    return None


# --------------------------------------------------------------------------------- softmax cross-entropy
def _ce_cases(rng):
    cases = []
    for name, n, k, dloss in [
        ("batch of 8, K = 4, dloss = 1", 8, 4, 1.0),
        ("batch of 5, K = 3, dloss = 0.3", 5, 3, 0.3),
        ("batch of 6, K = 6, dloss = 2", 6, 6, 2.0),
    ]:
        logits = rng.standard_normal((n, k)) * 2
        y = L.one_hot(rng.integers(k, size=n), k, dtype="float64")
        cases.append((name, logits, y, dloss))
    return cases


@G.checker
def check_softmax_ce_backward(fn, seed: int = 0) -> G.Result:
    """Grade ``fn(dloss, cache) -> dlogits``, the backward of :func:`mini_cal.layers.softmax_ce_forward` (a MEAN
    over the batch) whose cache is ``(p, y_onehot)``, against the library's ``softmax_ce_backward``."""
    with B.use_backend("numpy"):
        rng = np.random.default_rng(seed)
        cases = _ce_cases(rng)
        prepared = []
        for name, logits, y, dloss in cases:
            _, (p, y1) = L.softmax_ce_forward(logits, y)
            prepared.append((name, p, y1, dloss, L.softmax_ce_backward(dloss, (p, y1))))
        with G.hide((L, "softmax_ce_backward")):
            for name, p, y, dloss, want in prepared:
                where = f"in case '{name}'"
                got, failure = G.call_student(fn, dloss, _arrays(p, y), where=where)
                if failure:
                    return G.failed(failure)
                if isinstance(got, (tuple, list)) and len(got) == 1:
                    got = got[0]
                message = _ce_mistake(got, want, dloss, p.shape[0])
                if message:
                    return G.failed(f"FAILED {where}: {message}", case=name)
                message = G.compare_outputs(got, want, ("dlogits",), n=p.shape[0], hints=CE_HINTS, where=where)
                if message:
                    return G.failed(message, case=name)
    return G.passed(f"dlogits is right in all {len(cases)} cases, including an upstream dloss other than 1.")


def _ce_mistake(got, want, dloss, n):
    try:
        got = np.asarray(got, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    if got.shape != want.shape or not np.all(np.isfinite(got)) or G.rel_error(got, want) < G.TOLERANCE:
        return None
    if dloss != 1.0 and G.rel_error(got * dloss, want) < G.TOLERANCE:
        return "dlogits ignores the upstream gradient dloss: the chain rule multiplies everything by it."
    rows = got.sum(axis=1)
    if not np.allclose(rows, 0.0, atol=1e-8 * max(1.0, np.abs(got).max())):
        return (
            f"the rows of dlogits sum to {rows[0]:.3g} (first row), not 0: adding the same constant to every "
            f"logit of a sample leaves the softmax, hence the loss, unchanged, so the gradient of a row must "
            f"sum to 0. Look at the term that comes from the label."
        )
    return None


# ---------------------------------------------------------------------------------------- gaussian bottleneck
def _bottleneck_cases(rng):
    """Training (eps given) or evaluation (eps None), with or without KL gradients on mu and sigma, and an
    unshifted softplus; (name, inputs, eps, shift, dz, dmu_extra, dsigma_extra)."""
    n, h_dim, z_dim = 4, 5, 3
    cases = []
    for name, stochastic, extras, shift in [
        ("training pass, KL gradients on mu and sigma", True, "kl", 5.0),
        ("training pass, no KL", True, None, 5.0),
        ("evaluation pass (eps=None), KL gradients", False, "kl", 5.0),
        ("evaluation pass (eps=None), no KL", False, None, 5.0),
        ("training pass, shift=0, random extra gradients", True, "random", 0.0),
    ]:
        inputs = (
            rng.standard_normal((n, h_dim)),
            rng.standard_normal((h_dim, z_dim)) / np.sqrt(h_dim),
            rng.standard_normal(z_dim) * 0.1,
            rng.standard_normal((h_dim, z_dim)) / np.sqrt(h_dim),
            rng.standard_normal(z_dim) * 0.1,
        )
        eps = rng.standard_normal((n, z_dim)) if stochastic else None
        dz = rng.standard_normal((n, z_dim))
        dmu_extra = dsigma_extra = None
        if extras == "kl":
            (_, mu, sigma), _ = L.gaussian_bottleneck_forward(*inputs, eps=eps, shift=shift)
            dmu_extra, dsigma_extra = L.gaussian_kl_backward(0.01, L.gaussian_kl_forward(mu, sigma)[1])
        elif extras == "random":
            dmu_extra, dsigma_extra = rng.standard_normal((n, z_dim)), rng.standard_normal((n, z_dim))
        cases.append((name, inputs, eps, shift, dz, dmu_extra, dsigma_extra))
    return cases


def _bottleneck_variants(cache, dz, dmu_extra, dsigma_extra):
    """The library's gradients, and what typical mistakes would return: {variant: (dh, dw_mu, db_mu, dw_s, db_s)}.

    Each mistake is the library's backward run on altered inputs (computed before the library is hidden), so that
    this file holds no readable answer: no KL term on mu or sigma (that extra left out); no softplus slope (a pushed
    to +1000, where the slope is 1); dh from one path only (the other linear map zeroed, or subtracted).
    """
    backward = L.gaussian_bottleneck_backward
    mu_cache, s_cache, a, eps = cache
    (h, w_mu), _ = mu_cache, s_cache
    right = backward(dz, cache, dmu_extra, dsigma_extra)
    sigma_path = backward(dz, ((h, np.zeros_like(w_mu)), s_cache, a, eps), dmu_extra, dsigma_extra)[0]
    mu_path = right[0] - sigma_path
    return {
        "right": right,
        "no softplus slope": backward(dz, (mu_cache, s_cache, np.full_like(a, 1000.0), eps), dmu_extra, dsigma_extra),
        "no KL on sigma": backward(dz, cache, dmu_extra, None),
        "no KL on mu": backward(dz, cache, None, dsigma_extra),
        "dh: mu path only": (mu_path,) + tuple(right[1:]),
        "dh: sigma path only": (sigma_path,) + tuple(right[1:]),
    }


MISTAKES = {
    "no softplus slope": (
        "dw_s",
        "dw_s misses the slope of sigma = softplus(a) + sigma_min: the chain rule needs "
        "d sigma / d a between sigma and the linear map.",
    ),
    "no KL on sigma": (
        "dw_s",
        "dw_s misses the gradient that the KL term sends directly to sigma "
        "(dsigma_extra): gradients reaching a node by different paths add up.",
    ),
    "no KL on mu": (
        "dw_mu",
        "dw_mu misses the gradient that the KL term sends directly to mu (dmu_extra): "
        "gradients reaching a node by different paths add up.",
    ),
    "dh: mu path only": ("dh", "dh has only the mu path: h also feeds the sigma map, and the two paths add up."),
    "dh: sigma path only": ("dh", "dh has only the sigma path: h also feeds the mu map, and the two paths add up."),
}


@G.checker
def check_bottleneck_backward(fn, seed: int = 0) -> G.Result:
    """Grade ``fn(dz, cache, dmu_extra=None, dsigma_extra=None) -> (dh, dw_mu, db_mu, dw_s, db_s)``, the backward of
    :func:`mini_cal.layers.gaussian_bottleneck_forward`, against the library's ``gaussian_bottleneck_backward`` on
    five cases (training and evaluation passes, with and without KL gradients, shift 0)."""
    with B.use_backend("numpy"):
        rng = np.random.default_rng(seed)
        prepared = []
        for name, inputs, eps, shift, dz, dmu_extra, dsigma_extra in _bottleneck_cases(rng):
            _, cache = L.gaussian_bottleneck_forward(*inputs, eps=eps, shift=shift)
            want = L.gaussian_bottleneck_backward(dz, cache, dmu_extra, dsigma_extra)
            variants = _bottleneck_variants(cache, dz, dmu_extra, dsigma_extra)
            prepared.append((name, cache, dz, dmu_extra, dsigma_extra, want, variants))
        errors = {}
        with G.hide((L, "gaussian_bottleneck_backward")):
            for name, cache, dz, dmu_extra, dsigma_extra, want, variants in prepared:
                where = f"in case '{name}'"
                (mu_h, mu_w), (s_h, s_w), a, eps = cache
                student_cache = (
                    (mu_h.copy(), mu_w.copy()),
                    (s_h.copy(), s_w.copy()),
                    a.copy(),
                    None if eps is None else eps.copy(),
                )
                extras = [None if e is None else e.copy() for e in (dmu_extra, dsigma_extra)]
                got, failure = G.call_student(fn, dz.copy(), student_cache, *extras, where=where)
                if failure:
                    return G.failed(failure, errors=errors)
                if isinstance(got, (tuple, list)) and len(got) == 5:
                    by_name = dict(zip(BOTTLENECK_NAMES, got))
                    swapped = _swapped_outputs(by_name, dict(zip(BOTTLENECK_NAMES, want)))
                    if swapped:
                        return G.failed(f"FAILED {where}: {swapped}", errors=errors, case=name)
                    ordered_got = tuple(by_name[k] for k in BOTTLENECK_ORDER)
                else:
                    ordered_got = got
                want_by = dict(zip(BOTTLENECK_NAMES, want))
                ordered_want = tuple(want_by[k] for k in BOTTLENECK_ORDER)
                message = G.compare_outputs(
                    ordered_got, ordered_want, BOTTLENECK_ORDER, n=dz.shape[0], hints=BOTTLENECK_HINTS, where=where
                )
                if message and message.startswith(f"FAILED {where}: expected 5 values"):
                    return G.failed(message.replace(str(BOTTLENECK_ORDER), str(BOTTLENECK_NAMES)), errors=errors)
                if message:
                    return G.failed(_bottleneck_mistake(by_name, variants, where) or message, errors=errors, case=name)
                errors[name] = max(G.rel_error(g, e) for g, e in zip(ordered_got, ordered_want))
    return G.passed(
        f"all five gradients are right in all {len(errors)} cases (largest relative error {max(errors.values()):.0e}).",
        errors=errors,
    )


def _swapped_outputs(got, want):
    """A sentence if an output holds the value another output should have (outputs returned in the wrong order)."""
    for name, value in got.items():
        try:
            value = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            continue
        if value.shape == np.shape(want[name]) and G.rel_error(value, want[name]) < G.TOLERANCE:
            continue
        for other, right in want.items():
            if (
                other != name
                and value.shape == np.shape(right)
                and G.rel_error(value, right) < G.TOLERANCE
                and G.rel_error(right, want[name]) >= G.TOLERANCE
            ):
                return (
                    f"{name} holds what {other} should be: return the gradients in the order "
                    f"{', '.join(BOTTLENECK_NAMES)}, each shaped like its input."
                )
    return None


def _bottleneck_mistake(by_name, variants, where):
    """If the student's answer matches a typical mistake on the output it affects: that mistake's sentence."""
    right = dict(zip(BOTTLENECK_NAMES, variants["right"]))
    for variant, (output, sentence) in MISTAKES.items():
        value = dict(zip(BOTTLENECK_NAMES, variants[variant]))[output]
        if G.rel_error(value, right[output]) < G.TOLERANCE:
            continue  # this case cannot tell the mistake from the right answer
        try:
            got = np.asarray(by_name[output], dtype=np.float64)
        except (TypeError, ValueError):
            return None
        if got.shape == value.shape and G.rel_error(got, value) < G.TOLERANCE:
            return f"FAILED {where}: {sentence}"
    return None


# ------------------------------------------------------------------------------------------------- figure
def plot_step_size(steps, errors, default_h=1e-5, path=None):
    """Figure 1: relative error of the centred difference against the step h, one curve per dtype."""
    fig, ax = plots.figure(width=7.5, height=5.0)
    for (dtype, errs), color in zip(errors.items(), ("C0", "C3")):
        ax.loglog(steps, errs, "o-", color=color, ms=4, label=f"function computed in {dtype}")
    ax.axvline(default_h, color="k", ls="--", lw=1, label=f"h = {default_h:.0e} (mini_cal.gradcheck default)")
    ax.set_xlabel("finite-difference step h")
    ax.set_ylabel("relative error vs the analytic gradient")
    ax.set_title("Figure 1. Truncation error (right) against round-off error (left)")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, fontsize=9)
    plots.finish(fig, path)
