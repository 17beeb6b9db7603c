"""PMR: Prototypical Modal Rebalance (Fan, Xu, Wu, Yang, Zhao; CVPR 2023), as docs/method.md §4.8 defines it, following
its paper and the released code (BalanceBenchmark's ``PMR_trainer.py``, which carries it):

* prototypes c^m_k: the class means of each branch's representation mu^m (z^m here) over the training set,
  recomputed before every epoch and averaged with the previous ones, c <- (1 - momentum) c_new + momentum c_old
  (no averaging the first time);
* prototypical logits -d(mu^m_i, c^m_k), with d the Euclidean distance (not squared); prototypical cross-entropy
  PCE^m = CE(-d^m, y);
* prototypical scores s^m = sum_i softmax(-d^m_i)[y_i], and rho^m = s^m / mean_{j != m} s^j (s_a / s_v for
  M = 2);
* a modality behind the others (rho^m < 1) gets its PCE term: beta^m = alpha if rho^m < 1 else 0 (released code);
* prototypical entropy regularisation (paper only, ``entropy_weight`` > 0): in the first ``entropy_epochs``
  epochs, a leading modality (rho^m > 1) is kept from converging early by rewarding the entropy of its prototypical
  distribution, - entropy_weight * mean_i H(softmax(-d^m_i));
* loss L = CE(logits(all)) + sum_m beta^m PCE^m - entropy_weight * sum_{rho^m > 1} H^m, with beta, rho and the
  prototypes constants; the PCE and entropy gradients reach the encoder through mu^m (``LossOutput.dmu``).
"""

from __future__ import annotations

import numpy as np

from .. import backend as B
from .. import checks
from .. import layers as L
from .base import LossOutput, Method, StepContext, cross_entropy_terms, ratio_to_others, split_on_device
from .spec import MethodSpec


def prototype_logits_forward(z, c):
    """logits[i, k] = -||z_i - c_k||_2.  z: (N, Z), c: (K, Z) -> (N, K), cache."""
    xp = B.xp()
    diff = z[:, None, :] - c[None, :, :]  # (N, K, Z)
    d = xp.sqrt(xp.sum(diff * diff, axis=2))  # (N, K)
    return -d, (diff, d)


def prototype_logits_backward(dlogits, cache):
    """dz (N, Z) from dlogits (N, K); the prototypes are constants."""
    xp = B.xp()
    diff, d = cache
    return -xp.sum((dlogits / xp.maximum(d, 1e-12))[:, :, None] * diff, axis=1)


def prototype_scores(p_list, y_onehot) -> np.ndarray:
    """s^m = sum_i p^m_i[y_i] from each modality's prototypical probabilities; host array (M,)."""
    xp = B.xp()
    return B.to_numpy(xp.stack([xp.sum(p * y_onehot) for p in p_list])).astype(float)


def pmr_coefficients(s, alpha: float) -> tuple:
    """(rho, beta): rho^m = s^m / mean_{j != m} s^j; beta^m = alpha where rho^m < 1, else 0."""
    rho = ratio_to_others(s)
    return rho, np.where(rho < 1.0, alpha, 0.0)


def class_means(z, y_onehot, previous=None):
    """Class means of z (N, Z) -> (K, Z) host float64; a class absent from y keeps ``previous`` (else zeros)."""
    sums = B.to_numpy(y_onehot.T @ z).astype(np.float64)
    counts = B.to_numpy(B.xp().sum(y_onehot, axis=0)).astype(np.float64)
    means = sums / np.maximum(counts, 1.0)[:, None]
    if previous is not None:
        means[counts == 0] = previous[counts == 0]
    return means


class PMR(Method):
    name = "pmr"
    min_modalities = 2

    def __init__(
        self, alpha=0.6, momentum=0.5, entropy_weight=0.0, entropy_epochs=5, modulation_start=0, prototype_seed=None
    ):
        self.alpha = checks.number("alpha", alpha, low=0)
        self.momentum = checks.number("momentum", momentum, low=0, high=1, high_open=True)
        self.entropy_weight = checks.number("entropy_weight", entropy_weight, low=0)
        self.entropy_epochs = checks.number("entropy_epochs", entropy_epochs, low=0, integer=True)
        self.modulation_start = checks.number("modulation_start", modulation_start, low=0, integer=True)
        if prototype_seed is not None:
            checks.number("prototype_seed", prototype_seed, low=0, integer=True)
        self.prototype_seed = prototype_seed

    def setup(self, model, h_y):
        super().setup(model, h_y)
        K, Z = model.config.num_classes, model.config.out_dim
        # before the first estimate (on_start): zeros, or N(0, 1) draws for checks that call loss() directly
        g = np.random.default_rng(self.prototype_seed) if self.prototype_seed is not None else None
        self.prototypes = [np.zeros((K, Z)) if g is None else g.standard_normal((K, Z)) for _ in range(model.M)]
        self._updates = 0

    # ------------------------------------------------------------------------------ prototypes, once per epoch
    def on_start(self, run):
        self.update_prototypes(run)

    def on_epoch_end(self, run):  # also after the last epoch: a run resumed with more epochs must see the same state
        self.update_prototypes(run)

    def update_prototypes(self, run) -> None:
        """c^m <- class means of mu^m over the training set (averaged with the old ones after the first time)."""
        xs, Y = split_on_device(run.dataset, "train", run.config.dtype)
        out = run.model.forward(run.params, xs)
        for m in range(run.model.M):
            new = class_means(out.mu[m], Y, self.prototypes[m])
            self.prototypes[m] = (
                new if self._updates == 0 else (1 - self.momentum) * new + self.momentum * self.prototypes[m]
            )
        self._updates += 1

    # ----------------------------------------------------------------------------------------------- the loss
    def loss(self, ctx: StepContext) -> LossOutput:
        M = ctx.model.M
        total, terms, dlogits = cross_entropy_terms(ctx, [("ce_fused", tuple(range(M)), 1.0)])
        dtype = B.dtype_name(ctx.out.mu[0])
        logits, caches = [], []
        for m in range(M):
            lg, cache = prototype_logits_forward(ctx.out.mu[m], B.asarray(self.prototypes[m], dtype=dtype))
            logits.append(lg)
            caches.append(cache)
        s = prototype_scores([L.softmax(lg) for lg in logits], ctx.y_onehot)
        rho, beta = pmr_coefficients(s, self.alpha)
        if ctx.epoch < self.modulation_start:
            beta = np.zeros(M)
        entropy_on = self.entropy_weight > 0 and ctx.epoch < self.entropy_epochs
        dmu = []
        for m in range(M):
            dl = None
            if beta[m] > 0:
                pce, ce_cache = L.softmax_ce_forward(logits[m], ctx.y_onehot)
                total = total + float(beta[m]) * pce
                terms[f"pce_{m}"] = B.to_float(pce)
                dl = L.softmax_ce_backward(float(beta[m]), ce_cache)
            if entropy_on and rho[m] > 1:
                H, h_cache = L.entropy_forward(logits[m])  # (N,): the term is the mean over the batch
                H_mean = B.xp().mean(H)
                total = total - self.entropy_weight * H_mean
                terms[f"proto_entropy_{m}"] = B.to_float(H_mean)
                dH = L.entropy_backward(-self.entropy_weight / H.shape[0], h_cache)
                dl = dH if dl is None else dl + dH
            dmu.append(None if dl is None else prototype_logits_backward(dl, caches[m]))
        if all(d is None for d in dmu):
            dmu = None
        else:
            dmu = [B.xp().zeros_like(ctx.out.mu[m]) if d is None else d for m, d in enumerate(dmu)]
        diag = {"s_proto": s.tolist(), "rho": rho.tolist(), "beta": beta.tolist()}
        return LossOutput(total, terms, dlogits, dmu=dmu, diagnostics=diag)

    def state_dict(self):
        """The prototypes (host float64) and how many times they were estimated."""
        return {"prototypes": [c.tolist() for c in self.prototypes], "updates": self._updates}

    def load_state_dict(self, state):
        self.prototypes = [np.asarray(c, dtype=np.float64) for c in state["prototypes"]]
        self._updates = int(state["updates"])


SPEC = MethodSpec(
    name="pmr",
    cls=PMR,
    order=38,
    variants={"pmr-per": {"entropy_weight": 0.1}},
    compare_default=("pmr",),
    search_space={"train.lr": [0.02, 0.05, 0.1], "alpha": [0.3, 0.6, 1.0, 2.0], "momentum": [0.0, 0.5]},
    # tuned by `mini-cal sweep --preset default --methods gblending agm mmpareto pmr --jobs 2` (docs/results/peers.md)
    tuned={"pmr": {"alpha": 2.0, "momentum": 0.0, "train.lr": 0.1}},
    diagnostics=("beta", "rho", "s_proto", "branch_grad_norm"),
    gradcheck={"pmr": {"prototype_seed": 0}, "pmr-per": {"prototype_seed": 0, "entropy_epochs": 20}},
)
