"""Test-time noise attacks (docs/method.md §6.5; the protocol of QMF and PDF adapted to feature vectors).

Noise level eps in 0..10. Each sample is *attacked* with probability 0.5 (``p_attack``); an attack hits one chosen
modality or all of them (``target``: an index or ``"all"``; with ``"all"`` an attacked sample has every modality
hit). What a hit does (constants ours):

* ``gaussian``: x + (eps / 10) * c * std(x) * N(0, I), std per feature over the whole split, ``c = GAUSSIAN_C``;
* ``salt_pepper``: each feature set to the modality's min or max (per feature, half each) with probability
  (eps / 10) * ``SP_DENSITY``;
* ``missing``: the modality zeroed, with probability eps / 10 per attacked sample.

Attacks run on host NumPy arrays, are deterministic given ``seed``, never modify their input, and eps = 0 returns
the data unchanged. The random draws do not depend on eps (common random numbers): raising the level hits a
superset of the samples and features, with the same noise scaled up.
"""

from __future__ import annotations

import numpy as np

from .checks import choice, number

ATTACKS = ("gaussian", "salt_pepper", "missing")
LEVELS = tuple(range(11))
GAUSSIAN_C = 2.0  # at eps = 10 the added noise has twice the feature's own standard deviation
SP_DENSITY = 0.5  # at eps = 10 half of an attacked modality's features are salt or pepper


def attack(xs, attack: str, eps: float, target="all", seed: int = 0, p_attack: float = 0.5):
    """Return (attacked copies of the per-modality arrays ``xs``, boolean mask of attacked samples)."""
    if not isinstance(xs, (list, tuple)) or not xs:
        raise ValueError(f"xs: expected a non-empty list of per-modality arrays, got {type(xs).__name__}")
    xs = [np.asarray(x) for x in xs]
    for m, x in enumerate(xs):
        if x.ndim != 2 or x.shape[0] != xs[0].shape[0] or not np.issubdtype(x.dtype, np.number) or np.iscomplexobj(x):
            raise ValueError(f"xs[{m}]: expected a real 2-D array with {xs[0].shape[0]} rows, got {x.dtype} {x.shape}")
    xs = [x if np.issubdtype(x.dtype, np.floating) else x.astype(np.float64) for x in xs]  # noise is not rounded
    M, n = len(xs), xs[0].shape[0]
    choice("attack", attack, ATTACKS)
    eps = number("eps", eps, low=0, high=10)
    target = choice("target", target, ("all", *range(M)))
    p_attack = number("p_attack", p_attack, low=0, high=1)
    seed = number("seed", seed, low=0, integer=True)
    # Common random numbers: the draws depend on (seed, attack, target) but not on eps, so the samples and
    # features hit at one level are a subset of those hit at a higher one and the curves are not re-rolled per level.
    rng = np.random.default_rng([seed, ATTACKS.index(attack), M if target == "all" else int(target)])
    attacked = rng.random(n) < p_attack
    out = [x.copy() for x in xs]
    level = eps / 10.0
    targets = range(M) if target == "all" else [int(target)]
    for m in targets:
        x = out[m]
        if attack == "gaussian":
            noise = rng.standard_normal(x.shape)
            if eps:
                std = xs[m].std(axis=0, keepdims=True)
                x[attacked] = (x + level * GAUSSIAN_C * std * noise)[attacked].astype(x.dtype)
        elif attack == "salt_pepper":
            u, salt = rng.random(x.shape), rng.random(x.shape) < 0.5
            hit = (u < level * SP_DENSITY) & attacked[:, None]
            lo, hi = xs[m].min(axis=0), xs[m].max(axis=0)
            x[hit & salt] = np.broadcast_to(hi, x.shape)[hit & salt]
            x[hit & ~salt] = np.broadcast_to(lo, x.shape)[hit & ~salt]
        else:  # missing
            drop = attacked & (rng.random(n) < level)
            x[drop] = 0
    return out, attacked


def auc(levels, accs) -> float:
    """Area under the accuracy-vs-level curve by the trapezoid rule, divided by the level range (in [0, 1])."""
    levels, accs = np.asarray(levels, dtype=float), np.asarray(accs, dtype=float)
    if levels.ndim != 1 or levels.shape != accs.shape or levels.size == 0:
        raise ValueError(
            f"levels, accs: expected two non-empty 1-D lists of one length, got {levels.shape}, {accs.shape}"
        )
    if not (np.all(np.isfinite(levels)) and np.all(np.isfinite(accs)) and np.all(np.diff(levels) > 0)):
        raise ValueError("levels, accs: expected finite values and increasing levels")
    if np.any((accs < 0) | (accs > 1)):
        raise ValueError(f"accs: expected accuracies in [0, 1], got values in {accs.min():g}..{accs.max():g}")
    if len(levels) < 2:
        return float(accs[0])
    return float(np.sum((accs[1:] + accs[:-1]) * np.diff(levels)) / 2 / (levels[-1] - levels[0]))
