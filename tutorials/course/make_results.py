"""Write the multi-seed results files that the notebooks load (``tutorials/data/``).

    python tutorials/course/make_results.py            # from the repository root; about a minute on 2 idle cores

It runs :func:`mini_cal.experiments.compare` (what ``mini-cal compare --seeds 10`` runs) on the default preset with
every method of ``mini-cal compare`` plus ``ogm-ge-no-ge``, each with its tuned configuration, seeds 0-9, and keeps
a compact summary: per method and seed the test accuracy, the coalition accuracy and the linear-probe accuracy of
each modality, the Shapley values of accuracy and the mean coefficient applied to each branch after warm-up; per
method the per-epoch means over seeds of the validation accuracies and coefficients; CAL's paired tests. The file
records the command that made it, the library version and the wall time.
"""

from __future__ import annotations

import json
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # the mini_cal next to this folder, not another installed copy

import numpy as np  # noqa: E402

import mini_cal  # noqa: E402
from mini_cal import experiments as X  # noqa: E402

OUT = ROOT / "tutorials" / "data" / "compare_default.json"
METHODS = X.DEFAULT_METHODS + ("ogm-ge-no-ge",)
SEEDS = 10
JOBS = 2
WARMUP = 5  # ARL's and CAL's warm-up epochs: the coefficients are averaged over the epochs after it
COMMAND = (
    f"python tutorials/course/make_results.py   (= mini_cal.experiments.compare('default', "
    f"methods={list(METHODS)}, seeds={SEEDS}, jobs={JOBS}); the same runs as "
    f"`mini-cal compare --seeds {SEEDS} --jobs {JOBS} --methods {' '.join(METHODS)}`)"
)


def _r(x, digits=4):
    """Round floats (and lists of them) for a small file."""
    if isinstance(x, (list, tuple)):
        return [_r(v, digits) for v in x]
    return None if x is None else round(float(x), digits)


def summarise(result: dict) -> dict:
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
        "what": "mini_cal compare on the default preset: tuned configurations, test split, seeds 0..9",
        "command": COMMAND,
        "mini_cal_version": mini_cal.__version__,
        "python": platform.python_version(),
        "made": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "wall_time_s": round(result["wall_time_s"], 1),
        "preset": result["preset"],
        "seeds": result["seeds"],
        "modality_names": result["modality_names"],
        "bayes": {k: _r(v) for k, v in result["bayes"].items()},
        "methods": result["methods"],
        "configs": {name: X.tuned_config(name) for name in result["methods"]},
        "per_seed": per_seed,
        "per_epoch_mean_over_seeds": curves,
        "significance_cal_vs": [
            {k: (_r(v) if isinstance(v, float) else v) for k, v in row.items()} for row in result["significance"]
        ],
    }


def main() -> None:
    result = X.compare("default", methods=METHODS, seeds=SEEDS, jobs=JOBS, progress=True)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(summarise(result), indent=1, allow_nan=True)
    OUT.write_text(text + "\n")
    print(f"wrote {OUT} ({len(text) / 1000:.0f} kB) in {result['wall_time_s']:.0f} s")


if __name__ == "__main__":
    main()
