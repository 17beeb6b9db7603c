"""Notebook 09 (your own data): the checker of its exercise and the helpers of its feature-scale experiment.

Exercise (the checker returns a :class:`course.grading.Result` and never raises):

* :func:`check_standardize` - ``fn(train, *others) -> [train', *others']``: every split a dict ``{modality name:
  array (N, D_m)}``, graded against the notebook's rules 1-4. The reference is computed here (and hidden while the
  student's function runs), not by the library. A constant feature means "all training values equal" (max == min):
  the cases include constants whose computed standard deviation is a rounding residue (1e-16 to 1e-12), and one case
  a feature that really varies with a standard deviation (about 1e-14) below such a residue, so that no absolute
  threshold on the standard deviation passes. The checker names leakage (statistics of each split, of the pooled
  splits, of another split), statistics per sample instead of per feature, one number per modality, ``ddof=1``, the
  variance, a missing centring or scaling, min-max scaling, an epsilon added to the standard deviation, an absolute
  threshold on it, NaN, inf or huge values on constant features, integer outputs, splits in another order and
  in-place changes, without printing the expected arrays.

Helpers: :func:`library_standardize` (the library's standardisation, ``from_arrays(..., standardize=True)``, in the
exercise's form, used by the notebook while the exercise has not passed) and :func:`active_units` (how many units of
a branch's last encoder layer still respond to some input).
"""

from __future__ import annotations

import numpy as np

from mini_cal import data

from . import grading as G

HIDDEN = [  # the library's standardisation, and this module's own reference (a student could import it)
    (data, "feature_statistics"),
    (data, "standardized"),
    (__name__, "reference"),
    (__name__, "_stats"),
]
# what students add to a standard deviation
EPSILONS = (1e-15, 1e-14, 1e-13, 1e-12, 1e-10, 1e-9, 1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3)
ZERO = 1e-9  # |output| below this counts as 0 (outputs are of order 1)


# ------------------------------------------------------------------------------------------------ the cases
def _residue_constant(rng, n):
    """A value whose constant column of ``n`` rows gets a non-zero np.std (a rounding residue), both as a column
    of a 2-D array (``x.std(axis=0)``) and as a 1-D array, or None."""
    for value in rng.permutation([0.1, 0.3, 0.7, 2.2, 0.15, 1.1, 0.6]):
        column = np.full((n, 3), value)
        if column.std(axis=0)[0] > 0 and np.full(n, value).std() > 0:
            return float(value)
    return None


def _split(rng, n, means, spreads, shift=0.0, stretch=1.0):
    """n rows of Gaussian features with the given means and spreads (shifted and stretched for val/test)."""
    return (np.asarray(means) + shift * np.asarray(spreads)) + rng.standard_normal((n, len(means))) * np.asarray(
        spreads
    ) * stretch


def _cases(seed=0):
    """[(label, splits, info)]: ``splits`` a list of dicts (train first); ``info``: {"tiny": (modality, column) or
    None, "residue": {modality: [columns]}} (constant columns whose np.std is a rounding residue)."""
    rng = np.random.default_rng(seed)
    cases = []

    # 1. units from 1e-5 to 1e3, means far from 0; val and test drawn shifted and wider, so statistics taken from
    #    them (or from all splits pooled) differ clearly from the training split's
    spreads = {"a": np.array([1e-5, 1.0, 1e3]), "b": np.array([0.01, 0.1, 10.0, 100.0, 1.0])}
    means = {m: s * rng.uniform(2, 6, s.size) * rng.choice([-1, 1], s.size) for m, s in spreads.items()}
    n = {"train": int(rng.integers(36, 48)), "val": int(rng.integers(12, 18)), "test": int(rng.integers(10, 16))}
    splits = [
        {m: _split(rng, n[s], means[m], spreads[m], *((0, 1) if s == "train" else (1.0, 1.5))) for m in spreads}
        for s in ("train", "val", "test")
    ]
    cases.append(
        (
            f"two modalities (3 and 5 features in units from 1e-5 to 1e3), train/val/test = "
            f"{n['train']}/{n['val']}/{n['test']} rows",
            splits,
            {"tiny": ("a", 0), "residue": {}},
        )
    )

    # 2. integer counts 0..16, as the raw digits, next to a float modality; train and test only
    n_train, n_test = int(rng.integers(25, 35)), int(rng.integers(8, 12))
    while True:
        counts = rng.integers(0, 17, size=(n_train, 6))
        if np.all(np.ptp(counts, axis=0) > 0):
            break
    splits = [
        {"counts": counts, "ratio": _split(rng, n_train, [0.5, -2.0], [0.2, 3.0])},
        {
            "counts": rng.integers(0, 17, size=(n_test, 6)),
            "ratio": _split(rng, n_test, [0.5, -2.0], [0.2, 3.0], 1, 1.5),
        },
    ]
    cases.append(
        (f"integer counts 0..16 and a float modality, train and test only ({n_train}/{n_test} rows)", splits, {})
    )

    # 3. features constant on the training split (a blank one, and one whose np.std is a rounding residue), not
    #    on val and test
    value = None
    while value is None:
        n_train = int(rng.integers(30, 120))
        value = _residue_constant(rng, n_train)
    sizes = (n_train, int(rng.integers(8, 12)), int(rng.integers(8, 12)))
    splits = []
    for i, n_s in enumerate(sizes):
        shift, stretch = (0.0, 1.0) if i == 0 else (1.0, 1.5)
        x = _split(rng, n_s, [0.4, 0.0, -1.0, 0.0, 3.0], [0.2, 1.0, 0.5, 1.0, 2.0], shift, stretch)
        x[:, 1] = 0.0 if i == 0 else rng.uniform(0, 1, n_s)  # blank on train, like the digits' corner pixels
        x[:, 3] = value if i == 0 else value + rng.uniform(-0.5, 0.5, n_s)
        splits.append({"pixels": x, "extra": _split(rng, n_s, [1.0, -1.0], [0.3, 0.7], shift, stretch)})
    cases.append(
        (
            f"features constant on train (one at 0, one at {value:g}), not on val and test; "
            f"train/val/test = {sizes[0]}/{sizes[1]}/{sizes[2]} rows",
            splits,
            {"residue": {"pixels": [3]}},
        )
    )
    cases.append(_threshold_case(rng))
    return cases


TINY_SPREAD = 1e-14  # case 4's varying feature: its np.std is about this, below a large constant's residue


def _threshold_case(rng):
    """Case 4, where no absolute threshold on the std can tell "constant" from "varies": a feature that really varies
    with a std of about 1e-14 next to a large constant whose np.std (a rounding residue, per column of the matrix or
    of the column alone) is at least 10 times larger."""
    while True:
        n_train, value = int(rng.integers(20, 60)), float(rng.choice([1234.567, 987.654321, 4321.123, 2718.2818]))
        sizes = (n_train, int(rng.integers(8, 12)))
        splits = []
        for i, n_s in enumerate(sizes):
            shift, stretch = (0.0, 1.0) if i == 0 else (1.0, 1.5)
            x = _split(rng, n_s, [3 * TINY_SPREAD, 0.0, 5.0, -2.0], [TINY_SPREAD, 1.0, 1.0, 0.5], shift, stretch)
            x[:, 1] = value if i == 0 else value + rng.uniform(-1.0, 1.0, n_s)
            splits.append({"sensor": x})
        x = splits[0]["sensor"]
        tiny = x[:, 0].std()
        if 0 < tiny and min(x.std(axis=0)[1], x[:, 1].std()) > 10 * tiny:
            break
    return (
        f"a feature of spread {TINY_SPREAD:.0e} and one constant at {value:g}, whose np.std (a rounding residue) "
        f"is larger; train/test = {sizes[0]}/{sizes[1]} rows",
        splits,
        {"tiny": ("sensor", 0), "residue": {"sensor": [1]}},
    )


# ----------------------------------------------------------------------------- the reference and the mistakes
def _constant(x) -> np.ndarray:
    """The columns of the training array ``x`` whose values are all equal (a boolean mask)."""
    return np.ptp(x, axis=0) == 0


def _stats(x, ddof=0):
    """(mean, std) per column of ``x``, in float64, with std 1 where the column is constant (or has one row)."""
    x = np.asarray(x, dtype=np.float64)
    mean = x.mean(axis=0)
    sd = x.std(axis=0, ddof=ddof) if len(x) > ddof else np.zeros(x.shape[1])
    const = _constant(x)
    return np.where(const, x[0], mean), np.where(const | (sd == 0), 1.0, sd)


def reference(splits):
    """The expected answer: every split standardised with the training split's per-feature mean and std
    (ddof 0); a feature constant on train gets std 1 (0 on train, its change from the training value elsewhere)."""
    stats = {m: _stats(x) for m, x in splits[0].items()}
    return [{m: (np.asarray(x, np.float64) - stats[m][0]) / stats[m][1] for m, x in split.items()} for split in splits]


def _with(splits, stat_of, center=True, scale=True, power=1.0, eps=0.0, raw_others=False):
    """Every split transformed with ``stat_of(m, i) -> (mean, sd)`` for modality m and split i."""
    out = []
    for i, split in enumerate(splits):
        out.append({})
        for m, x in split.items():
            x = np.asarray(x, np.float64)
            if raw_others and i > 0:
                out[i][m] = x
                continue
            mean, sd = stat_of(m, i)
            out[i][m] = ((x - mean) if center else x) / ((sd**power + eps) if scale else 1.0)
    return out


def _raw_stats(x, axis=0, ddof=0):
    x = np.asarray(x, np.float64)
    mean, sd = x.mean(axis=axis, keepdims=True), x.std(axis=axis, ddof=ddof, keepdims=True)
    return mean, np.where(sd > 0, sd, 1.0)


def _mistakes(splits, info):
    """{mistake id: the answer it gives, a list of dicts like the reference} (NaN where it says nothing)."""
    train = splits[0]
    pooled = {m: np.concatenate([np.asarray(s[m], np.float64) for s in splits]) for m in train}
    everything = np.concatenate([np.asarray(x, np.float64).ravel() for x in train.values()])
    own = {(m, i): _raw_stats(s[m]) for i, s in enumerate(splits) for m in train}
    train_stats = {m: _raw_stats(x) for m, x in train.items()}
    wrong = {
        "own_split": _with(splits, lambda m, i: own[m, i]),
        "pooled": _with(splits, lambda m, i: _raw_stats(pooled[m])),
        "other_split": _with(splits, lambda m, i: own[m, 1]),
        "raw_others": _with(splits, lambda m, i: train_stats[m], raw_others=True),
        "per_sample": _with(splits, lambda m, i: _raw_stats(splits[i][m], axis=1)),
        "per_modality": _with(splits, lambda m, i: _raw_stats(np.asarray(train[m], np.float64).ravel())),
        "all_modalities": _with(splits, lambda m, i: _raw_stats(everything)),
        "ddof1": _with(splits, lambda m, i: _raw_stats(train[m], ddof=1)),
        "variance": _with(splits, lambda m, i: train_stats[m], power=2.0),
        "center_only": _with(splits, lambda m, i: train_stats[m], scale=False),
        "scale_only": _with(splits, lambda m, i: train_stats[m], center=False),
        "minmax": _with(
            splits,
            lambda m, i: (
                np.min(train[m], axis=0),
                np.where(np.ptp(train[m], axis=0) > 0, np.ptp(train[m], axis=0), 1.0),
            ),
        ),
    }
    for eps in EPSILONS:
        raw = {
            m: (x.mean(axis=0), x.std(axis=0)) for m, x in ((m, np.asarray(x, np.float64)) for m, x in train.items())
        }
        wrong[f"eps_{eps:g}"] = _with(splits, lambda m, i, raw=raw: raw[m], eps=eps)
    tiny = info.get("tiny")
    expected = reference(splits)
    for key, as_zero, below in (
        ("tiny_as_constant", False, np.inf),  # a threshold above 1e-5: both tiny features "constant"
        ("tiny_as_zero", True, np.inf),
        ("threshold", False, 1e-10),  # a smaller one (1e-12, np.isclose's 1e-8...): only case 4's 1e-14 feature
        ("threshold_zero", True, 1e-10),
    ):
        if tiny is None:
            wrong[key] = None
            continue
        m, j = tiny
        answer = [{k: v.copy() for k, v in split.items()} for split in expected]
        column = np.asarray(train[m], np.float64)[:, j]
        if column.std() < below:
            for split, original in zip(answer, splits):
                split[m][:, j] = 0.0 if as_zero else np.asarray(original[m], np.float64)[:, j] - column.mean()
        wrong[key] = answer
    return wrong


MISTAKES = {
    "own_split": "every split is standardised with its own statistics. A val or test sample's features then depend "
    "on the other samples of its split (at deployment a sample may come alone), and the model sees them in another "
    "unit than the one it learned in.",
    "pooled": "your statistics pool the training split with the other splits: what the model is tested on leaks into "
    "its inputs (the test set is no longer unseen), and the training features do not come out at mean 0 and std 1.",
    "other_split": "your statistics come from another split than the training split (the first of `others`).",
    "raw_others": "only the training split is standardised; the others come back as they were, so the model would "
    "see val and test in their raw units, not in the units it was trained in.",
    "per_sample": "your statistics are per sample (over each row's features, axis 1): a feature's value then "
    "depends on the sample's other features. Standardise each feature (column), over the samples.",
    "per_modality": "you used one mean and one std for all the features of a modality: features in different units "
    "stay in different units. Each feature (column) needs its own.",
    "all_modalities": "you used one mean and one std for all the features of all modalities together: each feature "
    "(column) needs its own.",
    "ddof1": "your standard deviation divides by N - 1 (ddof=1): the exercise asks for np.std's own convention "
    "(ddof=0), under which the training features come out with std exactly 1.",
    "variance": "you divided by the variance, not by the standard deviation.",
    "center_only": "your features are centred but not scaled: they keep their units.",
    "scale_only": "your features are scaled but not centred: their means stay away from 0.",
    "minmax": "you rescaled each feature to [0, 1] on train (min-max scaling): the exercise asks for mean 0 and "
    "std 1 on train.",
    "eps": "you added a small number to the standard deviation: it changes every feature whose spread is small (two "
    "of these vary by about 1e-5 and 1e-14) and still blows up a feature that is constant on train. Leave the std "
    "alone where it is not 0, and decide what a constant feature becomes without dividing by a tiny number.",
    "tiny_as_constant": "a feature whose training values vary, by about 1e-5, was treated as constant (left "
    "unscaled or set to 0): call a feature constant only when its training values are all equal, whatever their "
    "unit; no absolute threshold on the std decides that.",
    "threshold": "a feature whose training values vary, by about 1e-14, was treated as constant (left unscaled or set "
    "to 0): an absolute threshold on the std (or a tolerance such as np.isclose's) decides that, and no absolute "
    "threshold can work: the same case has a feature that is constant on train whose np.std (a rounding residue) "
    "is LARGER than this varying feature's. Call a feature constant only when its training values are all equal.",
}
MISTAKES["tiny_as_zero"] = MISTAKES["tiny_as_constant"]
MISTAKES["threshold_zero"] = MISTAKES["threshold"]
for _eps in EPSILONS:
    MISTAKES[f"eps_{_eps:g}"] = MISTAKES["eps"]
ORDER = [key for key in MISTAKES if key != "eps"]  # tried in this order

CONSTANT_MESSAGES = {
    "nan": "a feature that is constant on the training split came out NaN or inf: its standard deviation is 0, and "
    "0/0 or x/0 followed. Decide what such a feature becomes (it carries nothing to learn) without dividing by 0.",
    "residue": "a feature that is constant on the training split (every value {value:g}) did not come out as 0 on "
    "train, or came out huge on val/test: np.std gives it about {sd:.0e}, a rounding residue, not exactly 0, so a "
    "test for a std of exactly 0 (or below a fixed threshold) misses it. Decide 'constant' in a way that "
    "rounding cannot fool.",
    "residue_threshold": "a feature that is constant on the training split (every value {value:g}) did not come out "
    "as 0 on train, or came out huge on val/test: np.std gives it about {sd:.0e}, a rounding residue, not 0. No "
    "absolute threshold on the std can catch it: another feature of this case really varies, and its std (about "
    "{tiny:.0e}) is smaller than this residue. Call a feature constant only when its training values are all equal.",
    "huge": "a feature that is constant on the training split came out huge on val/test (up to {times} its "
    "change from the training value): you divided by a tiny number (an epsilon added to the std, or a rounding "
    "residue). A constant feature must not be divided by its (near-)zero std at all.",
    "train": "a feature that is constant on the training split did not come out as 0 on the training split.",
    "other": "a feature that is constant on the training split came out larger on val/test than its change from "
    "the training value: leave it at most that (0, or the change itself), finite.",
}


# ------------------------------------------------------------------------------------------------ the checker
def _form(value, splits, label):
    """The student's answer as a list of {modality: float64 array}, or a failure message."""
    at = f"FAILED in case '{label}'"
    k = len(splits)
    names = list(splits[0])
    if isinstance(value, dict):
        return None, f"{at}: you returned one dict; return a list [train', *others'] of {k} dicts, one per split given."
    if not isinstance(value, (list, tuple)) or len(value) != k:
        form = f"{len(value)} values" if isinstance(value, (list, tuple)) else f"a {type(value).__name__}"
        return None, f"{at}: expected a list or tuple of {k} dicts (train first, then the others in order), got {form}."
    out = []
    for i, (got, split) in enumerate(zip(value, splits)):
        where = "train'" if i == 0 else f"others'[{i - 1}]"
        if not isinstance(got, dict):
            return None, f"{at}: {where} is a {type(got).__name__}; each split must come back as a dict like its input."
        if set(got) != set(names):
            return (
                None,
                f"{at}: {where} has the keys {sorted(got)}, expected the input's modality names {sorted(names)}.",
            )
        out.append({})
        for m in names:
            arr = got[m]
            if isinstance(arr, np.ndarray) and arr.dtype.kind in "biu":
                return None, (
                    f"{at}: {where}[{m!r}] is an integer array ({arr.dtype}): standardised features are fractions; "
                    f"compute in floating point (e.g. x.astype(float) first), even when the input holds integers."
                )
            try:
                arr = np.asarray(arr, dtype=np.float64)
            except (TypeError, ValueError):
                return None, f"{at}: {where}[{m!r}] is a {type(got[m]).__name__}, not an array of numbers."
            if arr.shape != np.shape(split[m]):
                if any(arr.shape == np.shape(other[m]) for j, other in enumerate(splits) if j != i):
                    return None, (
                        f"{at}: {where}[{m!r}] has the shape of another split's {m!r}: your splits come back in "
                        f"another order. Return [train', *others'], the training split first, then the others in "
                        f"the order they were given."
                    )
                return None, (
                    f"{at}: {where}[{m!r}] has shape {arr.shape}, expected {np.shape(split[m])}, the input's shape "
                    f"(keep every sample and every feature, a constant one included)."
                )
            out[i][m] = arr
    return out, None


def _flat(answer, masks):
    """The non-constant columns of every split and modality, one flat vector."""
    return np.concatenate([a[m][:, ~masks[m]].ravel() for a in answer for m in masks])


def _check_constants(got, splits, masks, info, label):
    """None when every feature constant on train is 0 on train and at most its change elsewhere, else a message."""
    at = f"FAILED in case '{label}'"
    residue = info.get("residue", {})
    problems = []  # (kind, modality, column, detail)
    for m, mask in masks.items():
        x0 = np.asarray(splits[0][m], np.float64)
        for j in np.flatnonzero(mask):
            values = [g[m][:, j] for g in got]
            if not all(np.all(np.isfinite(v)) for v in values):
                problems.append(("nan", m, j, {}))
                continue
            change = [np.abs(np.asarray(s[m], np.float64)[:, j] - x0[0, j]) for s in splits]
            if np.max(np.abs(values[0])) > ZERO:
                problems.append(("train", m, j, {}))
                continue
            over = [np.abs(v) > c * (1 + 1e-6) + ZERO for v, c in zip(values[1:], change[1:])]
            if any(o.any() for o in over):
                with np.errstate(over="ignore"):
                    ratio = max(
                        float(np.max(np.abs(v) / np.maximum(c, 1e-300))) for v, c in zip(values[1:], change[1:])
                    )
                problems.append(("huge" if ratio > 10 else "other", m, j, {"ratio": ratio}))
    if not problems:
        return None
    kinds = [p[0] for p in problems]
    if "nan" in kinds:
        return f"{at}: {CONSTANT_MESSAGES['nan']}"
    if all(j in residue.get(m, []) for _, m, j, _ in problems):  # only the rounding-residue constant is wrong
        m, j = problems[0][1], problems[0][2]
        column = np.asarray(splits[0][m], np.float64)[:, j]
        sd = float(np.asarray(splits[0][m], np.float64).std(axis=0)[j])
        tiny = info.get("tiny")
        tiny_sd = float(np.asarray(splits[0][tiny[0]], np.float64)[:, tiny[1]].std()) if tiny else np.inf
        key = "residue_threshold" if tiny_sd < sd else "residue"
        return f"{at}: " + CONSTANT_MESSAGES[key].format(value=float(column[0]), sd=sd, tiny=tiny_sd)
    if "huge" in kinds:
        ratio = max(p[3].get("ratio", 0.0) for p in problems)
        times = f"{ratio:.1e} times" if ratio < 1e300 else "more than 1e300 times"
        return f"{at}: " + CONSTANT_MESSAGES["huge"].format(times=times)
    return f"{at}: {CONSTANT_MESSAGES['train' if 'train' in kinds else 'other']}"


def _split_order(got, expected, masks) -> bool:
    """Does one of the student's splits hold another split's expected answer (the splits in another order)?"""

    def flat(split):
        return np.concatenate([split[m][:, ~masks[m]].ravel() for m in masks])

    return any(
        i != j
        and all(np.shape(got[i][m]) == np.shape(expected[j][m]) for m in masks)
        and G.rel_error(flat(got[i]), flat(expected[j])) < G.TOLERANCE
        for i in range(len(got))
        for j in range(len(expected))
    )


@G.checker
def check_standardize(fn, seed: int = 0) -> G.Result:
    """Grade ``fn(train, *others) -> [train', *others']`` (dicts {modality name: array (N, D_m)}) on four cases."""
    cases = _cases(seed)
    answers = []
    with G.hide(*HIDDEN):
        for label, splits, _ in cases:
            value, failure = G.call_student(fn, *splits, where=f"in case '{label}'", allow_nonfinite=True)
            if failure:
                return G.failed(failure, case=label)
            got, failure = _form(value, splits, label)
            if failure:
                return G.failed(failure, case=label)
            answers.append(got)
    errors, wrong_case = {}, None
    for (label, splits, info), got in zip(cases, answers):
        masks = {m: _constant(np.asarray(x, np.float64)) for m, x in splits[0].items()}
        g, e = _flat(got, masks), _flat(reference(splits), masks)
        errors[label] = G.rel_error(g, e) if np.all(np.isfinite(g)) else float("inf")
        if not errors[label] < G.TOLERANCE and wrong_case is None:
            wrong_case = (label, splits, info, got, masks)
    if wrong_case is not None:
        return _diagnose(cases, answers, wrong_case, errors)
    for (label, splits, info), got in zip(cases, answers):
        masks = {m: _constant(np.asarray(x, np.float64)) for m, x in splits[0].items()}
        message = _check_constants(got, splits, masks, info, label)
        if message:
            return G.failed(message, errors=errors, case=label)
    return G.passed(
        f"your standardisation is right on all {len(cases)} cases: statistics of the training split only, one mean "
        f"and std per feature, every split mapped alike, integer inputs, constant features finite (a rounding "
        f"residue included, even one larger than a varying feature's std), inputs untouched (largest relative "
        f"error {max(errors.values()):.1e}).",
        errors=errors,
    )


def _diagnose(cases, answers, wrong_case, errors) -> G.Result:
    """The message for an answer wrong on a non-constant feature: a named mistake, else the first wrong piece."""
    label, splits, info, got, masks = wrong_case
    mistakes = [_mistakes(c_splits, c_info) for _, c_splits, c_info in cases]
    for key in ORDER:
        compared, matched = 0, True
        for (_, c_splits, c_info), c_got, c_wrong in zip(cases, answers, mistakes):
            wrong = c_wrong[key]
            if wrong is None:
                continue
            c_masks = {m: _constant(np.asarray(x, np.float64)) for m, x in c_splits[0].items()}
            g, w = _flat(c_got, c_masks), _flat(wrong, c_masks)
            ok = np.isfinite(w)
            if not np.all(np.isfinite(g[ok])) or G.rel_error(g[ok], w[ok]) >= G.MATCH:
                matched = False
                break
            compared += 1
        if matched and compared:
            return G.failed(f"FAILED: {MISTAKES[key]}", errors=errors, mistake=key, case=label)
    expected = reference(splits)
    if _split_order(got, expected, masks):
        return G.failed(
            f"FAILED in case '{label}': your splits come back in another order: return [train', *others'], the "
            f"training split first, then the others in the order they were given.",
            errors=errors,
            case=label,
        )
    for i, (g_split, e_split) in enumerate(zip(got, expected)):
        for m in masks:
            g, e = g_split[m].copy(), e_split[m]
            g[:, masks[m]] = e[:, masks[m]]  # constant features are graded separately
            where = "train'" if i == 0 else f"others'[{i - 1}]"
            message = G.diagnose(g, e, name=f"{where}[{m!r}]", hints=HINTS)
            if message:
                return G.failed(f"FAILED in case '{label}': {message}", errors=errors, case=label)
    return G.failed(f"FAILED in case '{label}': your answer is wrong.", errors=errors, case=label)  # not reached


HINTS = {
    "default": "On train each feature must come out with mean 0 and std 1 (np.std), and every split goes through "
    "the same map, which may depend on the training split only.",
}


# --------------------------------------------------------------------------------------- the experiment
def library_standardize(train, *others):
    """The library's standardisation (``from_arrays(..., standardize=True)``; ``mini_cal/data.py``) in the
    exercise's form: ``[train', *others']``."""
    names = list(train)
    floats = [
        {m: np.asarray(s[m]) if np.asarray(s[m]).dtype.kind == "f" else np.asarray(s[m], np.float32) for m in names}
        for s in (train, *others)
    ]
    mean, std = data.feature_statistics([floats[0][m] for m in names])
    return [{m: data.standardized(s[m], mu, sd) for m, mu, sd in zip(names, mean, std)} for s in floats]


def active_units(result, xs, m: int) -> tuple[int, int]:
    """(units of modality m's last encoder layer that are positive for at least one row of ``xs[m]``, units)."""
    params, h, layer = result.params, np.asarray(xs[m], np.float64), 1
    while f"b{m}.W{layer}" in params:
        h = np.maximum(h @ np.asarray(params[f"b{m}.W{layer}"], np.float64) + np.asarray(params[f"b{m}.b{layer}"]), 0)
        layer += 1
    return int(np.sum(np.any(h > 0, axis=0))), int(h.shape[1])
