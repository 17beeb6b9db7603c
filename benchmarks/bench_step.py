"""Training-step throughput, GEMM efficiency and peak memory of mini_cal's training loop.

    python benchmarks/bench_step.py                       # CPU (NumPy), both models
    python benchmarks/bench_step.py --device gpu          # GPU (CuPy)
    python benchmarks/bench_step.py --steps 100 --json out.json

Two models of the joint late-fusion network, on the default preset's input dimensions and classes:

* ``default``: hidden (64, 32), batch 64 (the CPU-sized recipe);
* ``wide``: hidden (1024, 1024), batch 1024 (large enough for the matrix products to dominate).

Figures (see benchmarks/README.md):

* step time and throughput: the marginal cost of one step of the real loop, ``mini_cal.train.train`` with the
  joint method, SGD, clipping and per-step diagnostics, measured as (T(S steps) - T(1 step)) / (S - 1) so that
  set-up and evaluation cancel;
* GEMM-bound time: the sum, over every matrix product of one step (forward, backward and the head), of
  ``matmul``'s measured time for that shape and operand layout alone; GEMM efficiency = GEMM-bound time / step
  time, the share of the step that the GEMMs need at the machine's rate. Everything else (elementwise work,
  reductions, the optimiser, Python) is overhead;
* peak memory: ``tracemalloc``'s peak during a short training run (NumPy reports its buffers to it), or the
  CuPy memory pool's high-water mark on the GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

try:
    import mini_cal  # noqa: F401  (installed, or on PYTHONPATH)
except ImportError:  # run from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import mini_cal  # noqa: F401

# NumPy after mini_cal: mini_cal sets one BLAS thread per process unless OPENBLAS_NUM_THREADS (or OMP_/MKL_) is
# set already, and that only works before NumPy loads. So this measures what every mini-cal command runs.
import numpy as np  # noqa: E402

from mini_cal import backend as B
from mini_cal.data import Dataset, from_arrays
from mini_cal.methods import Joint
from mini_cal.synthetic import preset_config
from mini_cal.train import TrainConfig, train

MODELS = {"default": dict(hidden=(64, 32), batch=64), "wide": dict(hidden=(1024, 1024), batch=1024)}
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
clock = CLOCKS["wall"]


# ------------------------------------------------------------------------------------------------- the step
def synthetic_dataset(n_train: int, seed: int = 0) -> Dataset:
    """Random features with the default preset's input dimensions and classes (values do not change the cost)."""
    config = preset_config("default")
    dims = [s.dim for s in config.modalities]
    K = config.num_classes
    g = np.random.default_rng(seed)

    def split(n):
        return [g.standard_normal((n, d), dtype=np.float32) for d in dims], g.integers(K, size=n)

    (xt, yt), (xv, yv), (xs, ys) = split(n_train), split(16), split(16)
    return from_arrays(xt, yt, xv, yv, xs, ys, name="bench")  # a user's own arrays: no generator config needed


def train_time(hidden, batch: int, steps: int) -> float:
    """Seconds (by ``clock``) of ``train`` for one epoch of ``steps`` steps (no probes, no Shapley, tiny
    validation and test splits)."""
    ds = synthetic_dataset(batch * steps)
    config = TrainConfig(epochs=1, batch_size=batch, hidden=hidden, progress=False, probe=False, shapley=False)
    start = clock()
    train(Joint(), ds, config)
    B.synchronize()
    return clock() - start


def step_time(hidden, batch: int, steps: int, repeats: int) -> float:
    """Marginal seconds per training step: the median over repeats of (T(steps) - T(1)) / (steps - 1)."""
    train_time(hidden, batch, 2)  # warm-up: imports, first-touch allocations, CuPy kernel compilation
    estimates = []
    for _ in range(repeats):
        estimates.append((train_time(hidden, batch, steps) - train_time(hidden, batch, 1)) / (steps - 1))
    return statistics.median(estimates)


# ------------------------------------------------------------------------------------------------ the GEMMs
def gemm_shapes(input_dims, hidden, num_classes: int, n: int) -> list:
    """Every matrix product of one step of the joint model, as (layout, m, k, n_out): C (m, n_out) = A (m, k) B.

    Layouts follow the code: ``x w`` (forward), ``dout w.T`` (dx in backward), ``x.T dout`` (dw in backward).
    Per branch: each encoder layer's three products, then the head block's three (z Wh, du Wh.T, z.T du).
    """
    shapes = []
    for d in input_dims:
        widths = (d, *hidden)
        for a, b in zip(widths[:-1], widths[1:]):
            shapes += [("x w", n, a, b), ("dout w.T", n, b, a), ("x.T dout", a, n, b)]
        z = hidden[-1]
        shapes += [("x w", n, z, num_classes), ("dout w.T", n, num_classes, z), ("x.T dout", z, n, num_classes)]
    return shapes


def time_gemm(layout: str, m: int, k: int, n: int, min_time: float = 0.05) -> float:
    """Seconds per ``A @ B`` of the given shape and layout, on the current backend, in float32.

    Calls are timed in runs of at least ``min_time`` seconds with one synchronisation at the end of each run (so
    that a GPU's launch latency is overlapped, as in a training step); the median over five runs is kept.
    """
    rng = B.make_rng(0)
    if layout == "x w":
        a, b = rng.normal((m, k)), rng.normal((k, n))
    elif layout == "dout w.T":
        a, b = rng.normal((m, k)), rng.normal((n, k)).T
    elif layout == "x.T dout":
        a, b = rng.normal((k, m)).T, rng.normal((k, n))
    else:
        raise ValueError(f"layout: expected 'x w', 'dout w.T' or 'x.T dout', got {layout!r}")
    calls = 1
    while True:  # warm up, and find a run length of at least min_time
        start = clock()
        for _ in range(calls):
            a @ b
        B.synchronize()
        if clock() - start >= min_time:
            break
        calls *= 2
    runs = []
    for _ in range(5):
        start = clock()
        for _ in range(calls):
            a @ b
        B.synchronize()
        runs.append((clock() - start) / calls)
    return statistics.median(runs)


def gemm_report(input_dims, hidden, num_classes: int, batch: int) -> dict:
    shapes = gemm_shapes(input_dims, hidden, num_classes, batch)
    cache = {}
    rows = []
    for layout, m, k, n in shapes:
        key = (layout, m, k, n)
        if key not in cache:
            cache[key] = time_gemm(*key)
        t = cache[key]
        rows.append({"layout": layout, "m": m, "k": k, "n": n, "s": t, "gflops": 2 * m * k * n / t / 1e9})
    flops = sum(2 * r["m"] * r["k"] * r["n"] for r in rows)
    return {
        "gemms": rows,
        "flops": flops,
        "gemm_bound_s": sum(r["s"] for r in rows),
        "peak_gflops": max(r["gflops"] for r in rows),
    }


# ---------------------------------------------------------------------------------------------- the memory
def peak_memory(hidden, batch: int, steps: int = 3) -> int:
    """Peak bytes during a short training run: tracemalloc on the host, the CuPy pool's high-water mark on a GPU."""
    if B.get_backend() == "cupy":
        pool = B.xp().get_default_memory_pool()
        pool.free_all_blocks()
        train_time(hidden, batch, steps)
        return int(pool.total_bytes())
    tracemalloc.start()
    try:
        train_time(hidden, batch, steps)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


# ------------------------------------------------------------------------------------------------------ main
def bench_model(name: str, steps: int, repeats: int) -> dict:
    spec = MODELS[name]
    hidden, batch = spec["hidden"], spec["batch"]
    config = preset_config("default")
    dims = tuple(s.dim for s in config.modalities)
    t = step_time(hidden, batch, steps, repeats)
    g = gemm_report(dims, hidden, config.num_classes, batch)
    widths = [(d, *hidden) for d in dims]
    n_params = sum(a * b + b for w in widths for a, b in zip(w[:-1], w[1:]))
    n_params += hidden[-1] * config.num_classes * len(dims) + config.num_classes
    return {
        "model": name,
        "input_dims": dims,
        "hidden": hidden,
        "batch": batch,
        "params": n_params,
        "step_ms": 1e3 * t,
        "samples_per_s": batch / t,
        "gemm_bound_ms": 1e3 * g["gemm_bound_s"],
        "gemm_efficiency": g["gemm_bound_s"] / t,
        "step_gflops": g["flops"] / t / 1e9,
        "peak_gemm_gflops": g["peak_gflops"],
        "peak_memory_mb": peak_memory(hidden, batch) / 2**20,
        "gemms": g["gemms"],
    }


def machine() -> dict:
    info = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "cpus": os.cpu_count(),
        "backend": B.get_backend(),
        "load_average": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "blas_threads": os.environ.get("OPENBLAS_NUM_THREADS"),
    }  # as NumPy read it when it loaded
    try:
        info["blas"] = np.show_config(mode="dicts")["Build Dependencies"]["blas"]["name"]
    except Exception:  # older NumPy
        pass
    if B.get_backend() == "cupy":
        cupy = B.xp()
        info["cupy"] = cupy.__version__
        info["gpu"] = cupy.cuda.runtime.getDeviceProperties(0)["name"].decode()
    return info


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", choices=("cpu", "gpu"), default="cpu", help="cpu (NumPy) or gpu (CuPy)")
    p.add_argument("--steps", type=int, default=30, help="training steps per timed run, >= 2 (default: %(default)s)")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per model; the median is kept (default: 3)")
    p.add_argument("--models", nargs="+", choices=tuple(MODELS), default=list(MODELS), help="models to run")
    p.add_argument(
        "--clock",
        choices=tuple(CLOCKS),
        default="wall",
        help="wall time, or this process's CPU time: steadier on a shared machine; CPU and one BLAS "
        "thread only (default: %(default)s)",
    )
    p.add_argument("--json", metavar="OUT", help="also write the figures to this JSON file")
    args = p.parse_args(argv)
    if args.steps < 2:
        p.error(f"--steps: expected at least 2, got {args.steps}")
    if args.clock == "cpu" and args.device == "gpu":
        p.error("--clock cpu: the GPU's work is not this process's CPU time; use --clock wall with --device gpu")
    if args.clock == "cpu" and os.environ.get("OPENBLAS_NUM_THREADS") != "1":
        p.error(
            "--clock cpu: needs one BLAS thread (OPENBLAS_NUM_THREADS=1, mini_cal's default), got "
            f"{os.environ.get('OPENBLAS_NUM_THREADS')!r}"
        )
    global clock
    clock = CLOCKS[args.clock]
    try:
        B.set_backend("cupy" if args.device == "gpu" else "numpy")
    except RuntimeError as exc:  # CuPy missing, or no CUDA device
        p.error(f"--device {args.device}: {exc}")

    result = {"machine": machine(), "clock": args.clock, "steps": args.steps, "repeats": args.repeats, "models": []}
    print(f"mini_cal training step on {args.device} ({result['machine']})")
    header = (
        f"{'model':8} {'batch':>5} {'params':>9} {'step ms':>9} {'samples/s':>10} {'GEMM ms':>8} "
        f"{'GEMM eff':>8} {'GFLOP/s':>8} {'peak GEMM':>9} {'peak MB':>8}"
    )
    print(header)
    for name in args.models:
        r = bench_model(name, args.steps, args.repeats)
        result["models"].append(r)
        print(
            f"{name:8} {r['batch']:5d} {r['params']:9d} {r['step_ms']:9.3f} {r['samples_per_s']:10.0f} "
            f"{r['gemm_bound_ms']:8.3f} {r['gemm_efficiency']:8.1%} {r['step_gflops']:8.1f} "
            f"{r['peak_gemm_gflops']:9.1f} {r['peak_memory_mb']:8.1f}"
        )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=1)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
