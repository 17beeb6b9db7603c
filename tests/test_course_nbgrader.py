"""tutorials/course/nbgrader_course.py: the teacher's path on nbgrader, run as tutorials/TEACHING.md writes it.

From a copy of the checkout, TEACHING.md's two bash blocks write the course folder and the student version
(``nbgrader generate_assignment``), then three made-up submissions are collected (complete and correct; partly
wrong; one that writes no real code and uses the tricks of issue 19 points 1 and 3), autograded by nbgrader,
graded with the pristine autograder into nbgrader's gradebook and exported to CSV. Notebooks run in fast mode.
"""

import ast
import csv
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("nbgrader")
nbformat = pytest.importorskip("nbformat")

from course_submissions import COURSE, TUTORIALS, WRONG, A, _student, teaching_block  # noqa: E402

NOTEBOOKS = ("02", "08")  # the assignment of TEACHING.md's example
SEED = "4321"  # the hidden seed TEACHING.md's example passes
PIECES = set(A._nb08_pieces())
BOB_PREDICTS = "About 1e-10: float64 centred differences."


def _run(block, cwd, env):
    proc = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", teaching_block(block)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    top = tmp_path_factory.mktemp("teach")
    checkout = top / "mini_cal"
    shutil.copytree(TUTORIALS, checkout / "tutorials", ignore=shutil.ignore_patterns("__pycache__", "*checkpoints"))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["MINI_CAL_FAST"] = "1"  # the notebooks' quick mode, as in tests/test_notebooks.py
    _run("nbgrader_release", checkout, env)
    release = top / "course" / "release" / "pieces"
    for student, kind in (("alice", "complete"), ("bob", "partial"), ("mallory", "cheat")):
        folder = top / "course" / "submitted" / student / "pieces"
        folder.mkdir(parents=True)
        for path in sorted(release.glob("*.ipynb")):
            nb = _student(student, path.name[:2], kind, path)
            if student == "bob" and path.name.startswith("02"):  # bob answers the first Predict question
                cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "predict_02_1")
                cell.source = f"{A.PREDICTION_PROMPT}\n\n{BOB_PREDICTS}"
            nbformat.write(nb, folder / path.name)
    stdout = _run("nbgrader_grade", checkout, env)
    with (top / "course" / "grades_by_exercise.csv").open(newline="") as f:
        cells = list(csv.DictReader(f))
    with (top / "course" / "grades.csv").open(newline="") as f:
        totals = {r["student_id"]: r for r in csv.DictReader(f)}
    return top, cells, totals, stdout


def _scores(cells, student):
    return {
        (r["notebook"][:2], r["cell"]): (float(r["score"]), float(r["max_score"]))
        for r in cells
        if r["student_id"] == student
    }


def _expected(student):
    """{(notebook, test cell): points} that ``student`` must get from the pristine autograder."""
    out = {}
    for number in NOTEBOOKS:
        wrong = WRONG.get(number, {}) if student == "bob" else {}
        for ex in COURSE[number]:
            cell = "pieces" if number == "08" and ex.name in PIECES else f"check_{ex.name}"
            ok = student != "mallory" and ex.function not in wrong
            out[(number, cell)] = out.get((number, cell), 0) + int(ok)
    return out


def test_the_student_version_holds_no_solution(course):
    top = course[0]
    release = top / "course" / "release" / "pieces"
    assert sorted(p.name[:2] for p in release.glob("*.ipynb")) == list(NOTEBOOKS)
    files = {p.relative_to(release).as_posix() for p in release.rglob("*") if p.is_file()}
    for teacher_only in ("solutions/", "answers/", "TEACHING.md", "course/autograde.py", "course/nbgrader_course.py"):
        assert not any(f.startswith(teacher_only) for f in files), teacher_only
    for path in release.glob("*.ipynb"):
        text = path.read_text()
        for secret in ("BEGIN SOLUTION", "HIDDEN TESTS", SEED, "Answer key"):
            assert secret not in text, (path.name, secret)
        pristine = nbformat.read(next(TUTORIALS.glob(f"{path.name[:2]}_*.ipynb")), as_version=4)
        stubs = {n.name: n for c in pristine.cells if c.cell_type == "code" for n in _functions(c.source)}
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type != "code" or not cell.metadata.get("nbgrader", {}).get("solution"):
                continue
            for fn in _functions(cell.source):  # each stub as in the course, its body no longer than there
                assert isinstance(fn.body[-1], ast.Raise) and len(fn.body) <= len(stubs[fn.name].body), fn.name
    source = nbformat.read(top / "course" / "source" / "pieces" / "02_backprop_by_hand.ipynb", as_version=4)
    code = "\n".join(c.source for c in source.cells if c.cell_type == "code")
    assert code.count("### BEGIN SOLUTION") == 4 and f"seed={SEED}" in code  # the teacher's version has them


def _functions(source):
    tree = ast.parse("\n".join("" if line.startswith("%") else line for line in source.splitlines()))
    return [n for n in tree.body if isinstance(n, ast.FunctionDef)]


def test_predict_answers_are_collected_as_manually_graded_cells(course):
    top, cells, _, _ = course
    for number in NOTEBOOKS:
        pristine = nbformat.read(next(TUTORIALS.glob(f"{number}_*.ipynb")), as_version=4)
        predicts = sum(
            1
            for i, c in enumerate(pristine.cells)
            if i and c.cell_type == "markdown" and re.search(r"(?m)^\*\*Predict", c.source)
        )
        assert predicts > 0
        ids = {r["cell"] for r in cells if r["student_id"] == "alice" and r["notebook"].startswith(number)}
        assert {f"predict_{number}_{k}" for k in range(1, predicts + 1)} <= ids
    bob = {r["cell"]: r for r in cells if r["student_id"] == "bob"}
    assert bob["predict_02_1"]["needs_manual_grade"] == "True"  # written: waits for the teacher
    assert bob["predict_02_2"]["needs_manual_grade"] == "False"  # left blank: nbgrader scores it 0
    with (top / "course" / "grades" / "pieces" / "predictions.csv").open(newline="") as f:
        written = list(csv.DictReader(f))
    assert written == [{"student": "bob", "notebook": "02", "question": "1", "answer": BOB_PREDICTS}]


@pytest.mark.parametrize("student", ["alice", "bob", "mallory"])
def test_the_exported_csv_gives_each_exercise_its_pristine_grade(course, student):
    _, cells, totals, _ = course
    scores = _scores(cells, student)
    expected = _expected(student)
    assert {k: v[0] for k, v in scores.items() if k in expected} == expected
    assert set(expected) <= set(scores)
    auto = sum(expected.values())
    assert float(totals[student]["score"]) == auto  # Predict answers not graded yet: 0
    if student == "alice":
        assert all(scores[k][0] == scores[k][1] for k in expected)  # full marks
    if student == "bob":
        assert 0 < auto < sum(scores[k][1] for k in expected)
        assert expected[("02", "check_relu_backward")] == 0 and expected[("08", "pieces")] == len(PIECES) - 1
    if student == "mallory":
        assert auto == 0


def _in_kernel_passes(top, student):
    """nbgrader's own verdicts: test cells that ran without an error in the student's kernel, and all test cells."""
    passed = total = 0
    for path in (top / "course" / "autograded" / student / "pieces").glob("*.ipynb"):
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.metadata.get("nbgrader", {}).get("grade") and cell.cell_type == "code":
                total += 1
                passed += not any(o.get("output_type") == "error" for o in cell.get("outputs", []))
    return passed, total


def test_the_hidden_tests_pass_in_the_kernel_of_a_correct_student(course):
    passed, total = _in_kernel_passes(course[0], "alice")
    assert passed == total > 0


def test_nbgrader_alone_would_have_believed_the_cheater(course):
    """In the kernel her code ran in, mallory's monkeypatched checkers pass nbgrader's own test cells."""
    passed, _ = _in_kernel_passes(course[0], "mallory")
    assert passed >= 3


def test_the_grade_step_writes_the_gradebook_with_diagnoses(course):
    top, _, _, stdout = course
    assert "mallory: 0 of" in stdout
    with (top / "course" / "grades" / "pieces" / "gradebook.csv").open(newline="") as f:
        rows = {(r["student"], r["notebook"], r["exercise"]): r for r in csv.DictReader(f)}
    assert rows[("bob", "02", "relu_backward")]["message"].startswith("FAILED")
    assert "changed the grader" in rows[("mallory", "02", "softmax_ce_backward")]["message"]
    record = json.loads((top / "course" / "mini_cal_course.json").read_text())
    assert record["assignments"]["pieces"] == {"notebooks": list(NOTEBOOKS), "seed": int(SEED)}


def test_teaching_names_the_teach_extra():
    setup = (TUTORIALS.parent / "setup.py").read_text()
    assert '"teach": [' in setup and "nbgrader" in setup
    assert "pip install -e '.[teach]'" in (TUTORIALS / "TEACHING.md").read_text()


def test_bad_input_is_named_before_anything_is_written(tmp_path, capsys):
    from course import nbgrader_course as NG

    with pytest.raises(SystemExit):
        NG.main(["source", str(tmp_path / "c"), "--notebooks", "10"])
    assert "--notebooks: no notebook 10" in capsys.readouterr().err and not (tmp_path / "c").exists()
    for argv, message in (
        (["grade", str(tmp_path)], "is not a course folder"),
        (["export", str(tmp_path)], "is not a course folder"),
    ):
        with pytest.raises(SystemExit, match=message):
            NG.main(argv)
    NG.main(["source", str(tmp_path / "c"), "--notebooks", "02"])
    with pytest.raises(SystemExit, match="has no assignment 'nope'"):
        NG.main(["grade", str(tmp_path / "c"), "--assignment", "nope"])
    with pytest.raises(SystemExit, match="run `nbgrader autograde mini_cal`"):
        NG.main(["grade", str(tmp_path / "c")])
    with pytest.raises(SystemExit, match="exists: choose another --assignment"):
        NG.main(["source", str(tmp_path / "c"), "--notebooks", "02"])
    assert not (tmp_path / "c" / "gradebook.db").exists()
