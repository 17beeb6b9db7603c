"""The ``mini-cal`` command.

    mini-cal compare                                    CAL against its peers over seeds, tables and figures
    mini-cal sweep                                      equal-budget hyper-parameter search on validation
    mini-cal train --method joint --preset default      train one method, print a result table
    mini-cal data describe default                      the generative model and Bayes-optimal accuracies
    mini-cal data generate [NAME ...]                   write preset files into synthetic_data/

Run ``mini-cal COMMAND --help`` for every option.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

from . import backend as B
from . import data


def _add_common_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", default="default", help=f"synthetic benchmark, one of {', '.join(data.PRESETS)} "
                                                       "(default: %(default)s)")
    p.add_argument("--device", choices=("cpu", "gpu"), default="cpu",
                   help="cpu (NumPy) or gpu (CuPy; install with the 'gpu' extra) (default: %(default)s)")
    p.add_argument("--no-progress", action="store_true", help="turn off the progress bars")


def _add_train_options(p: argparse.ArgumentParser) -> None:
    from .train import TrainConfig

    d = TrainConfig()
    _add_common_options(p)
    p.add_argument("--epochs", type=int, default=d.epochs, help="training epochs (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="mini-batch size (default: %(default)s)")
    p.add_argument("--lr", type=float, default=d.lr, help="learning rate (default: %(default)s)")
    p.add_argument("--optimizer", choices=("sgd", "adam"), default=d.optimizer,
                   help="optimiser; SGD with momentum by default, as in OGM-GE and ARL (default: %(default)s)")
    p.add_argument("--weight-decay", type=float, default=d.weight_decay, help="L2 weight decay (default: %(default)s)")


def _method_names() -> list:
    from .methods import REGISTRY, VARIANTS

    return sorted(set(REGISTRY) | set(VARIANTS))


def _add_tuning_options(p: argparse.ArgumentParser) -> None:
    """Where the methods' configurations come from (read by _load_tuned)."""
    p.add_argument("--hparams", help="JSON of tuned configurations (a sweep.json); default: the table in "
                                     "mini_cal/experiments.py")
    p.add_argument("--untuned", action="store_true",
                   help="run every method with the library defaults (SGD, lr 0.05, 40 epochs) instead of its tuned "
                        "configuration")


def _add_run_options(p: argparse.ArgumentParser, what: str) -> None:
    """Options shared by the multi-run commands (compare, robustness, sweep)."""
    p.add_argument("--jobs", type=_positive_int("--jobs"), default=2, help="worker processes; 1 with --device gpu (default: %(default)s)")
    p.add_argument("--out", help=f"output folder (default: results/{what}-PRESET-TIMESTAMP)")
    p.add_argument("--overwrite", action="store_true", help="allow writing into a non-empty --out folder")
    _add_common_options(p)
    p.add_argument("--epochs", type=_positive_int("--epochs"), default=None,
                   help="override the training epochs of every run (default: 40, the protocol's)")


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
    from dataclasses import replace

    from .methods import make_method
    from .report import train_table
    from .train import TrainingInterrupted, train

    _select_device(args.device)
    ds = data.load_preset(args.preset)
    kwargs = {"modality": args.modality} if args.method == "unimodal" else {}
    method = make_method(args.method, **kwargs)
    if args.checkpoint and not args.resume and os.path.exists(args.checkpoint):
        raise ValueError(f"--checkpoint: {args.checkpoint!r} exists; continue that run with --resume "
                         f"{args.checkpoint}, or choose another path (a new run would overwrite it)")
    config = replace(_train_config(args, args.seed), checkpoint_path=args.checkpoint or args.resume,
                     checkpoint_every=args.checkpoint_every)
    try:
        result = train(method, ds, config, resume=args.resume)
    except TrainingInterrupted as exc:
        if exc.path is None:
            print("mini-cal train: interrupted before the first epoch ended; nothing was saved", file=sys.stderr)
        else:
            where = " (no --checkpoint was given: the default location)" if exc.default_location else ""
            print(f"mini-cal train: interrupted; the state at the end of epoch {exc.epoch} is saved in "
                  f"{str(exc.path)!r}{where}\nresume with: {_resume_command(args, exc.path)}", file=sys.stderr)
        return 130
    print(train_table(result, ds))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result.summary(), fh, indent=1)
        print(f"wrote {args.json}")
    return 0


def _resume_command(args, path) -> str:
    """The command line that was run, with ``--resume path`` in place of any earlier ``--resume``."""
    import shlex

    argv, i = [], 0
    while i < len(args.argv):
        if args.argv[i] == "--resume":
            i += 2
            continue
        if not args.argv[i].startswith("--resume="):
            argv.append(args.argv[i])
        i += 1
    return shlex.join(["mini-cal", *argv, "--resume", str(path)])


def _out_dir(path, default_stem: str, overwrite: bool) -> str:
    """An output folder that never silently replaces earlier results."""
    import os
    import time

    if path is None:
        path = os.path.join("results", f"{default_stem}-{time.strftime('%Y%m%d-%H%M%S')}")
    if os.path.isdir(path) and os.listdir(path) and not overwrite:
        raise ValueError(f"--out: folder {path!r} exists and is not empty; choose another or pass --overwrite")
    os.makedirs(path, exist_ok=True)
    return path


def cmd_compare(args) -> int:
    from . import experiments as X
    from .plots import comparison_figures

    _select_device(args.device)
    tuned = _load_tuned(args)
    methods = args.methods or list(X.DEFAULT_METHODS)
    if args.preset == "three" and not args.methods:
        methods = [m for m in methods if m != "arl-released"] + ["unimodal-2"]
    X.validate_methods(methods, args.preset)
    out = _out_dir(args.out, f"compare-{args.preset}", args.overwrite)
    models_dir = os.path.join(out, "models")
    os.makedirs(models_dir, exist_ok=True)
    result = X.compare(args.preset, methods, seeds=args.seeds, jobs=args.jobs, progress=not args.no_progress,
                       tuned=tuned, epochs=args.epochs, models_dir=models_dir)
    tables = (f"## mini-cal compare on preset {args.preset!r}, seeds 0..{len(result['seeds']) - 1} "
              f"(test split, mean ± std)\n\n" + X.results_table(result) +
              "\n\n### Paired significance of CAL against each method (test accuracy, over seeds)\n\n" +
              X.significance_table(result) + "\n\n### Configurations\n\n" + X.config_table(result) +
              f"\n\nwall time {result['wall_time_s']:.1f} s with --jobs {args.jobs}\n")
    print(tables)
    figures = comparison_figures(result, out)
    X.write_json_atomic(result, os.path.join(out, "results.json"))
    X.write_text_atomic(tables, os.path.join(out, "table.md"))
    print(f"wrote {out}/results.json, table.md, {len(figures)} figures and the trained models in {models_dir}")
    return 0


def _load_tuned(args):
    from . import experiments as X

    if args.untuned:
        return {}
    if args.hparams:
        with open(args.hparams) as fh:
            loaded = json.load(fh)
        return loaded.get("chosen", loaded)
    return X.TUNED


def cmd_robustness(args) -> int:
    from . import experiments as X
    from .plots import robustness_figure

    _select_device(args.device)
    methods = args.methods or list(X.DEFAULT_METHODS)
    X.validate_methods(methods, args.preset)
    X.check_saved_models(args.models, methods, args.seeds)
    out = _out_dir(args.out, f"robustness-{args.preset}", args.overwrite)
    result = X.robustness(args.preset, methods, seeds=args.seeds, jobs=args.jobs, progress=not args.no_progress,
                          tuned=_load_tuned(args), epochs=args.epochs, models_dir=args.models)
    text = (f"## mini-cal robustness on preset {args.preset!r}, seeds 0..{len(result['seeds']) - 1} "
            f"(test accuracy under attack, mean ± std; AUC = area under the accuracy-vs-level curve / 10)\n\n"
            + "### AUC of every attack and target\n\n" + X.robustness_auc_summary(result)
            + "\n\n### Accuracy lost from eps = 0 to eps = 10 (lower is more robust)\n\n"
            + X.robustness_auc_summary(result, "drop")
            + "\n\n### Accuracy per level\n\n" + X.robustness_tables(result) + f"\n\nwall time {result['wall_time_s']:.1f} s with --jobs {args.jobs}\n")
    print(text)
    figure = robustness_figure(result, os.path.join(out, "robustness.png"))
    X.write_json_atomic(result, os.path.join(out, "robustness.json"))
    X.write_text_atomic(text, os.path.join(out, "robustness.md"))
    print(f"wrote {out}/robustness.json, robustness.md and {figure}")
    return 0


def cmd_sweep(args) -> int:
    from . import experiments as X

    _select_device(args.device)
    X.validate_methods(args.methods or [], args.preset)
    out = _out_dir(args.out, f"sweep-{args.preset}", args.overwrite)
    result = X.sweep(args.preset, args.methods, budget=args.budget, jobs=args.jobs, progress=not args.no_progress,
                     epochs=args.epochs)
    from .report import markdown_table

    rows = [[t["method"], ", ".join(f"{k}={v}" for k, v in sorted(t["config"].items())), f"{t['val_acc']:.4f}",
             "<- chosen" if result["chosen"][t["method"]] == t["config"] else ""] for t in result["trials"]]
    print(markdown_table(["method", "configuration", "val acc (mean over sweep seeds)", ""], rows))
    print("\nchosen:\n" + json.dumps(result["chosen"], indent=1))
    X.write_json_atomic(result, os.path.join(out, "sweep.json"))
    print(f"wrote {out}/sweep.json (use it with: mini-cal compare --hparams {out}/sweep.json)")
    return 0


def cmd_gradcheck(args) -> int:
    from .report import markdown_table
    from .selfcheck import run_all

    res = run_all(args.seed)
    print(markdown_table(["check (float64, centred differences)", "worst relative error"],
                         [[k, f"{v:.2e}"] for k, v in res.items()]))
    worst = max(res.values())
    print(f"\nworst: {worst:.2e} ({'pass' if worst <= 1e-7 else 'FAIL'} at 1e-7)")
    return 0 if worst <= 1e-7 else 1


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

    p = sub.add_parser("compare", help="train CAL, its ablations and its peers over seeds; tables and figures",
                       description="Train joint, unimodal (each modality), OGM-GE, ARL (paper and as released), CAL "
                                   "and CAL's ablations with their tuned hyper-parameters (chosen on validation by "
                                   "'mini-cal sweep', same budget for all) on seeds 0..S-1. Prints a markdown table "
                                   "(mean ± std over seeds of test metrics), the paired significance of CAL against "
                                   "each method, and writes results.json, table.md and figures to --out.")
    p.add_argument("--methods", nargs="+", default=None, metavar="NAME",
                   help="methods to run (default: joint unimodal-0 unimodal-1 ogm-ge arl arl-released cal "
                        "cal-no-accel cal-no-aib cal-sym-ib cal-gamma0)")
    p.add_argument("--seeds", type=_positive_int("--seeds"), default=10, help="number of seeds (default: %(default)s)")
    _add_tuning_options(p)
    _add_run_options(p, "compare")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("robustness", help="accuracy under test-time noise attacks, per method, over seeds",
                       description="Train every method with its tuned configuration (or load the models that "
                                   "'mini-cal compare' saved, with --models DIR/models), then evaluate the test split "
                                   "under gaussian, salt-and-pepper and missing-modality attacks at noise levels "
                                   "0..10 on each modality and on all (each sample attacked with probability 0.5; "
                                   "see mini_cal/noise.py). Prints accuracy tables and the area under each "
                                   "accuracy-vs-level curve, mean ± std over seeds, and saves the curves as a figure.")
    p.add_argument("--methods", nargs="+", default=None, metavar="NAME", help="methods (default: as compare)")
    p.add_argument("--seeds", type=_positive_int("--seeds"), default=5, help="number of seeds (default: %(default)s)")
    p.add_argument("--models", help="folder of models saved by compare (its OUT/models); skips training")
    _add_tuning_options(p)
    _add_run_options(p, "robustness")
    p.set_defaults(func=cmd_robustness)

    p = sub.add_parser("sweep", help="equal-budget hyper-parameter search on the validation split",
                       description="For each method, draw the same number (--budget) of configurations from its "
                                   "search space (mini_cal/experiments.py SEARCH_SPACES), train each on the sweep "
                                   "seeds and pick the best mean validation accuracy. The test split is not used.")
    p.add_argument("--methods", nargs="+", default=None, metavar="NAME",
                   help="methods to tune (default: joint unimodal-0 unimodal-1 ogm-ge arl cal)")
    p.add_argument("--budget", type=_positive_int("--budget"), default=8,
                   help="configurations per method (default: %(default)s)")
    _add_run_options(p, "sweep")
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("train", help="train one method on a preset and print a result table",
                       description="Train one method on a synthetic preset, select the epoch with the best "
                                   "validation accuracy, and report test metrics (fused accuracy, macro-F1, each "
                                   "modality's coalition and linear-probe accuracy, Shapley values of accuracy).")
    p.add_argument("--method", default="joint", choices=_method_names(),
                   help="training method, with its library defaults (mini-cal compare uses the tuned ones) "
                        "(default: %(default)s)")
    p.add_argument("--modality", type=int, default=0, help="modality index for --method unimodal (default: 0)")
    p.add_argument("--seed", type=int, default=0, help="seed of initialisation and batches (default: 0)")
    p.add_argument("--json", help="also write the metrics to this JSON file")
    p.add_argument("--checkpoint", metavar="PATH",
                   help="write a training checkpoint (.npz) to PATH every --checkpoint-every epochs and after the "
                        "last; Ctrl-C saves the last completed epoch there (without it: to "
                        "checkpoints/METHOD-seedSEED-interrupted.npz)")
    p.add_argument("--checkpoint-every", type=_positive_int("--checkpoint-every"), default=1, metavar="N",
                   help="epochs between checkpoints (default: %(default)s)")
    p.add_argument("--resume", metavar="PATH",
                   help="continue the run saved in PATH, giving the same options as that run (--epochs may be "
                        "larger); the result is bit-identical to an uninterrupted run; checkpoints go on being "
                        "written to PATH unless --checkpoint says otherwise")
    _add_train_options(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("gradcheck", help="check every hand-written backward pass against finite differences",
                       description="Float64 centred-difference checks of each layer and of each method's full "
                                   "model loss (bottleneck with fixed eps, M = 2 and 3); prints the worst relative "
                                   "error of each (tensor-wise, see mini_cal/gradcheck.py).")
    p.add_argument("--seed", type=int, default=0, help="seed of the random inputs (default: 0)")
    p.set_defaults(func=cmd_gradcheck)

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
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except (ValueError, RuntimeError, OSError) as exc:  # CheckpointError is a ValueError; OSError: unwritable paths
        print(f"mini-cal {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except FloatingPointError as exc:  # train.DivergenceError: the message names the last good checkpoint
        print(f"mini-cal {args.command}: training diverged: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"mini-cal {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
