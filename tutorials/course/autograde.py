"""Summative autograder: a gradebook from hidden tests, never from what a student's notebook printed.

``python -m course.autograde SUBMISSIONS --out GRADES`` (run from ``tutorials/``) grades every submitted notebook
under ``SUBMISSIONS`` (``SUBMISSIONS/<student>/<NN_name>.ipynb``, deeper folders such as nbgrader's
``<student>/<assignment>/`` included, or flat ``SUBMISSIONS/<student>__<NN_name>.ipynb``) and writes

* ``GRADES/gradebook.csv``: one row per student and exercise: student, notebook, exercise, function, points,
  max_points, message;
* ``GRADES/totals.csv``: one row per student: the points of each notebook, total, max_points, percent;
* ``GRADES/predictions.csv``: what each student wrote in the Predict answer cells of the course's nbgrader version
  (student, notebook, question, answer), for the teacher to read; not graded;

and prints a one-line summary per student.

How a grade is obtained (nothing of the student's notebook is executed as a notebook):

1. The notebook is read as JSON; its code cells are parsed (IPython ``%``/``!`` lines dropped). Kept: the top-level
   ``import`` statements, assignments of plain literals (``EPS = 1e-12``) and every top-level function definition
   (decorators dropped). Everything else (check cells, prints, monkeypatching such as ``G.hide = nullcontext`` or
   ``exercises.check_x = ...``, stored outputs) is ignored. Which function an exercise grades comes from the
   PRISTINE notebooks next to this file (the argument of each ``exercises.check_<exercise>(...)`` cell), not from
   the submission; notebook 08 also grades its thirteen pieces (``nb08.PIECES``, functions ``my_<piece>``).
2. One fresh Python process per student (``--worker``) imports the checkers from a private copy of ``course/`` and
   ``exercises.py`` (no ``solutions/`` on its path) BEFORE any student code exists, keeps references to them and
   snapshots every function and module attribute loaded so far.
3. Each exercise is graded in its own forked child of that process, with a time limit: the child defines the
   notebook's imports and functions, calls the pristine checker (which hides the library's own function while it
   calls the student's) on the visible cases (``seed=0``) and, where the checker takes a seed, on HIDDEN cases
   (``--seed``, never shown to students); any change the student's code made to a loaded module's functions or
   attributes (a checker, ``grading.hide``, ``grading.compare_outputs``, NumPy...) voids the verdict. A child that
   hangs is killed; one that exits or raises ``SystemExit`` scores 0 for that exercise only.

One point per exercise. ``grade_submissions`` returns the rows for your own scripts.
"""

from __future__ import annotations

import argparse
import ast
import csv
import importlib
import inspect
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

TUTORIALS = Path(__file__).resolve().parents[1]
HIDDEN_SEED = 20_251  # the hidden cases' seed; a teacher may pass another with --seed
TIME_LIMIT_S = 10.0  # per exercise
PREDICTION_PROMPT = "**Your prediction** (before you run the next cell):"  # the Predict answer cells' first line
NOTEBOOK_RE = re.compile(r"(?<!\d)(0[1-9])(?!\d)")


@dataclass(frozen=True)
class Exercise:
    notebook: str  # "02"
    name: str  # "linear_backward" (the checker is check_<name>)
    function: str  # the function the student writes in that notebook: "my_linear_backward"
    checker: str  # "course.nb02:check_linear_backward"


# ------------------------------------------------------------------------------------------- the exercises
def course_exercises(tutorials: Path = TUTORIALS) -> dict[str, list[Exercise]]:
    """{notebook number: its graded exercises}, read from the pristine notebooks' check cells (and nb08.PIECES)."""
    found: dict[str, list[Exercise]] = {}
    for path in sorted(Path(tutorials).glob("0[1-9]_*.ipynb")):
        number = path.name[:2]
        exercises, seen = [], set()
        if number == "08":
            for piece in _nb08_pieces():
                module = _piece_checker_module(piece)
                exercises.append(Exercise("08", piece, f"my_{piece}", f"{module}:check_{_piece_check_name(piece)}"))
                seen.add(piece)
        for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
            if cell.get("cell_type") != "code":
                continue
            source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
            for name, function in re.findall(r"\bexercises\.check_(\w+)\(\s*(\w+)", source):
                if name not in seen:
                    seen.add(name)
                    exercises.append(Exercise(number, name, function, f"course.nb{number}:check_{name}"))
        if exercises:
            found[number] = exercises
    return found


def _nb08_pieces() -> list[str]:
    """The keys of ``nb08.PIECES``, read from its source (the parent process never imports the library)."""
    tree = ast.parse((TUTORIALS / "course" / "nb08.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "PIECES" for t in node.targets):
            return [ast.literal_eval(k) for k in node.value.keys]
    raise RuntimeError("course/nb08.py defines no PIECES")


def _piece_entry(piece: str) -> ast.AST:
    tree = ast.parse((TUTORIALS / "course" / "nb08.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "PIECES" for t in node.targets):
            for key, value in zip(node.value.keys, node.value.values):
                if ast.literal_eval(key) == piece:
                    return value.elts[1]  # nbXX.check_name
    raise KeyError(piece)


def _piece_checker_module(piece: str) -> str:
    return f"course.{_piece_entry(piece).value.id}"


def _piece_check_name(piece: str) -> str:
    return _piece_entry(piece).attr.removeprefix("check_")


# ------------------------------------------------------------------------------------------- submissions
def find_submissions(root: Path) -> dict[str, dict[str, Path]]:
    """{student: {notebook number: path}} for every ``.ipynb`` under ``root`` (checkpoints skipped)."""
    root = Path(root)
    found: dict[str, dict[str, Path]] = {}
    for path in sorted(root.rglob("*.ipynb")):
        rel = path.relative_to(root)
        if ".ipynb_checkpoints" in rel.parts:
            continue
        if len(rel.parts) >= 2:
            student, name = rel.parts[0], rel.name
        elif "__" in path.stem:
            student, name = path.stem.split("__", 1)
        else:
            print(f"skipped {rel}: put it in <student>/ or name it <student>__<NN_name>.ipynb", file=sys.stderr)
            continue
        match = NOTEBOOK_RE.search(name)
        if not match:
            print(f"skipped {rel}: no notebook number (01 to 09) in its name", file=sys.stderr)
            continue
        found.setdefault(student, {})[match.group(1)] = path  # a later file (sorted order) replaces an earlier one
    return found


def extract(path: Path) -> dict:
    """The parts of a submitted notebook that are graded: ``{"preamble": [source], "functions": {name: source},
    "problems": [str]}``. Nothing is executed here."""
    cells = json.loads(Path(path).read_text(encoding="utf-8")).get("cells", [])
    preamble, functions, problems = [], {}, []
    for index, cell in enumerate(cells):
        if cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else source
        lines = [("" if line.lstrip().startswith(("%", "!")) else line) for line in source.splitlines()]
        try:
            tree = ast.parse("\n".join(lines))
        except SyntaxError as exc:
            problems.append(f"cell {index} is not valid Python (line {exc.lineno}): {exc.msg}")
            continue
        for node in tree.body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                preamble.append(ast.unparse(node))
            elif isinstance(node, ast.Assign) and all(isinstance(t, ast.Name) for t in node.targets):
                try:
                    ast.literal_eval(node.value)
                except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                    continue
                preamble.append(ast.unparse(node))
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                node.decorator_list = []
                functions[node.name] = ast.unparse(node)  # the last definition wins, as when run top to bottom
    return {"preamble": preamble, "functions": functions, "problems": problems}


# ------------------------------------------------------------------------------------------- grading
def _staging() -> Path:
    """A private folder holding a copy of course/ and exercises.py only: the worker's import path."""
    folder = Path(tempfile.mkdtemp(prefix="mini_cal_autograde_"))
    shutil.copytree(TUTORIALS / "course", folder / "course", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(TUTORIALS / "exercises.py", folder / "exercises.py")
    return folder


def _worker_env(staging: Path) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(staging), str(TUTORIALS.parent)])
    env.pop("MINI_CAL_FAST", None)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def grade_student(
    notebooks: dict[str, Path],
    exercises: dict[str, list[Exercise]],
    *,
    seed: int = HIDDEN_SEED,
    time_limit: float = TIME_LIMIT_S,
    staging: Path,
) -> list[dict]:
    """Grade one student's notebooks in one fresh worker process; one dict per exercise of ``exercises``."""
    rows, jobs = [], []
    for number, items in exercises.items():
        path = notebooks.get(number)
        if path is None:
            rows += [_row(ex, False, f"NOT SUBMITTED: no notebook {number} found for this student.") for ex in items]
            continue
        parts = extract(path)
        pristine = next(TUTORIALS.glob(f"{number}_*.ipynb"), None)  # its imports, in case the student lost some
        parts["preamble"] = (extract(pristine)["preamble"] if pristine else []) + parts["preamble"]
        jobs.append({"notebook": number, **parts, "exercises": [ex.__dict__ for ex in items]})
    if jobs:
        spec = {"seed": seed, "time_limit": time_limit, "jobs": jobs}
        n = sum(len(job["exercises"]) for job in jobs)
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "course.autograde", "--worker"],
                input=json.dumps(spec),
                capture_output=True,
                text=True,
                cwd=tempfile.gettempdir(),
                env=_worker_env(staging),
                timeout=60 + n * (2 * time_limit + 5),
            )
            verdicts = json.loads(proc.stdout.strip().splitlines()[-1]) if proc.stdout.strip() else None
            error = f"the grading process failed (exit {proc.returncode}): {proc.stderr.strip()[-300:]}"
        except subprocess.TimeoutExpired:
            verdicts, error = None, "the grading process ran out of time"
        for job in jobs:
            for ex in job["exercises"]:
                exercise = Exercise(**ex)
                verdict = (verdicts or {}).get(f"{exercise.notebook}:{exercise.name}")
                if verdict is None:
                    rows.append(_row(exercise, False, f"ERROR: {error}"))
                else:
                    rows.append(_row(exercise, verdict["passed"], verdict["message"]))
    order = {(ex.notebook, ex.name): i for i, ex in enumerate(e for items in exercises.values() for e in items)}
    return sorted(rows, key=lambda r: order[(r["notebook"], r["exercise"])])


def _row(ex: Exercise, ok: bool, message: str) -> dict:
    return {
        "notebook": ex.notebook,
        "exercise": ex.name,
        "function": ex.function,
        "points": 1 if ok else 0,
        "max_points": 1,
        "message": " | ".join(line.strip() for line in str(message).splitlines() if line.strip()),
    }


def grade_submissions(
    root: Path,
    notebooks: list[str] | None = None,
    *,
    seed: int = HIDDEN_SEED,
    time_limit: float = TIME_LIMIT_S,
    jobs: int = 2,
) -> list[dict]:
    """Every row of the gradebook: {student, notebook, exercise, function, points, max_points, message}.

    ``notebooks``: the notebook numbers assigned (default: every graded notebook that some student submitted); a
    student missing one scores 0 on its exercises. ``root`` may also be ``{student: {notebook number: path}}``."""
    submissions = root if isinstance(root, dict) else find_submissions(root)
    course = course_exercises()
    wanted = notebooks or sorted({n for nbs in submissions.values() for n in nbs if n in course})
    unknown = [n for n in wanted if n not in course]
    if unknown:
        raise SystemExit(f"no graded exercises in notebook(s) {', '.join(unknown)}; graded: {', '.join(course)}")
    exercises = {n: course[n] for n in wanted}
    staging = _staging()
    try:
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            futures = {
                student: pool.submit(grade_student, nbs, exercises, seed=seed, time_limit=time_limit, staging=staging)
                for student, nbs in sorted(submissions.items())
            }
            return [{"student": s, **row} for s, future in futures.items() for row in future.result()]
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def write_gradebook(rows: list[dict], out: Path) -> tuple[Path, Path]:
    """Write ``gradebook.csv`` (one row per student and exercise) and ``totals.csv`` (one row per student)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    fields = ["student", "notebook", "exercise", "function", "points", "max_points", "message"]
    gradebook = out / "gradebook.csv"
    with gradebook.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    notebooks = sorted({r["notebook"] for r in rows})
    totals = out / "totals.csv"
    with totals.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["student", *[f"nb{n}" for n in notebooks], "total", "max_points", "percent"])
        for student, mine in summarize(rows).items():
            total, most = mine["total"], mine["max_points"]
            percent = f"{100 * total / most:.1f}" if most else "0.0"
            writer.writerow([student, *[mine["notebooks"].get(n, 0) for n in notebooks], total, most, percent])
    return gradebook, totals


def collect_predictions(submissions: dict[str, dict[str, Path]]) -> list[dict]:
    """What each student wrote in the Predict answer cells (``predict_NN_k``, the manually graded cells of the
    course's nbgrader version, :mod:`course.nbgrader_course`): one dict per answer written, with student, notebook,
    question and answer; a cell left at nbgrader's placeholder is skipped. Nothing is graded here."""
    rows = []
    for student, notebooks in sorted(submissions.items()):
        for number, path in sorted(notebooks.items()):
            for cell in json.loads(Path(path).read_text(encoding="utf-8")).get("cells", []):
                grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id", "")
                text = "".join(cell["source"]) if isinstance(cell.get("source"), list) else cell.get("source", "")
                answer = text.replace(PREDICTION_PROMPT, "").strip()
                if grade_id.startswith("predict_") and answer and answer != "YOUR ANSWER HERE":
                    question = grade_id.rsplit("_", 1)[-1]
                    rows.append({"student": student, "notebook": number, "question": question, "answer": answer})
    return rows


def write_predictions(rows: list[dict], out: Path) -> Path:
    """Write ``predictions.csv`` (student, notebook, question, answer) from :func:`collect_predictions`."""
    path = Path(out) / "predictions.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=["student", "notebook", "question", "answer"])
        writer.writeheader()
        writer.writerows(rows)
    return path


def summarize(rows: list[dict]) -> dict[str, dict]:
    """{student: {"total", "max_points", "notebooks": {number: points}}}."""
    out: dict[str, dict] = {}
    for r in rows:
        s = out.setdefault(r["student"], {"total": 0, "max_points": 0, "notebooks": {}})
        s["total"] += int(r["points"])
        s["max_points"] += int(r["max_points"])
        s["notebooks"][r["notebook"]] = s["notebooks"].get(r["notebook"], 0) + int(r["points"])
    return out


# ------------------------------------------------------------------------------------------- the worker
def load_checker(checker: str):
    """(the function, whether it draws its cases from a ``seed``) for ``"module:function"``."""
    module, name = checker.split(":")
    check = getattr(importlib.import_module(module), name)
    return check, "seed" in inspect.signature(check).parameters


def _loaded_state() -> list:
    """Every callable, class and module attribute of every loaded module (and the functions of the course's and the
    library's classes), with the code object of each function: what student code must leave as it found it."""
    import types

    entries = []
    for name, module in list(sys.modules.items()):
        namespace = getattr(module, "__dict__", None)
        if not isinstance(namespace, dict):
            continue
        ours = name == "exercises" or name.startswith(("course", "mini_cal"))
        for key, value in list(namespace.items()):
            if callable(value) or isinstance(value, types.ModuleType):
                entries.append((name, namespace, key, value, getattr(value, "__code__", None)))
            if ours and isinstance(value, type) and getattr(value, "__module__", "") == name:
                for attr, member in list(vars(value).items()):
                    if callable(member):
                        entries.append(
                            (f"{name}.{key}", value.__dict__, attr, member, getattr(member, "__code__", None))
                        )
    return entries


def _tampered(entries) -> list[str]:
    missing = object()
    changed = []
    for name, namespace, key, value, code in entries:
        now = namespace.get(key, missing)
        if now is not value or (code is not None and getattr(value, "__code__", None) is not code):
            changed.append(f"{name}.{key}")
    return changed


def _grade_one(job: dict, ex: dict, check, takes_seed: bool, seed: int, state, result_type) -> dict:
    """In a forked child: define the student's code, grade one function, check nothing was tampered with."""
    import builtins

    namespace = {"__name__": "__submission__", "__builtins__": builtins}
    notes = []
    for source in job["preamble"] + list(job["functions"].values()):
        try:
            exec(compile(source, f"<notebook {job['notebook']}>", "exec"), namespace)
        except BaseException as exc:  # noqa: BLE001 - an import the grader cannot do, a bad default argument...
            notes.append(f"{source.splitlines()[0][:60]!r} failed ({type(exc).__name__})")
    fn = namespace.get(ex["function"]) if ex["function"] in job["functions"] else None
    if fn is None:
        problems = f" ({'; '.join(job['problems'])})" if job["problems"] else ""
        return {"passed": False, "message": f"NOT YET: no function {ex['function']} defined in the notebook{problems}."}
    runs = [("", {})] + ([("on the hidden cases: ", {"seed": seed})] if takes_seed else [])
    message = ""
    for label, kwargs in runs:
        try:
            result = check(fn, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - SystemExit, KeyboardInterrupt... from the student's code
            return {"passed": False, "message": f"FAILED: grading stopped: your code raised {type(exc).__name__}."}
        changed = _tampered(state)
        if changed:
            return {
                "passed": False,
                "message": "FAILED: your code changed the grader or the library while it was graded "
                f"({', '.join(changed[:3])}); the exercise scores 0.",
            }
        if type(result) is not result_type:
            return {"passed": False, "message": "FAILED: the checker did not return a verdict."}
        text = str(result.message)
        if result.passed is not True:
            if notes and "NOT YET" not in text:
                text += f" (not run: {'; '.join(notes)})"
            return {"passed": False, "message": f"{label}{text}" if label else text}
        message = message or text
    return {"passed": True, "message": message}


def _run_child(job, ex, check, takes_seed, seed, state, result_type, time_limit) -> dict:
    """Grade one exercise in a forked child with a time limit (in this process where fork is unavailable)."""
    if not hasattr(os, "fork"):
        return _grade_one(job, ex, check, takes_seed, seed, state, result_type)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        os.close(read_end)
        try:
            devnull = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(devnull, fd)
            verdict = _grade_one(job, ex, check, takes_seed, seed, state, result_type)
        except BaseException as exc:  # noqa: BLE001
            verdict = {"passed": False, "message": f"FAILED: grading stopped ({type(exc).__name__})."}
        try:
            os.write(write_end, json.dumps(verdict).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    import select

    data, deadline = b"", time.monotonic() + time_limit
    with os.fdopen(read_end, "rb", buffering=0) as pipe:
        while True:
            remaining = deadline - time.monotonic()
            ready = select.select([pipe], [], [], max(0.0, remaining))[0] if remaining > 0 else []
            if not ready:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                return {
                    "passed": False,
                    "message": f"FAILED: no verdict within {time_limit:g} s (an endless loop, or far too slow).",
                }
            chunk = pipe.read(65536)
            if not chunk:
                break
            data += chunk
    _, status = os.waitpid(pid, 0)
    try:
        return json.loads(data.decode())
    except ValueError:
        return {"passed": False, "message": f"FAILED: your code ended the grading process (status {status})."}


_STDLIB = (
    "collections contextlib copy dataclasses functools inspect itertools json math operator os pathlib random "
    "statistics sys tempfile time typing warnings"
).split()


def _preload(sources) -> None:
    """Import, once before forking, the modules the notebooks import from the standard library, NumPy, mini_cal and
    the course (importing them runs none of the student's code); other modules load in each child."""
    import importlib

    trusted = {"numpy", "mini_cal", "course", "exercises", *_STDLIB}
    for source in sources:
        node = ast.parse(source).body[0]
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            if name.split(".")[0] in trusted and name not in sys.modules:
                try:
                    importlib.import_module(name)
                except Exception:  # noqa: BLE001, S112 - not a module (a name imported from one), or unavailable
                    continue


def _worker() -> int:
    """``python -m course.autograde --worker``: read a spec on stdin, print the verdicts as one JSON line."""

    spec = json.loads(sys.stdin.read())
    out = os.dup(1)
    importlib.import_module("mini_cal")  # first: it limits BLAS threads, which works only before NumPy loads
    importlib.import_module("exercises")  # the pristine checkers, before any student code exists
    from course import grading

    checks = {ex["checker"]: load_checker(ex["checker"]) for job in spec["jobs"] for ex in job["exercises"]}
    if any(job["notebook"] == "08" for job in spec["jobs"]):
        import functools

        from course import nb08

        nb08._batch = functools.lru_cache(maxsize=None)(nb08._batch)  # the assembly checkers' batch: built once,
        nb08._batch()  # before forking (each child gets its own copy)
    _preload(source for job in spec["jobs"] for source in job["preamble"])
    state = _loaded_state()
    verdicts = {}
    for job in spec["jobs"]:
        for ex in job["exercises"]:
            check, takes_seed = checks[ex["checker"]]
            verdicts[f"{ex['notebook']}:{ex['name']}"] = _run_child(
                job, ex, check, takes_seed, spec["seed"], state, grading.Result, spec["time_limit"]
            )
    os.write(out, (json.dumps(verdicts) + "\n").encode())
    return 0


# ------------------------------------------------------------------------------------------- command line
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m course.autograde",
        description="Grade submitted notebooks with hidden tests; write gradebook.csv and totals.csv.",
    )
    parser.add_argument("submissions", nargs="?", help="folder of <student>/<NN_name>.ipynb or <student>__NN.ipynb")
    parser.add_argument("--out", default="grades", help="folder for gradebook.csv and totals.csv (default: grades)")
    parser.add_argument("--notebooks", nargs="+", metavar="NN", help="notebooks assigned (default: those submitted)")
    parser.add_argument("--seed", type=int, default=HIDDEN_SEED, help="seed of the hidden cases")
    parser.add_argument("--time-limit", type=float, default=TIME_LIMIT_S, help="seconds per exercise (default 10)")
    parser.add_argument("--jobs", type=int, default=2, help="students graded in parallel (default 2)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return _worker()
    if not args.submissions:
        parser.error("give the folder of submissions")
    if not Path(args.submissions).is_dir():
        parser.error(f"{args.submissions} is not a folder")
    wanted = [n.zfill(2) for n in args.notebooks] if args.notebooks else None
    rows = grade_submissions(Path(args.submissions), wanted, seed=args.seed, time_limit=args.time_limit, jobs=args.jobs)
    if not rows:
        print(f"no submissions found in {args.submissions}", file=sys.stderr)
        return 1
    gradebook, totals = write_gradebook(rows, Path(args.out))
    predictions = write_predictions(collect_predictions(find_submissions(Path(args.submissions))), Path(args.out))
    for student, mine in summarize(rows).items():
        per = ", ".join(f"{n}: {p}" for n, p in sorted(mine["notebooks"].items()))
        print(f"{student}: {mine['total']} of {mine['max_points']} ({per})")
    print(f"wrote {gradebook}, {totals} and {predictions}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
