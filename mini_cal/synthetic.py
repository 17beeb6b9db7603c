"""Synthetic imbalanced, noisy multimodal data with known Bayes-optimal accuracy (docs/method.md §7).

Generative model (all ours). Class y is uniform over K classes. Given y, the modalities are independent. Modality
m has ``informative`` latent dimensions in which class k is a mixture of ``components`` Gaussians with identity
covariance times ``noise``: for one component the class mean is ``C[k // confuse] + within * F[k]`` rescaled so that
the class means' average norm is ``separation``,
for two components the class is the XOR-like pair ``+/-`` that mean (linearly inseparable: a learned non-linear
feature is needed). ``C`` and ``F`` are orthonormal directions drawn from the seed: ``confuse`` classes share a
centre and are told apart only by ``within`` (how much the modality lacks). ``distractors`` pure-noise dimensions
are appended, everything is rotated by a random orthogonal matrix (``mixing``) and multiplied by ``scale``.

Why the weak modality is weak (the mechanism of the default preset). Its class information is non-linear and spread,
after mixing, over many distractor dimensions, and its inputs are on a smaller ``scale``. Under SGD the first
layer's gradient is proportional to the input, so a modality on a c-fold smaller scale learns roughly c-fold slower
at first (c = 33 for V in the default preset: scale 0.03); in joint training the easy modality fits the labels
before the weak one has learned its features, the shared loss gradient shrinks, and the weak encoder is starved.
This is our stand-in for the slow visual encoder of CREMA-D-like audio-visual data (OGM-GE, Peng et al. 2022,
section 3): a branch whose useful features take longer to learn than the other branch needs to fit the training
labels. Standardising the inputs removes the scale part of the mechanism; the "nonlinear" part remains.

Bayes-optimal accuracy is computed from the known model: the exact class posterior (sum of per-modality
log-likelihoods, conditional independence) evaluated on a large Monte-Carlo sample, reported with its standard
error. Validation and test splits are clean; training-time corruption and label noise touch the training split only.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy.special import logsumexp

from .checks import choice, number
from .data import Dataset


@dataclass
class ModalitySpec:
    """One modality of the generator (all fields ours; see the module docstring)."""

    name: str
    informative: int = 8
    distractors: int = 8
    separation: float = 2.0
    components: int = 1  # 1: Gaussian class clusters; 2: XOR-like +/- pairs (needs a non-linear feature)
    confuse: int = 1  # classes per shared centre (1: every class has its own centre)
    within: float = 1.0  # separability inside a group of confused classes, in units of separation
    noise: float = 1.0  # std of the within-class noise in latent units
    scale: float = 1.0  # multiplies every feature: the learning-speed knob
    mixing: bool = True  # random orthogonal rotation of all dimensions

    @property
    def dim(self) -> int:
        return self.informative + self.distractors


@dataclass
class DataConfig:
    """A benchmark: modalities, classes, split sizes, and the training-time nuisances."""

    modalities: list
    num_classes: int = 4
    n_train: int = 2000
    n_val: int = 1000
    n_test: int = 2000
    label_noise: float = 0.0  # fraction of training labels replaced by a uniformly drawn other class
    corrupt_modality: int | None = None  # which modality's training samples are corrupted
    corrupt_fraction: float = 0.0  # fraction of that modality's training samples replaced by pure noise
    seed: int = 0
    n_bayes: int = 200_000  # Monte-Carlo sample size for the Bayes-optimal accuracy

    def validate(self):
        """Check every field (a ValueError naming it); returns self."""
        if not self.modalities:
            raise ValueError("modalities: expected at least one ModalitySpec")
        number("num_classes", self.num_classes, low=2, integer=True)
        for name in ("n_train", "n_val", "n_test", "n_bayes"):
            number(name, getattr(self, name), low=1, integer=True)
        number("seed", self.seed, low=0, integer=True)
        number("label_noise", self.label_noise, low=0, high=1, high_open=True)
        number("corrupt_fraction", self.corrupt_fraction, low=0, high=1)
        if self.corrupt_fraction > 0:
            choice("corrupt_modality", self.corrupt_modality, range(len(self.modalities)))
        for m, s in enumerate(self.modalities):
            if not isinstance(s, ModalitySpec):
                raise ValueError(f"modalities[{m}]: expected a ModalitySpec, got {s!r}")
            at = f"modalities[{m}]."
            number(at + "informative", s.informative, low=1, integer=True)
            number(at + "distractors", s.distractors, low=0, integer=True)
            number(at + "components", s.components, low=1, high=2, integer=True)
            number(at + "confuse", s.confuse, low=1, integer=True)
            number(at + "separation", s.separation, low=0)
            number(at + "within", s.within)
            number(at + "noise", s.noise, low=0, low_open=True)
            number(at + "scale", s.scale, low=0, low_open=True)
            if self.num_classes % s.confuse:
                raise ValueError(f"{at}confuse: expected a divisor of num_classes={self.num_classes}, got {s.confuse}")
            # one dimension per distinct class mean: K of them, or K / confuse when within = 0 merges classes
            needed = self.num_classes if s.within else self.num_classes // s.confuse
            if s.informative < needed:
                raise ValueError(f"{at}informative: expected >= {needed} dimensions, got {s.informative}")
        return self


# ------------------------------------------------------------------------------------------ generative model
class _ModalityModel:
    """The fixed parameters of one modality, drawn once from the benchmark seed."""

    def __init__(self, spec: ModalitySpec, num_classes: int, rng: np.random.Generator):
        self.spec = spec
        k = num_classes
        n_groups = k // spec.confuse
        d = spec.informative
        directions = _orthonormal(rng, d, n_groups + k)
        centres, fine = directions[:n_groups], directions[n_groups:]
        means = np.stack([centres[c // spec.confuse] + spec.within * fine[c] for c in range(k)])
        means *= (
            spec.separation / max(np.linalg.norm(means, axis=1, keepdims=True).mean(), 1e-12)
            if spec.separation > 0
            else 0.0
        )
        self.means = means  # (K, informative)
        if spec.components == 2:
            self.component_means = np.stack([means, -means], axis=1)  # (K, 2, informative)
        else:
            self.component_means = means[:, None, :]  # (K, 1, informative)
        self.rotation = _orthonormal(rng, spec.dim, spec.dim) if spec.mixing else np.eye(spec.dim)

    def sample(self, y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        s = self.spec
        comp = rng.integers(s.components, size=len(y))
        latent = self.component_means[y, comp] + s.noise * rng.standard_normal((len(y), s.informative))
        distract = s.noise * rng.standard_normal((len(y), s.distractors))
        full = np.concatenate([latent, distract], axis=1)
        return (full @ self.rotation) * s.scale

    def log_likelihood(self, x: np.ndarray) -> np.ndarray:
        """log p(x | y = k) up to a class-independent constant, (N, K)."""
        s = self.spec
        latent = (x / s.scale) @ self.rotation.T
        latent = latent[:, : s.informative]
        diff = latent[:, None, None, :] - self.component_means[None]  # (N, K, C, I)
        sq = np.sum(diff * diff, axis=-1) / (2 * s.noise**2)
        return logsumexp(-sq, axis=2)  # (N, K)


def _orthonormal(rng, d: int, count: int) -> np.ndarray:
    """``count`` unit vectors in R^d, orthonormal when count <= d (else random unit vectors)."""
    if count <= d:
        q, _ = np.linalg.qr(rng.standard_normal((d, d)))
        return q[:count] if count < d else q.T
    v = rng.standard_normal((count, d))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _models(config: DataConfig):
    rng = np.random.default_rng([config.seed, 0])
    return [_ModalityModel(s, config.num_classes, rng) for s in config.modalities]


def bayes_accuracy(config: DataConfig, n: int | None = None) -> dict:
    """Bayes-optimal test accuracy of each modality alone and of all fused, from the known model.

    Monte Carlo over ``n`` fresh clean samples with the exact posterior; also returns the standard error.
    """
    config.validate()
    n = n or config.n_bayes
    models = _models(config)
    rng = np.random.default_rng([config.seed, 1])
    y = rng.integers(config.num_classes, size=n)
    total = np.zeros((n, config.num_classes))
    result = {}
    for m, model in enumerate(models):
        ll = model.log_likelihood(model.sample(y, rng))
        total += ll
        result[f"modality {m}"] = float(np.mean(ll.argmax(1) == y))
    result["fused"] = float(np.mean(total.argmax(1) == y))
    result["stderr"] = float(np.sqrt(0.25 / n))
    return result


def generate(config: DataConfig, name: str = "custom", with_bayes: bool = True) -> Dataset:
    """Draw a benchmark deterministically from ``config.seed``."""
    config.validate()
    models = _models(config)
    rng = np.random.default_rng([config.seed, 2])
    splits = {}
    for split in ("train", "val", "test"):
        n = getattr(config, f"n_{split}")
        y = rng.permutation(np.arange(n) % config.num_classes)  # balanced classes
        xs = [mod.sample(y, rng).astype(np.float32) for mod in models]
        splits[split] = (xs, y.astype(np.int64))
    xs, y = splits["train"]
    clean_y = y.copy()
    if config.label_noise > 0:
        flip = rng.random(len(y)) < config.label_noise
        shift = rng.integers(1, config.num_classes, size=len(y))
        y = np.where(flip, (y + shift) % config.num_classes, y)
    mask = np.zeros(len(y), dtype=bool)
    if config.corrupt_fraction > 0:
        m = config.corrupt_modality
        mask = rng.random(len(y)) < config.corrupt_fraction
        std = xs[m].std(axis=0, keepdims=True)
        noise = (rng.standard_normal(xs[m].shape) * std * 3.0).astype(np.float32)  # loud, uninformative
        xs[m] = np.where(mask[:, None], noise, xs[m]).astype(np.float32)
    return Dataset(
        xs,
        y,
        *splits["val"],
        *splits["test"],
        config=config,
        name=name,
        bayes=bayes_accuracy(config) if with_bayes else {},
        clean_y_train=clean_y,
        corrupted_mask=mask,
        provenance={"source": "mini_cal.synthetic", "seed": config.seed},
    )


# -------------------------------------------------------------------------------------------------- presets
def _default_modalities():
    return [
        # "audio": easy and fast; it tells groups of two classes apart well, the classes inside a group poorly
        ModalitySpec("A", informative=8, distractors=8, separation=3.0, confuse=2, within=0.35, scale=1.0),
        # "visual": informative about every class, but XOR-like, hidden among distractors, on a small scale
        ModalitySpec("V", informative=8, distractors=24, separation=3.0, components=2, scale=0.03),
    ]


def _preset_configs() -> dict:
    default = DataConfig(modalities=_default_modalities())
    return {
        "default": default,
        "balanced": replace(default, modalities=[replace(s, scale=1.0) for s in _default_modalities()]),
        "corrupted": replace(default, corrupt_modality=1, corrupt_fraction=0.3),
        "label-noise": replace(default, label_noise=0.2),
        "three": replace(
            default,
            modalities=_default_modalities()
            + [ModalitySpec("T", informative=8, distractors=8, separation=1.5, scale=0.3)],
        ),
        "tiny": replace(default, n_train=200, n_val=100, n_test=200, n_bayes=20_000),
    }


PRESETS = tuple(_preset_configs())


def preset_config(name: str) -> DataConfig:
    """The :class:`DataConfig` of a named preset."""
    configs = _preset_configs()
    return configs[choice("preset", name, sorted(configs))]


def load_preset(name: str) -> Dataset:
    """A named preset, generated in memory from its configuration (deterministic: the same numbers, bit for bit, as
    the file ``mini-cal data generate`` writes; :func:`mini_cal.lab.presets.load_preset` reads that file instead,
    which skips the Monte-Carlo Bayes accuracy)."""
    return generate(preset_config(name), name=name)


def describe(ds: Dataset) -> str:
    """A human-readable summary of a dataset (``mini-cal data describe``); datasets not made by the generator
    get :meth:`Dataset.describe`."""
    c = ds.config
    if not isinstance(c, DataConfig):
        return ds.describe()
    lines = [
        f"preset {ds.name}: {c.num_classes} classes, train/val/test = {c.n_train}/{c.n_val}/{c.n_test}, seed {c.seed}"
    ]
    for m, s in enumerate(c.modalities):
        lines.append(
            f"  modality {m} ({s.name}): {s.dim} features ({s.informative} informative, "
            f"{s.distractors} distractors), separation {s.separation}, components {s.components}, "
            f"confuse {s.confuse}, within {s.within}, scale {s.scale}, "
            f"Bayes-optimal accuracy {ds.bayes.get(f'modality {m}', float('nan')):.4f}"
        )
    lines.append(
        f"  fused Bayes-optimal accuracy {ds.bayes.get('fused', float('nan')):.4f} "
        f"(Monte-Carlo standard error {ds.bayes.get('stderr', float('nan')):.4f})"
    )
    lines.append(
        f"  label noise {c.label_noise}; corrupted modality {c.corrupt_modality} fraction {c.corrupt_fraction}"
    )
    return "\n".join(lines)
