"""Checkers for the tutorial exercises: each grades a student's function, against finite differences (the backward
passes of 02 and 05) or against the library (the Shapley value of 03).

A checker never raises on a wrong or unfinished answer: it returns ``(passed, message, rel_errors)`` so that a
notebook runs top to bottom whatever the student has written so far.
"""
from __future__ import annotations

import traceback

import numpy as np

from mini_cal import backend as B
from mini_cal import gradcheck as G
from mini_cal import layers as L

TOLERANCE = 1e-6  # float64 centred differences agree with a correct backward to ~1e-9 (see mini_cal.gradcheck)
BOTTLENECK_GRADS = ("dh", "dw_mu", "db_mu", "dw_s", "db_s")
_INPUTS = ("h", "w_mu", "b_mu", "w_s", "b_s")


def _call_student(student_fn, args, where: str):
    """Call the student's function; a bug or an unfinished stub becomes a failure message, never a traceback.

    Returns ``(result, None)``, or ``(None, (message, unfinished))`` where ``unfinished`` says the stub still
    raises NotImplementedError.
    """
    try:
        return student_fn(*args), None
    except NotImplementedError as exc:
        return None, (f"FAILED: not implemented yet ({exc}). Fill in the stub and run the check again.", True)
    except Exception as exc:  # the student's bug, reported rather than raised
        frame = traceback.extract_tb(exc.__traceback__)[-1]
        return None, (f"FAILED {where}: your function raised {type(exc).__name__}: {exc} "
                      f"(line {frame.lineno}: {frame.line})", False)


def _verdict(rel_errors: dict):
    """(passed, message, rel_errors) from {case: {gradient: relative error}}, judged against TOLERANCE."""
    bad = [(case, g, e) for case, errs in rel_errors.items() for g, e in errs.items() if not e < TOLERANCE]
    worst = max(e for errs in rel_errors.values() for e in errs.values())
    if bad:
        lines = [f"FAILED: {len(bad)} gradient(s) disagree with finite differences (tolerance {TOLERANCE:.0e}):"]
        lines += [f"  case '{case}': {g} relative error {e:.1e}" for case, g, e in bad]
        return False, "\n".join(lines), rel_errors
    return True, (f"PASSED: all {len(rel_errors)} cases agree with finite differences "
                  f"(largest relative error {worst:.1e}, tolerance {TOLERANCE:.0e})."), rel_errors


def _bottleneck_cases(rng):
    """The situations a bottleneck backward must handle: training (eps given) or evaluation (eps None), with
    or without gradients reaching mu and sigma from a KL term, and a shift that leaves the softplus unsaturated."""
    n, h_dim, z_dim = 4, 5, 3
    cases = []
    for name, stochastic, extras, shift in [
        ("training pass, KL gradients on mu and sigma", True, "kl", 5.0),
        ("training pass, no KL", True, None, 5.0),
        ("evaluation pass (eps=None), KL gradients", False, "kl", 5.0),
        ("evaluation pass (eps=None), no KL", False, None, 5.0),
        ("training pass, shift=0, random extra gradients", True, "random", 0.0),
    ]:
        inputs = {"h": rng.standard_normal((n, h_dim)),
                  "w_mu": rng.standard_normal((h_dim, z_dim)) / np.sqrt(h_dim),
                  "b_mu": rng.standard_normal(z_dim) * 0.1,
                  "w_s": rng.standard_normal((h_dim, z_dim)) / np.sqrt(h_dim),
                  "b_s": rng.standard_normal(z_dim) * 0.1}
        eps = rng.standard_normal((n, z_dim)) if stochastic else None
        dz = rng.standard_normal((n, z_dim))
        dmu_extra = dsigma_extra = None
        if extras == "kl":
            (_, mu, sigma), _ = L.gaussian_bottleneck_forward(*inputs.values(), eps=eps, shift=shift)
            _, kl_cache = L.gaussian_kl_forward(mu, sigma)
            dmu_extra, dsigma_extra = L.gaussian_kl_backward(0.01, kl_cache)  # beta = 0.01
        elif extras == "random":
            dmu_extra, dsigma_extra = rng.standard_normal((n, z_dim)), rng.standard_normal((n, z_dim))
        cases.append((name, inputs, eps, shift, dz, dmu_extra, dsigma_extra))
    return cases


def _objective(eps, shift, dz, dmu_extra, dsigma_extra):
    """The scalar whose gradient the backward pass computes: <z, dz> + <mu, dmu_extra> + <sigma, dsigma_extra>."""
    def f(p):
        (z, mu, sigma), _ = L.gaussian_bottleneck_forward(p["h"], p["w_mu"], p["b_mu"], p["w_s"], p["b_s"],
                                                           eps=eps, shift=shift)
        value = np.sum(z * dz)
        if dmu_extra is not None:
            value = value + np.sum(mu * dmu_extra)
        if dsigma_extra is not None:
            value = value + np.sum(sigma * dsigma_extra)
        return value
    return f


def check_bottleneck_backward(student_fn, seed: int = 0):
    """Grade ``student_fn(dz, cache, dmu_extra=None, dsigma_extra=None) -> (dh, dw_mu, db_mu, dw_s, db_s)``.

    The function must have the signature of :func:`mini_cal.layers.gaussian_bottleneck_backward` and use the cache
    that :func:`mini_cal.layers.gaussian_bottleneck_forward` returns. Each case is checked in float64 against
    centred finite differences (:func:`mini_cal.gradcheck.check_params`).

    Returns ``(passed, message, rel_errors)``: ``rel_errors`` is ``{case: {"dh": err, ...}}`` for the cases that
    could be checked (empty when the function raised or returned something of the wrong form).
    """
    rel_errors = {}
    with B.use_backend("numpy"):
        rng = np.random.default_rng(seed)
        for name, inputs, eps, shift, dz, dmu_extra, dsigma_extra in _bottleneck_cases(rng):
            _, cache = L.gaussian_bottleneck_forward(*inputs.values(), eps=eps, shift=shift)
            grads, failure = _call_student(student_fn, (dz, cache, dmu_extra, dsigma_extra), f"in case '{name}'")
            if failure:
                return False, failure[0], {} if failure[1] else rel_errors
            if not isinstance(grads, (tuple, list)) or len(grads) != 5:
                got = type(grads).__name__ if not isinstance(grads, (tuple, list)) else f"{len(grads)} values"
                return False, (f"FAILED in case '{name}': expected a tuple of 5 arrays "
                               f"{BOTTLENECK_GRADS}, got {got}"), rel_errors
            analytic = {}
            for gname, iname, g in zip(BOTTLENECK_GRADS, _INPUTS, grads):
                expected = inputs[iname].shape
                if g is None or np.shape(g) != expected:
                    got = "None" if g is None else f"shape {np.shape(g)}"
                    return False, (f"FAILED in case '{name}': {gname} should be an array of shape {expected} "
                                   f"(like {iname}), got {got}"), rel_errors
                analytic[iname] = np.asarray(g, dtype=np.float64)
            errors = G.check_params(_objective(eps, shift, dz, dmu_extra, dsigma_extra), inputs, analytic)
            rel_errors[name] = {g: errors[i] for g, i in zip(BOTTLENECK_GRADS, _INPUTS)}
    return _verdict(rel_errors)


# --------------------------------------------------------------------- notebook 03: the Shapley value, M = 3
SHAPLEY_TOLERANCE = 1e-9  # the Shapley value is a finite weighted sum: a correct answer agrees to rounding


def _three_player_games(rng):
    """Games on three modalities, {coalition tuple: value}, each chosen to catch one kind of mistake: the
    properties a Shapley value must have (additivity, symmetry, null player), a non-zero v({}), and random games."""
    from mini_cal.contribution import all_coalitions

    coalitions = all_coalitions(3)
    a = np.array([0.5, 0.2, -0.1])
    games = [("additive: v(S) = 0.3 + sum of a_m over S, with a = (0.5, 0.2, -0.1); the answer is a",
              {S: 0.3 + float(a[list(S)].sum()) for S in coalitions}),
             ("symmetric: modalities 0 and 1 interchangeable, only their number matters",
              {S: [0.0, 0.4, 1.0][min(len(set(S) & {0, 1}), 2)] + (0.25 if 2 in S else 0.0) for S in coalitions}),
             ("null player: modality 1 adds nothing to any coalition",
              {S: {(): 0.0, (0,): 0.6, (2,): 0.5, (0, 2): 1.1}[tuple(m for m in S if m != 1)] for S in coalitions}),
             ("complementary: only the three together are worth anything",
              {S: 1.0 if len(S) == 3 else 0.0 for S in coalitions}),
             ("non-zero empty coalition: v({}) = -0.2", {S: -0.2 + 0.3 * len(S) ** 2 for S in coalitions})]
    for i in range(3):
        games.append((f"random game {i + 1}", {S: float(rng.normal()) for S in coalitions}))
    return games


def check_shapley_three(student_fn, seed: int = 0):
    """Grade ``student_fn(v) -> (phi_0, phi_1, phi_2)``, the exact Shapley values of a three-modality game.

    ``v`` is a dict {coalition: value} keyed by sorted tuples: ``()``, ``(0,)``, ``(1,)``, ``(2,)``, ``(0, 1)``,
    ``(0, 2)``, ``(1, 2)``, ``(0, 1, 2)``. Every game is compared with :func:`mini_cal.contribution.shapley`.

    Returns ``(passed, message, errors)``: ``errors`` is ``{game: largest absolute error}`` for the games that
    could be checked (empty when the function raised or returned something of the wrong form).
    """
    from mini_cal.contribution import shapley

    rng = np.random.default_rng(seed)
    errors, failures = {}, []
    for name, game in _three_player_games(rng):
        # a copy of the game: the student may not change it for the next check
        answer, failure = _call_student(student_fn, (dict(game),), f"on game '{name}'")
        if failure:
            return False, failure[0], {} if failure[1] else errors
        try:
            phi = np.asarray(answer, dtype=float)
        except (TypeError, ValueError):
            phi = None
        if phi is None or phi.shape != (3,):
            got = "None" if answer is None else (f"shape {phi.shape}" if phi is not None else type(answer).__name__)
            return False, f"FAILED on game '{name}': expected three numbers (phi_0, phi_1, phi_2), got {got}", errors
        expected = shapley(game, 3)
        errors[name] = float(np.max(np.abs(phi - expected)))
        if not errors[name] < SHAPLEY_TOLERANCE:
            total = game[(0, 1, 2)] - game[()]
            efficiency = (f"your values sum to {phi.sum():.4f}, v(all) - v({{}}) = {total:.4f}"
                          + (" (efficiency holds, so look at the weights)" if abs(phi.sum() - total) < 1e-9
                             else " (efficiency fails)"))
            failures.append(f"  game '{name}':\n    expected {np.round(expected, 4).tolist()}, "
                            f"got {np.round(phi, 4).tolist()}; {efficiency}")
    if failures:
        return False, "\n".join([f"FAILED on {len(failures)} of {len(errors)} games:"] + failures), errors
    return True, (f"PASSED: all {len(errors)} games agree with the exact Shapley value "
                  f"(largest error {max(errors.values()):.1e}, tolerance {SHAPLEY_TOLERANCE:.0e})."), errors


# ------------------------------------------------------------------------------- notebook 05: the KL's gradient
KL_GRADS = ("dmu", "dsigma")


def _kl_cases(rng):
    """(name, mu, sigma, dkl): a batch, an upstream weight that is not 1 (beta), small sigma (where 1/sigma
    dominates), close to the prior (mu near 0, sigma near 1: small gradients), and a single sample."""
    def batch(n, z, lo, hi):
        return rng.standard_normal((n, z)), rng.uniform(lo, hi, size=(n, z))

    cases = []
    mu, sigma = batch(4, 3, 0.3, 2.0)
    cases.append(("batch of 4, dkl = 1", mu, sigma, 1.0))
    mu, sigma = batch(6, 5, 0.3, 2.0)
    cases.append(("batch of 6, dkl = beta = 0.01", mu, sigma, 0.01))
    mu, sigma = batch(5, 4, 0.05, 0.2)
    cases.append(("small sigma (0.05 to 0.2), dkl = 0.5", mu, sigma, 0.5))
    mu, sigma = batch(3, 2, 0.8, 1.2)
    cases.append(("close to the prior: mu near 0, sigma near 1", 0.1 * mu, sigma, 1.0))
    mu, sigma = batch(1, 7, 0.3, 2.0)
    cases.append(("a single sample, dkl = 2", mu, sigma, 2.0))
    return cases


def check_kl_backward(student_fn, seed: int = 0):
    """Grade ``student_fn(dkl, cache) -> (dmu, dsigma)``, the backward of
    :func:`mini_cal.layers.gaussian_kl_forward`, whose cache is ``(mu, sigma)``.

    KL = (1/N) sum_i 1/2 sum_j (mu_ij^2 + sigma_ij^2 - log sigma_ij^2 - 1); ``dkl`` is the upstream gradient (the
    weight beta^m in CAL's loss). Each case is checked in float64 against centred finite differences of
    ``dkl * KL`` (:func:`mini_cal.gradcheck.check_params`).

    Returns ``(passed, message, rel_errors)``: ``rel_errors`` is ``{case: {"dmu": err, "dsigma": err}}`` for the
    cases that could be checked (empty when the function raised or returned something of the wrong form).
    """
    rel_errors = {}
    with B.use_backend("numpy"):
        rng = np.random.default_rng(seed)
        for name, mu, sigma, dkl in _kl_cases(rng):
            _, cache = L.gaussian_kl_forward(mu, sigma)
            grads, failure = _call_student(student_fn, (dkl, cache), f"in case '{name}'")
            if failure:
                return False, failure[0], {} if failure[1] else rel_errors
            if not isinstance(grads, (tuple, list)) or len(grads) != 2:
                got = type(grads).__name__ if not isinstance(grads, (tuple, list)) else f"{len(grads)} values"
                return False, f"FAILED in case '{name}': expected a tuple of 2 arrays {KL_GRADS}, got {got}", \
                    rel_errors
            analytic = {}
            for gname, iname, g, ref in zip(KL_GRADS, ("mu", "sigma"), grads, (mu, sigma)):
                if g is None or np.shape(g) != ref.shape:
                    got = "None" if g is None else f"shape {np.shape(g)}"
                    return False, (f"FAILED in case '{name}': {gname} should be an array of shape {ref.shape} "
                                   f"(like {iname}), got {got}"), rel_errors
                analytic[iname] = np.asarray(g, dtype=np.float64)

            def objective(p, dkl=dkl):
                return dkl * L.gaussian_kl_forward(p["mu"], p["sigma"])[0]

            errors = G.check_params(objective, {"mu": mu, "sigma": sigma}, analytic)
            rel_errors[name] = {"dmu": errors["mu"], "dsigma": errors["sigma"]}
    return _verdict(rel_errors)
