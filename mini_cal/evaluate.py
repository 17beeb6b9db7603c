"""Evaluation: accuracy, macro-F1, coalition accuracy, linear probes of frozen encoders, Shapley of accuracy.

Metrics are computed on host NumPy copies (small arrays); logits come from the backend.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize
from scipy.special import logsumexp

from . import backend as B
from . import checks
from .contribution import all_coalitions, shapley


def accuracy(pred, y) -> float:
    _same_length(pred, y)
    if np.size(y) == 0:  # the mean of nothing is NaN, which would read as a result
        raise ValueError("pred, y: expected at least one prediction, got empty arrays")
    return float(np.mean(np.asarray(pred) == np.asarray(y)))


def macro_f1(pred, y, num_classes: int) -> float:
    """Unweighted mean over classes of F1 = 2 TP / (2 TP + FP + FN); a class absent from both ``y`` and
    ``pred`` is skipped. ``pred`` and ``y``: integer labels in 0..num_classes-1, of one length (checked here;
    :func:`metrics` calls the unchecked :func:`_macro_f1` with the model's own predictions)."""
    num_classes = checks.number("num_classes", num_classes, low=1, high=checks.MAX_CLASSES, integer=True)
    _same_length(pred, y)
    return _macro_f1(checks.labels("pred", pred, num_classes), checks.labels("y", y, num_classes), num_classes)


def _macro_f1(pred, y, num_classes: int) -> float:
    pred, y = np.asarray(pred), np.asarray(y)
    confusion = np.bincount(y * num_classes + pred, minlength=num_classes**2).reshape(num_classes, num_classes)
    tp = np.diag(confusion)  # (K,): row = true class, column = predicted class
    fp = confusion.sum(axis=0) - tp
    fn = confusion.sum(axis=1) - tp
    scores = [2 * tp[k] / (2 * tp[k] + fp[k] + fn[k]) for k in range(num_classes) if tp[k] + fp[k] + fn[k] > 0]
    return float(np.mean(scores)) if scores else 0.0


def coalition_predictions(model, params, xs_dev, coalitions=None, batch: int = 4096) -> dict:
    """Deterministic predictions (argmax of logits(S)) for each coalition S, as host arrays."""
    M = model.M
    coalitions = all_coalitions(M) if coalitions is None else coalitions
    n = xs_dev[0].shape[0]
    preds = {S: [] for S in coalitions}
    needed = sorted({m for S in coalitions for m in S})
    for start in range(0, n, batch):
        chunk = [x[start : min(start + batch, n), ...] for x in xs_dev]
        out = model.forward(params, chunk, eps=None, modalities=needed or [0])
        for S in coalitions:
            logits = model.coalition_logits(params, out, S)
            preds[S].append(B.to_numpy(B.xp().argmax(logits, axis=1)))
    return {S: np.concatenate(p) for S, p in preds.items()}


def evaluate(model, params, xs_dev, y, predict_coalition=None, with_shapley: bool = False, modalities=None) -> dict:
    """:func:`metrics` of arrays of your own, checked first (a ValueError naming the argument that does not fit the
    model). The training loop calls :func:`metrics` directly: its data was checked once, when the Dataset was made."""
    _check_inputs(model, xs_dev, y, predict_coalition, modalities)
    _check_params(params)
    return metrics(model, params, xs_dev, y, predict_coalition, with_shapley, modalities)


def metrics(model, params, xs_dev, y, predict_coalition=None, with_shapley: bool = False, modalities=None) -> dict:
    """Fused accuracy and macro-F1 (of ``predict_coalition``), coalition accuracy of each modality and,
    optionally, exact Shapley values of accuracy over all coalitions.

    ``modalities``: the branches that were trained (default: all); the others are not run and report None."""
    M = model.M
    y = np.asarray(y)
    active = range(M) if modalities is None else tuple(modalities)
    predict_coalition = tuple(range(M)) if predict_coalition is None else tuple(predict_coalition)
    coalitions = (
        all_coalitions(M)
        if with_shapley
        else sorted({predict_coalition, *[(m,) for m in active]}, key=lambda s: (len(s), s))
    )
    preds = coalition_predictions(model, params, xs_dev, coalitions)
    result = {
        "acc": accuracy(preds[predict_coalition], y),
        "macro_f1": _macro_f1(preds[predict_coalition], y, model.config.num_classes),
        "coalition_acc": [accuracy(preds[(m,)], y) if m in active else None for m in range(M)],
    }
    if with_shapley:
        values = {S: accuracy(p, y) for S, p in preds.items()}
        result["shapley_acc"] = [float(v) for v in shapley(values, M)]
        result["coalition_values"] = {",".join(map(str, S)) or "{}": v for S, v in values.items()}
    return result


def encoder_features(model, params, xs_dev, m: int, batch: int = 4096) -> np.ndarray:
    """Branch m's deterministic output z (mu with a bottleneck), as a host array (N, Z)."""
    if isinstance(m, bool) or not isinstance(m, (int, np.integer)) or not 0 <= m < model.M:
        raise ValueError(f"m: expected a modality index in 0..{model.M - 1}, got {m!r}")
    n = xs_dev[0].shape[0]
    feats = []
    for start in range(0, n, batch):
        chunk = [x[start : min(start + batch, n), ...] for x in xs_dev]
        out = model.forward(params, chunk, eps=None, modalities=[m])
        feats.append(B.to_numpy(out.z[m]))
    return np.concatenate(feats).astype(np.float64)


def fit_softmax_regression(X, y, num_classes: int, l2: float = 1e-3, maxiter: int = 500):
    """Multinomial logistic regression by L-BFGS (scipy.optimize) on host float64 arrays.

    Minimises mean CE + (l2/2) ||W||^2; returns (W (D+1, K) including the bias row, mean, std) where features
    are standardised with the training mean and std before fitting.
    """
    _check_labels(y, len(X), num_classes, "y")
    X = np.asarray(X, dtype=np.float64)
    mean, std = X.mean(0), X.std(0) + 1e-8
    Xs = np.hstack([(X - mean) / std, np.ones((len(X), 1))])
    Y = np.eye(num_classes)[np.asarray(y)]
    n, d = Xs.shape

    def f(w_flat):
        W = w_flat.reshape(d, num_classes)
        logits = Xs @ W
        logp = logits - logsumexp(logits, axis=1, keepdims=True)
        loss = -np.sum(Y * logp) / n + 0.5 * l2 * np.sum(W[:-1] ** 2)
        grad = Xs.T @ (np.exp(logp) - Y) / n
        grad[:-1] += l2 * W[:-1]
        return loss, grad.ravel()

    res = minimize(f, np.zeros(d * num_classes), jac=True, method="L-BFGS-B", options={"maxiter": maxiter})
    return res.x.reshape(d, num_classes), mean, std


def probe_predict(fit, X) -> np.ndarray:
    W, mean, std = fit
    Xs = np.hstack([(np.asarray(X, dtype=np.float64) - mean) / std, np.ones((len(X), 1))])
    return np.argmax(Xs @ W, axis=1)


def linear_probe(model, params, train_xs_dev, y_train, test_xs_dev, y_test, l2: float = 1e-3, modalities=None) -> list:
    """Accuracy of a fresh softmax regression fitted on each frozen encoder's training features, on test
    (None for branches not in ``modalities``, the trained ones; default: all)."""
    K = model.config.num_classes
    accs = []
    for m in range(model.M):
        if modalities is not None and m not in modalities:
            accs.append(None)
            continue
        fit = fit_softmax_regression(encoder_features(model, params, train_xs_dev, m), y_train, K, l2=l2)
        accs.append(accuracy(probe_predict(fit, encoder_features(model, params, test_xs_dev, m)), y_test))
    return accs


def imbalance_degree(shapley_acc) -> float:
    """(max_m phi_m - min_m phi_m) / sum_m |phi_m| of the Shapley values of accuracy (ours; 0 = balanced)."""
    phi = np.asarray(shapley_acc, dtype=float)
    if phi.ndim != 1 or phi.size == 0 or not np.all(np.isfinite(phi)):
        raise ValueError(f"shapley_acc: expected a non-empty list of finite values, got {shapley_acc!r}")
    total = np.abs(phi).sum()
    return float((phi.max() - phi.min()) / total) if total > 0 else 0.0


def attack_curves(model, params, x_test, y_test, predict, seed: int = 0, attacks=None, levels=None) -> dict:
    """Test accuracy under every attack x target x level (:mod:`mini_cal.noise`):
    ``{attack: {target: [accuracy per level]}}``, targets ``"0"``, ``"1"``, ... and ``"all"``."""
    from .noise import ATTACKS, LEVELS, attack

    _check_inputs(model, x_test, y_test, predict, None, "x_test")
    _check_params(params)
    xp = B.xp()
    dtype = params["head.b"].dtype
    curves = {}
    for name in attacks or ATTACKS:
        curves[name] = {}
        for target in [str(m) for m in range(model.M)] + ["all"]:
            accs = []
            for eps in levels or LEVELS:
                xs, _ = attack(x_test, name, eps, "all" if target == "all" else int(target), seed=seed)
                logits = model.logits(params, [B.asarray(x, dtype=dtype) for x in xs], predict)
                accs.append(accuracy(B.to_numpy(xp.argmax(logits, axis=1)), y_test))
            curves[name][target] = accs
    return curves


# ------------------------------------------------------------------------------------------ argument checks
def _same_length(pred, y) -> None:
    if np.shape(pred) != np.shape(y) or np.ndim(y) != 1:
        raise ValueError(f"pred, y: expected two 1-D arrays of one length, got shapes {np.shape(pred)}, {np.shape(y)}")


def _check_params(params) -> None:
    """Parameters of a diverged or damaged run would give chance-level numbers that look like results."""
    xp = B.xp()
    for key, value in params.items():
        if not bool(B.to_numpy(xp.all(xp.isfinite(value)))):
            raise ValueError(f"params[{key!r}]: contains NaN or inf; expected finite parameters")


def _check_labels(y, n: int, num_classes: int, what: str = "y") -> None:
    y = np.asarray(y)
    if y.ndim != 1 or len(y) != n or n == 0:
        raise ValueError(f"{what}: expected {n} labels (one per row, at least one), got shape {y.shape}")
    if not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= num_classes:
        raise ValueError(f"{what}: expected integer labels in 0..{num_classes - 1}, got {y.dtype} labels")


def _check_inputs(model, xs, y, coalition=None, modalities=None, what: str = "xs") -> None:
    """ValueError naming the argument for inputs that do not fit the model: wrong number of modalities, rows,
    features or labels, non-finite features, labels out of range, coalition or modality indices out of range."""
    M = model.M
    if not isinstance(xs, (list, tuple)) or len(xs) != M:
        raise ValueError(f"{what}: expected a list of {M} per-modality arrays, got {type(xs).__name__}")
    n = xs[0].shape[0] if getattr(xs[0], "ndim", 0) == 2 else -1
    for m, x in enumerate(xs):
        if getattr(x, "ndim", 0) != 2 or x.shape[0] != n or x.shape[1] != model.config.input_dims[m]:
            raise ValueError(
                f"{what}[{m}]: expected shape ({n}, {model.config.input_dims[m]}), got {getattr(x, 'shape', None)}"
            )
        if not bool(B.to_numpy(B.xp().all(B.xp().isfinite(B.asarray(x))))):
            raise ValueError(f"{what}[{m}]: contains NaN or inf features")
    _check_labels(y, n, model.config.num_classes, "y")
    for name, idx in (("predict_coalition", coalition), ("modalities", modalities)):
        if idx is not None and not all(isinstance(m, (int, np.integer)) and 0 <= m < M for m in idx):
            raise ValueError(f"{name}: expected modality indices in 0..{M - 1}, got {idx!r}")
