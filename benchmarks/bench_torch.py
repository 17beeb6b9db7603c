"""mini_cal's training step against PyTorch eager on the identical joint network, and both against the GEMM bound.

    python benchmarks/bench_torch.py                       # both models, one thread each (needs torch)
    python benchmarks/bench_torch.py --models default --steps 200 --repeats 7 --json out.json
    pip install -e '.[bench]'                              # the optional extra that brings torch

Only runs when PyTorch is installed; otherwise it says so and exits with status 0 (nothing to compare).

The network is mini_cal's joint late-fusion model on the default preset's input dimensions (16 and 32 features,
4 classes): per modality an MLP encoder ``relu(relu(x W1 + b1) W2 + b2)``, a head written as a sum of
per-modality blocks ``sum_m z^m Wh[m] + bh``, mean softmax cross-entropy on the fused logits, SGD with momentum
0.9 and weight decay 1e-4 (coupled, L2), global-norm clipping at 10, float32. PyTorch gets the same initial
weights (mini_cal's, transposed into ``nn.Linear``'s layout) and checks that its first loss matches mini_cal's.

What each column is:

* **mini_cal step**: the marginal cost of one step of ``mini_cal.train.train`` (the real loop, with its per-step
  diagnostics), (T(S steps) - T(1 step)) / (S - 1), as ``bench_step.py`` measures it;
* **PyTorch step**: one step of an eager PyTorch loop doing the same work per step: index the shuffled batch,
  forward, loss, backward, every parameter's squared gradient norm fetched in one transfer (for the global and
  per-branch norms, as mini_cal records them), clipping, ``torch.optim.SGD`` (``foreach`` left at its default),
  the loss fetched as a Python float. Timed over S steps after a warm-up epoch, divided by S;
* **GEMM bound**: the sum over the step's matrix products of NumPy's time for each shape alone
  (``bench_step.gemm_report``), the floor no implementation of this step on this BLAS can go below.

Both libraries run with the same number of threads (``--threads``, default 1: mini_cal's default BLAS setting),
in one process, interleaved (mini_cal, PyTorch, mini_cal, ...), and the median over ``--repeats`` is kept, so
that a machine shared with other jobs affects both alike.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_THREADS = 1


def _set_threads_before_numpy(argv) -> int:
    """BLAS reads its thread count when NumPy loads: set it from ``--threads`` before anything imports NumPy."""
    threads = DEFAULT_THREADS
    for i, arg in enumerate(argv):
        if arg == "--threads" and i + 1 < len(argv):
            threads = argv[i + 1]
        elif arg.startswith("--threads="):
            threads = arg.split("=", 1)[1]
    try:
        threads = int(threads)
    except ValueError:
        threads = DEFAULT_THREADS  # argparse reports the bad value later
    if "numpy" not in sys.modules:
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = str(max(threads, 1))
    return threads


if __name__ == "__main__":
    _set_threads_before_numpy(sys.argv[1:])

sys.path.insert(0, str(HERE))  # bench_step, next to this file
try:
    import mini_cal  # noqa: F401  (installed, or on PYTHONPATH)
except ImportError:  # run from a checkout without installing
    sys.path.insert(0, str(HERE.parent))
import bench_step  # noqa: E402  (after the thread setting: it imports NumPy)
import numpy as np  # noqa: E402

from mini_cal.methods import Joint  # noqa: E402
from mini_cal.model import Model  # noqa: E402
from mini_cal.synthetic import preset_config  # noqa: E402
from mini_cal.train import TrainConfig, start_run  # noqa: E402

MODELS = bench_step.MODELS
SKIP_MESSAGE = (
    "bench_torch.py: skipped, PyTorch is not installed (it is only needed for this comparison: "
    "pip install -e '.[bench]', or any torch wheel for this Python)"
)


def torch_available() -> bool:
    return importlib.util.find_spec("torch") is not None


# ------------------------------------------------------------------------------------------ the same weights
def default_dims() -> tuple:
    config = preset_config("default")
    return tuple(s.dim for s in config.modalities), config.num_classes


def initial_params(hidden, seed: int = 0) -> tuple:
    """mini_cal's initial parameters of the joint model (as ``train`` draws them for ``seed``), and the model."""
    dims, K = default_dims()
    ds = bench_step.synthetic_dataset(16)
    run = start_run(Joint(), ds, TrainConfig(hidden=tuple(hidden), seed=seed, progress=False))
    assert run.model.config.input_dims == dims and run.model.config.num_classes == K
    return run.model, {k: np.asarray(v) for k, v in run.params.items()}


def torch_layout(model: Model, params: dict) -> dict:
    """mini_cal's parameters in ``torch.nn.Linear``'s layout: ``weight`` (out, in) = W.T, ``bias`` (out,).

    Keys: ``b{m}.{l}.weight``/``.bias`` for encoder layer l (1-based) of branch m, ``head.{m}.weight`` for the
    head block of modality m (no bias) and ``head.bias``. NumPy arrays, C-contiguous."""
    out = {}
    for m in range(model.M):
        for l in range(1, len(model.config.hidden) + 1):
            out[f"b{m}.{l}.weight"] = np.ascontiguousarray(params[f"b{m}.W{l}"].T)
            out[f"b{m}.{l}.bias"] = np.ascontiguousarray(params[f"b{m}.b{l}"])
        out[f"head.{m}.weight"] = np.ascontiguousarray(params[f"head.W{m}"].T)
    out["head.bias"] = np.ascontiguousarray(params["head.b"])
    return out


def logits_torch_layout(tparams: dict, xs, hidden) -> np.ndarray:
    """The fused logits computed from the torch-layout weights with NumPy (``x weight.T + bias``): the check that
    :func:`torch_layout` describes the same network (``tests/test_speed_bench.py``)."""
    logits = tparams["head.bias"]
    for m, x in enumerate(xs):
        h = x
        for l in range(1, len(hidden) + 1):
            h = np.maximum(h @ tparams[f"b{m}.{l}.weight"].T + tparams[f"b{m}.{l}.bias"], 0.0)
        logits = logits + h @ tparams[f"head.{m}.weight"].T
    return logits


# ---------------------------------------------------------------------------------------------- the two steps
def mini_cal_step(hidden, batch: int, steps: int) -> float:
    """Seconds per step of mini_cal's real loop: (T(steps) - T(1)) / (steps - 1), one estimate."""
    return (bench_step.train_time(hidden, batch, steps) - bench_step.train_time(hidden, batch, 1)) / (steps - 1)


class TorchJoint:
    """The joint network in PyTorch eager, with mini_cal's initial weights; one epoch of steps by :meth:`epoch`."""

    def __init__(self, hidden, batch: int, steps: int, lr=0.05, momentum=0.9, weight_decay=1e-4, clip=10.0):
        import torch

        self.torch, self.batch, self.clip = torch, batch, clip
        model, params = initial_params(hidden)
        tparams = torch_layout(model, params)
        dims, K = default_dims()
        nn = torch.nn
        self.branches = nn.ModuleList()
        for m, d in enumerate(dims):
            layers, width = [], d
            for l, h in enumerate(hidden, start=1):
                lin = nn.Linear(width, h)
                lin.weight.data.copy_(torch.from_numpy(tparams[f"b{m}.{l}.weight"]))
                lin.bias.data.copy_(torch.from_numpy(tparams[f"b{m}.{l}.bias"]))
                layers += [lin, nn.ReLU()]
                width = h
            self.branches.append(nn.Sequential(*layers))
        self.head = nn.ModuleList(nn.Linear(hidden[-1], K, bias=False) for _ in dims)
        for m, block in enumerate(self.head):
            block.weight.data.copy_(torch.from_numpy(tparams[f"head.{m}.weight"]))
        self.head_bias = nn.Parameter(torch.from_numpy(tparams["head.bias"].copy()))
        self.params = [*self.branches.parameters(), *self.head.parameters(), self.head_bias]
        self.branch_sizes = [len(list(b.parameters())) for b in self.branches]
        self.opt = torch.optim.SGD(self.params, lr=lr, momentum=momentum, weight_decay=weight_decay)
        ds = bench_step.synthetic_dataset(batch * steps)
        self.xs = [torch.from_numpy(np.ascontiguousarray(x)) for x in ds.x_train]
        self.y = torch.from_numpy(np.asarray(ds.y_train, dtype=np.int64))
        self.n = len(ds.y_train)
        self.generator = torch.Generator().manual_seed(0)
        self.history = []

    def logits(self, xs):
        out = self.head_bias
        for branch, block, x in zip(self.branches, self.head, xs):
            out = out + block(branch(x))
        return out

    def step(self, idx) -> float:
        torch = self.torch
        xb, yb = [x.index_select(0, idx) for x in self.xs], self.y.index_select(0, idx)
        loss = torch.nn.functional.cross_entropy(self.logits(xb), yb)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        grads = [p.grad for p in self.params]
        sq = torch.stack([(g * g).sum() for g in grads]).tolist()  # one transfer for every norm, as mini_cal
        norm = sum(sq) ** 0.5
        if norm > self.clip:
            for g in grads:
                g.mul_(self.clip / (norm + 1e-12))
        self.opt.step()
        start, branch_norms = 0, []
        for size in self.branch_sizes:
            branch_norms.append(sum(sq[start : start + size]) ** 0.5)
            start += size
        value = loss.item()
        self.history.append({"loss": value, "grad_norm": norm, "branch_grad_norm": branch_norms})
        return value

    def epoch(self) -> None:
        perm = self.torch.randperm(self.n, generator=self.generator)
        for start in range(0, self.n, self.batch):
            self.step(perm[start : start + self.batch])


def torch_step(net: TorchJoint, steps: int) -> float:
    """Seconds per step of one epoch of ``steps`` steps (the network is already warm)."""
    start = time.perf_counter()
    net.epoch()
    return (time.perf_counter() - start) / steps


def first_loss_gap(hidden) -> float:
    """|first-step loss in PyTorch - in mini_cal| on the same batch and weights (float32: ~1e-7 expected)."""
    import torch

    net = TorchJoint(hidden, batch=64, steps=1)
    model, params = initial_params(hidden)
    ds = bench_step.synthetic_dataset(64)
    from mini_cal import layers as L

    logits = model.logits(params, [np.asarray(x) for x in ds.x_train])
    mine, _ = L.softmax_ce_forward(logits, L.one_hot(np.asarray(ds.y_train), model.config.num_classes))
    with torch.no_grad():
        theirs = torch.nn.functional.cross_entropy(net.logits(net.xs), net.y).item()
    return abs(float(mine) - theirs)


# ------------------------------------------------------------------------------------------------------- main
def bench_model(name: str, steps: int, repeats: int) -> dict:
    hidden, batch = MODELS[name]["hidden"], MODELS[name]["batch"]
    dims, K = default_dims()
    net = TorchJoint(hidden, batch, steps)
    net.epoch()  # warm-up: allocator, first-call dispatch
    mini_cal_step(hidden, batch, 2)  # warm-up
    ours, theirs = [], []
    for _ in range(repeats):  # interleaved, so that a change in the machine's load hits both
        ours.append(mini_cal_step(hidden, batch, steps))
        theirs.append(torch_step(net, steps))
    g = bench_step.gemm_report(dims, hidden, K, batch)
    mc, pt, bound = statistics.median(ours), statistics.median(theirs), g["gemm_bound_s"]
    return {
        "model": name,
        "hidden": list(hidden),
        "batch": batch,
        "mini_cal_step_ms": 1e3 * mc,
        "torch_step_ms": 1e3 * pt,
        "gemm_bound_ms": 1e3 * bound,
        "mini_cal_over_bound": mc / bound,
        "torch_over_bound": pt / bound,
        "torch_over_mini_cal": pt / mc,
        "first_loss_gap": first_loss_gap(hidden),
        "mini_cal_runs_ms": [1e3 * t for t in ours],
        "torch_runs_ms": [1e3 * t for t in theirs],
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", nargs="+", choices=tuple(MODELS), default=list(MODELS), help="models to run")
    p.add_argument("--steps", type=int, default=100, help="steps per timed epoch, >= 2 (default: %(default)s)")
    p.add_argument("--repeats", type=int, default=5, help="interleaved repeats; medians kept (default: %(default)s)")
    p.add_argument("--threads", type=int, default=DEFAULT_THREADS, help="threads for both (default: %(default)s)")
    p.add_argument("--json", metavar="OUT", help="also write the figures to this JSON file")
    args = p.parse_args(argv)
    if args.steps < 2:
        p.error(f"--steps: expected at least 2, got {args.steps}")
    if args.repeats < 1:
        p.error(f"--repeats: expected at least 1, got {args.repeats}")
    if args.threads < 1:
        p.error(f"--threads: expected at least 1, got {args.threads}")
    if not torch_available():
        print(SKIP_MESSAGE)
        return 0
    import torch

    torch.set_num_threads(args.threads)
    blas = os.environ.get("OPENBLAS_NUM_THREADS")
    if blas != str(args.threads):
        print(f"warning: NumPy's BLAS was loaded with OPENBLAS_NUM_THREADS={blas!r}, not {args.threads}")
    info = {
        "torch": torch.__version__,
        "numpy": np.__version__,
        "threads": args.threads,
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }
    print(f"mini_cal vs PyTorch eager, joint network, {args.threads} thread(s) each ({info})")
    header = (
        f"{'model':8} {'batch':>5} {'mini_cal ms':>11} {'torch ms':>9} {'GEMM ms':>8} "
        f"{'mini_cal/bound':>14} {'torch/bound':>11} {'torch/mini_cal':>14}"
    )
    print(header)
    rows = []
    for name in args.models:
        r = bench_model(name, args.steps, args.repeats)
        rows.append(r)
        print(
            f"{name:8} {r['batch']:5d} {r['mini_cal_step_ms']:11.3f} {r['torch_step_ms']:9.3f} "
            f"{r['gemm_bound_ms']:8.3f} {r['mini_cal_over_bound']:13.2f}x {r['torch_over_bound']:10.2f}x "
            f"{r['torch_over_mini_cal']:13.2f}x   (first-loss gap {r['first_loss_gap']:.1e})"
        )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"machine": info, "steps": args.steps, "repeats": args.repeats, "models": rows}, fh, indent=1)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
