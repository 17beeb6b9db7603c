"""Notebook 08 (the capstone): a minimal CAL assembled from the student's own pieces.

* :data:`PIECES` lists the pieces written in notebooks 02 to 05, with their library counterparts and the checkers
  of those notebooks (re-used here, so a piece is graded exactly as it was there);
* :func:`collect` grades every piece found in the notebook's namespace and returns a :class:`Pieces` namespace
  holding, for each piece, the student's function or (``use_library_for_unfinished``) the library's, with a report
  of which was used;
* :func:`check_weights_assembly` and :func:`check_kl_assembly` grade the two assembly functions the capstone asks
  for (W^m of one batch from the pieces of 03; the weighted KL and its gradients from the pieces of 05);
* :func:`check_cal_step` grades the third, one whole CAL training step (forward, loss, W, betas, KL, backward,
  acceleration, SGD update) against the library's CAL and against finite differences, on the tiny model of
  :func:`step_problem`; :func:`gradcheck_step` is the students' own finite-difference check of that step;
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
from mini_cal.hooks import Hook
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
                    f"float64 (NumPy 2). Use float(betas[m]) (a Python float keeps the array's dtype). Your values "
                    f"are right, but a float64 gradient does not stay in the KL: model.backward then computes every "
                    f"branch's gradients in float64 (twice the memory of the float32 model), where the library "
                    f"computes them in float32."
                )
    return None


# ---------------------------------------------------------------------------------- assembly 3: one CAL step
STEP_DIMS, STEP_CLASSES, STEP_HIDDEN, STEP_Z, STEP_N, STEP_LR = (5, 4), 3, (6,), 3, 8, 0.1
STEP_KEYS = ("loss", "grads", "new_params")


def step_problem(seed: int = 0, dtype: str = "float64") -> tuple:
    """The problem a whole CAL step is checked on, drawn from ``seed``: a tiny two-branch bottleneck model (5 and 4
    input features, one hidden layer of 6, z of 3, 3 classes), its parameters, a batch of 8 with labels and
    bottleneck noise, CAL's hyper-parameters and a learning rate: ``(model, params, xs, y_onehot, eps, h_y, hp,
    lr)``. The biases are random and the draw is repeated until every ReLU input is at least 1e-3 away from 0 (a
    finite difference across the kink is not a derivative)."""
    from mini_cal.model import Model, ModelConfig

    rng = np.random.default_rng(seed)
    config = ModelConfig(
        STEP_DIMS, STEP_CLASSES, hidden=STEP_HIDDEN, bottleneck=True, z_dim=STEP_Z, sigma_shift=1.0, head_init=1.0
    )
    model = Model(config)
    while True:
        with B.use_backend("numpy"):
            host = {k: B.to_numpy(v) for k, v in model.init_params(rng, dtype="float64").items()}
        for k, v in host.items():  # zero biases would put every ReLU input of a zero row exactly on the kink
            if k.split(".")[1].startswith("b"):
                host[k] = v + 0.1 * rng.standard_normal(v.shape)
        xs = [rng.standard_normal((STEP_N, d)) for d in STEP_DIMS]
        pre = [xs[m] @ host[f"b{m}.W1"] + host[f"b{m}.b1"] for m in range(len(STEP_DIMS))]
        if min(float(np.min(np.abs(a))) for a in pre) > 1e-3:
            break
    labels = rng.integers(STEP_CLASSES, size=STEP_N)
    eps = [rng.standard_normal((STEP_N, STEP_Z)) for _ in STEP_DIMS]
    hp = {
        "gamma": float(rng.choice([0.5, 2.0])),
        "beta0": float(rng.choice([0.02, 0.05])),
        "temperature": float(rng.choice([1.0, 3.0])),
    }
    y = L.one_hot(B.asarray(labels.astype(np.int64)), STEP_CLASSES, dtype=dtype)
    return (
        model,
        {k: B.asarray(v, dtype=dtype) for k, v in host.items()},
        [B.asarray(x, dtype=dtype) for x in xs],
        y,
        [B.asarray(e, dtype=dtype) for e in eps],
        C.label_entropy(labels, STEP_CLASSES),
        hp,
        STEP_LR,
    )


def _library_step(model, params, xs, y, eps, h_y, hp, lr, W=None) -> tuple:
    """One step of the library's CAL after warm-up: its loss, the model's gradients, its acceleration and a plain
    SGD step (no momentum, no weight decay, no clipping); W given: held at that value. -> (loss, grads, new, W)."""
    from mini_cal.optim import SGD

    method = cal_module.CAL(hp["gamma"], hp["beta0"], hp["temperature"], warmup_epochs=0)
    if W is not None:  # as mini-cal gradcheck freezes it
        method.contribution = lambda ctx, known_ce=None: {"W": np.asarray(W, dtype=float)}
    lo, grads, accelerated = _method_step(method, model, params, xs, y, eps, h_y, epoch=0)
    new = {k: v.copy() for k, v in params.items()}
    SGD(lr=lr, momentum=0.0).step(new, accelerated)
    host = lambda d: {k: B.to_numpy(v).astype(np.float64) for k, v in d.items()}  # noqa: E731
    return B.to_float(lo.total), host(grads), host(new), np.asarray(lo.modulation["W"], dtype=float)


def _variant_step(
    model, params, xs, y, eps, hp, W, fused=1.0, unimodal=None, fused_grad=None, unimodal_grad=None, kl=True,
    kl_grads=True, betas="cal"
):  # fmt: skip
    """The loss and gradients of a typical mistake (the library's layers, W given): ``fused``, ``unimodal``: the
    weights of the CE terms in the loss (None: gamma); ``fused_grad``, ``unimodal_grad``: their upstream gradients
    (None: the same); ``kl``: the weighted KL in the loss; ``kl_grads``: its gradients in backward; ``betas``:
    ``"cal"``, ``"reversed"`` (the other modality's), ``"beta0"`` (warm-up's) or ``"one"`` (unweighted)."""
    M = model.M
    unimodal = hp["gamma"] if unimodal is None else unimodal
    fused_grad = fused if fused_grad is None else fused_grad
    unimodal_grad = unimodal if unimodal_grad is None else unimodal_grad
    out = model.forward(params, xs, eps=eps)
    loss, dlogits = 0.0, {}
    terms = [(tuple(range(M)), fused, fused_grad)] + [((m,), unimodal, unimodal_grad) for m in range(M)]
    for S, weight, grad_weight in terms:
        ce, cache = L.softmax_ce_forward(model.coalition_logits(params, out, S), y)
        loss += weight * B.to_float(ce)
        if grad_weight:
            dlogits[S] = L.softmax_ce_backward(grad_weight, cache)
    W = np.asarray(W, dtype=float)
    beta = {
        "cal": lambda: cal_module.bottleneck_betas(W, hp["beta0"]),
        "reversed": lambda: cal_module.bottleneck_betas(W[::-1], hp["beta0"]),
        "beta0": lambda: np.full(M, hp["beta0"]),
        "one": lambda: np.ones(M),
    }[betas]()
    dmu, dsigma = [], []
    for m in range(M):
        value, cache = L.gaussian_kl_forward(out.mu[m], out.sigma[m])
        loss += float(beta[m]) * B.to_float(value) if kl else 0.0
        a, b = L.gaussian_kl_backward(float(beta[m]), cache)
        dmu.append(a)
        dsigma.append(b)
    grads = model.backward(params, out, dlogits, dmu if kl_grads else None, dsigma if kl_grads else None)
    return loss, {k: B.to_numpy(v).astype(np.float64) for k, v in grads.items()}


LOSS_MISTAKES = [  # (arguments of _variant_step, message): the loss is wrong
    (
        dict(unimodal=0.0),
        "it has no unimodal terms: CAL adds gamma times the cross-entropy of each modality's own logits "
        "(coalition (m,)) to the fused cross-entropy.",
    ),
    (
        dict(fused="gamma", unimodal=1.0),
        "gamma weights the fused term instead of the unimodal ones: the fused cross-entropy has weight 1, each "
        "unimodal one has weight gamma.",
    ),
    (dict(fused="gamma"), "gamma weights every cross-entropy, the fused one too: the fused term has weight 1."),
    (dict(unimodal=1.0), "its unimodal cross-entropies are not weighted by gamma (hp['gamma'])."),
    (dict(kl=False), "it has no KL terms: CAL's loss adds sum_m beta^m KL^m (your Assembly 2)."),
    (dict(betas="one"), "its KL terms are not weighted by the betas: modality m's KL takes beta^m."),
    (
        dict(betas="reversed"),
        "your betas compress the HIGH-contribution modality more (or belong to the other modality): beta^m comes "
        "from modality m's own W^m through P.bottleneck_betas, which compresses the low-contribution one more.",
    ),
    (
        dict(betas="beta0"),
        "your KL weights are beta0 for every modality, as during warm-up: after warm-up beta^m comes from this "
        "batch's W, through P.bottleneck_betas.",
    ),
    (
        dict(W="deterministic"),
        "your W is measured on another forward pass, without the noise (eps=None): CAL measures W on the step's "
        "own forward pass, the one the loss uses.",
    ),
    (
        dict(W="deterministic", noise=False),
        "it is the loss of a forward pass without the bottleneck noise (eps=None, the evaluation pass): a training "
        "step draws z with the noise it is given, model.forward(params, xs, eps=eps).",
    ),
]

GRAD_MISTAKES = [  # (arguments of _variant_step, message): the loss is right, its gradients are not
    (
        dict(kl_grads=False),
        "they miss the KL's gradients: the loss has sum_m beta^m KL^m, so model.backward must receive the "
        "weighted KL's gradients on mu and sigma (dmu, dsigma); without them the bottlenecks feel no compression.",
    ),
    (
        dict(unimodal_grad=1.0),
        "the gradients of the unimodal terms are not weighted by gamma: a term gamma * CE has the upstream "
        "gradient gamma in its softmax backward.",
    ),
    (
        dict(unimodal_grad=0.0),
        "they have no gradient from the unimodal terms: dlogits needs an entry for every coalition in the "
        "loss, each modality's own (m,) too.",
    ),
    (
        dict(fused_grad="gamma", unimodal_grad=1.0),
        "the upstream gradients of the cross-entropies are swapped: the fused term's is 1, each unimodal term's gamma.",
    ),
]

ACCELERATED_GRADS = (
    "your grads are already accelerated (branch m's multiplied by 1 + W^m): return the gradient of the loss itself, "
    "before acceleration. That is what a finite-difference check of the loss can confirm; the acceleration "
    "belongs to the update only. P.accelerate may scale the arrays it is given in place (notebook 04 allowed it; "
    "the checker's does): give it copies of the gradients."
)

HEAD_UPDATE = (
    "your update of the head is not plain SGD: the acceleration scales only the branches' parameters (encoder and "
    "bottleneck, model.branch_keys(m)); the head, shared by all modalities, moves by lr times its own gradient."
)


def _update_mistakes(params, grads, W, lr, model) -> list:
    """(new_params of a typical mistake, message), from the right gradients."""
    coef = {k: 1.0 for k in params}
    for m in range(model.M):
        coef.update({k: 1.0 + W[m] for k in model.branch_keys(m)})
    swapped = {k: 1.0 for k in params}
    for m in range(model.M):
        swapped.update({k: 1.0 + W[model.M - 1 - m] for k in model.branch_keys(m)})
    only_w = {k: (c - 1.0 if c != 1.0 else 1.0) for k, c in coef.items()}

    def update(scale, step=lr, start=1.0):
        return {k: start * params[k] - step * scale[k] * grads[k] for k in params}

    return [
        (
            update({k: 1.0 for k in params}),
            "your update is not accelerated: after warm-up, branch m's gradients are multiplied by 1 + W^m "
            "(P.accelerate) before the SGD step.",
        ),
        (
            update(swapped),
            "your acceleration uses the other modality's weight: branch m's gradients are multiplied by 1 + W^m, "
            "its own.",
        ),
        (
            update(only_w),
            "your acceleration multiplies branch m's gradients by W^m: CAL's coefficient is 1 + W^m.",
        ),
        (
            update({k: c * c for k, c in coef.items()}),
            "your update accelerates twice (branch m's gradients multiplied by (1 + W^m) squared): was the "
            "acceleration applied to gradients that P.accelerate had already scaled in place?",
        ),
        (
            update(coef, step=lr * lr),
            "your update applies the learning rate twice (a step of lr^2 times the gradient).",
        ),
        (update(coef, step=2 * lr), "your update takes two steps (2 lr times the accelerated gradient): take one."),
        (update(coef, step=-lr), "your update climbs the loss: SGD subtracts lr times the gradient."),
        (
            update(coef, start=0.0),
            "your new_params hold the step (-lr times the accelerated gradient), not the parameters after it: "
            "add it to params.",
        ),
        (
            update(coef, step=-1.0, start=0.0),
            "your new_params hold the accelerated gradients, not the parameters after the SGD step.",
        ),
    ]


def _step_parts(value, params) -> tuple:
    """The student's (loss, grads, new_params) as (float, {key: float64 array}, {key: float64 array}); raises
    G.FormError with what is wrong with the form."""
    if not isinstance(value, (tuple, list)) or len(value) != 3:
        form = f"{len(value)} values" if isinstance(value, (tuple, list)) else f"a {type(value).__name__}"
        raise G.FormError(f"expected three values {STEP_KEYS}, got {form}.")
    loss = nb05._numbers(value[0])
    if loss is None or loss.size != 1:
        raise G.FormError(f"the loss should be one number, got {type(value[0]).__name__}.")
    parts = [float(loss.reshape(()))]
    for label, d in zip(STEP_KEYS[1:], value[1:]):
        if not isinstance(d, dict):
            raise G.FormError(f"{label} should be a dict with the keys of params, got a {type(d).__name__}.")
        missing = [k for k in params if k not in d]
        if missing:
            raise G.FormError(f"{label} lacks the key(s) {missing[:3]}: give every parameter, the head's too.")
        arrays = {}
        for k in params:
            a = nb05._numbers(d[k])
            if a is None or a.shape != tuple(params[k].shape):
                got = "not an array" if a is None else f"shape {a.shape}"
                raise G.FormError(f"{label}[{k!r}] is {got}; expected shape {tuple(params[k].shape)}.")
            arrays[k] = a
        parts.append(arrays)
    return tuple(parts)


def _wrong_keys(got: dict, expected: dict) -> list:
    return [k for k in expected if not (np.all(np.isfinite(got[k])) and G.rel_error(got[k], expected[k]) < 1e-6)]


def _same(got: dict, expected: dict, keys=None) -> bool:
    return not _wrong_keys({k: got[k] for k in keys or expected}, {k: expected[k] for k in keys or expected})


def _close_number(a: float, b: float, tol: float = 1e-8) -> bool:
    return abs(a - b) <= tol * max(1.0, abs(b))


def _in_place_accelerate(grads, branch_keys, W):
    """An accelerate piece that notebook 04 accepts: it scales the arrays it is given in place."""
    for m, keys in enumerate(branch_keys):
        for key in keys:
            grads[key] *= 1.0 + float(W[m])
    return grads


def _assembly_notes(fn) -> str:
    """A sentence for each assembly that ``fn`` calls by name and that fails its own check, else ''."""
    code = getattr(fn, "__code__", None)
    namespace = getattr(fn, "__globals__", None) or {}
    notes = []
    for name, check in (("my_weights_of_batch", check_weights_assembly), ("my_kl_loss", check_kl_assembly)):
        other = namespace.get(name)
        if code is None or name not in code.co_names or not callable(other):
            continue
        result = check(other)
        if not result.passed:
            verdict = result.message.splitlines()[0].rstrip(".")
            notes.append(f" Your step uses {name}, which does not pass its own check yet ({verdict}): fix it first.")
    return "".join(notes)


def _finite_difference_errors(fn, P, model, params, grads, args, W, seed, entries=5):
    """{parameter: relative error} of ``grads`` against centred differences (h = 1e-5) of fn's loss with W held,
    on ``entries`` entries of each parameter drawn from ``seed``."""
    from mini_cal.gradcheck import check_params

    def loss_at(p):
        return np.float64(_step_parts(fn(P, model, p, *args, W=W), params)[0])

    return check_params(loss_at, params, grads, h=1e-5, max_entries=entries, rng=np.random.default_rng(seed))


def _hidden_for_step() -> list:
    import sys

    from mini_cal.methods import base

    here = sys.modules[__name__]
    return [
        (cal_module.CAL, "loss"),
        (cal_module.CAL, "modify_gradients"),
        (MyCAL, "loss"),
        (MyCAL, "modify_gradients"),
        (base, "cross_entropy_terms"),
        (base, "scale_branches"),
        (C, "contribution_weights"),
        (cal_module, "contribution_weights"),
        (here, "_library_weights_of_batch"),
        (here, "_library_kl_loss"),
    ]


@G.checker
def check_cal_step(fn, seed: int = 0) -> G.Result:
    """Grade ``fn(P, model, params, xs, y_onehot, eps, h_y, hp, lr, W=None) -> (loss, grads, new_params)``, one
    whole CAL step after warm-up, on the tiny float64 problem of :func:`step_problem` drawn from ``seed``: the loss,
    the gradients (before acceleration) and the accelerated SGD step against the library's CAL, with W measured
    and with W given, and the gradients against centred finite differences of the student's own loss; then, on the
    same problem in float32, that grads and new_params keep the parameters' dtype."""
    with B.use_backend("numpy"):
        return _check_cal_step(fn, seed)


def _check_cal_step(fn, seed):
    P = library_pieces()
    P.fns["accelerate"] = _in_place_accelerate
    model, params, xs, y, eps, h_y, hp, lr = step_problem(seed)
    args = (xs, y, eps, h_y, hp, lr)
    loss0, grads0, new0, W0 = _library_step(model, params, *args)
    w = float(np.random.default_rng(seed + 1).uniform(0.15, 0.3))
    W_alt = np.array([w, 1.0 - w]) if W0[0] >= 0.5 else np.array([1.0 - w, w])  # far from the measured W
    loss_alt, grads_alt, new_alt, _ = _library_step(model, params, *args, W=W_alt)
    W_det = C.contribution_weights(model, params, model.forward(params, xs, eps=None), y, h_y, hp["temperature"])["W"]
    host_params = {k: B.to_numpy(v).astype(np.float64) for k, v in params.items()}

    with G.hide(*_hidden_for_step()):
        got, failure = G.call_student(fn, P, model, params, *args, where="(W measured on the batch)")
        if not failure:
            given, failure = G.call_student(fn, P, model, params, *args, W=W_alt.copy(), where="(W given)")
    if failure:
        return G.failed(failure + _assembly_notes(fn))
    try:
        loss, grads, new = _step_parts(got, params)
        loss_given, grads_given, new_given = _step_parts(given, params)
    except G.FormError as exc:
        return G.failed(str(exc))

    # 1. the loss
    if not _close_number(loss, loss0):
        for kwargs, message in LOSS_MISTAKES:
            kwargs = dict(kwargs)
            W = W_det if kwargs.pop("W", None) == "deterministic" else W0
            noise = eps if kwargs.pop("noise", True) else None
            if kwargs.get("fused") == "gamma":
                kwargs["fused"] = hp["gamma"]
            value = _variant_step(model, params, xs, y, noise, hp, W, **kwargs)[0]
            if _close_number(loss, value) and not _close_number(value, loss0):
                return G.failed(f"your loss is wrong: {message}" + _assembly_notes(fn), mistake=message)
        direction = "too large" if loss > loss0 else "too small"
        return G.failed(
            f"your loss, {loss:.6g}, is {direction}: CAL's loss is CE(all) + gamma sum_m CE({{m}}) + "
            f"sum_m beta^m KL^m, with beta^m from this batch's W." + _assembly_notes(fn)
        )
    # 2. its gradients, before acceleration
    wrong = _wrong_keys(grads, grads0)
    if wrong:
        branch = [k for m in range(model.M) for k in model.branch_keys(m)]
        scaled = {k: grads0[k] * (1.0 + W0[m]) for m in range(model.M) for k in model.branch_keys(m)}
        if _same(grads, scaled, branch):
            return G.failed(ACCELERATED_GRADS, mistake="accelerated")
        for kwargs, message in GRAD_MISTAKES:
            kwargs = {k: (hp["gamma"] if v == "gamma" else v) for k, v in kwargs.items()}
            variant = _variant_step(model, params, xs, y, eps, hp, W0, **kwargs)[1]
            if _same(grads, variant) and _wrong_keys(variant, grads0):
                return G.failed(f"your grads are wrong: {message}" + _assembly_notes(fn), mistake=message)
        first = G.diagnose(grads[wrong[0]], grads0[wrong[0]], name=f"grads[{wrong[0]!r}]", n=STEP_N)
        named = ", ".join(wrong[:4]) + (", ..." if len(wrong) > 4 else "")
        return G.failed(
            f"your loss is right but its gradients are not: wrong for {named} ({len(wrong)} of {len(grads0)}); "
            f"{first}" + _assembly_notes(fn)
        )
    # 3. W given: a constant of the step
    if not (_close_number(loss_given, loss_alt) and _same(grads_given, grads_alt)):
        if _close_number(loss_given, loss0) and not _close_number(loss_alt, loss0):
            return G.failed(
                "called with W given, your step ignores it and measures W again: W is a constant of the step "
                "(measured once, no gradient through it), and a gradient check must hold it fixed while it moves "
                "the parameters. When W is given, use it for the betas and the acceleration.",
                mistake="W recomputed",
            )
        which = "loss" if not _close_number(loss_given, loss_alt) else "grads"
        return G.failed(
            f"with W measured your step is right, but called with W = {np.round(W_alt, 3).tolist()} its {which} "
            f"{'is' if which == 'loss' else 'are'} wrong: use the W you are given for the betas and the "
            f"acceleration alike."
        )
    # 4. the gradients against finite differences of the student's own loss, W held
    with G.hide(*_hidden_for_step()):
        errors, failure = G.call_student(
            lambda: _finite_difference_errors(fn, P, model, params, grads, args, W0.copy(), seed),
            where="(finite differences of your loss)",
        )
    if failure:
        return G.failed(failure)
    worst = max(errors, key=errors.get)
    if errors[worst] >= G.TOLERANCE:
        return G.failed(
            f"your loss and grads agree with the library's at these parameters, but not with centred finite "
            f"differences of your own loss, W held fixed (relative error {errors[worst]:.1e} for {worst!r}): "
            f"does your loss depend on something other than the parameters, the batch and W?",
            errors=errors,
        )
    # 5. the update
    wrong = _wrong_keys({k: new[k] for k in new0}, new0)
    if wrong:
        head = model.head_keys()
        if all(k in head for k in wrong):
            return G.failed(HEAD_UPDATE, mistake="head")
        for value, message in _update_mistakes(host_params, grads0, W0, lr, model):
            if _same(new, value) and _wrong_keys(value, new0):
                return G.failed(f"your new_params are wrong: {message}", mistake=message)
        first = G.diagnose(new[wrong[0]], new0[wrong[0]], name=f"new_params[{wrong[0]!r}]", n=STEP_N)
        named = ", ".join(wrong[:4]) + (", ..." if len(wrong) > 4 else "")
        return G.failed(f"your new_params are wrong for {named} ({len(wrong)} of {len(new0)}); {first}")
    if not _same(new_given, new_alt):
        return G.failed(
            f"with W measured your update is right, but called with W = {np.round(W_alt, 3).tolist()} your "
            f"new_params are wrong: the acceleration too must use the W you are given."
        )
    # 6. the same problem in float32: grads and new_params keep the parameters' dtype
    message = _step_dtype_change(fn, P, seed)
    if message:
        return G.failed(message, mistake="dtype")
    return G.passed(
        f"your step's loss, gradients (before acceleration) and accelerated SGD update agree with the library's "
        f"CAL, with W measured on the batch and with W given; your gradients agree with centred finite "
        f"differences of your own loss (largest relative error {errors[worst]:.1e}, float64); on float32 "
        f"parameters your grads and new_params are float32 too.",
        errors=errors,
    )


def _step_dtype_change(fn, P, seed) -> str | None:
    """A message if ``fn``, run on the float32 version of the step problem, returns grads or new_params of another
    dtype than the parameters' (or cannot run there), else None."""
    model, params, xs, y, eps, h_y, hp, lr = step_problem(seed, "float32")
    with G.hide(*_hidden_for_step()):
        got, failure = G.call_student(fn, P, model, params, xs, y, eps, h_y, hp, lr, where="on float32 parameters")
    if failure:
        return failure
    try:
        _step_parts(got, params)
    except G.FormError as exc:
        return f"on float32 parameters: {exc}"
    where = {
        "grads": "in the loss's gradients (the weighted KL's, or an upstream gradient): use float(betas[m])",
        "new_params": "in the acceleration or the update (1 + W[m] is a NumPy float64 when W is a NumPy array): use "
        "float(W[m]), or cast back with .astype(params[k].dtype)",
    }
    cost = {
        "grads": "float64 gradients take twice the memory and turn the update, then the parameters, into float64",
        "new_params": "float64 new_params make the next step, and every step after it, run in float64 (twice the "
        "memory)",
    }
    for label, d in zip(STEP_KEYS[1:], got[1:]):
        for k in params:
            dtype = getattr(d[k], "dtype", None)
            if dtype is not None and str(dtype) != str(params[k].dtype):
                return (
                    f"on float32 parameters your {label} are {dtype} ({label}[{k!r}]): a float32 array times a NumPy "
                    f"float64 gives float64 (NumPy 2), here {where[label]}. Your values are right (the float64 "
                    f"checks passed), but training runs in float32: {cost[label]}."
                )
    return None


# ------------------------------------------------------------------------- the student's own gradient check
def gradcheck_step(step_fn, P, seed: int = 0, h: float = 1e-5):
    """Check ``step_fn``'s grads against centred finite differences of its loss, on every entry of every parameter
    of :func:`step_problem`'s tiny model, in float64 and then in float32. W is measured once (on the step's own
    forward pass) and passed to every call, so that it stays fixed while a parameter moves. Prints a table;
    returns {parameter: relative error} in float64 (None when the step cannot run yet)."""
    from mini_cal.gradcheck import check_params

    table, shown_W = {}, None
    for dtype in ("float64", "float32"):
        model, params, xs, y, eps, h_y, hp, lr = step_problem(seed, dtype)
        W = C.contribution_weights(model, params, model.forward(params, xs, eps=eps), y, h_y, hp["temperature"])["W"]
        shown_W = W if shown_W is None else shown_W

        def run(p, model=model, xs=xs, y=y, eps=eps, h_y=h_y, hp=hp, lr=lr, W=W):
            return step_fn(P, model, p, xs, y, eps, h_y, hp, lr, W=W)

        value, failure = G.call_student(run, params, where=f"in {dtype}")
        if failure:
            print(failure)
            return None
        try:
            _, grads, _ = _step_parts(value, params)
        except G.FormError as exc:
            print(f"FAILED in {dtype}: {exc}")
            return None
        errors, failure = G.call_student(
            lambda: check_params(lambda p: np.float64(_step_parts(run(p), params)[0]), params, grads, h=h),
            where=f"in {dtype} (finite differences of your loss)",
        )
        if failure:
            print(failure)
            return None
        table[dtype] = errors
    sizes = {k: tuple(v.shape) for k, v in params.items()}
    print(
        f"your grads against centred finite differences of your loss (h = {h:g}), every entry of the tiny model's "
        f"{sum(int(np.prod(s)) for s in sizes.values())} parameters; W = {np.round(shown_W, 4).tolist()} measured "
        f"once and held fixed.\nrelative error ||grads - numerical|| / (||grads|| + ||numerical||) per parameter:"
    )
    print(f"{'parameter':<11}{'shape':>9}{'float64':>11}{'float32':>11}")
    for k in table["float64"]:
        print(f"{k:<11}{str(sizes[k]):>9}{table['float64'][k]:>11.1e}{table['float32'][k]:>11.1e}")
    worst = {d: max(e.values()) for d, e in table.items()}
    print(f"{'worst':<20}{worst['float64']:>11.1e}{worst['float32']:>11.1e}")
    eps64, eps32 = np.finfo(np.float64).eps, np.finfo(np.float32).eps
    print(
        f"h = {h:g}: truncation error ~ h^2 = {h * h:.1e}; the loss is rounded at ~{eps64:.1e} of its value in "
        f"float64 ({eps64:.1e} / h = {eps64 / h:.1e}) and at ~{eps32:.1e} in float32 ({eps32:.1e} / h = "
        f"{eps32 / h:.1e})"
    )
    bad = [k for k, e in table["float64"].items() if e >= G.TOLERANCE]
    if bad:
        print(
            f"float64 errors of {G.TOLERANCE:g} or more for {', '.join(bad)}: those gradients are not the "
            f"gradient of your loss."
        )
    else:
        print(f"float64: every error below {G.TOLERANCE:g}: your grads are the gradient of your loss.")
    return table["float64"]


# ------------------------------------------------------------------------------------------ the comparison
def compare_params(a: dict, b: dict) -> float:
    """Largest absolute difference between two parameter dicts."""
    return max(float(np.max(np.abs(B.to_numpy(a[k]) - B.to_numpy(b[k])))) for k in a)


class Snapshots(Hook):
    """A training hook (``train(..., hooks=[snapshots])``) that keeps a float64 host copy of the parameters at the
    end of every epoch: ``params[e]`` is the state after epoch e + 1."""

    def __init__(self):
        self.params = []

    def on_epoch_end(self, run):
        self.params.append({k: B.to_numpy(v).astype(np.float64) for k, v in run.params.items()})


class NudgedCAL(cal_module.CAL):
    """The library's CAL with the measured W moved by ``delta`` after warm-up (W^0 up by delta, the other
    modalities down by delta / (M - 1)). With delta = 1e-12, a change some 100,000 times smaller than float32's
    rounding: the same CAL, computed with a rounding somewhere different."""

    def __init__(self, delta: float = 1e-12, **hparams):
        super().__init__(**hparams)
        self.delta = float(delta)
        self.name = f"cal (W nudged by {self.delta:g})"

    def contribution(self, ctx, known_ce):
        metric = super().contribution(ctx, known_ce)
        M = ctx.model.M
        nudge = np.full(M, -self.delta / max(M - 1, 1))
        nudge[0] = self.delta
        return dict(metric, W=np.asarray(metric["W"], dtype=float) + nudge)


def results_table(runs: dict) -> None:
    """Print the test accuracy (fused and per coalition) and the best epoch of each run ({label: TrainResult})."""
    print(f"{'':<22}{'test acc':>9}{'A coalition':>13}{'V coalition':>13}{'best epoch':>12}")
    for label, r in runs.items():
        if r is not None:
            print(
                f"{label:<22}{r.test['acc']:>9.3f}{r.test['coalition_acc'][0]:>13.3f}"
                f"{r.test['coalition_acc'][1]:>13.3f}{r.best_epoch + 1:>12}"
            )


def drift_table(reference: Snapshots, others: dict, warmup: int) -> dict:
    """Print, at the end of epoch 1, of the warm-up and of every second epoch after it, the largest difference
    between the parameters of each run in ``others`` ({label: Snapshots}) and those of ``reference``; returns
    {label: [difference per epoch]}."""
    others = {label: snap for label, snap in others.items() if snap is not None and snap.params}
    epochs = len(reference.params)
    diffs = {
        label: [compare_params(snap.params[e], reference.params[e]) for e in range(min(epochs, len(snap.params)))]
        for label, snap in others.items()
    }
    rows = sorted({1, min(warmup, epochs), epochs} | set(range(warmup + 1, epochs + 1, 2)))
    print(f"largest parameter difference from the library's run at the end of each epoch (warm-up: epochs 1-{warmup})")
    width = max([12] + [len(label) + 3 for label in diffs])
    print(f"{'epoch':>5}" + "".join(f"{label:>{width}}" for label in diffs))
    for e in rows:
        cells = [f"{d[e - 1]:>{width}.1e}" if e <= len(d) else f"{'':>{width}}" for d in diffs.values()]
        print(f"{e:>5}" + "".join(cells))
    return diffs


STEP_AGREEMENT = 1e-9  # float64: two correct implementations of one step differ by rounding only, ~1e-15 to 1e-12


def _method_step(method, model, params, xs, y, eps, h_y, epoch) -> tuple:
    """A method's step as the training loop runs it, without the update: -> (LossOutput, gradients, accelerated
    gradients)."""
    from mini_cal.methods.base import StepContext

    out = model.forward(params, xs, eps=eps)
    ctx = StepContext(model, params, out, y, epoch, 0, None, h_y)
    lo = method.loss(ctx)
    grads = model.backward(params, out, lo.dlogits, lo.dmu, lo.dsigma)
    accelerated = {k: v.copy() for k, v in grads.items()}  # a student's acceleration may scale in place
    method.modify_gradients(accelerated, ctx, lo)
    return lo, grads, accelerated


def _one_step(method, model, params, xs, y, eps, h_y, epoch) -> dict:
    lo, grads, accelerated = _method_step(method, model, params, xs, y, eps, h_y, epoch)
    host = {k: B.to_numpy(v).astype(np.float64) for k, v in grads.items()}
    return {
        "W": np.asarray(lo.modulation["W"], dtype=float),
        "loss": B.to_float(lo.total),
        "grads": host,
        "accelerated": {k: B.to_numpy(v).astype(np.float64) for k, v in accelerated.items()},
    }


def compare_step(pieces, weights_fn, kl_fn, method_kw, model, params, dataset, n: int = 64, seed: int = 0):
    """One CAL step after warm-up, the library's and yours (MyCAL over ``pieces`` plugged into the model), at the
    same parameters (``params``, e.g. a snapshot at the end of warm-up), on the first ``n`` training examples with
    the same noise, in float32 and in float64. Prints the relative differences of W, the loss, the gradients and
    the accelerated gradients; returns {dtype: {quantity: difference}} (None when your CAL cannot run)."""
    if any(name not in pieces.fns for name in PIECES) or weights_fn is None or kl_fn is None:
        print("Your CAL cannot run a step yet: see the message of the training cell.")
        return None
    from mini_cal.methods import make_method

    epoch = make_method("cal", **method_kw).warmup_epochs  # the first epoch after warm-up
    h_y = C.label_entropy(dataset.y_train, dataset.num_classes)
    table = {}
    for dtype in ("float32", "float64"):
        p = {k: B.asarray(B.to_numpy(v), dtype=dtype) for k, v in params.items()}
        xs = [B.asarray(x[:n], dtype=dtype) for x in dataset.x_train]
        labels = B.asarray(np.asarray(dataset.y_train[:n], dtype=np.int64))
        y = L.one_hot(labels, dataset.num_classes, dtype=dtype)
        eps = model.sample_eps(n, B.make_rng(seed), dtype)
        library = _one_step(make_method("cal", **method_kw), model, p, xs, y, eps, h_y, epoch)
        try:
            with plugged_in(pieces):
                mine = _one_step(MyCAL(pieces, weights_fn, kl_fn, **method_kw), model, p, xs, y, eps, h_y, epoch)
        except Exception as exc:  # a piece that passed its checks can still fail on a real batch: say so
            print(f"Your CAL's step stopped: {type(exc).__name__}: {exc}")
            return None
        table[dtype] = {
            "W": G.rel_error(mine["W"], library["W"]),
            "loss": abs(mine["loss"] - library["loss"]) / abs(library["loss"]),
            "grads": max(G.rel_error(mine["grads"][k], library["grads"][k]) for k in library["grads"]),
            "accelerated": max(
                G.rel_error(mine["accelerated"][k], library["accelerated"][k]) for k in library["accelerated"]
            ),
        }
    labels = {
        "W": "W",
        "loss": "loss",
        "grads": "grads (before acceleration), worst parameter",
        "accelerated": "accelerated grads, worst parameter",
    }
    print(
        f"one CAL step after warm-up (epoch {epoch + 1}), yours against the library's: same parameters, the first "
        f"{n} training examples, the same noise\nrelative difference{'float32':>36}{'float64':>11}"
    )
    for key, label in labels.items():
        print(f"{label:<45}{table['float32'][key]:>10.1e}{table['float64'][key]:>11.1e}")
    print(f"{'rounding unit of the dtype':<45}{np.finfo(np.float32).eps:>10.1e}{np.finfo(np.float64).eps:>11.1e}")
    worst = max(table["float64"].values())
    if worst < STEP_AGREEMENT:
        print(
            f"float64: every difference below {STEP_AGREEMENT:g}: at this step your CAL computes what the library's "
            f"computes, up to rounding."
        )
    else:
        first = next(key for key in labels if table["float64"][key] >= STEP_AGREEMENT)
        print(
            f"float64: a difference of {worst:.1e} (first in: {labels[first]}), far above rounding: your CAL "
            f"computes something else at this step."
        )
    return table


def plot_comparison(mine, library, names, warmup, path=None, others=None):
    """Figure 1: W^V per epoch and validation accuracy per epoch, your CAL against the library's (``others``:
    {label: TrainResult} drawn thin and grey, e.g. the nudged runs)."""
    from course import plots
    from mini_cal.history import epoch_means

    fig, axes = plots.figure(2, width=10, height=3.8)
    lines = [(r, label, ":", "0.6", 1.0) for label, r in (others or {}).items() if r is not None]
    lines += [(library, "library's CAL", "-", "C0", 1.5), (mine, "your CAL", "--", "C3", 1.5)]
    for result, label, ls, color, lw in lines:
        if result is None:
            continue
        W = [row[1] for row in epoch_means(result.history["steps"])["W"]]
        epochs = np.arange(1, len(W) + 1)
        axes[0].plot(epochs, W, ls=ls, color=color, lw=lw, label=label)
        val = [row["val_acc"] for row in result.history["epochs"]]
        axes[1].plot(epochs, val, ls=ls, color=color, lw=lw, label=label)
    axes[0].set(
        ylim=(0, 1),
        xlabel="epoch",
        ylabel=f"W^{names[1]} (per-epoch mean)",
        title=f"{names[1]}'s contribution weight W^{names[1]}",
    )
    axes[1].set(xlabel="epoch", ylabel="validation accuracy", title="validation accuracy")
    for ax in axes:
        ax.axvline(warmup + 0.5, color="k", lw=0.8, ls="-.")
        ax.legend(loc="lower right", fontsize="small")
    fig.suptitle("Figure 1. Your CAL against the library's (seed 0; dash-dotted: end of warm-up)")
    plots.finish(fig, path)


def place(label: str, result, cal_runs: dict) -> None:
    """Print where ``result``'s test accuracy (and V's coalition accuracy) falls against the range of the CAL runs
    ``cal_runs`` ({label: TrainResult}: one seed, the same formulas, different roundings)."""
    runs = [r for r in cal_runs.values() if r is not None]
    if result is None or not runs:
        return
    for key, name, get in (
        ("acc", "test acc", lambda r: r.test["acc"]),
        ("V", "V coalition", lambda r: r.test["coalition_acc"][1]),
    ):
        values = [get(r) for r in runs]
        low, high, value = min(values), max(values), get(result)
        where = "below" if value < low else "above" if value > high else "inside"
        print(
            f"{name:<12} the {len(values)} CAL runs (seed 0, different roundings) end between {low:.3f} and "
            f"{high:.3f}; {label}: {value:.3f}, {where} that range"
        )


def ten_seed_ablations(names=("cal-no-accel", "cal-sym-ib")) -> None:
    """Print CAL's ten-seed test accuracy and its paired differences with ``names`` from notebook 04's results file
    (tutorials/data/compare_default.json)."""
    results = nb04.load_results()
    acc = nb04.per_seed(results, "cal", "test_acc")
    print(
        f"ten seeds ({results['preset']} preset, notebook 04's results file): CAL's test acc {acc.mean():.3f} ± "
        f"{acc.std(ddof=1):.3f} (mean ± std over seeds), from {acc.min():.3f} to {acc.max():.3f}"
    )
    tests = {row["baseline"]: row for row in results["significance_cal_vs"]}
    for name in names:
        t = tests[name]
        print(
            f"  CAL minus {name:<13} {t['mean_diff']:+.3f} (paired t-test p = {t['t_test_p']:.2f}; CAL ahead on "
            f"{t['wins']} seeds of {t['n']})"
        )


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


def train_mine(pieces, weights_fn, kl_fn, method_kw, dataset, config, hooks=()):
    """Train :class:`MyCAL` with the pieces plugged into the model (``hooks``: passed to ``train``, e.g.
    :class:`Snapshots`); None (with a message) when something is missing or the run fails."""
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
            return train(method, dataset, config, hooks=hooks)
    except Exception as exc:  # a piece that passed its checks can still fail in a long run: say so, do not raise
        print(f"Your CAL stopped during training: {type(exc).__name__}: {exc}")
        return None
