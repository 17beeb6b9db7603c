"""The ``mini-cal`` command.

    mini-cal compare                                    CAL against its peers over seeds, tables and figures
    mini-cal sweep                                      equal-budget hyper-parameter search on validation
    mini-cal train --method joint --preset default      train one method, print a result table
    mini-cal data describe default                      the generative model and Bayes-optimal accuracies
    mini-cal data generate [NAME ...]                   write preset files into synthetic_data/
    mini-cal compare --data FILE.npz                    the same comparison on your own features

Run ``mini-cal COMMAND --help`` for every option.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import signal
import sys

from .. import backend as B
from .. import synthetic
from ..checks import number


def _add_data_options(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument(
        "--preset", default=None, help=f"synthetic benchmark, one of {', '.join(synthetic.PRESETS)} (default: default)"
    )
    g.add_argument(
        "--data",
        metavar="FILE.npz",
        default=None,
        help="your own features instead of a preset: an .npz with x_<split>_<modality> and y_<split> "
        "arrays (format: docs/data.md); val/test are split off train when absent",
    )
    _add_standardize_option(p)


def _add_standardize_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--standardize",
        action="store_true",
        help="with --data: rescale each feature to mean 0 and std 1 with the training split's statistics, applied "
        "to val and test too (docs/data.md); off by default: features of very different scales get a warning",
    )


def _load_data(args, load):
    """``load()``, with its DataWarnings (e.g. features of very different scales) printed as one line each."""
    import warnings

    from ..data import DataWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DataWarning)
        ds = load()
    for w in caught:
        if issubclass(w.category, DataWarning):
            print(f"mini-cal {args.command}: warning: {w.message}", file=sys.stderr)
        else:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    return ds


def _add_common_options(p: argparse.ArgumentParser) -> None:
    _add_data_options(p)
    p.add_argument(
        "--device",
        choices=("cpu", "gpu"),
        default="cpu",
        help="cpu (NumPy) or gpu (CuPy; install with the 'gpu' extra) (default: %(default)s)",
    )
    p.add_argument("--no-progress", action="store_true", help="turn off the progress bars")


def _source(args) -> dict:
    """The data source of a command, checked (the file is read) before anything is written."""
    from .runs import data_source, load_source

    source = data_source(args.preset, args.data)
    if args.standardize:  # part of the source: workers, saved models and --resume see the same data
        if "file" not in source:
            raise ValueError("--standardize: only with --data FILE (the presets are on scale 1 already)")
        source["standardize"] = True
    _load_data(args, lambda: load_source(source))  # an unknown preset, a missing or damaged file: a clear error here
    return source


def _add_train_options(p: argparse.ArgumentParser) -> None:
    from ..train import TrainConfig

    d = TrainConfig()
    _add_common_options(p)
    p.add_argument(
        "--epochs",
        type=_number("--epochs", integer=True, low=1),
        default=d.epochs,
        help="training epochs (default: %(default)s)",
    )
    p.add_argument(
        "--batch-size",
        type=_number("--batch-size", integer=True, low=1),
        default=d.batch_size,
        help="mini-batch size (default: %(default)s)",
    )
    p.add_argument(
        "--lr", type=_number("--lr", low=0, low_open=True), default=d.lr, help="learning rate (default: %(default)s)"
    )
    p.add_argument(
        "--optimizer",
        choices=("sgd", "adam"),
        default=d.optimizer,
        help="optimiser; SGD with momentum by default, as in OGM-GE and ARL (default: %(default)s)",
    )
    p.add_argument(
        "--weight-decay",
        type=_number("--weight-decay", low=0),
        default=d.weight_decay,
        help="L2 weight decay (default: %(default)s)",
    )


def _add_resume_option(p: argparse.ArgumentParser, what: str, runs: str) -> None:
    """--resume OUT of a multi-run command whose finished runs are kept (compare, sweep; see OutFolder)."""
    p.add_argument(
        "--resume",
        metavar="OUT",
        help=f"continue the interrupted {what} in folder OUT, with the same options: finished {runs} are kept "
        "(their results are identical to a rerun's), the others are run",
    )


def _add_tuning_options(p: argparse.ArgumentParser) -> None:
    """Where the methods' configurations come from (read by _load_tuned)."""
    from ..train import TrainConfig

    d = TrainConfig()
    p.add_argument(
        "--hparams",
        help="JSON of tuned configurations (a sweep.json; a note is printed when it was tuned on other data); "
        "default: each method's declared tuned configuration (SPEC.tuned in mini_cal/methods/)",
    )
    p.add_argument(
        "--untuned",
        action="store_true",
        help=f"run every method with the library defaults ({d.optimizer.upper()}, lr {d.lr}, {d.epochs} epochs) "
        "instead of its tuned configuration",
    )


def _add_run_options(p: argparse.ArgumentParser, what: str) -> None:
    """Options shared by the multi-run commands (compare, robustness, sweep)."""
    from ..train import TrainConfig

    p.add_argument(
        "--jobs",
        type=_number("--jobs", integer=True, low=1),
        default=2,
        help="worker processes, at most one per run; 1 with --device gpu (default: %(default)s)",
    )
    p.add_argument("--out", help=f"output folder (default: results/{what}-DATA-TIMESTAMP)")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="write into a non-empty --out folder (or one of an interrupted run): its earlier results and models "
        "are removed first",
    )
    _add_common_options(p)
    p.add_argument(
        "--epochs",
        type=_number("--epochs", integer=True, low=1),
        default=None,
        help=f"override the training epochs of every run (default: {TrainConfig().epochs}, the protocol's)",
    )


def _number(name: str, *, integer: bool = False, **bounds):
    """An argparse type: the option's text as a number (an int with ``integer``) in the range ``bounds`` of
    :func:`mini_cal.checks.number` (``low``, ``low_open``, ...), which also refuses NaN and inf; the error names
    the option."""

    def parse(text):
        try:
            value = int(text) if integer else float(text)
        except ValueError:
            value = text  # not a number: number() says so, quoting the text as typed
        try:
            return number(name, value, integer=integer, **bounds)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return parse


def _check_file_option(option: str, path, make_folders: bool = False) -> None:
    """Fail before anything runs unless ``path`` can be written as a file: not empty, not a folder, in a folder
    that exists (or, with ``make_folders``, can be created) and is writable."""
    if path is None:
        return
    if not path.strip():
        raise ValueError(f"{option}: expected a file path, got {path!r}")
    if os.path.isdir(path):
        hint = " (to continue a run, --resume FILE names its checkpoint file)" if option == "--checkpoint" else ""
        raise ValueError(f"{option}: {path!r} is a folder, expected a file path such as {path}/run.npz{hint}")
    if os.path.exists(path) and not os.path.isfile(path):  # /dev/stdout, a pipe: written in place (io.atomic_write)
        if not os.access(path, os.W_OK):
            raise ValueError(f"{option}: cannot write {path!r}")
        return
    folder = os.path.dirname(os.path.realpath(path))  # a link is written through: its target's folder
    while make_folders and not os.path.exists(folder) and os.path.dirname(folder) != folder:
        folder = os.path.dirname(folder)
    if not os.path.isdir(folder):
        raise ValueError(f"{option}: cannot write {path!r}: {folder!r} is not an existing folder")
    if not os.access(folder, os.W_OK):
        raise ValueError(f"{option}: cannot write {path!r}: the folder {folder!r} is not writable")


def _train_config(args, seed: int):
    from ..train import TrainConfig

    return TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        optimizer=args.optimizer,
        weight_decay=args.weight_decay,
        seed=seed,
        progress=not args.no_progress,
    )


def _select_device(name: str) -> None:
    B.set_backend("cupy" if name == "gpu" else "numpy")


def cmd_train(args) -> int:
    from ..methods import make_method
    from . import experiments as X
    from .checkpoint import TrainingInterrupted, train_resumable
    from .runs import load_source
    from .tables import train_table

    _select_device(args.device)
    if args.modality is not None and args.method != "unimodal":
        raise ValueError(f"--modality: only --method unimodal trains one modality; --method {args.method} uses all")
    kwargs = {"modality": args.modality or 0} if args.method == "unimodal" else {}
    method = make_method(args.method, **kwargs)
    config = _train_config(args, args.seed).validate()
    _check_file_option("--json", args.json)
    _check_file_option("--checkpoint", args.checkpoint, make_folders=True)
    if args.resume is not None and not os.path.isfile(args.resume):
        raise ValueError(f"--resume: no checkpoint file {args.resume!r}")
    if (
        args.checkpoint
        and os.path.exists(args.checkpoint)
        and not (args.resume and os.path.realpath(args.resume) == os.path.realpath(args.checkpoint))
    ):
        raise ValueError(
            f"--checkpoint: {args.checkpoint!r} exists; continue that run with --resume "
            f"{args.checkpoint}, or choose another path (a new run would overwrite it)"
        )
    ds = load_source(_source(args))
    X.validate_methods([args.method], ds.num_modalities, ds.name)
    if args.method == "unimodal" and method.modality >= ds.num_modalities:
        raise ValueError(
            f"--modality: expected 0..{ds.num_modalities - 1} ({ds.name} has that many), got {args.modality}"
        )
    try:
        result = train_resumable(
            method,
            ds,
            config,
            checkpoint_path=args.checkpoint or args.resume,
            checkpoint_every=args.checkpoint_every or 1,
            resume=args.resume,
        )
    except TrainingInterrupted as exc:
        how = _interruption()
        if exc.unsaved is not None:
            print(
                f"mini-cal train: {how} after epoch {exc.epoch}; its state could not be saved ({exc.unsaved}); "
                "nothing was saved: give --checkpoint a writable path next time",
                file=sys.stderr,
            )
        elif exc.path is None:
            print(f"mini-cal train: {how} before the first epoch ended; nothing was saved", file=sys.stderr)
        else:
            where = " (no --checkpoint was given: the default location)" if exc.default_location else ""
            print(
                f"mini-cal train: {how}; the state at the end of epoch {exc.epoch} is saved in "
                f"{str(exc.path)!r}{where}\nresume with: {_resume_command(args, exc.path)}",
                file=sys.stderr,
            )
        return _interrupt_code()
    if args.json:  # saved before anything is printed
        from .io import write_json

        write_json(result.summary(), args.json)
    _say(train_table(result, ds))
    if args.json:
        _say(f"wrote {args.json}")
    return 0


def _resume_command(args, path, drop=("--resume",), flags=(), tail=("--resume",)) -> str:
    """The command line that was run, without the options in ``drop`` (and their values) and the ``flags``,
    ending with ``tail`` and ``path`` (by default: ``--resume path`` in place of any earlier ``--resume``)."""
    import shlex

    argv, i = [], 0
    while i < len(args.argv):
        if args.argv[i] in drop:
            i += 2
            continue
        if args.argv[i] not in flags and not any(args.argv[i].startswith(d + "=") for d in drop):
            argv.append(args.argv[i])
        i += 1
    return shlex.join(["mini-cal", *argv, *tail, str(path)])


# ------------------------------------------------------------------------------------- signals and --out folders
_SIGNAL = {"received": None}


def _on_signal(signum, frame):
    """SIGTERM (and Ctrl-C) end a command the same way: KeyboardInterrupt, with the signal remembered."""
    _SIGNAL["received"] = signum
    raise KeyboardInterrupt


def _interruption() -> str:
    return "terminated (SIGTERM)" if _SIGNAL["received"] == signal.SIGTERM else "interrupted"


def _interrupt_code() -> int:
    """128 + the signal number, as a shell reports it: 130 for Ctrl-C, 143 for SIGTERM."""
    return 128 + (_SIGNAL["received"] or signal.SIGINT)


def _out_folder(args, default_stem: str, command: str):
    """Claim the command's --out folder (see :class:`mini_cal.lab.runs.OutFolder`); remembered in ``args`` for
    the message of an interruption."""
    import time

    from .runs import OutFolder

    resume = getattr(args, "resume", None)
    if resume is not None and args.out is not None and os.path.realpath(args.out) != os.path.realpath(resume):
        raise ValueError(f"--resume {resume!r} and --out {args.out!r}: the run continues in its own folder")
    path = resume or args.out
    if path is None:
        path = os.path.join("results", f"{default_stem}-{time.strftime('%Y%m%d-%H%M%S')}")
    if resume is not None and args.overwrite:
        raise ValueError("--resume and --overwrite: continue the run, or start it again, not both")
    folder = OutFolder(path, overwrite=args.overwrite, resume=resume is not None, command=command)
    args.out_folder = folder
    return folder


def _say(text: str) -> None:
    """Print a result that is already saved: a closed stdout, a reader gone (``| head``) or an encoding without
    '±' (``PYTHONIOENCODING=ascii``: '+/-' instead) must not turn a finished command into a failure."""
    if sys.stdout is None:  # started with stdout closed
        return
    try:
        try:
            print(text)
        except UnicodeEncodeError:
            encoding = sys.stdout.encoding or "ascii"
            print(text.replace("±", "+/-").encode(encoding, "replace").decode(encoding))
        sys.stdout.flush()
    except BrokenPipeError:  # what is left to print goes nowhere, also at exit (no "Exception ignored" there)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def _label(source: dict) -> str:
    return source.get("preset") or os.path.splitext(os.path.basename(source["file"]))[0]


def _described(source: dict) -> str:
    return f"preset {source['preset']!r}" if "preset" in source else f"data {source['file']!r}"


def cmd_compare(args) -> int:
    from ..methods import default_methods
    from . import experiments as X
    from . import tables as T
    from .io import write_json, write_text
    from .plots import comparison_figures
    from .runs import load_source

    _select_device(args.device)
    source = _source(args)
    ds = load_source(source)
    tuned = _load_tuned(args, ds)
    if args.methods and args.suite:
        raise ValueError("--suite: give a suite or --methods, not both")
    methods = args.methods or X.suite_methods(args.suite or "peers", ds.num_modalities)
    methods = methods or default_methods(ds.num_modalities)  # the "peers" suite: every declaration's default rows
    X.check_methods(methods, ds, tuned)  # before the --out folder is claimed (compare checks them again)
    folder = _out_folder(args, f"compare-{_label(source)}", "compare")
    out = folder.path
    models_dir, runs_dir = os.path.join(out, "models"), os.path.join(out, "runs")
    os.makedirs(models_dir, exist_ok=True)
    os.makedirs(runs_dir, exist_ok=True)
    result = X.compare(
        source,
        methods,
        seeds=args.seeds,
        jobs=args.jobs,
        progress=not args.no_progress,
        tuned=tuned,
        epochs=args.epochs,
        models_dir=models_dir,
        runs_dir=runs_dir,
        resume=args.resume is not None,
    )
    tables = (
        f"## mini-cal compare on {_described(source)}, seeds 0..{len(result['seeds']) - 1} "
        f"(test split, mean ± std)\n\n"
        + T.results_table(result)
        + "\n\n### Paired significance of CAL against each method (test accuracy, over seeds)\n\n"
        + T.significance_table(result)
        + "".join(
            f"\n\n### Paired significance of {ref.upper()} against each method\n\n"
            + T.significance_table({"rows": rows}, key="rows", reference=ref)
            for ref, rows in result["significance_vs"].items()
        )
        + T.contribution_table(result)
        + "\n\n### Configurations\n\n"
        + T.config_table(result)
        + f"\n\nwall time {result['wall_time_s']:.1f} s with --jobs {args.jobs}\n"
    )
    write_json(result, os.path.join(out, "results.json"))  # everything is saved before anything is printed
    write_text(tables, os.path.join(out, "table.md"))
    figures = comparison_figures(result, out)
    folder.done()
    _say(tables)
    if result["resumed_runs"]:
        _say(f"--resume: {result['resumed_runs']} finished runs were reused, the others were run")
    _say(f"wrote {out}/results.json, table.md, {len(figures)} figures and the trained models in {models_dir}")
    return 0


def _load_tuned(args, ds):
    """The configuration table of --hparams (checked: known methods, known keys, valid values), {} with
    --untuned, None for the declared ones. A sweep.json tuned on another dataset than ``ds`` is allowed, with a note
    on stderr (it should not happen unnoticed)."""
    from . import experiments as X

    if args.untuned and args.hparams:
        raise ValueError("--untuned and --hparams: give one of them")
    if args.untuned:
        return {}
    if args.hparams is None:
        return None  # each method's declared tuned configuration
    where = f"--hparams {args.hparams!r}"
    if not os.path.isfile(args.hparams):
        raise ValueError(f"{where}: no such file")
    try:
        with open(args.hparams, encoding="utf-8") as fh:
            loaded = json.load(fh)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{where}: not valid JSON ({exc})") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"{where}: not a UTF-8 text file ({exc})") from None
    if isinstance(loaded, dict) and "chosen" in loaded:  # a sweep.json
        tuned_on = loaded.get("dataset")
        if isinstance(tuned_on, str) and tuned_on != ds.name:
            print(
                f"mini-cal {args.command}: note: --hparams {args.hparams!r} was tuned on {tuned_on!r}; "
                f"this {args.command} runs on {ds.name!r}",
                file=sys.stderr,
            )
        loaded = loaded["chosen"]
    return X.check_tuned(loaded, where)


def cmd_robustness(args) -> int:
    from ..methods import default_methods
    from . import experiments as X
    from . import tables as T
    from .io import write_json, write_text
    from .plots import robustness_figure
    from .runs import load_source

    _select_device(args.device)
    if args.models is not None and args.preset is None and args.data is None:
        args.preset, args.data, standardize = _models_data(args.models)  # the data the models were trained on
        args.standardize = args.standardize or standardize
    source = _source(args)
    ds = load_source(source)
    tuned = _load_tuned(args, ds)
    methods = X.check_methods(args.methods or default_methods(ds.num_modalities), ds, tuned)
    X.check_saved_models(args.models, methods, args.seeds, source)  # before the --out folder is claimed
    folder = _out_folder(args, f"robustness-{_label(source)}", "robustness")
    out = folder.path
    result = X.robustness(
        source,
        methods,
        seeds=args.seeds,
        jobs=args.jobs,
        progress=not args.no_progress,
        tuned=tuned,
        epochs=args.epochs,
        models_dir=args.models,
    )
    text = (
        f"## mini-cal robustness on {_described(source)}, seeds 0..{len(result['seeds']) - 1} "
        f"(test accuracy under attack, mean ± std; AUC = area under the accuracy-vs-level curve / 10)\n\n"
        + "### AUC of every attack and target\n\n"
        + T.robustness_auc_summary(result)
        + "\n\n### Accuracy lost from eps = 0 to eps = 10 (lower is more robust)\n\n"
        + T.robustness_auc_summary(result, "drop")
        + "\n\n### Accuracy per level\n\n"
        + T.robustness_tables(result)
        + f"\n\nwall time {result['wall_time_s']:.1f} s with --jobs {args.jobs}\n"
    )
    write_json(result, os.path.join(out, "robustness.json"))  # everything is saved before anything is printed
    write_text(text, os.path.join(out, "robustness.md"))
    figure = robustness_figure(result, os.path.join(out, "robustness.png"))
    folder.done()
    _say(text)
    _say(f"wrote {out}/robustness.json, robustness.md and {figure}")
    return 0


def cmd_sweep(args) -> int:
    from . import experiments as X
    from .io import write_json
    from .runs import load_source
    from .tables import sweep_table

    _select_device(args.device)
    source = _source(args)
    ds = load_source(source)
    X.check_sweep(args.methods, ds, args.budget)  # before the --out folder is claimed (sweep checks them again)
    folder = _out_folder(args, f"sweep-{_label(source)}", "sweep")
    out = folder.path
    runs_dir = os.path.join(out, "runs")  # each finished trial run's record, for --resume
    os.makedirs(runs_dir, exist_ok=True)
    result = X.sweep(
        source,
        args.methods,
        budget=args.budget,
        jobs=args.jobs,
        progress=not args.no_progress,
        epochs=args.epochs,
        runs_dir=runs_dir,
        resume=args.resume is not None,
    )
    write_json(result, os.path.join(out, "sweep.json"))  # saved before anything is printed
    folder.done()
    if result["resumed_runs"]:
        _say(f"--resume: {result['resumed_runs']} finished trial runs were reused, the others were run")
    _say(sweep_table(result))
    _say("\nchosen:\n" + json.dumps(result["chosen"], indent=1))
    _say(f"wrote {out}/sweep.json (use it with: mini-cal compare --hparams {out}/sweep.json)")
    return 0


def _models_data(models_dir) -> tuple:
    """(preset, data file, standardize) that the models saved in ``models_dir`` were trained on (their meta)."""
    from .checkpoint import read_npz

    files = sorted(f for f in os.listdir(models_dir) if f.endswith(".npz")) if os.path.isdir(models_dir) else []
    if not files:
        raise ValueError(
            f"--models: {models_dir!r} is not a folder of saved models (expected a compare run's OUT/models)"
        )
    data = read_npz(os.path.join(models_dir, files[0]))[0].get("data")
    if not isinstance(data, dict) or not ({"preset", "file"} & set(data)):
        raise ValueError(f"--models: {files[0]!r} does not say which data it was trained on; give --preset or --data")
    return data.get("preset"), data.get("file"), bool(data.get("standardize"))


def cmd_gradcheck(args) -> int:
    from .selfcheck import run_all
    from .tables import markdown_table

    res = run_all(args.seed)
    _say(
        markdown_table(
            ["check (float64, centred differences)", "worst relative error"], [[k, f"{v:.2e}"] for k, v in res.items()]
        )
    )
    worst = max(res.values())
    _say(f"\nworst: {worst:.2e} ({'pass' if worst <= 1e-7 else 'FAIL'} at 1e-7)")
    return 0 if worst <= 1e-7 else 1


def cmd_data(args) -> int:
    if args.action == "describe":
        from .presets import load_data_file, load_preset

        if args.data and args.names:
            raise ValueError("data describe: give preset names or --data FILE, not both")
        if len(args.names) > 1:
            raise ValueError(f"data describe: expected at most one preset name, got {args.names}")
        if args.standardize and not args.data:
            raise ValueError("--standardize: only with --data FILE (the presets are on scale 1 already)")
        ds = _load_data(
            args,
            lambda: (
                load_data_file(args.data, standardize=args.standardize)
                if args.data
                else load_preset(args.names[0] if args.names else "default")
            ),
        )
        _say(synthetic.describe(ds))
        return 0
    if args.action == "example":
        from .examples import EXAMPLES, make_example

        if len(args.names) != 1 or args.names[0] not in EXAMPLES:
            raise ValueError(f"data example: expected one example name, one of {sorted(EXAMPLES)}, got {args.names}")
        try:
            _say(f"wrote {make_example(args.names[0], args.out)}")
        except ImportError as exc:  # the example's features come from scikit-learn, an optional extra
            raise ValueError(f"data example: needs {exc.name or 'scikit-learn'}: pip install -e '.[example]'") from None
        return 0
    if args.data:
        raise ValueError("--data: only 'data describe' reads a data file; 'data generate' writes the presets")
    if args.out is not None and (not args.out.strip() or (os.path.exists(args.out) and not os.path.isdir(args.out))):
        raise ValueError(f"--out: expected a folder, got {args.out!r}")
    from .presets import write_presets

    write_presets(args.names or None, out_dir=args.out, log=_say, overwrite=args.overwrite)
    return 0


def build_parser() -> argparse.ArgumentParser:
    from ..methods import default_methods, method_names, swept_methods
    from .examples import DEFAULT_FILES, EXAMPLES
    from .experiments import SUITES

    parser = argparse.ArgumentParser(
        prog="mini-cal",
        description="mini_cal: Contribution-Guided Asymmetric Learning (CAL, arXiv 2510.26289) and its peers on "
        "synthetic imbalanced, noisy multimodal data (or your own features, --data FILE.npz), with every "
        "gradient written by hand.",
        epilog="Examples:\n  mini-cal train --method joint\n  mini-cal train --method unimodal --modality 1\n"
        "  mini-cal data describe default",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser(
        "compare",
        help="train CAL, its ablations and its peers over seeds; tables and figures",
        description="Train CAL, its ablations and its peers (--methods or --suite; by default the set the "
        "methods' declarations name, listed under --methods) with their tuned hyper-parameters (chosen on "
        "validation by 'mini-cal sweep', same budget for all) on seeds 0..S-1. Prints a markdown table "
        "(mean ± std over seeds of test metrics), the paired significance of CAL against "
        "each method, and writes results.json, table.md and figures to --out.",
    )
    p.add_argument(
        "--methods",
        nargs="+",
        default=None,
        metavar="NAME",
        help="methods to run, from: "
        + " ".join(method_names())
        + " (default, for two modalities: "
        + " ".join(default_methods(2))
        + "; the methods' declarations decide)",
    )
    p.add_argument(
        "--suite",
        choices=sorted(SUITES),
        default=None,
        help="a named set of methods, not with --methods: "
        + "; ".join(
            f"{name} = {'the default set above' if names is None else ' '.join(names)}"
            for name, names in SUITES.items()
        )
        + " (cal-design is CAL's design space, docs/method.md §3.8, with ARL as the reference peer)",
    )
    p.add_argument(
        "--seeds",
        type=_number("--seeds", integer=True, low=1),
        default=10,
        help="number of seeds (default: %(default)s)",
    )
    _add_resume_option(p, "comparison", "runs")
    _add_tuning_options(p)
    _add_run_options(p, "compare")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser(
        "robustness",
        help="accuracy under test-time noise attacks, per method, over seeds",
        description="Train every method with its tuned configuration (or load the models that "
        "'mini-cal compare' saved, with --models DIR/models), then evaluate the test split "
        "under gaussian, salt-and-pepper and missing-modality attacks at noise levels "
        "0..10 on each modality and on all (each sample attacked with probability 0.5; "
        "see mini_cal/noise.py). Prints accuracy tables and the area under each "
        "accuracy-vs-level curve, mean ± std over seeds, and saves the curves as a figure.",
    )
    p.add_argument("--methods", nargs="+", default=None, metavar="NAME", help="methods (default: as compare)")
    p.add_argument(
        "--seeds",
        type=_number("--seeds", integer=True, low=1),
        default=5,
        help="number of seeds (default: %(default)s)",
    )
    p.add_argument("--models", help="folder of models saved by compare (its OUT/models); skips training")
    _add_tuning_options(p)
    _add_run_options(p, "robustness")
    p.set_defaults(func=cmd_robustness)

    p = sub.add_parser(
        "sweep",
        help="equal-budget hyper-parameter search on the validation split",
        description="For each method, draw the same number (--budget) of configurations from its "
        "declared search space (SPEC.search_space in its file under mini_cal/methods/), "
        "train each on the sweep seeds and pick the best mean validation accuracy. The "
        "test split is not used.",
    )
    p.add_argument(
        "--methods",
        nargs="+",
        default=None,
        metavar="NAME",
        help="methods to tune (default, for two modalities: " + " ".join(swept_methods(2)) + ")",
    )
    p.add_argument(
        "--budget",
        type=_number("--budget", integer=True, low=1),
        default=8,
        help="configurations per method (default: %(default)s)",
    )
    _add_resume_option(p, "sweep", "trial runs")
    _add_run_options(p, "sweep")
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser(
        "train",
        help="train one method on a preset or your data and print a result table",
        description="Train one method on a synthetic preset or --data FILE, select the epoch "
        "with the best validation accuracy, and report test metrics (fused accuracy, "
        "macro-F1, each modality's coalition and linear-probe accuracy, Shapley values "
        "of accuracy).",
    )
    p.add_argument(
        "--method",
        default="joint",
        choices=method_names(),
        help="training method, with its library defaults (mini-cal compare uses the tuned ones) (default: %(default)s)",
    )
    p.add_argument(
        "--modality",
        type=_number("--modality", integer=True, low=0),
        default=None,
        help="modality index for --method unimodal (default: 0)",
    )
    p.add_argument(
        "--seed",
        type=_number("--seed", integer=True, low=0),
        default=0,
        help="seed of initialisation and batches (default: 0)",
    )
    p.add_argument("--json", help="also write the metrics to this JSON file")
    p.add_argument(
        "--checkpoint",
        metavar="PATH",
        help="write a training checkpoint (.npz) to PATH every --checkpoint-every epochs and after the "
        "last; Ctrl-C saves the last completed epoch there (without it: to "
        "checkpoints/METHOD-seedSEED-interrupted.npz)",
    )
    p.add_argument(
        "--checkpoint-every",
        type=_number("--checkpoint-every", integer=True, low=1),
        default=None,
        metavar="N",
        help="epochs between checkpoints (default: 1); needs --checkpoint or --resume",
    )
    p.add_argument(
        "--resume",
        metavar="PATH",
        help="continue the run saved in PATH, giving the same options as that run (--epochs may be "
        "larger); the result is bit-identical to an uninterrupted run; checkpoints go on being "
        "written to PATH unless --checkpoint says otherwise",
    )
    _add_train_options(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "gradcheck",
        help="check every hand-written backward pass against finite differences",
        description="Float64 centred-difference checks of each layer and of each method's full "
        "model loss (bottleneck with fixed eps, M = 2 and 3); prints the worst relative "
        "error of each (tensor-wise, see mini_cal/gradcheck.py).",
    )
    p.add_argument(
        "--seed", type=_number("--seed", integer=True, low=0), default=0, help="seed of the random inputs (default: 0)"
    )
    p.set_defaults(func=cmd_gradcheck)

    p = sub.add_parser(
        "data",
        help="describe a preset or a data file, or (re)generate the synthetic presets",
        description="describe NAME: the generative model and Bayes-optimal accuracies; "
        "generate [NAME ...]: write the preset files, manifest and checksums "
        "(describe --data FILE.npz: a file of your own features); "
        "example NAME: write an example data file of real features for --data (needs scikit-learn).",
    )
    p.add_argument("action", choices=("describe", "generate", "example"))
    p.add_argument(
        "names",
        nargs="*",
        help=f"preset names ({', '.join(synthetic.PRESETS)}); with 'example': one of {', '.join(EXAMPLES)}",
    )
    p.add_argument("--data", metavar="FILE.npz", default=None, help="describe this data file instead of a preset")
    _add_standardize_option(p)
    p.add_argument(
        "--out",
        default=None,
        help="output folder for generate (default: synthetic_data/ in a source "
        "checkout, else the user cache ~/.cache/mini_cal); with 'example': the file, or the folder, to write "
        f"(default: {', '.join(DEFAULT_FILES.values())} in the current folder)",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="with generate: also replace a preset file that the folder's manifest.json lists but whose checksum "
        "no longer matches (damaged or altered); a file or manifest.json that is not mini-cal's is never replaced",
    )
    p.set_defaults(func=cmd_data)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    _SIGNAL["received"] = None
    keep_freed_memory()  # this process and the workers it forks
    previous = None
    if threading_main():  # signal handlers can only be set in the main thread
        previous = {s: signal.signal(s, _on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        _check_options(args)
        with quiet_numpy():  # forked workers inherit it
            return args.func(args)
    except (ValueError, RuntimeError, OSError) as exc:  # CheckpointError is a ValueError; OSError: unwritable paths
        _release(args)
        where = (
            f" ({exc.filename!r})" if isinstance(exc, OSError) and exc.filename and exc.filename not in str(exc) else ""
        )
        # a full disk, a killed worker: what finished is kept, say how to go on from it
        then = _how_to_continue(args) if isinstance(exc, (OSError, RuntimeError)) else ""
        print(f"mini-cal {args.command}: error: {exc}{where}{then}", file=sys.stderr)
        return 2
    except FloatingPointError as exc:  # train.DivergenceError: the message names the last good checkpoint
        _release(args)
        print(f"mini-cal {args.command}: training diverged: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        _release(args)
        print(f"mini-cal {args.command}: {_interruption()}{_how_to_continue(args)}", file=sys.stderr)
        return _interrupt_code()
    finally:
        for s, handler in (previous or {}).items():
            signal.signal(s, handler)


def quiet_numpy():
    """NumPy's overflow, invalid-value and division warnings off: a run that diverges is stopped by the training
    loop's FiniteGuard with a clear message, which the warnings (library file paths and source lines) would
    precede. Computed numbers do not change."""
    import numpy as np

    return np.errstate(over="ignore", invalid="ignore", divide="ignore")


# the path options of the commands: (option, kind, is an output)
_PATHS = {
    "data": ("--data", "file", False),
    "hparams": ("--hparams", "file", False),
    "models": ("--models", "folder", False),
    "resume": ("--resume", "path", False),
    "json": ("--json", "file", True),
    "checkpoint": ("--checkpoint", "file", True),
    "out": ("--out", "path", True),
}
_SAME_ALLOWED = {("resume", "checkpoint"), ("resume", "out")}  # a run continued where it writes


def _check_options(args) -> None:
    """Before anything runs: no empty name or path, and no two path options naming the same file (an output that
    is also an input or another output; a link or a second name of the file counts), nor an input inside the --out
    folder that --overwrite clears."""
    unused = [  # options the command would silently ignore
        ("--checkpoint-every", "needs --checkpoint or --resume")
        if getattr(args, "checkpoint_every", None) and not (args.checkpoint or args.resume)
        else None,
        ("--epochs", "has no effect with --models (the models are trained)")
        if getattr(args, "models", None) and getattr(args, "epochs", None)
        else None,
        ("--untuned", "has no effect with --models (the models are trained)")
        if getattr(args, "models", None) and getattr(args, "untuned", False)
        else None,
    ]
    for option, why in filter(None, unused):
        raise ValueError(f"{option}: {why}")
    preset = getattr(args, "preset", None)
    if preset is not None and not preset.strip():
        raise ValueError(f"--preset: expected a preset name, one of {', '.join(synthetic.PRESETS)}, got {preset!r}")
    given = {}
    for key, (option, kind, _) in _PATHS.items():
        value = getattr(args, key, None)
        if value is None:
            continue
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"{option}: expected a {kind} path, got {value!r}")
        given[key] = value
    keys = list(given)
    for i, a in enumerate(keys):
        for b in keys[i + 1 :]:
            if (a, b) in _SAME_ALLOWED or not (_PATHS[a][2] or _PATHS[b][2]):
                continue
            if _same_file(given[a], given[b]):
                raise ValueError(
                    f"{_PATHS[b][0]} {given[b]!r} and {_PATHS[a][0]} {given[a]!r} name the same file; an output "
                    "never replaces an input or another output: choose another path"
                )
    out = given.get("out")
    if out is not None and getattr(args, "overwrite", False) and os.path.isdir(out):
        root = os.path.realpath(out)
        for key, value in given.items():
            if key != "out" and not _PATHS[key][2] and os.path.realpath(value).startswith(root + os.sep):
                raise ValueError(
                    f"{_PATHS[key][0]} {value!r} is inside --out {out!r}, which --overwrite clears: choose another "
                    "--out"
                )


def _same_file(a: str, b: str) -> bool:
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)  # a hard link: two names of one file
    except OSError:
        return False  # one of them does not exist yet


def keep_freed_memory() -> None:
    """Ask glibc's malloc to keep freed memory for reuse rather than hand it back to the kernel at once; where
    there is no glibc (macOS, Windows, musl), nothing happens. Computed numbers do not change.

    Every epoch a run allocates and frees the same few megabytes (the validation forward pass on 1,000 rows). With
    glibc's defaults, blocks above 128 KiB are mapped and unmapped each time and the heap is trimmed, so the next
    epoch faults the pages back in: system time was 3 % of a whole `mini-cal compare` (benchmarks/README.md)."""
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return
    mallopt(-1, 256 << 20)  # M_TRIM_THRESHOLD: keep up to 256 MiB free at the top of the heap
    mallopt(-3, 32 << 20)  # M_MMAP_THRESHOLD: blocks below 32 MiB (glibc's largest setting) come from the heap


def threading_main() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _release(args) -> None:
    """An unfinished multi-run command: its --out folder keeps its RUNNING marker (it is incomplete)."""
    folder = getattr(args, "out_folder", None)
    if folder is not None:
        folder.release()


def _how_to_continue(args) -> str:
    folder = getattr(args, "out_folder", None)
    if folder is None:
        return ""
    text = f"; {folder.path!r} is incomplete (marked by its RUNNING file)"
    if args.command in ("compare", "sweep"):
        return text + f"; continue with: {_resume_command(args, folder.path, drop=('--resume', '--out'))}"
    again = _resume_command(args, folder.path, drop=("--out",), flags=("--overwrite",), tail=("--overwrite", "--out"))
    return text + f"; start again with: {again}"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
