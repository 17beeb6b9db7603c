#!/usr/bin/env python3
"""Regenerate mini_cal's synthetic benchmark presets into this folder (deterministic from each preset's seed).

    python synthetic_data/generate.py            # every shipped preset
    python synthetic_data/generate.py default    # just one

The generative model and the presets are defined in mini_cal/synthetic.py; see README.md here for the datasheet.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mini_cal import synthetic  # noqa: E402
from mini_cal.lab.presets import WRITTEN_PRESETS, write_presets  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "names",
        nargs="*",
        help=f"presets to write (default: {' '.join(WRITTEN_PRESETS)}); known: {' '.join(synthetic.PRESETS)}",
    )
    args = p.parse_args(argv)
    try:
        write_presets(args.names or None, out_dir=Path(__file__).resolve().parent)
    except ValueError as exc:
        p.error(str(exc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
