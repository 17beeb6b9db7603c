"""Time every tutorial notebook, top to bottom, the way a classroom runs it.

    python benchmarks/bench_notebooks.py              # default mode (the real lesson)
    python benchmarks/bench_notebooks.py --fast       # MINI_CAL_FAST=1 (what the test suite runs)
    python benchmarks/bench_notebooks.py --only 01,04 --no-solutions

Each notebook runs in a fresh python3 kernel, one at a time, in a scratch copy of tutorials/ (so nothing is written
into the checkout) with this checkout's mini_cal first on PYTHONPATH. Prints one line per notebook (wall seconds,
kernel start included; the kernel's CPU seconds, which on a busy machine estimate the wall time on an idle one, since
mini_cal runs single-threaded; and the number of code cells), the total, and the load average before and after: on a
shared machine the load says more about a wall time than the wall time itself. Budget (issue 19): at most 60 s per
notebook in default mode on an idle 2-core machine, and 90 s for the whole course. Exits 1 if any cell raised.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TUTORIALS = ROOT / "tutorials"
NOTEBOOK_BUDGET_S, COURSE_BUDGET_S = 60.0, 90.0


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"


def numpy_first(path: Path) -> bool:
    """Whether the notebook's first code cell loads NumPy (directly or through %matplotlib) before mini_cal: then
    mini_cal's one-BLAS-thread setting comes too late, and training costs two to four times the CPU."""
    import nbformat

    cells = [c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
    if not cells:
        return False
    first = cells[0]
    where = {key: first.find(key) for key in ("import mini_cal", "import numpy", "%matplotlib", "matplotlib")}
    before = [i for key, i in where.items() if key != "import mini_cal" and i != -1]
    return bool(before) and (where["import mini_cal"] == -1 or min(before) < where["import mini_cal"])


def run(path: Path, workdir: Path, fast: bool, timeout: float):
    """Execute one notebook; returns (wall seconds, kernel CPU seconds, code cells, [error descriptions])."""
    import nbclient
    import nbformat

    nb = nbformat.read(path, as_version=4)
    env = {k: v for k, v in os.environ.items() if k != "MINI_CAL_FAST"}
    if fast:
        env["MINI_CAL_FAST"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    client = nbclient.NotebookClient(
        nb,
        timeout=int(timeout),
        kernel_name="python3",
        allow_errors=True,
        resources={"metadata": {"path": str(workdir)}},
    )
    t0, c0 = time.perf_counter(), os.times()
    errors = []
    try:
        client.execute(env=env)
    except Exception as exc:  # a timeout or a dead kernel: reported, and the run counts as failed
        errors.append(f"{type(exc).__name__}: {str(exc)[:200]}")
    wall, c1 = time.perf_counter() - t0, os.times()
    # CPU seconds of the kernel (a child process, reaped at shutdown): what the run costs on an idle machine
    cpu = (c1.children_user - c0.children_user) + (c1.children_system - c0.children_system)
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []) if cell.cell_type == "code" else []:
            if out.get("output_type") == "error":
                errors.append(f"cell {i}: {out.get('ename')}: {str(out.get('evalue'))[:200]}")
    return wall, cpu, sum(c.cell_type == "code" for c in nb.cells), errors


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="set MINI_CAL_FAST=1 (fewer seeds and epochs)")
    parser.add_argument("--only", default="", help="comma-separated notebook name prefixes, e.g. 01,04")
    parser.add_argument(
        "--no-solutions",
        action="store_true",
        help="run a copy without tutorials/solutions, answers/ and TEACHING.md (the handout)",
    )
    parser.add_argument("--timeout", type=float, default=600, help="seconds allowed per cell (default 600)")
    args = parser.parse_args(argv)

    prefixes = [p for p in args.only.split(",") if p]
    notebooks = [p for p in sorted(TUTORIALS.glob("*.ipynb")) if not prefixes or p.name.startswith(tuple(prefixes))]
    if not notebooks:
        print("no notebooks matched", file=sys.stderr)
        return 2
    mode = "fast (MINI_CAL_FAST=1)" if args.fast else "default"
    print(
        f"mode: {mode}{', without solutions/' if args.no_solutions else ''}; cores: {os.cpu_count()}; "
        f"load average before: {load()}"
    )
    skip = ("__pycache__", ".ipynb_checkpoints") + (
        ("solutions", "answers", "TEACHING.md") if args.no_solutions else ()
    )
    rows, failed = [], False
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp) / "tutorials"
        shutil.copytree(TUTORIALS, workdir, ignore=shutil.ignore_patterns(*skip))
        print(f"{'notebook':<36}{'wall s':>8}{'CPU s':>8}{'cells':>7}  {'load after':<17}status")
        for path in notebooks:
            wall, cpu, cells, errors = run(workdir / path.name, workdir, args.fast, args.timeout)
            over = not args.fast and wall > NOTEBOOK_BUDGET_S
            status = "ERROR" if errors else ("over 60 s" if over else "ok")
            print(f"{path.name:<36}{wall:>8.1f}{cpu:>8.1f}{cells:>7}  {load():<17}{status}", flush=True)
            for e in errors:
                print(f"    {e}")
            if numpy_first(path):
                print(
                    "    note: its first cell loads NumPy before mini_cal, so BLAS runs multi-threaded "
                    "(2 to 4 times the CPU); import mini_cal first"
                )
            failed |= bool(errors)
            rows.append((wall, cpu))
    total, total_cpu = sum(r[0] for r in rows), sum(r[1] for r in rows)
    budget = "" if args.fast else f" (budget {COURSE_BUDGET_S:.0f} s: {'ok' if total <= COURSE_BUDGET_S else 'over'})"
    print(f"{'total':<36}{total:>8.1f}{total_cpu:>8.1f}{'':>7}  {load():<17}{budget}")
    print(f"load average after: {load()} (timings are comparable only at similar load)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
