"""Notebook 07 (the same code on a GPU): the checker of its exercise.

* :func:`check_log_softmax` - ``fn(logits) -> log_probs``, a row-wise, numerically stable log-softmax written
  against the backend's array namespace (``B.xp()``), so that it runs unchanged on NumPy and on a device library.
  The checker runs it under NumPy and under the strict ``array_api_strict`` stand-in (the backend the test suite
  uses in place of CuPy) and compares both with the library's ``L.log_softmax``, which it hides while grading.
"""

from __future__ import annotations

import numpy as np

from course import grading as G
from mini_cal import backend as B
from mini_cal import layers as L

HIDDEN = ((L, "log_softmax"), (L, "softmax"))
HINTS = {"default": "log softmax(l)_k = l_k - log sum_j exp(l_j), over each ROW (one sample's K logits)."}


def _cases(rng):
    return [
        ("logits of 5 samples x 3 classes", rng.standard_normal((5, 3)) * 2),
        ("one sample, 4 classes", rng.standard_normal((1, 4))),
        ("large logits (around 1000, where exp overflows)", 1000 + rng.standard_normal((4, 6)) * 3),
        ("very negative logits (around -1000)", -1000 + rng.standard_normal((3, 2)) * 3),
        (  # only each row's own maximum is safe: a row mean, a global maximum or a fixed shift overflows here
            "rows 1000 apart, logits 2000 apart within a row",
            np.array([[1000.0, -1000.0, 0.0, 999.0], [-1000.0, -1001.0, -1003.0, -1000.5], [3.0, 1.0, 0.0, -2.0]]),
        ),
    ]


def _mistakes(x):
    with np.errstate(all="ignore"):
        shifted = x - x.max(axis=1, keepdims=True)
        right = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        over_columns = x - x.max(axis=0, keepdims=True)
        over_columns = over_columns - np.log(np.exp(over_columns).sum(axis=0, keepdims=True))
        whole = x - x.max()
        whole = whole - np.log(np.exp(whole).sum())
        return [
            (np.exp(right), "you returned the softmax (probabilities), not its log."),
            (over_columns, "you normalised over the samples (axis 0): each ROW is one sample's K logits."),
            (whole, "you normalised over the whole array: sum over each row (axis=1, keepdims=True)."),
            (-right, "your log-probabilities have the wrong sign: they are <= 0."),
        ]


def _strict_failure(exc_text: str) -> str:
    return (
        f"under the strict stand-in (array_api_strict, as on a GPU) your function raised {exc_text}. "
        f"Ask the backend for its namespace (xp = B.xp()) and call xp.max, xp.exp, xp.log, xp.sum on the "
        f"arrays; NumPy functions (np.*) and NumPy-only array methods (.max(), .sum()) are not available on a "
        f"device array."
    )


def check_log_softmax(fn, seed: int = 0) -> G.Result:
    """Grade ``fn(logits) -> log_probs`` under NumPy and under ``array_api_strict``."""
    rng = np.random.default_rng(seed)
    cases = _cases(rng)
    # Part 1: NumPy, values.
    with B.use_backend("numpy"):
        for name, x in cases:
            expected = L.log_softmax(x)
            with G.hide(*HIDDEN), np.errstate(all="ignore"):
                got, failure = G.call_student(fn, x.copy(), where=f"under NumPy, on '{name}'")
            if failure:
                return G.failed(failure, case=name, backend="numpy")
            try:
                value = np.asarray(got, dtype=np.float64)
            except (TypeError, ValueError):
                return G.failed(f"under NumPy, on '{name}': expected an array, got {type(got).__name__}.", case=name)
            if value.shape == expected.shape and np.all(np.isfinite(value)) and G.rel_error(value, expected) < 1e-6:
                continue
            if value.shape == expected.shape and not np.all(np.isfinite(value)):
                return G.failed(
                    f"under NumPy, on '{name}': your result has NaN or inf entries: exp overflows (or "
                    f"underflows to 0) for logits this large; subtract each row's OWN maximum first (it "
                    f"does not change the softmax; a row's mean, the whole array's maximum or a constant "
                    f"can leave logits hundreds above 0 or make a whole row underflow).",
                    case=name,
                )
            for wrong, message in _mistakes(x):
                if value.shape == wrong.shape and G.rel_error(value, wrong) < 1e-6:
                    return G.failed(f"under NumPy, on '{name}': {message}", case=name)
            message = G.diagnose(value, expected, name="log_probs", hints=HINTS)
            return G.failed(f"under NumPy, on '{name}': {message}", case=name)
    # Part 2: the strict stand-in: the same function, device arrays in and out.
    try:
        import array_api_strict  # noqa: F401
    except ImportError:  # pragma: no cover - the test suite installs it
        return G.passed(
            "correct under NumPy; array_api_strict is not installed here, so the device check was "
            "skipped (pip install array-api-strict).",
            strict=False,
        )
    with B.use_backend("array_api_strict") as xp:
        for name, x in cases:
            device_x = B.asarray(x, dtype="float64")
            with G.hide(*HIDDEN):
                got, failure = G.call_student(fn, device_x, where=f"under array_api_strict, on '{name}'")
            if failure:
                if failure.startswith("NOT YET") or "library" in failure:
                    return G.failed(failure, case=name)
                detail = failure.split("your function raised ", 1)[-1]
                return G.failed(_strict_failure(detail), case=name, backend="array_api_strict")
            if isinstance(got, np.ndarray) or np.isscalar(got):
                return G.failed(
                    f"under array_api_strict, on '{name}': your function returned a NumPy "
                    f"{type(got).__name__}: the computation left the device (an implicit copy to the "
                    f"host, which CuPy refuses). Use xp = B.xp() functions so that the result stays a "
                    f"device array.",
                    case=name,
                    backend="array_api_strict",
                )
            if type(got).__module__.split(".")[0] != "array_api_strict":
                return G.failed(
                    f"under array_api_strict, on '{name}': expected a device array, got {type(got).__name__}.",
                    case=name,
                )
            value = np.asarray(B.to_numpy(got), dtype=np.float64)
            expected = np.asarray(B.to_numpy(L.log_softmax(device_x)), dtype=np.float64)
            message = G.diagnose(value, expected, name="log_probs", hints=HINTS)
            if message is not None:
                return G.failed(f"under array_api_strict, on '{name}': {message}", case=name)
        del xp
    return G.passed(
        f"all {len(cases)} cases agree with the library under NumPy and under array_api_strict "
        f"(large and very negative logits included): your function is backend-agnostic.",
        cases=len(cases),
    )


# -------------------------------------------------------------------------------------- helpers of the notebook
def attempt(label, fn):
    """Run ``fn()`` and print what it returned, or the error it raised (one line)."""
    try:
        out = fn()
        print(f"{label:<46} ran; returned: {type(out).__module__.split('.')[0]} {type(out).__name__}")
    except Exception as exc:
        print(f"{label:<46} {type(exc).__name__}: {exc}")


def loss_and_grads(model, params, xs, Y, eps, beta=0.5):
    """CE of the fused logits and of each modality's coalition, plus beta * KL per branch; hand-written gradient
    (the model's backward pass)."""
    out = model.forward(params, xs, eps=eps)
    total, dlogits = 0.0, {}
    for S in [(0, 1), (0,), (1,)]:
        ce, ce_cache = L.softmax_ce_forward(model.coalition_logits(params, out, S), Y)
        total = total + ce
        dlogits[S] = L.softmax_ce_backward(1.0, ce_cache)
    dmu, dsigma = [], []
    for m in range(model.M):
        kl, kl_cache = L.gaussian_kl_forward(out.mu[m], out.sigma[m])
        total = total + beta * kl
        d_mu, d_sigma = L.gaussian_kl_backward(beta, kl_cache)
        dmu.append(d_mu)
        dsigma.append(d_sigma)
    return total, model.backward(params, out, dlogits, dmu, dsigma)
