"""Notebook 04 (steering gradients): the checkers of its four exercises, the learning-rate experiment, the results
file and the figures.

Exercises, each graded against the library's answer computed *before* the library function is hidden:

* ``check_acceleration(fn)``: ``fn(grads, branch_keys, W) -> grads``, CAL's scaling of branch m by 1 + W^m;
* ``check_ogm_k(fn)``: ``fn(rho, alpha, variant) -> k``, OGM-GE's suppression coefficient (both variants);
* ``check_ge_noise(fn)``: ``fn(g, k, eps) -> k g + std(g) eps``, OGM-GE's generalisation-enhancement step;
* ``check_arl_weights(fn)``: ``fn(c, H, temperature, h_floor) -> w``, ARL's weights for two modalities.

``lr_experiment(accelerate, setting)`` trains the same model twice, once with branch gradients scaled by 1 + W^m and
once with branch learning rates scaled by 1 + W^m, and returns how far apart the parameters end up.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from mini_cal import backend as B
from mini_cal import layers as L
from mini_cal.methods import arl, base, cal, make_method, ogm_ge
from mini_cal.methods.base import StepContext
from mini_cal.model import Model, ModelConfig
from mini_cal.optim import SGD, Adam, clip_by_global_norm

from . import grading, plots
from .grading import FormError, grade

DATA = Path(__file__).resolve().parents[1] / "data"
RESULTS_FILE = DATA / "compare_default.json"


# ---------------------------------------------------------------------- exercise 1: CAL's gradient scaling
ACCEL_MISTAKES = {
    "W_only": "you multiplied branch m by W^m: CAL multiplies by 1 + W^m, so every branch is ACCELERATED (a factor "
    "between 1 and 2); W^m alone would slow every branch down.",
    "suppress": "you multiplied by 1 - W^m: CAL accelerates, by 1 + W^m (OGM-GE is the method that suppresses).",
    "additive": "you ADDED W^m to the gradients: the acceleration multiplies every gradient of branch m by 1 + W^m.",
    "reversed": "your coefficients are in reversed modality order: branch m (the keys branch_keys[m]) gets 1 + W[m].",
    "head": "your branch gradients are right but the head's changed: the fusion head is shared by all modalities "
    "and CAL leaves its gradients untouched.",
}
ACCEL_HINTS = {
    "default": "every gradient of branch m (the keys branch_keys[m]) is multiplied by 1 + W^m; the "
    "other keys (the head) are left as they are."
}


def _accel_cases(seed=0):
    rng = np.random.default_rng(seed)
    cases = []
    for label, dims, W in [
        ("2 modalities, W = (0.63, 0.37)", [16, 32], [0.63, 0.37]),
        ("2 modalities, W = (0.5, 0.5)", [8, 8], [0.5, 0.5]),
        ("3 modalities, W = (0.2, 0.5, 0.3)", [6, 5, 4], [0.2, 0.5, 0.3]),
    ]:
        model = Model(ModelConfig(dims, 4, hidden=(8, 4), bottleneck=True))
        params = model.init_params(rng, dtype="float64")
        grads = {key: rng.standard_normal(np.shape(p)) for key, p in params.items()}
        branch_keys = [model.branch_keys(m) for m in range(model.M)]
        W = np.array(W)
        order = sorted(grads)
        expected = {key: g.copy() for key, g in grads.items()}
        base.scale_branches(model, expected, cal.acceleration_coefficients(W))
        head = [key for key in order if not any(key in keys for keys in branch_keys)]

        def variant(coef=None, add=None):
            out = {key: g.copy() for key, g in grads.items()}
            for m, keys in enumerate(branch_keys):
                for key in keys:
                    out[key] = out[key] * coef[m] if coef is not None else out[key] + add[m]
            return np.concatenate([out[key].ravel() for key in order])

        head_nan = {key: (np.full_like(g, np.nan) if key in head else g) for key, g in expected.items()}
        wrong = {
            "W_only": variant(W),
            "suppress": variant(1 - W),
            "additive": variant(add=W),
            "reversed": variant(1 + W[::-1]),
            "head": np.concatenate([head_nan[key].ravel() for key in order]),
        }
        args = ({k: g.copy() for k, g in grads.items()}, [list(k) for k in branch_keys], W.copy())
        cases.append((label, args, np.concatenate([expected[key].ravel() for key in order]), wrong, order))
    return cases


def check_acceleration(fn, seed: int = 0) -> grading.Result:
    """Grade ``fn(grads, branch_keys, W) -> grads`` (a dict; modifying ``grads`` in place and returning it, or
    returning None, is fine too): every gradient of branch m multiplied by 1 + W[m], the others unchanged."""
    raw = _accel_cases(seed)
    inputs = {}  # label -> the arguments passed, so that an answer given in place can be read back
    cases = []
    for label, args, expected, wrong, order in raw:
        inputs[label] = args
        cases.append((label, args, expected, wrong))

    def to_array(value, args):
        label = next(lbl for lbl, a in inputs.items() if a is args)
        order = next(o for lbl, *_, o in raw if lbl == label)
        value = args[0] if value is None else value
        if not isinstance(value, dict):
            raise FormError(f"expected a dict of gradients (the same keys as grads), got a {type(value).__name__}")
        missing = [key for key in order if key not in value]
        if missing:
            raise FormError(f"your dict lacks the key(s) {missing[:3]}: return every gradient, the head's too")
        try:
            arrays = [np.asarray(value[key], dtype=float) for key in order]
        except (TypeError, ValueError):
            raise FormError("every gradient must be an array") from None
        bad = [key for key, a in zip(order, arrays) if a.shape != np.shape(args[0][key])]
        if bad:
            raise FormError(
                f"the gradient {bad[0]!r} has shape {arrays[order.index(bad[0])].shape}, not "
                f"{np.shape(args[0][bad[0]])}"
            )
        return np.concatenate([a.ravel() for a in arrays])

    def parts(args):  # the flat answer is the gradients of these keys, in this order
        return [(f"the gradient {key!r}", np.shape(args[0][key])) for key in sorted(args[0])]

    return grade(
        fn,
        cases,
        hidden=[(base, "scale_branches"), (cal, "acceleration_coefficients"), (ogm_ge.OGMGE, "modify_gradients")],
        to_array=to_array,
        mutable=(0,),
        messages=ACCEL_MISTAKES,
        name="acceleration",
        hints=ACCEL_HINTS,
        what="gradients",
        parts=parts,
    )


# ------------------------------------------------------------------ the experiment: gradient scale = lr scale
SETTINGS = {  # each differs from plain SGD with momentum in one respect
    "SGD, momentum 0.9": dict(optimizer="sgd", weight_decay=0.0, clip=None),
    "+ clipping at norm 10 (the library's)": dict(optimizer="sgd", weight_decay=0.0, clip=10.0),
    "+ clipping at norm 0.5": dict(optimizer="sgd", weight_decay=0.0, clip=0.5),
    "+ weight decay 1e-4 (the library's)": dict(optimizer="sgd", weight_decay=1e-4, clip=None),
    "Adam instead of SGD": dict(optimizer="adam", weight_decay=0.0, clip=None),
}


def library_accelerate(grads, branch_keys, W):
    """The library's scaling (base.scale_branches with cal.acceleration_coefficients), in the exercise's form."""

    class Keys:
        @staticmethod
        def branch_keys(m):
            return branch_keys[m]

    out = dict(grads)
    base.scale_branches(Keys, out, cal.acceleration_coefficients(W))
    return out


def _optimizer(name, lr, weight_decay):
    return (
        SGD(lr=lr, momentum=0.9, weight_decay=weight_decay)
        if name == "sgd"
        else Adam(lr=lr * 0.02, weight_decay=weight_decay)
    )


def lr_experiment(
    accelerate, ds, setting: str, W=(0.63, 0.37), steps: int = 100, lr: float = 0.05, seed: int = 0
) -> dict:
    """Train one joint model twice from the same initialisation on the same batches for ``steps`` steps:

    * run "scaled gradients": ``accelerate(grads, branch_keys, W)`` (each branch's gradients times 1 + W^m), then
      clipping (if the setting clips), then ONE optimiser with learning rate ``lr``;
    * run "scaled learning rates": the plain gradients, clipping, then one optimiser per branch with learning rate
      (1 + W^m) lr (the head keeps ``lr``).

    Returns {"max_rel_diff": largest relative difference of a parameter tensor between the runs, "per_branch": the
    same per branch, "head": for the head}. Adam's learning rate is lr / 50 (its steps do not scale with |g|).
    """
    cfg = SETTINGS[setting]
    with B.use_backend("numpy"):
        rng = np.random.default_rng(seed)
        model = Model(ModelConfig(ds.input_dims, ds.num_classes, hidden=(64, 32)))
        init = model.init_params(B.make_rng(seed), dtype="float64")
        method = make_method("joint")
        method.setup(model, math.log(ds.num_classes))
        branch_keys = [model.branch_keys(m) for m in range(model.M)]
        head_keys = [k for k in init if not any(k in keys for keys in branch_keys)]
        coef = 1.0 + np.asarray(W, dtype=float)
        p_a = {k: v.copy() for k, v in init.items()}
        p_b = {k: v.copy() for k, v in init.items()}
        opt_a = _optimizer(cfg["optimizer"], lr, cfg["weight_decay"])
        opts_b = [
            (keys, _optimizer(cfg["optimizer"], lr * c, cfg["weight_decay"])) for keys, c in zip(branch_keys, coef)
        ] + [(head_keys, _optimizer(cfg["optimizer"], lr, cfg["weight_decay"]))]
        n = len(ds.y_train)
        Y = L.one_hot(np.asarray(ds.y_train), ds.num_classes, dtype="float64")
        xs = [np.asarray(x, dtype=np.float64) for x in ds.x_train]

        def gradients(params, idx):
            out = model.forward(params, [x[idx] for x in xs])
            ctx = StepContext(model, params, out, Y[idx], 0, 0, None, math.log(ds.num_classes))
            lo = method.loss(ctx)
            return model.backward(params, out, lo.dlogits)

        for _ in range(steps):
            idx = rng.choice(n, size=64, replace=False)
            g_a = {k: v.copy() for k, v in gradients(p_a, idx).items()}
            scaled = accelerate(g_a, [list(k) for k in branch_keys], np.asarray(W, dtype=float))
            g_a = g_a if scaled is None else scaled  # None: the scaling was done in place
            clip_by_global_norm(g_a, cfg["clip"])
            opt_a.step(p_a, g_a)
            g_b = gradients(p_b, idx)
            clip_by_global_norm(g_b, cfg["clip"])
            for keys, opt in opts_b:
                opt.step(p_b, {k: g_b[k] for k in keys})

    def rel(keys):
        return max(grading.rel_error(p_a[k], p_b[k]) for k in keys)

    per_branch = [rel(keys) for keys in branch_keys]
    return {"max_rel_diff": max(per_branch + [rel(head_keys)]), "per_branch": per_branch, "head": rel(head_keys)}


# ---------------------------------------------------------------------------- exercise 2: OGM-GE's k(rho)
OGM_MISTAKES = {
    "continuous_for_paper": "your 'paper' k has no jump at rho = 1: that is the continuous variant, 1 - tanh(alpha "
    "(rho - 1)) (does your function read `variant`?). The paper's k uses rho itself, so a barely dominant "
    "modality already loses tanh(alpha) of its gradient.",
    "paper_for_continuous": "your 'continuous' k jumps at rho = 1 (it is the paper's; does your function read "
    "`variant`?): the continuous variant measures how far rho is ABOVE 1, so k starts at 1 and falls smoothly.",
    "swapped": "your two variants are swapped: 'paper' is 1 - tanh(alpha rho), with the jump at rho = 1, and "
    "'continuous' is 1 - tanh(alpha (rho - 1)), which starts at 1.",
    "everywhere": "you suppress a modality with rho <= 1 too: only the dominant modality (rho > 1) is slowed down; "
    "the other keeps k = 1.",
    "boundary": "at rho = 1 exactly your k is below 1: a modality is dominant only when rho > 1 (at rho = 1 the two "
    "modalities score the same).",
    "tanh_only": "you returned tanh(alpha rho), the fraction REMOVED: the coefficient on the gradient is 1 minus it.",
    "no_alpha": "your k ignores alpha: k = 1 - tanh(alpha rho), and alpha sets how hard the dominant modality is "
    "suppressed.",
    "plus": "your k is above 1: OGM-GE only ever slows the dominant modality down, k = 1 - tanh(...).",
}
OGM_HINTS = {
    "default": "a modality with rho > 1 dominates and gets 1 - tanh(alpha rho) ('paper') or "
    "1 - tanh(alpha (rho - 1)) ('continuous'); the other keeps 1."
}


def _ogm_reference(rho, alpha, variant, *, shift=None, dominant=lambda r: r > 1, one_minus=True, sign=-1.0):
    if not dominant(rho):
        return 1.0
    x = alpha * (rho - 1.0 if (shift if shift is not None else variant == "continuous") else rho)
    return 1.0 + sign * math.tanh(x) if one_minus else math.tanh(x)


def _ogm_cases():
    cases = []
    for variant in ("paper", "continuous"):
        for alpha in (0.8, 0.3):
            for rho in (0.3, 0.999, 1.0, 1.001, 1.5, 2.1, 4.0):
                expected = ogm_ge.modulation_coefficient(rho, alpha, variant)
                wrong = {
                    "continuous_for_paper": _ogm_reference(rho, alpha, variant, shift=True),
                    "paper_for_continuous": _ogm_reference(rho, alpha, variant, shift=False),
                    "swapped": _ogm_reference(rho, alpha, variant, shift=(variant != "continuous")),
                    "everywhere": _ogm_reference(rho, alpha, variant, dominant=lambda r: True),
                    "boundary": _ogm_reference(rho, alpha, variant, dominant=lambda r: r >= 1),
                    "tanh_only": _ogm_reference(rho, alpha, variant, one_minus=False),
                    "no_alpha": _ogm_reference(rho, 1.0, variant) if alpha != 1 else np.nan,
                    "plus": _ogm_reference(rho, alpha, variant, sign=1.0),
                }
                cases.append(
                    (
                        f"rho = {rho}, alpha = {alpha}, variant '{variant}'",
                        (rho, alpha, variant),
                        np.array([expected]),
                        {k: np.array([v]) for k, v in wrong.items()},
                    )
                )
    # a mistake that concerns one variant only must not be blamed on the other: keep only that variant's cases
    for key, keep in (("continuous_for_paper", "paper"), ("paper_for_continuous", "continuous")):
        for case in cases:
            if not case[0].endswith(f"'{keep}'"):
                case[3][key] = case[2]
    return cases


def _scalar(value, args):
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise FormError(f"expected a number, got a {type(value).__name__}") from None
    if arr.size != 1:
        raise FormError(f"expected one number, got shape {arr.shape}")
    return arr.reshape(1)


def check_ogm_k(fn) -> grading.Result:
    """Grade ``fn(rho, alpha, variant) -> k`` for one modality, ``variant`` "paper" or "continuous"."""
    cases = _ogm_cases()
    result = grade(
        fn,
        cases,
        hidden=[(ogm_ge, "modulation_coefficient")],
        to_array=_scalar,
        messages=OGM_MISTAKES,
        name="k(rho)",
        hints=OGM_HINTS,
        what="k",
    )
    return result


# ------------------------------------------------------------------------------ exercise 3: the GE noise
GE_MISTAKES = {
    "no_noise": "you returned k g without noise: generalisation enhancement ADDS Gaussian noise to the modulated "
    "gradient.",
    "unscaled": "your noise is eps itself: its standard deviation must be that of the gradient's entries, so that "
    "the noise is on the gradient's own scale.",
    "std_modulated": "your noise is scaled by the std of k g (or multiplied by k): OGM-GE takes the std of the "
    "UN-modulated gradient g, so the noise keeps its size however hard k suppresses.",
    "variance": "your noise is scaled by the VARIANCE of g: N(0, std(g)^2) is eps times the standard deviation.",
    "forgot_k": "you added the noise to g instead of k g: the suppression k applies to the gradient, then the noise "
    "is added.",
    "abs_g": "your noise is scaled entry by entry by |g|: OGM-GE uses ONE standard deviation per parameter tensor, "
    "the std of all of g's entries.",
    "released": "",  # not a mistake: the released code's convention, accepted (check_ge_noise)
}
GE_RELEASED = (
    "you used the released code's standard deviation (PyTorch's sample std, ddof=1, plus 1e-8); mini_cal uses "
    "np.std (ddof=0). Both are accepted: they differ by a factor sqrt(n / (n - 1)), which matters only for small "
    "tensors."
)
GE_HINTS = {
    "default": "the step sends k g plus Gaussian noise whose standard deviation is that of the entries of "
    "the un-modulated g (np.std(g); the released code's np.std(g, ddof=1) + 1e-8 is accepted too); eps is "
    "already N(0, 1)."
}


def _ge_cases(seed=0):
    rng = np.random.default_rng(seed)
    cases = []
    for label, shape, k, scale in [
        ("weights (6, 4), k = 0.05", (6, 4), 0.05, 0.02),
        ("bias (5,), k = 1 (the non-dominant branch)", (5,), 1.0, 0.3),
        ("weights (3, 7), k = 0.34", (3, 7), 0.34, 1.7),
    ]:
        g = rng.standard_normal(shape) * scale + 0.1 * scale
        eps = rng.standard_normal(shape)
        std = float(np.std(g))
        expected = k * g + std * eps
        wrong = {
            "no_noise": k * g,
            "unscaled": k * g + eps,
            "std_modulated": k * g + k * std * eps,
            "variance": k * g + std**2 * eps,
            "forgot_k": g + std * eps,
            "abs_g": k * g + np.abs(g) * eps,
            "released": k * g + (float(np.std(g, ddof=1)) + 1e-8) * eps,
        }
        cases.append((label, (g.copy(), k, eps.copy()), expected, wrong))
    return cases


def check_ge_noise(fn, seed: int = 0) -> grading.Result:
    """Grade ``fn(g, k, eps) -> k g + std(g) eps`` for one parameter's gradient ``g`` (any shape) and standard
    normal ``eps`` of the same shape."""

    def to_array(value, args):
        try:
            arr = np.asarray(value, dtype=float)
        except (TypeError, ValueError):
            raise FormError(f"expected an array, got a {type(value).__name__}") from None
        if arr.shape != args[0].shape:
            raise FormError(f"expected an array of g's shape {args[0].shape}, got shape {arr.shape}")
        return arr

    result = grade(
        fn,
        _ge_cases(seed),
        hidden=[(ogm_ge.OGMGE, "modify_gradients")],
        to_array=to_array,
        messages=GE_MISTAKES,
        name="GE step",
        hints=GE_HINTS,
        what="k g + noise",
    )
    if result.details.get("mistake") == "released":
        return grading.passed(f"your GE step is right on all 3 cases: {GE_RELEASED}", released=True)
    return result


# ------------------------------------------------------------------------------ exercise 4: ARL's weights
ARL_MISTAKES = {
    "own_c": "your weights multiply each modality's confidence by its OWN logit size: ARL's w_m uses the OTHER "
    "modality's c (for A: c_V a_A), so a modality's weight grows with how loud the other one is.",
    "no_floor": "your entropies are not clamped: after normalising, H_m below h_floor is raised to h_floor, so that "
    "a near-certain modality cannot take all the weight.",
    "floor_raw": "your entropies are not normalised before the clamp (clamping the raw H, with or without "
    "normalising afterwards, gives these weights): divide H by its sum over the modalities first, then raise "
    "entries below h_floor to h_floor.",
    "entropy_not_inverse": "your confidence is the entropy itself: ARL's confidence is its INVERSE, a = 1 / H "
    "(a certain modality has a small entropy and a large confidence).",
    "a_unnormalised": "your a = 1 / H is not normalised: divide it by its sum over the modalities.",
    "c_unnormalised": "your logit sizes c are not normalised: divide them by their sum over the modalities first.",
    "no_temperature": "your w ignores the temperature: w = softmax(T [c_V a_A, c_A a_V]).",
    "no_softmax": "your w is not a softmax of the products: w = softmax(T [c_V a_A, c_A a_V]), positive and summing "
    "to 1.",
    "reversed": "your weights are in reversed modality order: entry 0 is modality A's weight.",
}
ARL_HINTS = {
    "default": "normalise c and H over the modalities, clamp H at h_floor, a = 1 / H normalised, then a "
    "softmax with temperature of each modality's a times the OTHER modality's c."
}


def _arl_variant(
    c,
    H,
    T,
    h_floor,
    own=False,
    floor=True,
    floor_raw=False,
    inverse=True,
    norm_a=True,
    norm_c=True,
    use_T=True,
    soft=True,
):
    c, H = np.asarray(c, float), np.asarray(H, float)
    c_n = c / c.sum() if norm_c else c
    if floor_raw:
        H_n = np.maximum(H, h_floor) / np.maximum(H, h_floor).sum()
    else:
        H_n = np.maximum(H / H.sum(), h_floor) if floor else H / H.sum()
    a = 1.0 / H_n if inverse else H_n
    a = a / a.sum() if norm_a else a
    other = c_n if own else c_n[::-1]
    x = (T if use_T else 1.0) * a * other
    return (np.exp(x - x.max()) / np.exp(x - x.max()).sum()) if soft else x


def _arl_cases():
    cases = []
    for label, c, H, T, h_floor in [
        ("A loud and sure", [6.0, 1.5], [0.4, 1.2], 1.0, 0.3),
        ("A very sure (the clamp acts)", [4.0, 2.0], [0.05, 1.3], 1.0, 0.3),
        ("temperature 5", [3.0, 1.0], [0.6, 1.1], 5.0, 0.3),
        ("V louder, floor 0.2, T = 2", [1.0, 2.5], [1.0, 0.15], 2.0, 0.2),
    ]:
        expected = arl.arl_weights(c, H, T, h_floor)
        v = lambda **kw: _arl_variant(c, H, T, h_floor, **kw)  # noqa: E731
        wrong = {
            "own_c": v(own=True),
            "no_floor": v(floor=False),
            "floor_raw": v(floor_raw=True),
            "entropy_not_inverse": v(inverse=False),
            "a_unnormalised": v(norm_a=False),
            "c_unnormalised": v(norm_c=False),
            "no_temperature": v(use_T=False),
            "no_softmax": v(soft=False),
            "reversed": expected[::-1],
        }
        cases.append((label, (list(c), list(H), T, h_floor), expected, wrong))
    return cases


def check_arl_weights(fn) -> grading.Result:
    """Grade ``fn(c, H, temperature, h_floor) -> w`` for two modalities (c, H: raw per-modality logit sizes and
    entropies)."""

    def to_array(value, args):
        try:
            arr = np.asarray(value, dtype=float)
        except (TypeError, ValueError):
            raise FormError(f"expected two weights, got a {type(value).__name__}") from None
        if arr.shape != (2,):
            raise FormError(f"expected two weights (A, V), got shape {arr.shape}")
        return arr

    return grade(
        fn,
        _arl_cases(),
        hidden=[(arl, "arl_weights")],
        to_array=to_array,
        messages=ARL_MISTAKES,
        name="ARL weights",
        hints=ARL_HINTS,
        what="w",
    )


# ----------------------------------------------------------------------------------------- the results file
def load_results(path=RESULTS_FILE) -> dict:
    """The 10-seed summary written by ``tutorials/course/make_results.py``."""
    return json.loads(Path(path).read_text())


def per_seed(results: dict, method: str, key: str, modality=None) -> np.ndarray:
    """One number per seed: ``key`` is "test_acc", "coalition_acc", "probe_acc" or "coef_after_warmup" (the last
    three need ``modality``)."""
    rows = results["per_seed"][method]
    values = [
        r[key]
        if modality is None
        else (r[key][modality] if r[key] is not None and r[key][modality] is not None else np.nan)
        for r in rows
    ]
    return np.array(values, dtype=float)


# ------------------------------------------------------------------------------------------------- figures
def plot_k(alpha_tuned: float, path=None):
    """Figure 1: OGM-GE's k(rho), both variants, for three alphas, against the 1 + w band of ARL and CAL."""
    rho = np.linspace(0, 4, 801)
    fig, ax = plots.figure(width=9.5, height=4.0)
    ax.axhspan(1, 2, color="C2", alpha=0.12, lw=0, label="ARL and CAL: 1 + w, 0 < w < 1")
    for a, color in [(0.3, "C7"), (alpha_tuned, "C3"), (1.5, "C4")]:
        for variant, ls in [("paper", "-"), ("continuous", "--")]:
            k = [ogm_ge.modulation_coefficient(r, a, variant) for r in rho]
            ax.plot(
                rho,
                k,
                color=color,
                ls=ls,
                lw=2 if a == alpha_tuned else 1.2,
                label=f"alpha = {a}, {variant}" + (" (tuned)" if a == alpha_tuned else ""),
            )
    ax.axvline(1, color="k", lw=0.8, ls=":")
    ax.set_xlabel("discrepancy ratio rho of a modality (its score over the other's)")
    ax.set_ylabel("coefficient on its gradients")
    ax.set_ylim(0, 2.05)
    plots.legend_outside(ax)
    ax.set_title("Figure 1. OGM-GE's suppression k(rho)")
    plots.finish(fig, path)


def plot_coefficients(curves: dict, methods, names, warmup: int, n_seeds: int, path=None):
    """Figure 2: per-epoch mean coefficient applied to each branch, one panel per method."""
    fig, axes = plots.figure(ncols=len(methods), width=10, height=3.2, sharey=True)
    for ax, name in zip(axes, methods):
        coef = np.asarray(curves[name]["coef"])
        epochs = np.arange(1, len(coef) + 1)
        for m, color in enumerate(("C0", "C3")):
            ax.plot(epochs, coef[:, m], color=color, lw=2, label=names[m])
        if name in ("arl", "arl-released", "cal"):
            ax.axvspan(0, warmup, color="grey", alpha=0.15, lw=0)
        ax.axhline(1, color="k", lw=0.8, ls=":")
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("epoch")
        ax.set_ylim(0, 2)
    axes[0].set_ylabel("coefficient")
    axes[0].legend(loc="lower left")
    fig.suptitle(
        f"Figure 2. Coefficient on each branch's gradients, per-epoch mean over {n_seeds} seeds (shaded: warm-up)"
    )
    plots.finish(fig, path)


def plot_branch_norms(runs: dict, names, path=None):
    """Figure 3: per-epoch mean gradient norm of each branch (after modulation, before clipping), one run each."""
    from mini_cal.history import epoch_means

    fig, axes = plots.figure(ncols=2, width=10, height=3.8, sharey=True)
    for m, ax in enumerate(axes):
        for i, (name, r) in enumerate(runs.items()):
            norms = np.asarray(epoch_means(r.history["steps"])["branch_grad_norm"])[:, m]
            ax.plot(np.arange(1, len(norms) + 1), norms, color=f"C{i}", lw=2, label=name)
        ax.set_yscale("log")
        ax.set_title(f"branch {names[m]}")
        ax.set_xlabel("epoch")
    axes[0].set_ylabel("branch gradient norm (epoch mean)")
    plots.legend_outside(axes[1])
    fig.suptitle("Figure 3. Per-branch gradient norms after modulation, before clipping (seed 0)")
    plots.finish(fig, path)


def plot_coalition_curves(curves: dict, methods, names, bayes: dict, n_seeds: int, path=None):
    """Figure 4: validation coalition accuracy of each modality, and fused accuracy, per epoch (mean over seeds)."""
    fig, axes = plots.figure(ncols=3, width=10, height=3.6, sharey=True)
    panels = [
        (f"{names[0]} alone (coalition)", lambda c: np.asarray(c["val_coalition_acc"])[:, 0], bayes["modality 0"]),
        (f"{names[1]} alone (coalition)", lambda c: np.asarray(c["val_coalition_acc"])[:, 1], bayes["modality 1"]),
        ("fused prediction", lambda c: np.asarray(c["val_acc"]), bayes["fused"]),
    ]
    for ax, (title, get, ceiling) in zip(axes, panels):
        for i, name in enumerate(methods):
            y = get(curves[name])
            ax.plot(np.arange(1, len(y) + 1), y, color=f"C{i}", lw=1.8, label=name)
        ax.axhline(ceiling, color="k", ls="--", lw=1, label="Bayes-optimal")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("epoch")
        ax.set_ylim(0, 1)
    axes[0].set_ylabel("validation accuracy")
    plots.legend_outside(axes[-1])
    fig.suptitle(f"Figure 4. Validation accuracy per epoch, mean over {n_seeds} seeds")
    plots.finish(fig, path)


def plot_test_dots(results: dict, methods, path=None):
    """Figure 5: test accuracy of every seed (dots) and the mean (black dash) per method. A dot plot, not bars, so
    the axis need not start at 0: it spans the seeds' range and the Bayes-optimal accuracy."""
    fig, ax = plots.figure(width=9.5, height=4.0)
    for i, name in enumerate(methods):
        acc = per_seed(results, name, "test_acc")
        jitter = np.linspace(-0.18, 0.18, len(acc))
        ax.plot(i + jitter, acc, "o", color=f"C{i % 10}", ms=5, mec="k", mew=0.4, alpha=0.8)
        ax.plot([i - 0.3, i + 0.3], [acc.mean()] * 2, color="k", lw=2.5)
    bayes = results["bayes"]["fused"]
    ax.axhline(bayes, color="k", ls="--", lw=1)
    ax.text(-0.4, bayes - 0.005, f"Bayes-optimal fused accuracy ({bayes:.3f})", ha="left", va="top", fontsize=9)
    ax.set_xticks(range(len(methods)), methods, rotation=20, ha="right")
    ax.set_ylim(0.7, 1.0)
    ax.set_ylabel("test accuracy (fused)")
    ax.set_title(f"Figure 5. Test accuracy, {len(results['seeds'])} seeds: dots, one per seed; dash, the mean")
    plots.finish(fig, path)


def results_section(path, title: str) -> str:
    """The markdown table under the heading ``title`` (a prefix is enough) of a results file that `mini-cal
    compare` wrote (docs/results/...), as text to print."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.lstrip("#").strip().startswith(title))
    table = []
    for line in lines[start + 1 :]:
        if line.startswith("#"):
            break
        if line.startswith("|"):
            table.append(line)
    return "\n".join(table)
