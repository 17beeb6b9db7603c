"""G-Blending: Gradient-Blending (Wang, Tran, Feiszli; CVPR 2020, "What makes training multi-modal classification
networks hard?"), online version, as docs/method.md §4.5 defines it, following its paper and the released code
(BalanceBenchmark's ``GBlending_trainer.py``):

* loss L = w_fused CE(logits(all), y) + sum_m w_m CE(logits({m}), y)  (unimodal logits through the coalition, our
  convention; ``unimodal_logits="slice"``: z^m Wh[m] + bh / M; the paper uses a separate head per modality);
* every ``super_epoch`` epochs (and before the first), the weights are estimated: for each of the M + 1 terms k,
  a copy of the current model is trained on term k alone for ``probe_epochs`` epochs (SGD, the run's learning rate,
  momentum and weight decay, its own shuffling); with L^T and L^V the term's mean loss on the training and the
  validation split before (n) and after (n + dn) that training,
      G_k = L^V_n - L^V_{n+dn}                    (generalisation gained),
      O_k = (L^V_{n+dn} - L^T_{n+dn}) - (L^V_n - L^T_n)   (overfitting gained),
      w_k proportional to G_k / O_k^2,  normalised to sum 1;
* on small data G_k can be negative (the validation loss rises), which makes w_k negative: ``negative="clip"``
  (ours, default) sets such weights to 0; ``"abs"`` takes |G_k| / O_k^2 (the released code). Every estimate's
  G, O and raw w are in the per-step diagnostics (``gb_G``, ``gb_O``, ``gb_w_raw``) and in ``estimates``;
* ``scale="sum"``: the weights sum to 1 (paper and code, so every term is smaller than joint's); ``"fused"`` (ours):
  divided by w_fused, so the fused term keeps weight 1 and the w_m / w_fused play the role of CAL's gamma.
"""

from __future__ import annotations

import numpy as np

from .. import backend as B
from .. import checks
from .. import layers as L
from ..optim import SGD, clip_by_global_norm
from .base import LossOutput, Method, StepContext, cross_entropy_terms, split_on_device
from .conventions import UNIMODAL_LOGITS, add_unimodal_gradient, unimodal_cross_entropy_terms, unimodal_logits
from .spec import MethodSpec

NEGATIVE = ("clip", "abs")
SCALES = ("sum", "fused")


def blending_weights(G, O, negative: str = "clip", scale: str = "sum", eps: float = 1e-12) -> tuple:
    """(raw w = G / O^2, applied weights) from per-term G and O (host arrays, fused term first)."""
    G, O = np.asarray(G, dtype=float), np.asarray(O, dtype=float)
    raw = G / np.maximum(O**2, eps)
    w = np.abs(raw) if negative == "abs" else np.maximum(raw, 0.0)
    if not np.isfinite(w).all() or w.sum() <= 0:  # no term generalises: fall back to equal weights
        w = np.ones_like(w)
    w = w / w.sum()
    if scale == "fused":  # the fused term keeps weight 1; clipped to 0, it has no estimate: equal weights
        w = w / w[0] if w[0] > 0 else np.ones_like(w)
    return raw, w


def term_logits(model, params, out, S, convention: str = "coalition"):
    """The logits of term S: the fused coalition, or modality m's own logits for S = (m,)."""
    if len(S) == 1 and model.M > 1:
        return unimodal_logits(model, params, out, S[0], convention)
    return model.coalition_logits(params, out, S)


def split_loss(model, params, xs, Y, S, convention: str = "coalition") -> float:
    """Mean CE of term S's deterministic logits over a whole split."""
    out = model.forward(params, xs, modalities=S)
    return B.to_float(L.softmax_ce_forward(term_logits(model, params, out, S, convention), Y)[0])


class GBlending(Method):
    name = "gblending"
    min_modalities = 2

    def __init__(self, super_epoch=10, probe_epochs=1, negative="clip", scale="sum", unimodal_logits="coalition"):
        self.super_epoch = checks.number("super_epoch", super_epoch, low=1, integer=True)
        self.probe_epochs = checks.number("probe_epochs", probe_epochs, low=1, integer=True)
        self.negative, self.scale = checks.choice("negative", negative, NEGATIVE), checks.choice("scale", scale, SCALES)
        self.unimodal_logits = checks.choice("unimodal_logits", unimodal_logits, UNIMODAL_LOGITS)

    def setup(self, model, h_y):
        super().setup(model, h_y)
        self.weights = np.full(model.M + 1, 1.0 / (model.M + 1))  # until the first estimate (on_start)
        self.estimates = []  # one {"epoch", "G", "O", "w_raw", "w"} per estimate

    def terms(self, M: int) -> list:
        """The M + 1 loss terms as (name, coalition): fused first."""
        return [("ce_fused", tuple(range(M)))] + [(f"ce_{m}", (m,)) for m in range(M)]

    def loss(self, ctx: StepContext) -> LossOutput:
        M = ctx.model.M
        total, terms, dlogits = cross_entropy_terms(ctx, [("ce_fused", tuple(range(M)), float(self.weights[0]))])
        uni_total, uni_terms, uni_dlogits = unimodal_cross_entropy_terms(
            ctx, self.weights[1:].tolist(), self.unimodal_logits
        )
        total, terms, dlogits = total + uni_total, {**terms, **uni_terms}, {**dlogits, **uni_dlogits}
        last = self.estimates[-1] if self.estimates else {"G": [], "O": [], "w_raw": []}
        diag = {"gb_w": self.weights.tolist(), "gb_G": last["G"], "gb_O": last["O"], "gb_w_raw": last["w_raw"]}
        return LossOutput(total, terms, dlogits, diagnostics=diag)

    # ----------------------------------------------------------------------- the estimate, every super-epoch
    def on_start(self, run):
        self.estimate(run)

    def on_epoch_end(self, run):
        if run.epoch % self.super_epoch == 0:  # also after the last epoch, so that a run resumed with more epochs
            self.estimate(run)  # continues exactly as an uninterrupted one

    def estimate(self, run) -> None:
        """G_k and O_k of every term from a copy trained on it alone; new weights (see the module docstring)."""
        cfg, ds, model = run.config, run.dataset, run.model
        (x_tr, Y_tr), (x_va, Y_va) = split_on_device(ds, "train", cfg.dtype), split_on_device(ds, "val", cfg.dtype)
        G, O = [], []
        for k, (_, S) in enumerate(self.terms(model.M)):
            params = {key: B.astype(v, v.dtype) for key, v in run.params.items()}  # a copy
            c = self.unimodal_logits
            before = split_loss(model, params, x_tr, Y_tr, S, c), split_loss(model, params, x_va, Y_va, S, c)
            rng = np.random.default_rng([cfg.seed, run.epoch, k])  # its own stream: the run's is untouched
            self.train_copy(run, params, x_tr, Y_tr, S, rng)
            after = split_loss(model, params, x_tr, Y_tr, S, c), split_loss(model, params, x_va, Y_va, S, c)
            G.append(before[1] - after[1])
            O.append((after[1] - after[0]) - (before[1] - before[0]))
        raw, self.weights = blending_weights(G, O, self.negative, self.scale)
        self.estimates.append({"epoch": run.epoch, "G": G, "O": O, "w_raw": raw.tolist(), "w": self.weights.tolist()})

    def train_copy(self, run, params, x_tr, Y_tr, S, rng) -> None:
        """``probe_epochs`` epochs of SGD on term S's CE alone, in place on ``params``."""
        cfg, model, xp = run.config, run.model, B.xp()
        opt = SGD(cfg.lr, cfg.momentum, cfg.weight_decay)
        n = Y_tr.shape[0]
        for _ in range(self.probe_epochs):
            perm = rng.permutation(n)
            for start in range(0, n, cfg.batch_size):
                idx = B.asarray(perm[start : min(start + cfg.batch_size, n)])
                xb, yb = [xp.take(x, idx, axis=0) for x in x_tr], xp.take(Y_tr, idx, axis=0)
                out = model.forward(params, xb, modalities=S)
                _, ce_cache = L.softmax_ce_forward(term_logits(model, params, out, S, self.unimodal_logits), yb)
                d, dlogits = L.softmax_ce_backward(1.0, ce_cache), {}
                if len(S) == 1:
                    add_unimodal_gradient(dlogits, S[0], d, self.unimodal_logits, model.M)
                else:
                    dlogits[S] = d
                grads = model.backward(params, out, dlogits)
                clip_by_global_norm(grads, cfg.clip_norm)
                opt.step(params, grads)

    def state_dict(self):
        """The weights in use and every estimate so far."""
        return {"weights": self.weights.tolist(), "estimates": self.estimates}

    def load_state_dict(self, state):
        self.weights = np.asarray(state["weights"], dtype=float)
        self.estimates = [dict(e) for e in state["estimates"]]


SPEC = MethodSpec(
    name="gblending",
    cls=GBlending,
    order=36,
    variants={
        "gblending-abs": {"negative": "abs"},
        "gblending-slice": {"unimodal_logits": "slice"},
    },
    compare_default=("gblending",),
    search_space={"train.lr": [0.02, 0.05, 0.1], "super_epoch": [5, 10], "scale": ["sum", "fused"]},
    # tuned by `mini-cal sweep --preset default --methods gblending agm mmpareto pmr --jobs 2` (docs/results/peers.md)
    tuned={"gblending": {"scale": "sum", "super_epoch": 5, "train.lr": 0.05}},
    diagnostics=("gb_w", "gb_G", "gb_O", "branch_grad_norm"),
    gradcheck={"gblending": {}, "gblending-slice": {}},
)
