"""How fast can NumPy run mini_cal's default training step at all? The library's step against a flat one.

    python benchmarks/bench_floor.py                     # default model, wall clock, medians of 7
    python benchmarks/bench_floor.py --clock cpu --steps 64 --repeats 9 --json floor.json

Issue 14 asks for the default model's step (joint, hidden (64, 32), batch 64, with its per-step diagnostics) to
take at most 3x its GEMM-only bound. This script measures, interleaved in one process:

* **library**: the marginal step of ``mini_cal.train.train`` (``bench_step.step_time``: forward, loss, backward,
  every parameter's squared gradient norm, clipping, SGD, the per-step history);
* **flat**: the same step written as one function of plain NumPy calls, with no model, method, loss or history
  objects, all parameters and the velocity in one vector (one SGD update instead of one per parameter), every
  NumPy reduction called directly, the ReLU mask multiplied as booleans, and no gradient for the input features
  (which nothing uses). It does the same arithmetic in the same order (same shuffling, float32,
  per-parameter squared norms for the global norm and clipping, the loss as a Python float) and the script checks
  that after a whole epoch its parameters equal the library's **bit for bit**. It is the cheapest way this step
  can be written in NumPy short of changing the arithmetic, so its time is a floor for the library's;
* **GEMM bound**: ``bench_step.gemm_report``, the step's matrix products timed alone.

It prints the three times and the ratios library / bound and flat / bound.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_step  # noqa: E402  (imports mini_cal before NumPy: one BLAS thread)
import numpy as np  # noqa: E402

from mini_cal import backend as B  # noqa: E402
from mini_cal.methods import Joint  # noqa: E402
from mini_cal.model import Model, ModelConfig  # noqa: E402
from mini_cal.synthetic import preset_config  # noqa: E402
from mini_cal.train import TrainConfig, train  # noqa: E402

HIDDEN, BATCH = bench_step.MODELS["default"]["hidden"], bench_step.MODELS["default"]["batch"]


def library_config() -> TrainConfig:
    return TrainConfig(epochs=1, batch_size=BATCH, hidden=HIDDEN, progress=False, probe=False, shapley=False)


class FlatJoint:
    """The joint late-fusion step of ``train()`` (default TrainConfig: SGD lr 0.05, momentum 0.9, weight decay
    1e-4, clipping at 10), written flat. Parameters live in one vector ``theta``; ``views`` are its named parts."""

    def __init__(self, dataset, config: TrainConfig):
        self.config = config
        dims, K = dataset.input_dims, dataset.num_classes
        model = Model(ModelConfig(dims, K, hidden=config.hidden))
        self.rng = B.make_rng(config.seed)  # as start_run: the initial weights, then every epoch's shuffle
        params = model.init_params(self.rng, dtype=config.dtype)
        self.names = list(params)
        self.sizes = [int(np.prod(params[k].shape)) for k in self.names]
        self.offsets = [sum(self.sizes[:i]) for i in range(len(self.sizes))]
        self.theta = np.concatenate([params[k].reshape(-1) for k in self.names])
        self.velocity = np.zeros_like(self.theta)
        self.views = {
            k: self.theta[o : o + s].reshape(params[k].shape) for k, o, s in zip(self.names, self.offsets, self.sizes)
        }
        self.x = [np.asarray(x, dtype=np.float32) for x in dataset.x_train]
        self.y = np.eye(K, dtype=np.float32)[np.asarray(dataset.y_train)]
        self.M, self.layers = len(dims), len(config.hidden)

    def epoch(self, steps: int | None = None) -> None:
        n = len(self.y)
        perm = self.rng.permutation(n)
        starts = range(0, n, self.config.batch_size)
        for start in list(starts)[:steps]:
            self.step(perm[start : min(start + self.config.batch_size, n)])

    def step(self, idx):
        p, add, maximum = self.views, np.add.reduce, np.maximum.reduce
        y = self.y.take(idx, axis=0)
        n = y.shape[0]
        # forward: per branch, relu(x W + b) per layer, then the head block u = z Wh[m]
        acts, us = [], []
        for m in range(self.M):
            h, layer_acts = self.x[m].take(idx, axis=0), []
            for l in range(1, self.layers + 1):
                a = h @ p[f"b{m}.W{l}"]
                a += p[f"b{m}.b{l}"]
                layer_acts.append((h, np.maximum(a, 0.0)))
                h = layer_acts[-1][1]
            acts.append(layer_acts)
            us.append(h @ p[f"head.W{m}"])
        logits = us[0] + p["head.b"]
        for u in us[1:]:
            logits = logits + u
        # mean softmax cross-entropy and its gradient
        shifted = logits - maximum(logits, axis=1, keepdims=True)
        logp = shifted - np.log(add(np.exp(shifted), axis=1, keepdims=True))
        loss = 0.0 + 1.0 * (-add(y * logp, axis=None) / n)
        d = (np.exp(logp) - y) * (1.0 / n)
        # backward, into a dict in the parameters' order
        grads = {"head.b": np.zeros_like(p["head.b"]) + add(d, axis=0)}
        for m in range(self.M):
            z = acts[m][-1][1]
            grads[f"head.W{m}"] = z.T @ d
            dh = d @ p[f"head.W{m}"].T
            for l in range(self.layers, 0, -1):
                x_in, out = acts[m][l - 1]
                da = dh * (out > 0)  # a boolean mask multiplies as 0/1 without a float copy of it
                if l > 1:  # the input's gradient is not needed
                    dh = da @ p[f"b{m}.W{l}"].T
                grads[f"b{m}.W{l}"], grads[f"b{m}.b{l}"] = x_in.T @ da, add(da, axis=0)
        g = np.concatenate([grads[k].reshape(-1) for k in self.names])
        # diagnostics: every parameter's squared norm (float32 sums, one array), the global norm, the loss
        g2 = g * g
        sq = np.array([add(g2[o : o + s], axis=None) for o, s in zip(self.offsets, self.sizes)]).tolist()
        norm = math.sqrt(sum(sq))
        if norm > self.config.clip_norm:
            g *= self.config.clip_norm / (norm + 1e-12)
        # SGD with momentum and weight decay on the whole vector
        g = g + self.config.weight_decay * self.theta
        self.velocity *= self.config.momentum
        self.velocity += g
        self.theta -= self.config.lr * self.velocity
        return float(loss), norm, sq


def check_same_numbers(steps: int) -> None:
    """The flat step and train() end one epoch of ``steps`` steps with bit-identical parameters."""
    ds = bench_step.synthetic_dataset(BATCH * steps)
    config = library_config()
    lib = train(Joint(), ds, config).params
    flat = FlatJoint(ds, config)
    flat.epoch()
    for k in flat.names:
        if not np.array_equal(lib[k], flat.views[k]):
            raise AssertionError(f"flat step differs from train() in {k}")


def flat_step_time(steps: int) -> float:
    flat = FlatJoint(bench_step.synthetic_dataset(BATCH * steps), library_config())
    flat.epoch(2)  # warm-up
    start = bench_step.clock()
    flat.epoch(steps)
    return (bench_step.clock() - start) / steps


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=40, help="steps per timed run, >= 2 (default: %(default)s)")
    p.add_argument("--repeats", type=int, default=7, help="interleaved timed runs; medians (default: %(default)s)")
    p.add_argument("--clock", choices=tuple(bench_step.CLOCKS), default="wall", help="wall or CPU time")
    p.add_argument("--json", metavar="OUT", help="also write the figures to this JSON file")
    args = p.parse_args(argv)
    if args.steps < 2 or args.repeats < 1:
        p.error(f"--steps >= 2 and --repeats >= 1 expected, got {args.steps} and {args.repeats}")
    bench_step.clock = bench_step.CLOCKS[args.clock]
    check_same_numbers(args.steps)
    lib, flat = [], []
    for _ in range(args.repeats):
        lib.append(bench_step.step_time(HIDDEN, BATCH, args.steps, 1))
        flat.append(flat_step_time(args.steps))
    config = preset_config("default")
    dims = tuple(s.dim for s in config.modalities)
    bound = bench_step.gemm_report(dims, HIDDEN, config.num_classes, BATCH)["gemm_bound_s"]
    t_lib, t_flat = statistics.median(lib), statistics.median(flat)
    result = {
        "machine": bench_step.machine(),
        "clock": args.clock,
        "library_step_ms": 1e3 * t_lib,
        "flat_step_ms": 1e3 * t_flat,
        "gemm_bound_ms": 1e3 * bound,
        "library_over_bound": t_lib / bound,
        "flat_over_bound": t_flat / bound,
        "time": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    print(f"default model (joint, hidden {HIDDEN}, batch {BATCH}), {args.clock} clock, medians of {args.repeats}")
    print(f"{result['machine']}")
    print("flat step: same parameters as train() after an epoch, bit for bit")
    print(f"{'':22} {'ms':>7} {'/ GEMM bound':>13}")
    print(f"{'library step':22} {1e3 * t_lib:7.3f} {t_lib / bound:12.2f}x")
    print(f"{'flat NumPy step':22} {1e3 * t_flat:7.3f} {t_flat / bound:12.2f}x")
    print(f"{'GEMM-only bound':22} {1e3 * bound:7.3f} {1.0:12.2f}x")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=1)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
