"""Where the CPU time of `mini-cal compare` goes: per training run by phase, and per process for a whole compare.

    python benchmarks/bench_phases.py runs                       # every default method, seeds 0 and 1, 40 epochs
    python benchmarks/bench_phases.py runs --methods joint cal --seeds 3
    python benchmarks/bench_phases.py compare                    # one whole default compare (--jobs 2), in process
    python benchmarks/bench_phases.py compare -- --seeds 2 --epochs 5
    python benchmarks/bench_phases.py step joint cal             # one training step, part by part (microseconds)

CPU seconds (``time.process_time`` / ``resource.getrusage``), not wall time: on a machine shared with other jobs
the wall clock measures the other jobs too. Both modes run mini_cal in this process, with its one-BLAS-thread
default (this script imports mini_cal before NumPy).

``runs``: each run is ``mini_cal.lab.runs.run_one`` (what compare's workers run), with these parts timed:

* validation per epoch: the loop's ``metrics`` on the validation split after every epoch;
* final evaluation: validation and test metrics of the selected parameters; Shapley on test: the test evaluation
  over every coalition (methods that train all branches);
* probes: the linear probes of the frozen encoders (L-BFGS in SciPy);
* history: ``record_step`` (per step: its calls are counted and its CPU time per call measured afterwards by
  replaying the last call 2,000 times, because a CPU-time read costs ~6 us here, as much as the call) and
  ``epoch_means``; record building: the rest of ``run_one`` after ``train``;
* training steps: the remainder of ``train`` (batches, forward, loss, backward, the method's gradient change,
  norms, clipping, the optimiser, the hooks).

``step``: each part of one training step of the loop in :func:`mini_cal.train.train` (after warm-up, so that
CAL's acceleration is on), repeated on the same batch: CPU microseconds per call. The parts are the loop's own
calls; their sum is close to the step ``bench_step.py`` measures.

``compare``: `mini-cal compare` (``mini_cal.lab.cli.main``) in this process, split into the interpreter's start-up,
imports, the runs (this process's share: the pool; the workers' CPU apart), the figures and results.json; the
workers are forked, so they import nothing.
"""

from __future__ import annotations

import os
import resource
import sys
import time

_START_CPU = time.process_time()  # the interpreter's start-up, before this script's imports

from pathlib import Path  # noqa: E402

try:
    import mini_cal  # noqa: F401  (installed, or on PYTHONPATH); before NumPy: one BLAS thread
except ImportError:  # run from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import mini_cal  # noqa: F401

import argparse  # noqa: E402
import json  # noqa: E402
import tempfile  # noqa: E402

PHASES = (
    "training steps",
    "validation per epoch",
    "final evaluation",
    "Shapley on test",
    "probes",
    "history: record_step",
    "history: epoch_means",
    "record building",
)


def _cpu(who=resource.RUSAGE_SELF) -> float:
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


# ------------------------------------------------------------------------------------------------------ runs
def time_runs(methods, seeds: int, preset: str = "default", epochs: int | None = None) -> dict:
    """{method: {phase: CPU seconds per run}} (means over ``seeds`` runs), with "total" per run."""
    from mini_cal import train as T
    from mini_cal.lab import runs
    from mini_cal.methods import tuned_config

    acc = {}
    state = {"in_finish": False}

    def add(label, seconds):
        acc[label] = acc.get(label, 0.0) + seconds

    def timed(fn, label, clock=time.process_time):
        def wrapper(*args, **kwargs):
            start = clock()
            try:
                return fn(*args, **kwargs)
            finally:
                add(label, clock() - start)

        return wrapper

    originals = {
        "evaluate": T.metrics,
        "finish": T.finish,
        "linear_probe": T.linear_probe,
        "record_step": T.record_step,
        "epoch_means": runs.epoch_means,
        "train": runs.train,
    }

    def evaluate(*args, **kwargs):
        if not state["in_finish"]:
            label = "validation per epoch"
        else:
            label = "Shapley on test" if kwargs.get("with_shapley") else "final evaluation"
        return timed(originals["evaluate"], label)(*args, **kwargs)

    def finish(*args, **kwargs):
        state["in_finish"] = True
        try:
            return originals["finish"](*args, **kwargs)
        finally:
            state["in_finish"] = False

    T.metrics, T.finish = evaluate, finish
    T.linear_probe = timed(originals["linear_probe"], "probes")
    steps = {"count": 0, "last": None}

    def record_step(*args, **kwargs):  # counted here, timed afterwards by replaying the last call
        steps["count"] += 1
        steps["last"] = (args, kwargs)
        return originals["record_step"](*args, **kwargs)

    T.record_step = record_step
    runs.epoch_means = timed(originals["epoch_means"], "history: epoch_means")
    runs.train = timed(originals["train"], "train")
    try:
        source = runs.data_source(preset)
        runs.load_source(source)
        for name in methods:  # warm-up, untimed: first calls (SciPy, NumPy dispatch caches)
            runs.run_one(
                {"data": source, "method": name, "config": tuned_config(name, None), "seed": 0, "train": {"epochs": 1}}
            )
        report = {}
        for name in methods:
            acc.clear()
            start = time.process_time()
            steps["count"] = 0
            for seed in range(seeds):
                task = {"data": source, "method": name, "config": tuned_config(name, None), "seed": seed}
                if epochs:
                    task["train"] = {"epochs": epochs}
                runs.run_one(task)
            total = time.process_time() - start
            add("history: record_step", steps["count"] * replay(originals["record_step"], *steps["last"]))
            inside = sum(v for k, v in acc.items() if k not in ("train", "history: epoch_means"))
            row = {
                "training steps": acc["train"] - inside,
                **{k: acc.get(k, 0.0) for k in PHASES[1:-1]},
                "record building": total - acc["train"] - acc.get("history: epoch_means", 0.0),
                "total": total,
            }
            report[name] = {k: v / seeds for k, v in row.items()}
    finally:
        T.metrics, T.finish, T.linear_probe, T.record_step = (
            originals["evaluate"],
            originals["finish"],
            originals["linear_probe"],
            originals["record_step"],
        )
        runs.epoch_means, runs.train = originals["epoch_means"], originals["train"]
    return report


def replay(fn, args, kwargs, calls: int = 2000) -> float:
    """CPU seconds per call of ``fn(*args, **kwargs)``, from ``calls`` calls under one pair of clock reads (a
    CPU-time read costs ~6 us here: as much as a ``record_step``). Its rows go to the finished run's history."""
    start = time.process_time()
    for _ in range(calls):
        fn(*args, **kwargs)
    return (time.process_time() - start) / calls


def print_runs(report: dict, seeds: int) -> None:
    names = list(report)
    print(f"CPU seconds per run (mean over {seeds} seed(s)); load average {os.getloadavg()}")
    print("| phase | " + " | ".join(names) + " | sum | share |")
    print("|---|" + "---:|" * (len(names) + 2))
    grand = sum(report[n]["total"] for n in names)
    for phase in (*PHASES, "total"):
        values = [report[n][phase] for n in names]
        cells = " | ".join(f"{v:.3f}" for v in values)
        print(f"| {phase} | {cells} | {sum(values):.3f} | {sum(values) / grand:.1%} |")


# --------------------------------------------------------------------------------------------------- compare
def time_compare(compare_args) -> dict:
    """CPU seconds of one `mini-cal compare` run in this process, by phase, and of its worker processes."""
    imports_start = _cpu()
    from mini_cal.lab import cli, io, plots
    from mini_cal.lab import experiments as X

    marks = {"start-up: interpreter": _START_CPU, "start-up: imports": _cpu() - imports_start}
    phase = {}

    def timed(module, name, label):
        fn = getattr(module, name)

        def wrapper(*args, **kwargs):
            me, workers = _cpu(), _cpu(resource.RUSAGE_CHILDREN)
            try:
                return fn(*args, **kwargs)
            finally:
                phase[label] = phase.get(label, 0.0) + _cpu() - me
                phase[label + ", workers"] = phase.get(label + ", workers", 0.0) + (
                    _cpu(resource.RUSAGE_CHILDREN) - workers
                )

        setattr(module, name, wrapper)
        return fn

    saved = [
        (X, "compare", timed(X, "compare", "runs")),
        (plots, "comparison_figures", timed(plots, "comparison_figures", "figures")),
        (io, "write_json", timed(io, "write_json", "results.json")),
    ]
    wall = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory() as out:
            before = _cpu()
            cli.main(["compare", "--no-progress", "--out", out, "--overwrite", *compare_args])
            command = _cpu() - before
    finally:
        for module, name, fn in saved:
            setattr(module, name, fn)
    named = sum(v for k, v in phase.items() if not k.endswith("workers"))
    return {
        **marks,
        "runs (this process: the pool)": phase.get("runs", 0.0),
        "runs (workers)": phase.get("runs, workers", 0.0),
        "figures": phase.get("figures", 0.0),
        "results.json": phase.get("results.json", 0.0),
        "tables, model folder, the rest": command - named,
        "this process": _cpu(),
        "workers": _cpu(resource.RUSAGE_CHILDREN),
        "wall (s, for reference only)": time.perf_counter() - wall,
        "load average": os.getloadavg(),
    }


# ------------------------------------------------------------------------------------------------------ step
def time_step(name: str, repeats: int = 2000, preset: str = "default") -> dict:
    """{part: CPU microseconds per call} of one training step of method ``name`` (its tuned configuration, past
    warm-up), each part repeated ``repeats`` times on the same batch."""
    import math

    from mini_cal import backend as B
    from mini_cal import train as T
    from mini_cal.hooks import FiniteGuard
    from mini_cal.lab.runs import load_source
    from mini_cal.methods import make_method, split_config, tuned_config
    from mini_cal.methods.base import StepContext, split_on_device
    from mini_cal.optim import clip_by_global_norm, squared_norms

    ds = load_source({"preset": preset})
    method_kw, train_kw = split_config(tuned_config(name, None))
    method = make_method(name, **method_kw)
    config = T.TrainConfig(**{**train_kw, "progress": False})
    run = T.start_run(method, ds, config)
    model, xp = run.model, B.xp()
    active = method.active_modalities(model.M)
    x_train, Y = split_on_device(ds, "train", config.dtype)
    idx = next(T.batches(run.rng, len(ds.y_train), config.batch_size))
    epoch = getattr(method, "warmup_epochs", 0)  # past any warm-up
    parts = {}

    def part(label, fn):
        fn()
        start = time.process_time()
        for _ in range(repeats):
            fn()
        parts[label] = 1e6 * (time.process_time() - start) / repeats
        return fn()

    xb, yb = part("batch (take)", lambda: ([xp.take(x, idx, axis=0) for x in x_train], xp.take(Y, idx, axis=0)))
    eps = None
    if method.samples_noise:
        eps = part("noise (sample_eps)", lambda: model.sample_eps(len(idx), run.rng, config.dtype, active))
    out = part("forward", lambda: model.forward(run.params, xb, eps=eps, modalities=active))
    ctx = StepContext(model, run.params, out, yb, epoch, 0, run.rng, run.h_y)
    lo = part("method.loss", lambda: method.loss(ctx))
    grads = part("backward", lambda: model.backward(run.params, out, lo.dlogits, lo.dmu, lo.dsigma))
    copies = {k: B.astype(g, g.dtype) for k, g in grads.items()}
    diag = part("method.modify_gradients", lambda: method.modify_gradients(dict(copies), ctx, lo))
    sq = part("squared_norms", lambda: squared_norms(grads))
    norm = math.sqrt(sum(sq.values()))
    part("clip_by_global_norm", lambda: clip_by_global_norm(grads, config.clip_norm, norm=norm))
    part("optimizer.step", lambda: run.optimizer.step(run.params, grads))
    row = part("record_step", lambda: T.record_step(run, epoch, lo, diag, norm, sq, {}))
    guard = FiniteGuard()
    part("hooks (FiniteGuard.on_step)", lambda: guard.on_step(run, row))
    parts["sum"] = sum(parts.values())
    return parts


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="mode", required=True)
    r = sub.add_parser("runs", help="CPU seconds per training run, by phase")
    r.add_argument("--methods", nargs="+", help="methods (default: compare's default set)")
    r.add_argument("--seeds", type=int, default=2, help="runs per method, seeds 0.. (default: %(default)s)")
    r.add_argument("--preset", default="default", help="data preset (default: %(default)s)")
    r.add_argument("--epochs", type=int, help="override the epochs (default: the recipe's 40)")
    r.add_argument("--json", metavar="OUT", help="also write the figures to this JSON file")
    t = sub.add_parser("step", help="CPU microseconds of each part of one training step")
    t.add_argument("methods", nargs="+", help="methods, e.g. joint cal")
    t.add_argument("--repeats", type=int, default=2000, help="calls per part (default: %(default)s)")
    t.add_argument("--json", metavar="OUT", help="also write the figures to this JSON file")
    c = sub.add_parser("compare", help="CPU seconds of one whole `mini-cal compare`, by phase and process")
    c.add_argument("--json", metavar="OUT", help="also write the figures to this JSON file")
    c.add_argument("compare_args", nargs=argparse.REMAINDER, help="options for mini-cal compare, after --")
    args = p.parse_args(argv)
    if args.mode == "runs":
        if args.seeds < 1:
            p.error(f"--seeds: expected at least 1, got {args.seeds}")
        from mini_cal.lab.runs import load_source
        from mini_cal.methods import default_methods

        methods = args.methods or default_methods(load_source({"preset": args.preset}).num_modalities)
        result = time_runs(methods, args.seeds, args.preset, args.epochs)
        print_runs(result, args.seeds)
    elif args.mode == "step":
        result = {name: time_step(name, args.repeats) for name in args.methods}
        print(f"CPU microseconds per call, {args.repeats} calls each; load average {os.getloadavg()}")
        print("| part | " + " | ".join(result) + " |")
        print("|---|" + "---:|" * len(result))
        for label in max(result.values(), key=len):  # the method with the most parts lists them in step order
            print(
                f"| {label} | " + " | ".join(f"{r[label]:.1f}" if label in r else "-" for r in result.values()) + " |"
            )
    else:
        extra = args.compare_args[1:] if args.compare_args[:1] == ["--"] else args.compare_args
        if "--jobs" not in extra:
            extra = ["--jobs", "2", *extra]
        result = time_compare(extra)
        for k, v in result.items():
            print(f"{k:34s} {v if isinstance(v, tuple) else round(v, 3)}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=1)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
