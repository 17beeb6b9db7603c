"""Notebook 05 (the information bottleneck): checkers for its four exercises, its figures, and the script that
writes its five-seed results file.

Exercises (each checker takes the student's function and returns a :class:`course.grading.Result`; it never raises):

* :func:`check_bottleneck_forward` - ``fn(h, w_mu, b_mu, w_s, b_s, eps=None, sigma_min=1e-4, shift=5.0)
  -> (z, mu, sigma)``, the reparameterised Gaussian bottleneck;
* :func:`check_kl_forward` - ``fn(mu, sigma) -> kl``, the KL to N(0, I) (a number);
* :func:`check_kl_backward` - ``fn(dkl, cache) -> (dmu, dsigma)``, its gradient;
* :func:`check_bottleneck_betas` - ``fn(W, beta0) -> beta``, CAL's contribution-aware compression weights.

Each checker compares with the library's own function (computed before it is hidden) and, when the answer is wrong,
first looks for a typical mistake (a catalogue of wrong formulas computed on the same inputs), then falls back to
:func:`course.grading.diagnose`.

Results file: ``python tutorials/course/nb05.py`` trains CAL, its symmetric bottleneck and no bottleneck on the
``corrupted`` preset for five seeds and writes :data:`RESULTS` (about a minute on two idle cores).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # run as a script: make `course` and `mini_cal` importable
    sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parents[2])]

from course import grading as G  # noqa: E402
from mini_cal import backend as B  # noqa: E402
from mini_cal import layers as L  # noqa: E402
from mini_cal.methods import cal as cal_module  # noqa: E402

RESULTS = Path(__file__).resolve().parents[1] / "data" / "nb05_corrupted.json"
RESULT_SEEDS = (0, 1, 2, 3, 4)
VARIANTS = {"cal": "CAL, asymmetric bottleneck", "cal-sym-ib": "symmetric bottleneck", "cal-no-aib": "no bottleneck"}
COLORS = {"cal": "C0", "cal-sym-ib": "C2", "cal-no-aib": "C7"}


def _first_mistake(got, catalogue, expected=None, tol=1e-6):
    """The message of the first (value, message) in ``catalogue`` that ``got`` matches, else None. Entries that
    coincide with ``expected`` on these inputs (e.g. "forgot 1/N" when N = 1) are skipped."""
    try:
        got = np.asarray(got, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    for value, message in catalogue:
        value = np.asarray(value, dtype=np.float64)
        if expected is not None and value.shape == np.shape(expected) and G.rel_error(value, expected) < tol:
            continue
        if got.shape == value.shape and np.all(np.isfinite(got)) and G.rel_error(got, value) < tol:
            return message
    return None


def _numbers(value):
    """The student's output as float64 arrays (a backend array, a list or a number); None if it is not numeric."""
    try:
        return np.asarray(B.to_numpy(value) if hasattr(value, "shape") else value, dtype=np.float64)
    except (TypeError, ValueError):
        return None


# ---------------------------------------------------------------------------------- exercise 1: the forward
FORWARD_HINTS = {
    "mu": {"default": "mu is the plain linear layer of h (notebook 02's linear forward)."},
    "sigma": {
        "default": "sigma is a standard deviation: a softplus of its own linear layer, moved by the shift, "
        "plus the floor sigma_min (read the docstring of L.gaussian_bottleneck_forward's "
        "neighbours in docs/method.md, 'Network')."
    },
    "z": {
        "default": "z is a sample of N(mu, sigma^2) written as a function of mu, sigma and the outside noise eps; "
        "in evaluation (eps=None) it is the mean."
    },
}


def _forward_cases(rng):
    """(name, inputs, keyword arguments): training and evaluation passes, other constants, a large pre-activation."""
    n, h_dim, z_dim = 5, 6, 4

    def inputs(scale_s=1.0):
        return (
            rng.standard_normal((n, h_dim)),
            rng.standard_normal((h_dim, z_dim)) / np.sqrt(h_dim),
            rng.standard_normal(z_dim) * 0.1,
            scale_s * rng.standard_normal((h_dim, z_dim)) / np.sqrt(h_dim),
            rng.standard_normal(z_dim) * 0.1,
        )

    large = list(inputs())
    large[4] = np.array([800.0, -800.0, 0.0, 750.0])  # softplus(800) = 800, softplus(-800) ~ 0: no overflow allowed
    return [
        ("training pass (eps given), shift 5", inputs(3.0), {"eps": rng.standard_normal((n, z_dim))}),
        ("evaluation pass (eps=None)", inputs(), {"eps": None}),
        (
            "shift 1 and sigma_min 0.01",
            inputs(2.0),
            {"eps": rng.standard_normal((n, z_dim)), "shift": 1.0, "sigma_min": 0.01},
        ),
        (
            "a large pre-activation (|h Ws + bs| near 800)",
            large,
            {"eps": rng.standard_normal((n, z_dim)), "shift": 0.0},
        ),
    ]


def _forward_mistakes(h, w_mu, b_mu, w_s, b_s, eps, sigma_min, shift):
    pre = h @ w_s + b_s
    sp = L.softplus
    return {
        "sigma": [
            (
                sp(pre) + sigma_min,
                "sigma ignores the shift: it should be the softplus of (h Ws + bs - shift), "
                "which makes sigma start small (section 3 measures why).",
            ),
            (sp(pre + shift) + sigma_min, "sigma adds the shift where it should subtract it."),
            (sp(pre - shift), "sigma misses the floor sigma_min, which keeps it away from 0 (and log sigma finite)."),
            (
                np.exp(np.clip(pre - shift, -700, 700)) + sigma_min,
                "sigma uses exp where the bottleneck uses softplus (close for very negative inputs, not elsewhere).",
            ),
            (pre - shift + sigma_min, "sigma is missing its softplus: a standard deviation must stay positive."),
        ]
        + (
            [
                (
                    sp(pre - 5.0) + 1e-4,
                    "sigma uses the default constants 5 and 1e-4 whatever the arguments say: use the shift and "
                    "sigma_min passed in (hard-coded constants).",
                )
            ]
            if (shift, sigma_min) != (5.0, 1e-4)
            else []
        ),
        "z": []
        if eps is None
        else [
            (
                (h @ w_mu + b_mu) + (sp(pre - shift) + sigma_min) ** 2 * eps,
                "z adds sigma^2 * eps: sigma is a standard deviation, so the noise is sigma * eps.",
            ),
            ((h @ w_mu + b_mu) + eps, "z adds eps without scaling it by sigma."),
            (sp(pre - shift) + sigma_min + (h @ w_mu + b_mu) * eps, "z swaps the roles of mu and sigma."),
        ],
    }


def check_bottleneck_forward(fn, seed: int = 0) -> G.Result:
    """Grade ``fn(h, w_mu, b_mu, w_s, b_s, eps=None, sigma_min=1e-4, shift=5.0) -> (z, mu, sigma)``."""
    rng = np.random.default_rng(seed)
    with B.use_backend("numpy"), np.errstate(over="ignore", invalid="ignore"):
        cases = _forward_cases(rng)
        for name, args, kw in cases:
            kw_full = {"eps": None, "sigma_min": 1e-4, "shift": 5.0, **kw}
            (z, mu, sigma), _ = L.gaussian_bottleneck_forward(*args, **kw_full)
            expected = {"z": z, "mu": mu, "sigma": sigma}
            with G.hide((L, "gaussian_bottleneck_forward")):
                got, failure = G.call_student(fn, *args, where=f"in case '{name}'", **kw_full)
            if failure:
                return G.failed(failure, case=name)
            if not isinstance(got, (tuple, list)) or len(got) != 3:
                return G.failed(
                    f"in case '{name}': expected the three arrays (z, mu, sigma), got "
                    f"{type(got).__name__ if not isinstance(got, (tuple, list)) else f'{len(got)} values'}.",
                    case=name,
                )
            got = dict(zip(("z", "mu", "sigma"), (_numbers(g) for g in got)))
            swap = G.swapped_outputs(list(got.values()), list(expected.values()), ("z", "mu", "sigma"))
            if swap:
                return G.failed(f"in case '{name}': {swap}", case=name)
            mistakes = _forward_mistakes(*args, kw_full["eps"], kw_full["sigma_min"], kw_full["shift"])
            for out in ("mu", "sigma", "z"):
                if (
                    kw_full["eps"] is None
                    and out == "z"
                    and got["z"] is not None
                    and got["mu"] is not None
                    and got["z"].shape == expected["z"].shape
                    and G.rel_error(got["z"], expected["z"]) >= 1e-6
                ):
                    return G.failed(
                        f"in case '{name}': in evaluation (eps=None) z must be the mean mu, so that "
                        f"predictions are deterministic.",
                        case=name,
                        output="z",
                    )
                message = _first_mistake(got[out], mistakes.get(out, []), expected[out])
                if message is None:
                    message = G.diagnose(got[out], expected[out], name=out, hints=FORWARD_HINTS[out])
                if message is not None:
                    return G.failed(f"in case '{name}': {message}", case=name, output=out)
    return G.passed(
        f"all {len(cases)} cases agree with the reparameterised bottleneck (training and evaluation "
        f"passes, other constants, a large pre-activation).",
        cases=len(cases),
    )


# -------------------------------------------------------------------------------- exercise 2: the KL forward
def _kl_inputs(rng):
    """(name, mu, sigma): batches whose N and Z differ, so that a factor N, Z or 2 can be told apart."""

    def batch(n, z, lo, hi, mu_scale=1.0):
        return mu_scale * rng.standard_normal((n, z)), rng.uniform(lo, hi, size=(n, z))

    return [
        ("batch of N = 4, Z = 3", *batch(4, 3, 0.3, 2.0)),
        ("batch of N = 6, Z = 5", *batch(6, 5, 0.3, 2.0)),
        ("small sigma (0.05 to 0.2), N = 5, Z = 4", *batch(5, 4, 0.05, 0.2)),
        ("close to the prior (mu near 0, sigma near 1), N = 3, Z = 2", *batch(3, 2, 0.8, 1.2, 0.1)),
        ("a single sample, Z = 7", *batch(1, 7, 0.3, 2.0)),
    ]


def _kl_forward_mistakes(mu, sigma):
    n, z = mu.shape
    terms = mu**2 + sigma**2 - np.log(sigma**2) - 1.0
    right = 0.5 * terms.sum() / n
    return [
        (right * n, f"the KL is N = {n} times too large: it is a mean over the batch, not a sum."),
        (
            right / z,
            f"the KL is Z = {z} times too small: sum over the Z dimensions (each is its own Gaussian, and "
            f"their KLs add); only the batch is averaged.",
        ),
        (2 * right, "the KL is twice too large: a factor 1/2 got lost (every term of log q - log p carries one)."),
        (
            0.5 * (mu**2 + sigma**2 - np.log(sigma) - 1.0).sum() / n,
            "the KL's term in log sigma is half what it should be: the normaliser 1/sqrt(2 pi sigma^2) of q puts "
            "-log sigma into log q(z), all of it (log sqrt(sigma^2) = log sigma).",
        ),
        (
            right + z / 2,
            "the KL misses a constant term per dimension: the term in (z - mu)^2 has a nonzero expectation "
            "too. Check that your value is 0 at mu = 0, sigma = 1.",
        ),
        (
            0.5 * (mu**2 + sigma - np.log(sigma**2) - 1.0).sum() / n,
            "the KL uses sigma where E_q[z^2] brings the variance sigma^2.",
        ),
        (
            0.5 * (mu + sigma**2 - np.log(sigma**2) - 1.0).sum() / n,
            "the KL uses mu where E_q[z^2] brings the squared mean mu^2.",
        ),
        (-right, "the KL has the wrong sign: a KL divergence is never negative."),
    ]


def check_kl_forward(fn, seed: int = 0) -> G.Result:
    """Grade ``fn(mu, sigma) -> kl``: KL(N(mu, sigma^2) || N(0, I)), summed over dimensions, averaged over the
    batch, as one number."""
    rng = np.random.default_rng(seed)
    cases = _kl_inputs(rng)
    with B.use_backend("numpy"):
        for name, mu, sigma in cases:
            expected = float(L.gaussian_kl_forward(mu, sigma)[0])
            with G.hide((L, "gaussian_kl_forward")):
                got, failure = G.call_student(fn, mu.copy(), sigma.copy(), where=f"in case '{name}'")
            if failure:
                return G.failed(failure, case=name)
            if isinstance(got, tuple):
                return G.failed(
                    f"in case '{name}': return the KL alone (one number), not a tuple; the cache is "
                    f"not part of this exercise.",
                    case=name,
                )
            value = _numbers(got)
            if value is None or value.size != 1:
                shape = None if value is None else value.shape
                return G.failed(
                    f"in case '{name}': expected one number, got "
                    f"{type(got).__name__ if value is None else f'an array of shape {shape}'}"
                    f"{': sum over dimensions and average over the batch' if shape else ''}.",
                    case=name,
                )
            value = value.reshape(())
            message = _first_mistake(value, _kl_forward_mistakes(mu, sigma), expected)
            if message is None:
                message = G.diagnose(
                    value,
                    expected,
                    name="the KL",
                    hints={
                        "default": "Write the KL of one Gaussian dimension to N(0, 1) first, then sum over dimensions "
                        "and average over samples."
                    },
                )
            if message is not None:
                return G.failed(f"in case '{name}': {message}", case=name)
    return G.passed(
        f"all {len(cases)} cases agree with the KL to N(0, I) (batch mean, sum over dimensions).", cases=len(cases)
    )


# ------------------------------------------------------------------------------- exercise 3: the KL backward
KL_BACKWARD_HINTS = {
    "scale_n": "The KL is a MEAN over the batch, so every gradient carries 1/N.",
    "scale_inv_n": "Divide by N once: the mean over the batch gives one factor 1/N.",
    "sign": "The KL grows as mu moves away from 0: its gradient on mu points the same way as mu.",
    "default": "Differentiate one entry (i, j) at a time; the chain rule multiplies by dkl.",
}
# the same hints for dsigma, with its own reason for the sign
KL_BACKWARD_SIGMA_HINTS = {
    **KL_BACKWARD_HINTS,
    "sign": "The KL of one dimension is smallest at sigma = 1, the prior's: for sigma < 1 it falls as sigma grows "
    "towards 1, so there (with dkl > 0) dsigma must be negative, and for sigma > 1 positive.",
}


def _kl_backward_cases(rng):
    cases = []
    for (name, mu, sigma), dkl in zip(_kl_inputs(rng), (1.0, 0.01, 0.5, 1.0, 2.0)):
        cases.append((f"{name}, dkl = {dkl:g}", mu, sigma, dkl))
    return cases


def _kl_backward_mistakes(mu, sigma, dkl):
    n = mu.shape[0]
    dmu, dsigma = dkl * mu / n, dkl * (sigma - 1 / sigma) / n
    both = {
        "forgot dkl": (
            (mu / n, (sigma - 1 / sigma) / n),
            "your gradients are not multiplied by the upstream gradient dkl (the chain rule: in CAL's "
            "loss dkl is beta^m).",
        ),
        "dkl squared": (
            (dkl**2 * mu / n, dkl**2 * (sigma - 1 / sigma) / n),
            "your gradients carry dkl squared: the upstream gradient multiplies once.",
        ),
        "swapped": ((dsigma, dmu), "you returned (dsigma, dmu): the order is (dmu, dsigma)."),
    }
    dsigma_only = [
        (dkl * sigma / n, "dsigma misses a term: differentiate the -log sigma^2 inside the KL too."),
        (
            dkl * (sigma - 1 / sigma**2) / n,
            "dsigma: the derivative of log sigma^2 is 2/sigma (times the 1/2 in front), not 1/sigma^2.",
        ),
        (
            dkl * (sigma - 2 / sigma) / n,
            "dsigma: the 1/2 in front of the KL multiplies the whole bracket, "
            "including -log sigma^2 (whose derivative is 2/sigma).",
        ),
        (
            dkl * (2 * sigma - 2 / sigma) / n,
            "dsigma is twice too large: the 1/2 in front of the KL cancels the 2 of d(sigma^2)/dsigma.",
        ),
        (
            dkl * (sigma - 1 / sigma),
            "dsigma is N times too large: the KL is a MEAN over the batch, so every gradient carries 1/N.",
        ),
        (
            dkl * (sigma - 0.5 / sigma) / n,
            "dsigma: you differentiated log sigma; the KL has log sigma^2 = 2 log sigma.",
        ),
        (
            dkl * (sigma + 1 / sigma) / n,
            "dsigma: the -log sigma^2 term enters with a minus sign (it is what pulls a small sigma up).",
        ),
    ]
    dmu_only = [(dkl * 2 * mu / n, "dmu is twice too large: the 1/2 in front of the KL cancels the 2 of d(mu^2)/dmu.")]
    return both, dmu_only, dsigma_only


def check_kl_backward(fn, seed: int = 0) -> G.Result:
    """Grade ``fn(dkl, cache) -> (dmu, dsigma)``, the gradients of ``dkl * KL`` for the KL of exercise 2 (cache
    ``(mu, sigma)``); ``dkl`` is the upstream gradient (beta^m in CAL's loss)."""
    rng = np.random.default_rng(seed)
    cases = _kl_backward_cases(rng)
    with B.use_backend("numpy"):
        for name, mu, sigma, dkl in cases:
            expected = L.gaussian_kl_backward(dkl, (mu, sigma))
            with G.hide((L, "gaussian_kl_backward")):
                got, failure = G.call_student(fn, dkl, (mu.copy(), sigma.copy()), where=f"in case '{name}'")
            if failure:
                return G.failed(failure, case=name)
            if not isinstance(got, (tuple, list)) or len(got) != 2:
                form = f"{len(got)} values" if isinstance(got, (tuple, list)) else f"a {type(got).__name__}"
                return G.failed(f"in case '{name}': expected two arrays (dmu, dsigma), got {form}.", case=name)
            dmu, dsigma = (_numbers(g) for g in got)
            both, dmu_only, dsigma_only = _kl_backward_mistakes(mu, sigma, dkl)
            for values, message in both.values():
                if all(
                    g is not None and g.shape == v.shape and G.rel_error(g, v) < 1e-6
                    for g, v in zip((dmu, dsigma), values)
                ) and not all(G.rel_error(g, e) < 1e-6 for g, e in zip((dmu, dsigma), expected)):
                    return G.failed(f"in case '{name}': {message}", case=name)
            for out, g, e, catalogue in (
                ("dmu", dmu, expected[0], dmu_only),
                ("dsigma", dsigma, expected[1], dsigma_only),
            ):
                message = _first_mistake(g, catalogue, e) if g is not None and G.rel_error(g, e) >= 1e-6 else None
                if message is None:
                    hints = KL_BACKWARD_HINTS if out == "dmu" else KL_BACKWARD_SIGMA_HINTS
                    message = G.diagnose(g, e, name=out, n=mu.shape[0], hints=hints)
                if message is not None:
                    return G.failed(f"in case '{name}': {message}", case=name, output=out)
    return G.passed(
        f"all {len(cases)} cases agree with the KL's gradient (batches of different sizes, dkl other "
        f"than 1, small sigma, close to the prior, a single sample).",
        cases=len(cases),
    )


# ------------------------------------------------------------------------------------ exercise 4: beta^m
BETA_CASES = [
    ("balanced, M = 2", [0.5, 0.5], 1e-3),
    ("M = 3", [0.5, 0.3, 0.2], 1e-3),
    ("A leads, M = 2", [0.63, 0.37], 1e-3),
    ("V leads strongly, M = 2, beta0 = 0.02", [0.1, 0.9], 0.02),
    ("M = 3, balanced", [1 / 3, 1 / 3, 1 / 3], 0.5),
    ("one modality has all of it, M = 3", [0.0, 1.0, 0.0], 1.0),
]
BETA_HINTS = {
    "reversed": "Each modality's beta^m depends on its OWN weight W^m.",
    "default": "The low-contribution modality is compressed more; balanced weights give beta0 each, and "
    "the total compression stays M beta0.",
}


def _beta_mistakes(W, beta0):
    W = np.asarray(W, dtype=float)
    M = len(W)
    return [
        (
            beta0 * M * W,
            "your rule compresses the HIGH-contribution modality more (beta grows with W^m); the "
            "abstract compresses the low-contribution one.",
        ),
        (beta0 * (1 - W), "your beta^m are too small by M/(M-1): balanced weights W^m = 1/M must give beta0 each."),
        (
            beta0 * M * (1 - W),
            "your beta^m are M-1 times too large: balanced weights W^m = 1/M must give beta0 "
            "each (sum of 1 - W^m over m is M - 1).",
        ),
        (
            beta0 * (1 - W) / (M - 1),
            "your beta^m are M times too small: balanced weights W^m = 1/M must give beta0 each.",
        ),
        (
            beta0 / np.maximum(W, 1e-12) / M,
            "your beta^m are inversely proportional to W^m; CAL's rule is linear "
            "in 1 - W^m and stays finite when W^m = 0.",
        ),
    ]


def check_bottleneck_betas(fn) -> G.Result:
    """Grade ``fn(W, beta0) -> beta`` (one number per modality): CAL's asymmetric compression weights."""
    for name, W, beta0 in BETA_CASES:
        expected = cal_module.bottleneck_betas(W, beta0)
        with G.hide((cal_module, "bottleneck_betas")):
            got, failure = G.call_student(
                fn, np.array(W), beta0, where=f"in case '{name}' (W = {np.round(W, 3).tolist()}, beta0 = {beta0:g})"
            )
        if failure:
            return G.failed(failure, case=name)
        where = f"in case '{name}' (W = {np.round(W, 3).tolist()}, beta0 = {beta0:g})"
        value = _numbers(got)
        if value is not None and G.rel_error(value.reshape(-1) if value.size == len(W) else value, expected) < 1e-9:
            continue
        message = _first_mistake(value, _beta_mistakes(W, beta0), expected, tol=1e-9)
        if message is None:
            message = G.diagnose(value, expected, name="beta", hints=BETA_HINTS, tol=1e-9)
            if value is not None and value.shape == expected.shape:
                message += (
                    f" (Your beta sum to {value.sum() / beta0:.3g} beta0; CAL's keep the total at M beta0 = "
                    f"{len(W)} beta0.)"
                )
        return G.failed(f"{where}: {message}", case=name)
    return G.passed(
        f"all {len(BETA_CASES)} cases agree with CAL's rule (M = 2 and M = 3, balanced and extreme weights).",
        cases=len(BETA_CASES),
    )


# -------------------------------------------------------------------------------------------------- figures
def plot_kl_terms(kl_term, sigma_min, shift, out_dim=None, path=None):
    """Figure 1: one dimension's KL against sigma (left) and its pull on sigma and on the softplus input (right)."""
    from course import plots

    sigma0 = float(L.softplus(np.array(-shift))) + sigma_min
    sigmas = np.logspace(-3, np.log10(3), 200)
    a = np.linspace(-10, 4, 200)
    s_of_a = L.softplus(a) + sigma_min
    fig, axes = plots.figure(2, width=10, height=4.0)
    ax = axes[0]
    for mu, color in [(0.0, "C0"), (1.0, "C1")]:
        ax.plot(sigmas, [kl_term(mu, s) for s in sigmas], color=color, label=f"mu = {mu:g}")
    ax.axvline(sigma0, color="k", ls="--", lw=1, label=f"sigma at initialisation ({sigma0:.4f})")
    ax.set(
        xscale="log",
        ylim=(0, 8),
        xlabel="sigma",
        ylabel="KL of one dimension (nats)",
        title="the KL term: zero at mu = 0, sigma = 1",
    )
    ax.legend(loc="upper right")
    ax = axes[1]
    h = 1e-6  # centred differences of the KL itself (its gradient's formula is exercise 3's answer)
    on_sigma = [(kl_term(0.0, s * (1 + h)) - kl_term(0.0, s * (1 - h))) / (2 * h * s) for s in s_of_a]
    kl_of_a = lambda v: kl_term(0.0, float(L.softplus(np.array(v))) + sigma_min)  # noqa: E731
    on_a = [(kl_of_a(v + h) - kl_of_a(v - h)) / (2 * h) for v in a]
    ax.plot(a, on_sigma, color="C3", label="on sigma")
    ax.plot(a, on_a, color="C2", lw=2.5, label="on a (through the softplus)")
    ax.axvline(-shift, color="k", ls="--", lw=1, label=f"a at initialisation (-{shift:g})")
    ax.axhline(0, color="grey", lw=0.8)
    ax.set(
        ylim=(-8, 3),
        xlabel="a = h Ws + bs - shift (softplus input)",
        ylabel="gradient of one dimension's KL",
        title="the KL's pull on sigma and on a",
    )
    ax.legend(loc="lower right")
    fig.suptitle("Figure 1. The KL to N(0, 1) per dimension, and its gradient")
    plots.finish(fig, path)


def plot_beta_rule(directed_betas, path=None):
    """Figure 2: beta^m / beta0 against W^m for M = 2 and 3, both directions."""
    from course import plots

    W_grid = np.linspace(0, 1, 101)
    fig, ax = plots.figure(width=7.5, height=4.0)
    for M, direction, color, ls in [(2, "low", "C0", "-"), (3, "low", "C2", "-"), (2, "high", "C3", "--")]:
        # beta^m depends on W^m only; the other weights just have to sum to 1 - W^m
        ratio = [directed_betas([w] + [(1 - w) / (M - 1)] * (M - 1), 1.0, direction)[0] for w in W_grid]
        ax.plot(W_grid, ratio, color=color, ls=ls, label=f"M = {M}, direction '{direction}'")
    for M, color in [(2, "C0"), (3, "C2")]:
        ax.plot(1 / M, 1.0, "o", color=color)
    ax.axhline(1.0, color="grey", lw=0.8, ls=":")
    ax.set(
        xlabel="contribution weight W^m",
        ylabel="beta^m / beta0",
        title="Figure 2. CAL's compression weight against the contribution weight",
    )
    ax.legend(loc="upper center")
    plots.finish(fig, path)


def per_epoch(result, key, m):
    from mini_cal.history import epoch_means

    return np.array([row[m] for row in epoch_means(result.history["steps"])[key]])


def plot_training(runs, names, warmup, path=None):
    """Figure 3: W^V, beta^m and KL^m per epoch for the three variants (one run each)."""
    from course import plots

    fig, axes = plots.figure(3, width=10, height=3.9)
    first = next(iter(runs.values()))
    epochs = np.arange(1, len(per_epoch(first, "W_metric", 1)) + 1)
    ax = axes[0]
    for name in VARIANTS:
        ax.plot(epochs, per_epoch(runs[name], "W_metric", 1), color=COLORS[name], label=VARIANTS[name])
    ax.axhline(0.5, color="grey", lw=0.8, ls=":")
    ax.set(ylim=(0, 1), ylabel="W^V, per-epoch mean", title="V's contribution weight")
    ax.legend(loc="lower right", fontsize=9)
    for ax, key, title, ylabel in (
        (axes[1], "beta", "compression weight", "beta^m"),
        (axes[2], "kl", "KL^m (training batches)", "KL^m (nats per sample)"),
    ):
        for name in ("cal", "cal-sym-ib"):
            for m, ls in [(0, "--"), (1, "-")]:
                ax.plot(
                    epochs,
                    per_epoch(runs[name], key, m),
                    color=COLORS[name],
                    ls=ls,
                    label=f"{'CAL' if name == 'cal' else 'symmetric'}: {names[m]}",
                )
        ax.set(title=title, ylabel=ylabel)
    axes[1].legend(loc="center right", fontsize=9)
    axes[2].set_yscale("log")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.axvline(warmup + 0.5, color="k", lw=0.8, ls=":")
    fig.suptitle("Figure 3. Contribution, compression weight and KL per epoch (dotted: end of warm-up)")
    plots.finish(fig, path)


def plot_accuracy_dots(rows, bayes, path=None):
    """Figure 4: a dot plot of test accuracies. ``rows``: [(group label, {variant: value})]; ``bayes``: ceilings."""
    from course import plots

    fig, ax = plots.figure(width=8.5, height=3.6)
    for g, (label, values) in enumerate(rows):
        for i, name in enumerate(VARIANTS):
            y = g + (i - 1) * 0.22
            ax.plot(values[name], y, "o", color=COLORS[name], ms=8, label=VARIANTS[name] if g == 0 else None)
            ax.text(values[name] + 0.008, y, f"{values[name]:.3f}", va="center", fontsize=9)
        ax.plot([bayes[g]] * 2, [g - 0.4, g + 0.4], color="k", ls="--", lw=1, label="Bayes-optimal" if g == 0 else None)
    ax.set_yticks(range(len(rows)), [r[0] for r in rows])
    ax.invert_yaxis()
    ax.set(
        xlim=(0.5, 1.0),
        xlabel="test accuracy",
        title="Figure 4. Test accuracy of the three variants on the corrupted preset (one seed)",
    )
    plots.legend_outside(ax)
    plots.finish(fig, path)


def plot_clean_vs_corrupted(samples, mask, K, path=None):
    """Figure 5: per-sample KL^V under CAL (left); V's coalition accuracy on clean and corrupted samples (right)."""
    from course import plots

    fig, axes = plots.figure(2, width=10, height=4.0)
    kl = samples["cal"][0]
    bins = np.linspace(np.percentile(kl, 0.5), np.percentile(kl, 99.5), 40)
    axes[0].hist(kl[~mask], bins=bins, alpha=0.6, density=True, color="C0", label="clean")
    axes[0].hist(kl[mask], bins=bins, alpha=0.6, density=True, color="C3", label="corrupted (pure noise)")
    axes[0].set(xlabel="per-sample KL^V (nats)", ylabel="density", title="CAL: KL of V's code per training sample")
    axes[0].legend(loc="upper right")
    ax = axes[1]
    for i, name in enumerate(VARIANTS):
        correct = samples[name][1]
        for j, (subset, hatch) in enumerate([(~mask, None), (mask, "//")]):
            x = i + (j - 0.5) * 0.35
            ax.bar(
                x,
                correct[subset].mean(),
                0.35,
                color=COLORS[name],
                hatch=hatch,
                edgecolor="k",
                lw=0.5,
                label=("clean samples" if j == 0 else "corrupted samples") if i == 0 else None,
            )
            ax.text(x, correct[subset].mean() + 0.01, f"{correct[subset].mean():.2f}", ha="center", fontsize=9)
    ax.axhline(1 / K, color="grey", ls=":", lw=1)
    ax.text(2.4, 1 / K + 0.01, "chance", color="grey", fontsize=9)
    ax.set_xticks(range(len(VARIANTS)), ["CAL", "symmetric", "none"])
    ax.set(
        xlim=(-0.5, 2.9),
        ylim=(0, 1.15),
        xlabel="bottleneck",
        ylabel="V coalition accuracy, training labels",
        title="does V fit the labels of its noise samples?",
    )
    ax.legend(loc="upper center", ncol=2)
    fig.suptitle("Figure 5. Clean against corrupted training samples of V (seed 0)")
    plots.finish(fig, path)


def plot_beta_sweep(sweep, reference, bayes_a, K, path=None):
    """Figure 6: fused accuracy and V's probe against beta0 (one seed), with the no-bottleneck level."""
    from course import plots

    fig, axes = plots.figure(2, width=10, height=4.0)
    beta0s = sorted(sweep)
    for ax, key, label in zip(axes, ("acc", "probe_v"), ("fused test accuracy", "V linear probe (test)")):
        ax.plot(beta0s, [sweep[b][key] for b in beta0s], "o-", color="C0", label="CAL, asymmetric bottleneck")
        ax.axhline(reference[key], color="C7", label="no bottleneck (cal-no-aib)")
        if key == "acc":
            ax.axhline(bayes_a, color="C1", ls="--", lw=1, label="A alone, Bayes-optimal")
        ax.axhline(1 / K, color="grey", ls=":", lw=1, label="chance")
        ax.set(xscale="log", xlabel="beta0", ylabel="test accuracy", ylim=(0, 1), title=label)
        ax.legend(loc="lower left")
    fig.suptitle("Figure 6. More compression, less V: CAL on the corrupted preset against beta0 (one seed)")
    plots.finish(fig, path)


# ----------------------------------------------------------------------------------------- results file
def load_results(path=RESULTS):
    """The five-seed results (see :func:`make_results`), or None when the file is missing."""
    path = Path(path)
    return json.loads(path.read_text()) if path.exists() else None


def make_results(path=RESULTS, seeds=RESULT_SEEDS, epochs=40):
    """Train the three variants on the ``corrupted`` preset for ``seeds`` (tuned CAL configuration) and write a
    compact summary: per variant and seed the fused test accuracy, V's coalition and probe accuracy."""
    import mini_cal
    from mini_cal.methods import make_method, split_config, tuned_config
    from mini_cal.synthetic import load_preset
    from mini_cal.train import TrainConfig, train

    start = time.perf_counter()
    dc = load_preset("corrupted")
    method_kw, train_kw = split_config(tuned_config("cal"))
    rows = {}
    for name in VARIANTS:
        rows[name] = []
        for seed in seeds:
            r = train(
                make_method(name, **method_kw),
                dc,
                TrainConfig(epochs=epochs, seed=seed, progress=False, shapley=False, **train_kw),
            )
            rows[name].append(
                {
                    "seed": seed,
                    "acc": r.test["acc"],
                    "coalition_acc_v": r.test["coalition_acc"][1],
                    "probe_v": r.probe_acc[1],
                }
            )
    data = {
        "command": "python tutorials/course/nb05.py",
        "preset": "corrupted",
        "epochs": epochs,
        "method_kw": method_kw,
        "train_kw": train_kw,
        "seeds": list(seeds),
        "mini_cal": mini_cal.__version__,
        "wall_s": round(time.perf_counter() - start, 1),
        "runs": rows,
    }
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(data, indent=1))
    return data


def summarise_results(data):
    """{variant: {metric: (mean, std, values)}} from :func:`load_results`."""
    out = {}
    for name, rows in data["runs"].items():
        out[name] = {}
        for key in ("acc", "coalition_acc_v", "probe_v"):
            values = np.array([r[key] for r in rows])
            out[name][key] = (values.mean(), values.std(ddof=1), values)
    return out


if __name__ == "__main__":
    result = make_results()
    print(f"wrote {RESULTS} in {result['wall_s']} s")
