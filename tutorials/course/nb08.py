"""Notebook 08 (the capstone): a minimal CAL assembled from the student's own pieces.

* :data:`PIECES` lists the pieces written in notebooks 02 to 05, with their library counterparts and the checkers
  of those notebooks (re-used here, so a piece is graded exactly as it was there);
* :func:`collect` grades every piece found in the notebook's namespace and returns a :class:`Pieces` namespace
  holding, for each piece, the student's function or (``use_library_for_unfinished``) the library's, with a report
  of which was used;
* :func:`check_weights_assembly` and :func:`check_kl_assembly` grade the two assembly functions the capstone asks
  for (W^m of one batch from the pieces of 03; the weighted KL and its gradients from the pieces of 05);
* :class:`MyCAL` is CAL's loss and gradient step written over a :class:`Pieces` namespace and the two assembly
  functions; :func:`plugged_in` puts the layer pieces (02's backward passes, 05's bottleneck forward) into the
  library's model for the duration of a training run.
"""

from __future__ import annotations

import contextlib
import types
from dataclasses import dataclass, field

import numpy as np

from course import grading as G
from course import nb02, nb03, nb04, nb05
from mini_cal import backend as B
from mini_cal import contribution as C
from mini_cal import layers as L
from mini_cal.methods import cal as cal_module
from mini_cal.methods.base import LossOutput, Method


def _library_coalition_values(shares, bias, y_onehot, h_y):
    values = {}
    for S in C.all_coalitions(len(shares)):  # summed in the order of Model.coalition_logits, to the last bit
        logits = B.xp().zeros_like(shares[0]) + bias if not S else shares[S[0]] + bias
        for m in S[1:]:
            logits = logits + shares[m]
        values[S] = C.coalition_value(logits, y_onehot, h_y)
    return values


def _library_accelerate(grads, branch_keys, W):
    out = dict(grads)
    for m, keys in enumerate(branch_keys):
        for key in keys:
            out[key] = grads[key] * (1.0 + W[m])
    return out


_GAUSSIAN_BOTTLENECK_FORWARD = L.gaussian_bottleneck_forward  # the original: plugged_in() swaps the attribute


def _library_bottleneck_forward(h, w_mu, b_mu, w_s, b_s, eps=None, sigma_min=1e-4, shift=5.0):
    return _GAUSSIAN_BOTTLENECK_FORWARD(h, w_mu, b_mu, w_s, b_s, eps=eps, sigma_min=sigma_min, shift=shift)[0]


# name in the notebook -> (notebook, checker, library stand-in (same signature as the exercise))
PIECES = {
    "linear_backward": ("02", nb02.check_linear_backward, L.linear_backward),
    "relu_backward": ("02", nb02.check_relu_backward, L.relu_backward),
    "softmax_ce_backward": ("02", nb02.check_softmax_ce_backward, L.softmax_ce_backward),
    "bottleneck_backward": ("02", nb02.check_bottleneck_backward, L.gaussian_bottleneck_backward),
    "coalition_values": ("03", nb03.check_coalition_values, _library_coalition_values),
    "shapley_two": ("03", nb03.check_shapley_two, lambda v: C.shapley(v, 2)),
    "confidence": ("03", nb03.check_confidence, C.confidence),
    "contribution_weights": (
        "03",
        nb03.check_contribution_weights,
        lambda I, D, temperature: C.softmax_weights(I * D, temperature),
    ),
    "accelerate": ("04", nb04.check_acceleration, _library_accelerate),
    "bottleneck_forward": ("05", nb05.check_bottleneck_forward, _library_bottleneck_forward),
    "kl_forward": ("05", nb05.check_kl_forward, lambda mu, sigma: L.gaussian_kl_forward(mu, sigma)[0]),
    "kl_backward": ("05", nb05.check_kl_backward, L.gaussian_kl_backward),
    "bottleneck_betas": ("05", nb05.check_bottleneck_betas, lambda W, beta0: cal_module.bottleneck_betas(W, beta0)),
}


@dataclass
class Pieces:
    """The functions a run uses (``fns[name]``), which of them are the student's, and each piece's verdict."""

    fns: dict
    yours: list = field(default_factory=list)
    library: list = field(default_factory=list)
    verdicts: dict = field(default_factory=dict)

    def __getattr__(self, name):
        try:
            return self.__dict__["fns"][name]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def complete(self) -> bool:
        return len(self.fns) == len(PIECES)

    def __repr__(self):
        lines = [
            f"{len(self.yours)} of {len(PIECES)} pieces are yours"
            + (f"; the library's stand in for: {', '.join(self.library)}" if self.library else ".")
        ]
        for name, result in self.verdicts.items():
            lines.append(f"  {name:<21} (notebook {PIECES[name][0]}): {result.message.splitlines()[0]}")
        return "\n".join(lines)

    _repr_pretty_ = lambda self, p, cycle: p.text(repr(self))  # noqa: E731


def collect(namespace: dict, use_library_for_unfinished: bool = True, prefix: str = "my_") -> Pieces:
    """Grade ``namespace[prefix + name]`` for every piece with the checker of its notebook.

    A piece that passes is used. One that is missing, unfinished or failing is replaced by the library's when
    ``use_library_for_unfinished`` is true, and left out otherwise (then ``Pieces.complete`` is False and the
    capstone does not train)."""
    pieces = Pieces(fns={})
    for name, (_, check, library) in PIECES.items():
        fn = namespace.get(prefix + name)
        result = check(fn) if fn is not None else G.failed(f"NOT YET: no function {prefix}{name} defined.")
        pieces.verdicts[name] = result
        if result.passed:
            pieces.fns[name] = fn
            pieces.yours.append(name)
        elif use_library_for_unfinished:
            pieces.fns[name] = library
            pieces.library.append(name)
    return pieces


def library_pieces() -> Pieces:
    """Every piece from the library (the reference run, and the inputs of the assembly checkers)."""
    return Pieces(fns={name: library for name, (_, _, library) in PIECES.items()}, library=list(PIECES))


# ------------------------------------------------------------------------ plugging the layers into the model
@contextlib.contextmanager
def plugged_in(pieces: Pieces):
    """Inside the block, the library's model runs the pieces' linear, ReLU and bottleneck backward passes and the
    bottleneck forward (mini_cal.layers' functions are swapped, then restored)."""

    def bottleneck_forward(h, w_mu, b_mu, w_s, b_s, eps=None, sigma_min=1e-4, shift=5.0):
        z, mu, sigma = pieces.bottleneck_forward(h, w_mu, b_mu, w_s, b_s, eps=eps, sigma_min=sigma_min, shift=shift)
        a = h @ w_s + b_s - shift  # the cache the backward pass expects: (mu_cache, s_cache, a, eps)
        return (z, mu, sigma), ((h, w_mu), (h, w_s), a, eps)

    swaps = {
        "linear_backward": pieces.linear_backward,
        "relu_backward": pieces.relu_backward,
        "gaussian_bottleneck_backward": pieces.bottleneck_backward,
        "gaussian_bottleneck_forward": bottleneck_forward,
    }
    originals = {name: getattr(L, name) for name in swaps}
    try:
        for name, fn in swaps.items():
            setattr(L, name, fn)
        yield
    finally:
        for name, fn in originals.items():
            setattr(L, name, fn)


# ------------------------------------------------------------------------------------------------ the method
class MyCAL(Method):
    """CAL over a :class:`Pieces` namespace: L = CE(all) + gamma sum_m CE({m}) + sum_m beta^m KL^m; after warm-up,
    branch m's gradients are multiplied by 1 + W^m. ``weights_fn`` and ``kl_fn`` are the two assembly functions."""

    uses_bottleneck = True

    def __init__(self, pieces, weights_fn, kl_fn, gamma=1.0, beta0=1e-3, temperature=1.0, warmup_epochs=5):
        self.P, self.weights_fn, self.kl_fn = pieces, weights_fn, kl_fn
        self.gamma, self.beta0, self.temperature, self.warmup_epochs = gamma, beta0, temperature, warmup_epochs
        self.name = "my-cal"

    def loss(self, ctx):
        M, model, params, out = ctx.model.M, ctx.model, ctx.params, ctx.out
        total, terms, dlogits = 0.0, {}, {}
        for S, weight in [(tuple(range(M)), 1.0)] + [((m,), self.gamma) for m in range(M)]:
            ce, cache = L.softmax_ce_forward(model.coalition_logits(params, out, S), ctx.y_onehot)
            total = total + weight * ce
            terms[f"ce_{''.join(map(str, S))}"] = B.to_float(ce)
            dlogits[S] = self.P.softmax_ce_backward(weight, cache)
        warm = ctx.epoch < self.warmup_epochs
        W = (
            np.full(M, 1.0 / M)
            if warm
            else np.asarray(
                self.weights_fn(self.P, model, params, out, ctx.y_onehot, ctx.h_y, self.temperature), dtype=float
            )
        )
        betas = np.full(M, self.beta0) if warm else np.asarray(self.P.bottleneck_betas(W, self.beta0), dtype=float)
        kl_loss, dmu, dsigma = self.kl_fn(self.P, out, betas)
        terms["kl_weighted"] = float(kl_loss)
        return LossOutput(
            total + kl_loss,
            terms,
            dlogits,
            list(dmu),
            list(dsigma),
            {"W": W.tolist(), "beta": betas.tolist()},
            modulation={"W": W},
        )

    def modify_gradients(self, grads, ctx, lo):
        M = ctx.model.M
        if ctx.epoch < self.warmup_epochs:
            return {"coef": [1.0] * M}
        W = lo.modulation["W"]
        new = self.P.accelerate(grads, [ctx.model.branch_keys(m) for m in range(M)], W)
        if new is not None and new is not grads:
            grads.update(new)
        return {"coef": (1.0 + W).tolist()}


# ---------------------------------------------------------------------------------- the assembly checkers
def _batch(seed=0, n=32, dtype="float64"):
    """A small two-branch bottleneck model, one training batch of the default preset, and its forward pass."""
    from mini_cal.model import Model, ModelConfig
    from mini_cal.synthetic import load_preset

    ds = load_preset("default")
    model = Model(ModelConfig(ds.input_dims, ds.num_classes, hidden=(16,), bottleneck=True, z_dim=8, head_init=1.0))
    rng = B.make_rng(seed)
    params = model.init_params(rng, dtype=dtype)
    xs = [B.asarray(x[:n], dtype=dtype) for x in ds.x_train]
    y = L.one_hot(B.asarray(np.asarray(ds.y_train[:n], dtype=np.int64)), ds.num_classes, dtype=dtype)
    out = model.forward(params, xs, eps=model.sample_eps(n, rng, dtype))
    h_y = C.label_entropy(ds.y_train, ds.num_classes)
    return model, params, out, y, h_y


def check_weights_assembly(fn) -> G.Result:
    """Grade ``fn(P, model, params, out, y_onehot, h_y, temperature) -> W`` against CAL's ContributionMetric."""
    P = library_pieces()
    model, params, out, y, h_y = _batch()
    for T in (1.0, 5.0):
        metric = C.contribution_weights(model, params, out, y, h_y, T)
        expected, I, D = metric["W"], metric["I"], metric["D"]
        with G.hide((C, "contribution_weights"), (cal_module, "contribution_weights")):  # assemble it, not call it
            got, failure = G.call_student(fn, P, model, params, out, y, h_y, T, where=f"at temperature {T:g}")
        if failure:
            return G.failed(failure)
        mistakes = [
            (
                C.softmax_weights(I, T),
                "your W ignores the confidence: the score of modality m is I(m) times "
                "D(m), so pass both to contribution_weights.",
            ),
            (C.softmax_weights(D, T), "your W ignores the Shapley values I(m) of the coalition values."),
            (C.softmax_weights(I * D, 1.0), "your W ignores the temperature argument."),
            (
                C.softmax_weights(I * D[::-1], T),
                "your D(m) belong to the other modality: compute D(m) on the logits of coalition {m}, m's own.",
            ),
        ]
        value = nb05._numbers(got)
        known = nb05._first_mistake(value, mistakes, expected) if value is not None else None
        if known is not None:
            return G.failed(f"at temperature {T:g}: {known}")
        message = G.diagnose(
            got,
            expected,
            name="W",
            hints={
                "reversed": "W[m] belongs to modality m: build I and D in modality order.",
                "default": "W = contribution_weights(I, D, T), with I the Shapley values of the coalition values and "
                "D(m) the confidence of coalition {m}'s logits.",
            },
        )
        if message is not None:
            if np.shape(got) == expected.shape and abs(float(np.sum(got)) - 1) > 1e-6:
                message += " (Your W do not sum to 1.)"
            return G.failed(f"at temperature {T:g}: {message}")
    return G.passed("your W of a batch agrees with CAL's contribution metric (temperatures 1 and 5).")


def check_kl_assembly(fn) -> G.Result:
    """Grade ``fn(P, out, betas) -> (kl_loss, dmu, dsigma)``: sum_m beta^m KL^m and its per-branch gradients."""
    P = library_pieces()
    model, params, out, y, h_y = _batch()
    betas = np.array([0.7e-3, 1.3e-3])
    kls = [L.gaussian_kl_forward(out.mu[m], out.sigma[m]) for m in range(model.M)]
    expected_loss = float(sum(b * float(k) for b, (k, _) in zip(betas, kls)))
    expected = [L.gaussian_kl_backward(float(b), cache) for b, (_, cache) in zip(betas, kls)]
    got, failure = G.call_student(fn, P, out, betas)
    if failure:
        return G.failed(failure)
    if not isinstance(got, (tuple, list)) or len(got) != 3:
        return G.failed("expected three values: (the weighted KL, [dmu per modality], [dsigma per modality]).")
    loss, dmu, dsigma = got
    try:
        loss = float(np.asarray(B.to_numpy(loss) if hasattr(loss, "shape") else loss))
    except (TypeError, ValueError):
        return G.failed(f"the weighted KL should be one number, got {type(loss).__name__}.")
    if abs(loss - expected_loss) > 1e-9 * max(1.0, abs(expected_loss)):
        values = [float(k) for k, _ in kls]
        known = [
            (sum(values), "it is the plain sum of the KLs: weight each modality's KL by its own beta^m."),
            (expected_loss / model.M, "it is the mean over modalities: CAL's loss adds the modalities' terms."),
            (
                float(np.dot(betas[::-1], values)),
                "each KL is weighted by the OTHER modality's beta: modality m's KL takes betas[m].",
            ),
            (betas[0] * sum(values), "every KL is weighted by betas[0]: modality m's KL takes betas[m]."),
        ]
        hint = next(
            (text for value, text in known if abs(loss - value) < 1e-9 * abs(value)),
            "it is the sum over modalities of beta^m times modality m's KL.",
        )
        direction = "too large" if loss > expected_loss else "too small"
        return G.failed(f"the weighted KL, {loss:.6g}, is {direction}: {hint}")  # the expected value is the answer
    for label, got_list, index in (("dmu", dmu, 0), ("dsigma", dsigma, 1)):
        if not isinstance(got_list, (list, tuple)) or len(got_list) != model.M:
            return G.failed(f"{label} should be a list with one array per modality ({model.M}).")
        for m in range(model.M):
            message = G.diagnose(
                got_list[m],
                expected[m][index],
                name=f"{label}[{m}]",
                n=out.mu[m].shape[0],
                hints={
                    "default": f"{label}[m] is the gradient of beta^m KL^m: pass beta^m as the "
                    f"upstream gradient of your KL backward."
                },
            )
            if message is not None:
                return G.failed(message)
    dtype_message = _kl_dtype_change(fn, P)
    if dtype_message:
        return G.failed(dtype_message)
    return G.passed(
        "your weighted KL and its per-modality gradients agree with CAL's, and keep the model's dtype (float32)."
    )


def _kl_dtype_change(fn, P):
    """A message if ``fn`` returns gradients of another dtype than the model's on a float32 batch (training runs
    in float32; a NumPy float64 such as ``betas[m]`` times a float32 array gives float64), else None."""
    _, _, out, _, _ = _batch(dtype="float32")
    got, failure = G.call_student(fn, P, out, np.array([0.7e-3, 1.3e-3]), where="on a float32 batch")
    if failure:
        return failure
    for label, arrays in (("dmu", got[1]), ("dsigma", got[2])):
        for m, array in enumerate(arrays):
            dtype = getattr(array, "dtype", None)
            if dtype is not None and str(dtype) != str(out.mu[m].dtype):
                return (
                    f"your gradients are {dtype} while the model's are {out.mu[m].dtype} ({label}[{m}] on a "
                    f"float32 batch): multiplying a float32 array by a NumPy float64 such as betas[m] gives "
                    f"float64. Use float(betas[m]) (a Python float keeps the array's dtype). Your values are right, "
                    f"but in training float64 gradients turn the run into a different computation from the "
                    f"library's float32 one, and it can end several points away."
                )
    return None


# ------------------------------------------------------------------------------------------ the comparison
def compare_params(a: dict, b: dict) -> float:
    """Largest absolute difference between two parameter dicts."""
    return max(float(np.max(np.abs(B.to_numpy(a[k]) - B.to_numpy(b[k])))) for k in a)


def plot_comparison(mine, library, names, warmup, path=None):
    """Figure 1: W^V per epoch and validation accuracy per epoch, your CAL against the library's."""
    from course import plots
    from mini_cal.history import epoch_means

    fig, axes = plots.figure(2, width=10, height=3.8)
    for result, label, ls, color in ((library, "library's CAL", "-", "C0"), (mine, "your CAL", "--", "C3")):
        W = [row[1] for row in epoch_means(result.history["steps"])["W"]]
        epochs = np.arange(1, len(W) + 1)
        axes[0].plot(epochs, W, ls=ls, color=color, label=label)
        axes[1].plot(epochs, [row["val_acc"] for row in result.history["epochs"]], ls=ls, color=color, label=label)
    axes[0].set(
        ylim=(0, 1),
        xlabel="epoch",
        ylabel=f"W^{names[1]} (per-epoch mean)",
        title=f"{names[1]}'s contribution weight W^{names[1]}",
    )
    axes[1].set(xlabel="epoch", ylabel="validation accuracy", title="validation accuracy")
    for ax in axes:
        ax.axvline(warmup + 0.5, color="k", lw=0.8, ls=":")
        ax.legend(loc="lower right")
    fig.suptitle("Figure 1. Your CAL against the library's (seed 0; dotted: end of warm-up)")
    plots.finish(fig, path)


def as_namespace(pieces: Pieces):
    """The pieces as a plain namespace (for reading them in the notebook)."""
    return types.SimpleNamespace(**pieces.fns)


# ----------------------------------------------------------------------------------------- the scaffold's run
def _library_weights_of_batch(P, model, params, out, y_onehot, h_y, temperature):
    """The library's contribution metric (mini_cal.contribution.contribution_weights), for a missing assembly."""
    return C.contribution_weights(model, params, out, y_onehot, h_y, temperature)["W"]


def _library_kl_loss(P, out, betas):
    """The weighted KL as CAL's loss computes it (mini_cal/methods/cal.py), for a missing assembly."""
    total, dmu, dsigma = 0.0, [], []
    for m, beta in enumerate(betas):
        kl, cache = L.gaussian_kl_forward(out.mu[m], out.sigma[m])
        total = total + float(beta) * kl
        d_mu, d_sigma = L.gaussian_kl_backward(float(beta), cache)
        dmu.append(d_mu)
        dsigma.append(d_sigma)
    return total, dmu, dsigma


def assembly(weights_fn, kl_fn, use_library_for_unfinished: bool = True):
    """Grade the two assembly functions; return (weights_fn, kl_fn) to train with (None for one that is not
    usable) and print which are yours."""
    chosen = []
    for label, fn, check, library in (
        ("W of a batch", weights_fn, check_weights_assembly, _library_weights_of_batch),
        ("weighted KL", kl_fn, check_kl_assembly, _library_kl_loss),
    ):
        result = check(fn)
        if result.passed:
            chosen.append(fn)
            print(f"{label:<13} yours ({result.message.splitlines()[0]})")
        elif use_library_for_unfinished:
            chosen.append(library)
            print(f"{label:<13} the library's stands in ({result.message.splitlines()[0]})")
        else:
            chosen.append(None)
            print(f"{label:<13} missing ({result.message.splitlines()[0]})")
    return tuple(chosen)


def train_mine(pieces, weights_fn, kl_fn, method_kw, dataset, config):
    """Train :class:`MyCAL` with the pieces plugged into the model; None (with a message) when something is
    missing or the run fails."""
    from mini_cal.train import train

    missing = [name for name in PIECES if name not in pieces.fns]
    if missing or weights_fn is None or kl_fn is None:
        print(
            "Your CAL cannot train yet: missing or failing "
            + ", ".join(
                missing + [n for n, f in (("the W assembly", weights_fn), ("the KL assembly", kl_fn)) if f is None]
            )
            + ". Finish them, or set USE_LIBRARY_FOR_UNFINISHED = True to let the library's pieces stand in."
        )
        return None
    method = MyCAL(pieces, weights_fn, kl_fn, **method_kw)
    try:
        with plugged_in(pieces):
            return train(method, dataset, config)
    except Exception as exc:  # a piece that passed its checks can still fail in a long run: say so, do not raise
        print(f"Your CAL stopped during training: {type(exc).__name__}: {exc}")
        return None
