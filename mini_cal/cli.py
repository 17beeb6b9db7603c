"""The ``mini-cal`` command.

    mini-cal train --method joint --preset default      train one method, print a result table
    mini-cal data describe default                      the generative model and Bayes-optimal accuracies
    mini-cal data generate [NAME ...]                   write preset files into synthetic_data/

Run ``mini-cal COMMAND --help`` for every option.
"""
from __future__ import annotations

import argparse
import json
import sys

from . import backend as B
from . import data


def _add_train_options(p: argparse.ArgumentParser) -> None:
    from .train import TrainConfig

    d = TrainConfig()
    p.add_argument("--preset", default="default", help=f"synthetic benchmark, one of {', '.join(data.PRESETS)} "
                                                       "(default: %(default)s)")
    p.add_argument("--epochs", type=int, default=d.epochs, help="training epochs (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="mini-batch size (default: %(default)s)")
    p.add_argument("--lr", type=float, default=d.lr, help="learning rate (default: %(default)s)")
    p.add_argument("--optimizer", choices=("sgd", "adam"), default=d.optimizer,
                   help="optimiser; SGD with momentum by default, as in OGM-GE and ARL (default: %(default)s)")
    p.add_argument("--weight-decay", type=float, default=d.weight_decay, help="L2 weight decay (default: %(default)s)")
    p.add_argument("--device", choices=("cpu", "gpu"), default="cpu",
                   help="cpu (NumPy) or gpu (CuPy; install with the 'gpu' extra) (default: %(default)s)")
    p.add_argument("--no-progress", action="store_true", help="turn off the progress bars")


def _positive_int(name):
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name}: expected a positive integer, got {text!r}") from None
        if value < 1:
            raise argparse.ArgumentTypeError(f"{name}: expected a positive integer, got {value}")
        return value
    return parse


def _train_config(args, seed: int):
    from .train import TrainConfig

    return TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, optimizer=args.optimizer,
                       weight_decay=args.weight_decay, seed=seed, progress=not args.no_progress)


def _select_device(name: str) -> None:
    B.set_backend("cupy" if name == "gpu" else "numpy")


def cmd_train(args) -> int:
    from .methods import make_method
    from .report import train_table
    from .train import train

    _select_device(args.device)
    ds = data.load_preset(args.preset)
    kwargs = {"modality": args.modality} if args.method == "unimodal" else {}
    method = make_method(args.method, **kwargs)
    result = train(method, ds, _train_config(args, args.seed))
    print(train_table(result, ds))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result.summary(), fh, indent=1)
        print(f"wrote {args.json}")
    return 0


def cmd_data(args) -> int:
    if args.action == "describe":
        print(data.describe(data.load_preset(args.names[0] if args.names else "default")))
        return 0
    from .datagen import write_presets

    write_presets(args.names or None, out_dir=args.out)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mini-cal",
        description="mini_cal: Contribution-Guided Asymmetric Learning (CAL, arXiv 2510.26289) and its peers on "
                    "synthetic imbalanced, noisy two-modality data, with every gradient written by hand.",
        epilog="Examples:\n  mini-cal train --method joint\n  mini-cal train --method unimodal --modality 1\n"
               "  mini-cal data describe default",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("train", help="train one method on a preset and print a result table",
                       description="Train one method on a synthetic preset, select the epoch with the best "
                                   "validation accuracy, and report test metrics (fused accuracy, macro-F1, each "
                                   "modality's coalition and linear-probe accuracy, Shapley values of accuracy).")
    p.add_argument("--method", default="joint", choices=("joint", "unimodal"),
                   help="training method (default: %(default)s)")
    p.add_argument("--modality", type=int, default=0, help="modality index for --method unimodal (default: 0)")
    p.add_argument("--seed", type=int, default=0, help="seed of initialisation and batches (default: 0)")
    p.add_argument("--json", help="also write the metrics to this JSON file")
    _add_train_options(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("data", help="describe or (re)generate the synthetic presets",
                       description="describe NAME: the generative model and Bayes-optimal accuracies; "
                                   "generate [NAME ...]: write the preset files, manifest and checksums.")
    p.add_argument("action", choices=("describe", "generate"))
    p.add_argument("names", nargs="*", help=f"preset names ({', '.join(data.PRESETS)})")
    p.add_argument("--out", default=None, help="output folder for generate (default: synthetic_data/)")
    p.set_defaults(func=cmd_data)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except (ValueError, RuntimeError) as exc:
        print(f"mini-cal {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"mini-cal {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
