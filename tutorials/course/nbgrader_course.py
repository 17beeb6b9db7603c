"""The course on nbgrader (the ``teach`` extra): the notebooks of ``tutorials/`` stay the single source.

``python -m course.nbgrader_course source COURSE`` (run from ``tutorials/``) writes an nbgrader course folder from
the course's notebooks; nothing in ``tutorials/`` is copied by hand or kept twice:

* ``COURSE/source/<assignment>/NN_name.ipynb``: nbgrader's *source* version. Each exercise stub's body becomes a
  solution region (``### BEGIN SOLUTION`` ... ``### END SOLUTION``, the reference answer of ``solutions/``); each
  check cell becomes a locked autograder-test cell worth one point whose ``### BEGIN HIDDEN TESTS`` region asserts
  the checker on hidden cases; notebook 08's thirteen pasted pieces get one test cell worth 13 points; after every
  **Predict** paragraph comes a manually graded answer cell (one point), so Predict answers are collected.
  Next to the notebooks: ``course/`` (the checkers, without this file and the autograder), ``exercises.py`` and
  ``data/``. ``solutions/``, ``answers/`` and ``TEACHING.md`` are never copied.
* ``COURSE/nbgrader_config.py`` and ``COURSE/mini_cal_course.json`` (the assignment's notebooks and the hidden seed:
  teacher's side only).

Then nbgrader's own commands, from ``COURSE``: ``nbgrader generate_assignment A`` (the student version, in
``release/A``: no solutions, no hidden tests), collect the students' notebooks into ``submitted/<student>/A/``,
``nbgrader autograde A``. nbgrader runs the hidden tests in the kernel the student's own code ran in: a submission
that monkeypatches a checker before the test cell passes them. So ``python -m course.nbgrader_course grade COURSE``
grades the same submitted notebooks with :mod:`course.autograde` (pristine checkers in a fresh process, hidden seed,
nothing of the notebook's output believed) and writes those scores into nbgrader's gradebook as the autograded
scores of the test cells (and ``grades/<assignment>/`` the autograder's CSVs, with every Predict answer written in
``predictions.csv``); Predict answers keep their manual grades (nbgrader's formgrader). ``nbgrader export``
then gives nbgrader's CSV (one row per student and assignment), and ``python -m course.nbgrader_course export
COURSE`` one row per student and graded cell (:class:`ExerciseCsv`, also usable as ``nbgrader export --exporter
course.nbgrader_course.ExerciseCsv`` with ``tutorials/`` on ``PYTHONPATH``).
"""

from __future__ import annotations

import argparse
import ast
import copy
import csv
import json
import re
import shutil
import sys
import textwrap
from pathlib import Path

from course import autograde as A

TUTORIALS = A.TUTORIALS
CONFIG_NAME = "mini_cal_course.json"
TEACHER_ONLY = ("autograde.py", "nbgrader_course.py", "make_results.py")  # course/ files the students do not get
# the solution module of an exercise whose file is not named after it (solutions/<module>.py defines <function>)
SOLUTION_MODULE = {"accelerate": "cal_coefficients", "weights_of_batch": "capstone_weights", "kl_loss": "capstone_kl"}
PREDICT = re.compile(r"(?m)^\*\*Predict(?::\*\*|\.\*\*|\*\*)")
PIECES_CELL = "pieces"  # grade_id of notebook 08's test cell for the thirteen pasted pieces


def solution_source(function: str) -> tuple[list[str], ast.FunctionDef, str] | None:
    """(imports, definition, source) of the reference answer for the student's ``function`` (``my_x`` or ``x``)."""
    key = function.removeprefix("my_")
    path = TUTORIALS / "solutions" / f"{SOLUTION_MODULE.get(key, key)}.py"
    if not path.exists():
        return None
    source = path.read_text(encoding="utf-8")
    tree = ast.parse(source)
    imports = [ast.unparse(n) for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    definition = next((n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == key), None)
    return (imports, definition, source) if definition else None


def _meta(grade_id: str, *, solution: bool, grade: bool, locked: bool, points: int = 0) -> dict:
    meta = {"grade": grade, "grade_id": grade_id, "locked": locked, "schema_version": 3, "solution": solution}
    meta |= {"task": False}
    if grade:
        meta["points"] = points
    return {"nbgrader": meta}


def _with_solutions(source: str) -> tuple[str, list[str]]:
    """The cell's source with each unfinished stub's body replaced by a solution region; the functions filled."""
    lines = source.splitlines()
    tree = ast.parse("\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in lines))
    filled = []
    for node in reversed(tree.body):
        if not (isinstance(node, ast.FunctionDef) and _is_stub(node)):
            continue
        found = solution_source(node.name)
        if found is None:
            continue
        imports, answer, answer_source = found
        raise_line = node.body[-1]
        start = raise_line.lineno - 1
        if start > 0 and "YOUR CODE HERE" in lines[start - 1]:
            start -= 1
        indent = re.match(r"\s*", lines[raise_line.lineno - 1]).group(0)
        if [a.arg for a in answer.args.args] != [a.arg for a in node.args.args]:
            raise ValueError(f"solutions/: {answer.name} must take the arguments of the stub {node.name}")
        first = answer.body[1] if ast.get_docstring(answer) is not None else answer.body[0]
        text = textwrap.dedent("\n".join(answer_source.splitlines()[first.lineno - 1 : answer.end_lineno]))
        region = [f"{indent}### BEGIN SOLUTION"]
        region += [textwrap.indent(line, indent) if line.strip() else "" for line in [*imports, *text.splitlines()]]
        region += [f"{indent}### END SOLUTION"]
        lines[start : raise_line.end_lineno] = region
        filled.append(node.name)
    return "\n".join(lines), filled[::-1]


def _is_stub(node: ast.FunctionDef) -> bool:
    last = node.body[-1]
    if not isinstance(last, ast.Raise) or last.exc is None:
        return False
    target = last.exc.func if isinstance(last.exc, ast.Call) else last.exc
    return isinstance(target, ast.Name) and target.id == "NotImplementedError"


def _seed(number: str, name: str, seed: int) -> str:
    """``, seed=S`` when the exercise's checker draws its cases from a seed (most do), else nothing."""
    return f", seed={seed}" if A.load_checker(f"course.nb{number}:check_{name}")[1] else ""


def source_notebook(path: Path, seed: int):
    """nbgrader's source version of one course notebook (an ``nbformat`` notebook; nothing is written)."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    number = path.name[:2]
    cells, predictions, graded = [], 0, set()
    for index, cell in enumerate(nb.cells):
        cell = copy.deepcopy(cell)
        cells.append(cell)
        if cell.cell_type == "markdown" and index > 0 and PREDICT.search(cell.source):
            predictions += 1
            answer = nbformat.v4.new_markdown_cell(
                f"{A.PREDICTION_PROMPT}\n\n### BEGIN SOLUTION\nAnswer key: TEACHING.md, "
                f"section 6, notebook {number}, Predict {predictions}.\n### END SOLUTION"
            )
            grade_id = f"predict_{number}_{predictions}"
            answer.metadata.update(_meta(grade_id, solution=True, grade=True, locked=False, points=1))
            cells.append(answer)
            continue
        if cell.cell_type != "code":
            continue
        checks = [c for c in re.findall(r"\bexercises\.check_(\w+)\(\s*(\w+)", cell.source) if c[0] not in graded]
        graded.update(name for name, _ in checks)
        if checks:
            tests = [f"assert exercises.check_{name}({fn}{_seed(number, name, seed)})" for name, fn in checks]
            cell.source = cell.source.rstrip() + "\n### BEGIN HIDDEN TESTS\n" + "\n".join(tests)
            cell.source += "\n### END HIDDEN TESTS"
            cell.metadata.update(_meta(f"check_{checks[0][0]}", solution=False, grade=True, locked=True, points=1))
            continue
        source, filled = _with_solutions(cell.source)
        if filled:
            cell.source = source
            cell.metadata.update(_meta("_".join(filled)[:60], solution=True, grade=False, locked=False))
        if number == "08" and re.search(r"\bnb08\.collect\(", cell.source):
            test = nbformat.v4.new_code_cell(
                "# notebook 08's thirteen pieces, graded with the checkers of notebooks 02 to 05\n"
                "### BEGIN HIDDEN TESTS\nassert all(nb08.collect(globals(), False).verdicts.values())\n"
                "### END HIDDEN TESTS"
            )
            test.metadata.update(
                _meta(PIECES_CELL, solution=False, grade=True, locked=True, points=len(A._nb08_pieces()))
            )
            cells.append(test)
    nb.cells = cells
    return nb


def write_source(course: Path, assignment: str, numbers: list[str], seed: int) -> Path:
    """Write ``course/source/<assignment>/``, ``nbgrader_config.py`` and ``mini_cal_course.json``."""
    import nbformat

    course = Path(course)
    folder = course / "source" / assignment
    if folder.exists():
        raise SystemExit(f"{folder} exists: choose another --assignment or remove it first")
    folder.mkdir(parents=True)
    for number in numbers:
        path = next(TUTORIALS.glob(f"{number}_*.ipynb"))
        nbformat.write(source_notebook(path, seed), folder / path.name)
    ignore = shutil.ignore_patterns("__pycache__", "*.ipynb_checkpoints", *TEACHER_ONLY)
    shutil.copytree(TUTORIALS / "course", folder / "course", ignore=ignore)
    shutil.copytree(TUTORIALS / "data", folder / "data", ignore=ignore)
    shutil.copy2(TUTORIALS / "exercises.py", folder / "exercises.py")
    config = course / "nbgrader_config.py"
    if not config.exists():
        config.write_text(
            "# Written by `python -m course.nbgrader_course source`; nbgrader reads it from this folder.\n"
            "c = get_config()  # noqa: F821\n"
            "c.Execute.timeout = 120  # seconds per cell; every notebook runs in under a minute\n",
            encoding="utf-8",
        )
    record_path = course / CONFIG_NAME
    record = json.loads(record_path.read_text()) if record_path.exists() else {"assignments": {}}
    record["assignments"][assignment] = {"notebooks": numbers, "seed": seed}
    record_path.write_text(json.dumps(record, indent=2) + "\n")
    return folder


# ------------------------------------------------------------------------------------------- grading
def grade(course: Path, assignment: str, *, jobs: int = 2) -> list[dict]:
    """Grade ``course/submitted/*/<assignment>/`` with :mod:`course.autograde`, write its CSVs in
    ``course/grades/<assignment>/`` and its scores into nbgrader's gradebook (after ``nbgrader autograde``)."""
    from nbgrader.api import Gradebook, MissingEntry

    course = Path(course)
    record = _assignments(course).get(assignment)
    if record is None:
        known = ", ".join(_assignments(course)) or "none"
        raise SystemExit(f"--assignment: {course} has no assignment {assignment!r} (it has: {known})")
    url = _gradebook(course, assignment)  # before grading: nbgrader autograde must have run
    submitted = course / "submitted"
    students = sorted(p.parent.name for p in submitted.glob(f"*/{assignment}") if p.is_dir())
    if not students:
        raise SystemExit(f"no submissions in {submitted}/<student>/{assignment}/")
    submissions = {}
    for student in students:
        for path in sorted((submitted / student / assignment).glob("*.ipynb")):
            match = A.NOTEBOOK_RE.search(path.name)
            if match:
                submissions.setdefault(student, {})[match.group(1)] = path
    graded = [n for n in record["notebooks"] if n in A.course_exercises()]
    rows = A.grade_submissions(submissions, graded, seed=record["seed"], jobs=jobs)
    out = course / "grades" / assignment
    A.write_gradebook(rows, out)
    A.write_predictions(A.collect_predictions(submissions), out)
    pieces = set(A._nb08_pieces())
    names = {n: next(TUTORIALS.glob(f"{n}_*.ipynb")).stem for n in record["notebooks"]}
    scores: dict[tuple, float] = {}
    for row in rows:
        cell = PIECES_CELL if row["notebook"] == "08" and row["exercise"] in pieces else f"check_{row['exercise']}"
        key = (row["student"], names[row["notebook"]], cell)
        scores[key] = scores.get(key, 0) + row["points"]
    with Gradebook(url) as gb:
        for (student, notebook, cell), points in scores.items():
            try:
                entry = gb.find_grade(cell, notebook, assignment, student)
            except MissingEntry:
                raise SystemExit(
                    f"nbgrader has no grade for {student}/{notebook}/{cell}: run `nbgrader autograde {assignment}` "
                    "in the course folder first"
                ) from None
            entry.auto_score = float(points)
        gb.db.commit()
    return rows


def _gradebook(course: Path, assignment: str = "ASSIGNMENT") -> str:
    """nbgrader's database URL for ``course``, which ``nbgrader autograde`` must have written."""
    _assignments(course)
    path = Path(course) / "gradebook.db"
    if not path.is_file():
        raise SystemExit(f"{path} is missing: run `nbgrader autograde {assignment}` in {course} first")
    return f"sqlite:///{path}"


def _assignments(course: Path) -> dict:
    """The assignments ``source`` wrote into ``course`` ({name: {"notebooks", "seed"}})."""
    path = Path(course) / CONFIG_NAME
    if not path.is_file():
        raise SystemExit(f"{course} is not a course folder: no {CONFIG_NAME} (make it with `source` first)")
    return json.loads(path.read_text())["assignments"]


try:
    from nbgrader.plugins import ExportPlugin
except ImportError:  # without the teach extra: the exporter is not needed
    ExportPlugin = object


class ExerciseCsv(ExportPlugin):
    """``nbgrader export --exporter course.nbgrader_course.ExerciseCsv --to FILE``: one row per student and graded
    cell (assignment, student_id, notebook, cell, score, max_score, needs_manual_grade)."""

    def export(self, gradebook) -> None:
        dest = self.to or "grades_by_exercise.csv"
        keys = ["assignment", "student_id", "notebook", "cell", "score", "max_score", "needs_manual_grade"]
        with open(dest, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=keys)
            writer.writeheader()
            for assignment in gradebook.assignments:
                for student in gradebook.students:
                    try:
                        submission = gradebook.find_submission(assignment.name, student.id)
                    except Exception:  # nbgrader's MissingEntry: this student did not submit it
                        continue
                    for notebook in submission.notebooks:
                        for g in notebook.grades:
                            writer.writerow(
                                {
                                    "assignment": assignment.name,
                                    "student_id": student.id,
                                    "notebook": notebook.name,
                                    "cell": g.name,
                                    "score": g.score,
                                    "max_score": g.max_score,
                                    "needs_manual_grade": g.needs_manual_grade,
                                }
                            )


def export(course: Path, to: Path) -> Path:
    """Write nbgrader's gradebook as one row per student and graded cell (:class:`ExerciseCsv`)."""
    from nbgrader.api import Gradebook

    with Gradebook(_gradebook(course)) as gb:
        ExerciseCsv(to=str(to)).export(gb)
    return Path(to)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m course.nbgrader_course",
        description="The course on nbgrader; run from tutorials/. Steps: `source COURSE`; in COURSE, `nbgrader "
        "generate_assignment A` and hand out release/A; collect into COURSE/submitted/<student>/A/; in COURSE, "
        "`nbgrader autograde A`; `grade COURSE --assignment A`; `export COURSE` (tutorials/TEACHING.md, section 4).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("source", help="write an nbgrader course folder (source version, config) from the notebooks")
    s.add_argument("course", type=Path, help="the course folder to create or extend")
    s.add_argument("--assignment", default="mini_cal", help="the assignment's name (default: mini_cal)")
    s.add_argument("--notebooks", nargs="+", default=None, help="notebook numbers (default: all nine, 01 to 09)")
    s.add_argument("--seed", type=int, default=A.HIDDEN_SEED, help="the hidden cases' seed (choose your own)")
    g = sub.add_parser("grade", help="grade the submissions with the pristine autograder, into nbgrader's gradebook")
    g.add_argument("course", type=Path)
    g.add_argument("--assignment", default="mini_cal")
    e = sub.add_parser("export", help="one CSV row per student and graded cell, from nbgrader's gradebook")
    e.add_argument("course", type=Path)
    e.add_argument("--to", type=Path, default=Path("grades_by_exercise.csv"), help="the CSV to write")
    args = parser.parse_args(argv)
    if args.command == "source":
        available = sorted(p.name[:2] for p in TUTORIALS.glob("0[1-9]_*.ipynb"))
        numbers = [n.zfill(2) for n in (args.notebooks or available)]
        unknown = sorted(set(numbers) - set(available))
        if unknown:
            parser.error(f"--notebooks: no notebook {', '.join(unknown)} (expected some of {', '.join(available)})")
        folder = write_source(args.course, args.assignment, numbers, args.seed)
        print(
            f"wrote {folder} ({len(numbers)} notebooks); next, in {args.course}: "
            f"nbgrader generate_assignment {args.assignment}"
        )
    elif args.command == "export":
        print(f"wrote {export(args.course, args.to)}")
    else:
        rows = grade(args.course, args.assignment)
        for student in sorted({r["student"] for r in rows}):
            mine = [r for r in rows if r["student"] == student]
            print(f"{student}: {sum(r['points'] for r in mine)} of {len(mine)} autograded points")


if __name__ == "__main__":
    main(sys.argv[1:])
