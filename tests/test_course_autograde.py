"""tutorials/course/autograde.py: the gradebook comes from hidden tests run with pristine checkers on the
functions a student wrote, never from what the notebook printed.

Three made-up submissions of every graded notebook (01 to 08): complete and correct (the reference answers of
tutorials/solutions/ pasted into the stubs), partly wrong, and one that writes no real code and uses the tricks of
issue 19 point 1 (monkeypatched checkers, a printed PASSED, G.hide = nullcontext, calling the library, forged
outputs). The autograder runs once, through the command of tutorials/TEACHING.md, and the CSVs are checked.
"""

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")

ROOT = Path(__file__).resolve().parent.parent
TUTORIALS = ROOT / "tutorials"
sys.path.insert(0, str(TUTORIALS))

from course import autograde as A  # noqa: E402
from course_submissions import COURSE, WRONG, _notebook, _paste, _student, teaching_block  # noqa: E402

GRADED = ("01", "02", "03", "04", "05", "06", "07", "08", "09")
TOTAL = 38  # graded exercises in the course (21 in 01-07, 16 in 08, 1 in 09)


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """The three submissions, graded by running TEACHING.md's autograder command block from a copy of the course
    folder (as a teacher's checkout has it)."""
    root = tmp_path_factory.mktemp("course")
    submissions = root / "submissions"
    for student, kind, numbers in (
        ("alice", "complete", GRADED),
        ("bob", "partial", GRADED),
        ("mallory", "cheat", ("02", "03", "05", "08")),
    ):
        for number in numbers:
            folder = submissions / student
            folder.mkdir(parents=True, exist_ok=True)
            nbformat.write(_student(student, number, kind), folder / _notebook(number).name)
    shutil.copytree(TUTORIALS, root / "tutorials", ignore=shutil.ignore_patterns("__pycache__", "*.ipynb_checkpoints"))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    proc = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", teaching_block("autograde")],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with (root / "grades" / "gradebook.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    with (root / "grades" / "totals.csv").open(newline="") as f:
        totals = {r["student"]: r for r in csv.DictReader(f)}
    return rows, totals, proc.stdout


def _points(rows, student):
    return {(r["notebook"], r["exercise"]): int(r["points"]) for r in rows if r["student"] == student}


def test_exercises_are_read_from_the_pristine_notebooks():
    assert set(COURSE) == set(GRADED)
    assert len(COURSE["08"]) == 16  # the thirteen pieces, the two assemblies and the whole CAL step
    assert [ex.function for ex in COURSE["02"]] == [
        "my_linear_backward",
        "my_relu_backward",
        "my_softmax_ce_backward",
        "my_bottleneck_backward",
    ]
    assert COURSE["01"][0].function == "effective_lr"
    assert COURSE["08"][0].checker == "course.nb02:check_linear_backward"


def test_extract_keeps_definitions_and_imports_only(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("%matplotlib inline\nimport numpy as np\nEPS = 1e-12\nprint('PASSED')"),
        nbformat.v4.new_code_cell("@decorator\ndef my_f(x):\n    return x\nG.hide = None\nmy_f(1)"),
        nbformat.v4.new_code_cell("def my_f(x):\n    return 2 * x"),
        nbformat.v4.new_code_cell("def broken(:"),
    ]
    nbformat.write(nb, tmp_path / "a.ipynb")
    parts = A.extract(tmp_path / "a.ipynb")
    assert parts["preamble"] == ["import numpy as np", "EPS = 1e-12"]
    assert parts["functions"] == {"my_f": "def my_f(x):\n    return 2 * x"}
    assert len(parts["problems"]) == 1


def test_submissions_are_found_in_both_layouts(tmp_path):
    for rel in ("alice/02_backprop_by_hand.ipynb", "bob__03_measuring.ipynb", "carol/hw/05.ipynb", "stray.ipynb"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("{}")
    found = A.find_submissions(tmp_path)
    assert {s: sorted(n) for s, n in found.items()} == {"alice": ["02"], "bob": ["03"], "carol": ["05"]}


def test_the_complete_submission_gets_full_marks(graded):
    rows, totals, _ = graded
    alice = _points(rows, "alice")
    assert len(alice) == sum(len(v) for v in COURSE.values()) == TOTAL
    failed = {k: r["message"] for r in rows if r["student"] == "alice" and r["points"] == "0" for k in [r["exercise"]]}
    assert not failed, failed
    assert totals["alice"]["total"] == totals["alice"]["max_points"] == str(TOTAL)


def test_the_partly_wrong_submission_gets_the_right_subset(graded):
    rows, totals, _ = graded
    bob = _points(rows, "bob")
    wrong = {(n, ex.name) for n, fs in WRONG.items() for ex in COURSE[n] if ex.function in fs}
    assert {k for k, p in bob.items() if p == 0} == wrong
    assert int(totals["bob"]["total"]) == TOTAL - len(wrong) == 28
    messages = {(r["notebook"], r["exercise"]): r["message"] for r in rows if r["student"] == "bob"}
    assert messages[("04", "ogm_k")].startswith("NOT YET")
    assert messages[("05", "kl_backward")].startswith("FAILED")


def test_every_cheated_exercise_scores_zero(graded):
    rows, totals, _ = graded
    mallory = _points(rows, "mallory")
    assert set(mallory.values()) == {0} and totals["mallory"]["total"] == "0"
    messages = {(r["notebook"], r["exercise"]): r["message"] for r in rows if r["student"] == "mallory"}
    assert "library" in messages[("02", "linear_backward")]
    assert "changed the grader" in messages[("02", "softmax_ce_backward")]
    assert "changed the grader" in messages[("05", "kl_forward")]
    assert "no verdict within" in messages[("03", "shapley_two")]
    assert "SystemExit" in messages[("03", "coalition_values")]
    assert messages[("01", "effective_lr")].startswith("NOT SUBMITTED")


def test_the_summary_names_each_student(graded):
    _, _, stdout = graded
    assert f"alice: {TOTAL} of {TOTAL}" in stdout and f"bob: 28 of {TOTAL}" in stdout
    assert f"mallory: 0 of {TOTAL}" in stdout


def test_a_hidden_case_the_student_never_saw_decides(tmp_path):
    """An answer hard-coded for the visible cases (seed 0) fails the hidden ones."""
    from course import nb02
    from solutions.linear_backward import linear_backward

    calls = []  # the visible cases and their answers, recorded once

    def record(dout, cache):
        calls.append((dout.tobytes().hex(), [a.tolist() for a in linear_backward(dout, cache)]))
        return linear_backward(dout, cache)

    assert nb02.check_linear_backward(record).passed
    table = dict(calls)
    source = (
        "def my_linear_backward(dout, cache):\n"
        f"    table = {json.dumps(table)}\n"
        "    return tuple(np.array(v) for v in table[dout.tobytes().hex()])"
    )
    nb = _paste(nbformat.read(_notebook("02"), as_version=4), {"my_linear_backward": source})
    (tmp_path / "eve").mkdir()
    nbformat.write(nb, tmp_path / "eve" / "02_backprop_by_hand.ipynb")
    rows = A.grade_submissions(tmp_path, ["02"], jobs=1)
    verdict = next(r for r in rows if r["exercise"] == "linear_backward")
    assert verdict["points"] == 0 and "hidden cases" in verdict["message"], verdict
