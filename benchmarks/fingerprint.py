"""Fingerprints of training runs: did a speed change keep every number the same, bit for bit?

    python benchmarks/fingerprint.py before.json                 # on the old version (a checkout, or git stash)
    python benchmarks/fingerprint.py after.json --against before.json

Trains every registered method and variant that runs on two modalities (unimodal-2.. are for more) for 6 epochs on
``--preset tiny``, and joint, CAL, OGM-GE and ARL for 3 epochs on the default preset, seed 0, with probes and
Shapley values, and hashes (SHA-256) each run's validation and test metrics, the full per-epoch and per-step history,
the probe accuracies and the selected parameters' bytes. Writes {run: hash} to the JSON file and prints one hash
over all runs; with ``--against`` it lists the runs whose hash differs and exits with status 1 if any does.
About 5 s on one core.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

try:
    import mini_cal  # noqa: F401  (installed, or on PYTHONPATH)
except ImportError:  # run from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mini_cal.methods import make_method, method_names  # noqa: E402
from mini_cal.synthetic import load_preset  # noqa: E402
from mini_cal.train import TrainConfig, train  # noqa: E402

DEFAULT_PRESET_METHODS = ("joint", "cal", "ogm-ge", "arl")


def runs() -> list:
    """(preset, epochs, method name) of every fingerprinted run."""
    more = {f"unimodal-{m}" for m in range(2, 8)}  # for data with three or more modalities
    two_modalities = [n for n in method_names() if n not in more]
    return [("tiny", 6, n) for n in two_modalities] + [("default", 3, n) for n in DEFAULT_PRESET_METHODS]


def fingerprint(preset: str, epochs: int, name: str) -> str:
    r = train(make_method(name), load_preset(preset), TrainConfig(epochs=epochs, progress=False))
    h = hashlib.sha256()
    summary = r.summary()
    h.update(json.dumps([summary["val"], summary["test"], r.history, r.probe_acc], sort_keys=True).encode())
    for k in sorted(r.params):
        h.update(k.encode())
        h.update(r.params[k].tobytes())
    return h.hexdigest()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("out", help="JSON file to write {run: hash} to")
    p.add_argument("--against", metavar="JSON", help="an earlier output to compare with")
    args = p.parse_args(argv)
    before = None
    if args.against:
        try:
            before = json.loads(Path(args.against).read_text())
        except (OSError, ValueError) as exc:
            p.error(f"--against: cannot read {args.against!r} as a fingerprint JSON file ({exc})")
    hashes = {f"{preset}/{name}": fingerprint(preset, epochs, name) for preset, epochs, name in runs()}
    Path(args.out).write_text(json.dumps(hashes, indent=1) + "\n")
    total = hashlib.sha256(json.dumps(hashes, sort_keys=True).encode()).hexdigest()[:16]
    print(f"{len(hashes)} runs, fingerprint {total}; wrote {args.out}")
    if before is None:
        return 0
    differ = sorted(k for k in set(hashes) | set(before) if hashes.get(k) != before.get(k))
    if differ:
        print(f"{len(differ)} of {len(hashes)} runs differ from {args.against}: {', '.join(differ)}")
        return 1
    print(f"every run is identical to {args.against}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
