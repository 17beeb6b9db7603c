"""Write the multi-seed results files that the notebooks load (``tutorials/data/``).

    python tutorials/course/make_results.py            # from the repository root; several minutes on 2 idle cores
    python tutorials/course/make_results.py --seeds 1 --epochs 6 --out /tmp/check.json   # a quick check

It runs :func:`mini_cal.lab.experiments.compare` (what ``mini-cal compare --seeds 10`` runs) on the default preset
with every method of ``mini-cal compare`` plus ``ogm-ge-no-ge``, each with its tuned configuration, seeds 0-9, and
keeps a compact summary: per method and seed the test accuracy, the coalition accuracy and the linear-probe accuracy
of each modality, the Shapley values of accuracy and the mean coefficient applied to each branch after warm-up; per
method the per-epoch means over seeds of the validation accuracies and coefficients; CAL's paired tests. The file
records the command that made it, the library version and the wall time.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # the mini_cal next to this folder, not another installed copy

import numpy as np  # noqa: E402

import mini_cal  # noqa: E402
from mini_cal.lab.experiments import compare  # noqa: E402
from mini_cal.methods import default_methods, tuned_config  # noqa: E402

OUT = ROOT / "tutorials" / "data" / "compare_default.json"
SOURCE = {"preset": "default"}
METHODS = [*default_methods(2), "ogm-ge-no-ge"]
SEEDS = 10
JOBS = 2
WARMUP = 5  # ARL's and CAL's warm-up epochs: the coefficients are averaged over the epochs after it


def command(seeds: int, jobs: int, epochs: int | None, argv: list) -> str:
    """The command that made the file, and the ``mini-cal compare`` that runs the same runs."""
    more = f", epochs={epochs}" if epochs else ""
    cli = f" --epochs {epochs}" if epochs else ""
    return (
        f"python tutorials/course/make_results.py{''.join(' ' + a for a in argv)}   "
        f"(= mini_cal.lab.experiments.compare({SOURCE}, methods={METHODS}, seeds={seeds}, jobs={jobs}{more}); "
        f"the same runs as `mini-cal compare --seeds {seeds} --jobs {jobs}{cli} --methods {' '.join(METHODS)}`)"
    )


def _r(x, digits=4):
    """Round floats (and lists of them) for a small file."""
    if isinstance(x, (list, tuple)):
        return [_r(v, digits) for v in x]
    return None if x is None else round(float(x), digits)


def summarise(result: dict, command: str) -> dict:
    per_seed, curves = {}, {}
    for name in result["methods"]:
        rows = sorted((r for r in result["records"] if r["method"] == name), key=lambda r: r["seed"])
        per_seed[name] = [
            {
                "seed": r["seed"],
                "test_acc": _r(r["test"]["acc"]),
                "coalition_acc": _r(r["test"]["coalition_acc"]),
                "probe_acc": _r(r["probe_acc"]),
                "shapley_acc": _r(r["test"].get("shapley_acc")),
                "best_epoch": r["best_epoch"] + 1,
                "coef_after_warmup": _r(np.mean(r["step_means"]["coef"][WARMUP:], axis=0).tolist()),
            }
            for r in rows
        ]
        curves[name] = {
            "val_acc": _r(np.mean([[e["val_acc"] for e in r["epochs"]] for r in rows], axis=0).tolist()),
            "val_coalition_acc": _r(
                np.mean([[e["val_coalition_acc"] for e in r["epochs"]] for r in rows], axis=0).tolist()
            ),
            "coef": _r(np.mean([r["step_means"]["coef"] for r in rows], axis=0).tolist()),
        }
    return {
        "what": "mini_cal compare on the default preset: tuned configurations, test split, "
        f"seeds 0..{len(result['seeds']) - 1}",
        "command": command,
        "mini_cal_version": mini_cal.__version__,
        "python": platform.python_version(),
        "made": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "wall_time_s": round(result["wall_time_s"], 1),
        "preset": result["data"]["preset"],
        "seeds": result["seeds"],
        "modality_names": result["modality_names"],
        "bayes": {k: _r(v) for k, v in result["bayes"].items()},
        "methods": result["methods"],
        "configs": {name: tuned_config(name) for name in result["methods"]},
        "per_seed": per_seed,
        "per_epoch_mean_over_seeds": curves,
        "significance_cal_vs": [
            {k: (_r(v) if isinstance(v, float) else v) for k, v in row.items()} for row in result["significance"]
        ],
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Write tutorials/data/compare_default.json (see the docstring).")
    parser.add_argument("--seeds", type=int, default=SEEDS, help="seeds 0..N-1 (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=None, help="override every run's epochs (a quick check)")
    parser.add_argument("--jobs", type=int, default=JOBS, help="worker processes (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=OUT, help="the file to write (default: %(default)s)")
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    result = compare(SOURCE, METHODS, seeds=args.seeds, jobs=args.jobs, epochs=args.epochs, progress=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(summarise(result, command(args.seeds, args.jobs, args.epochs, argv)), indent=1, allow_nan=True)
    args.out.write_text(text + "\n")
    print(f"wrote {args.out} ({len(text) / 1000:.0f} kB) in {result['wall_time_s']:.0f} s")


if __name__ == "__main__":
    main()
