"""Wall time of ``mini-cal compare`` (by default: every method, 10 seeds, 40 epochs, --jobs 2, on the CPU).

    python benchmarks/bench_compare.py                          # the default compare, as README runs it
    python benchmarks/bench_compare.py --json out.json -- --seeds 2 --epochs 5 --device gpu

Everything after ``--`` is passed to ``mini-cal compare``. Results go to a temporary folder that is removed
afterwards; the command's own output is kept in the JSON (its last lines) when ``--json`` is given.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--json", metavar="OUT", help="also write the wall time and the command to this JSON file")
    p.add_argument("compare_args", nargs=argparse.REMAINDER, help="options for mini-cal compare, after --")
    args = p.parse_args(argv)
    extra = args.compare_args[1:] if args.compare_args[:1] == ["--"] else args.compare_args

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "mini_cal", "compare", "--no-progress", "--out", tmp, "--overwrite", *extra]
        print("$ mini-cal " + " ".join(cmd[3:]), flush=True)
        start = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - start
    tail = (proc.stdout + proc.stderr).strip().splitlines()[-15:]
    if proc.returncode != 0:
        print("\n".join(tail), file=sys.stderr)
        print(f"mini-cal compare failed (exit status {proc.returncode}) after {wall:.1f} s", file=sys.stderr)
        return proc.returncode
    print(
        f"mini-cal compare {' '.join(extra) or '(defaults)'}: wall time {wall:.1f} s "
        f"({os.cpu_count()} CPUs, Python {platform.python_version()})"
    )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(
                {"command": cmd[3:], "wall_time_s": wall, "cpus": os.cpu_count(), "output_tail": tail}, fh, indent=1
            )
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
