"""tutorials/course/autograde.py: the gradebook comes from hidden tests run with pristine checkers on the
functions a student wrote, never from what the notebook printed.

Three made-up submissions of every graded notebook (01 to 08): complete and correct (the reference answers of
tutorials/solutions/ pasted into the stubs), partly wrong, and one that writes no real code and uses the tricks of
issue 19 point 1 (monkeypatched checkers, a printed PASSED, G.hide = nullcontext, calling the library, forged
outputs). The autograder runs once, through the command of tutorials/TEACHING.md, and the CSVs are checked.
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

nbformat = pytest.importorskip("nbformat")

ROOT = Path(__file__).resolve().parent.parent
TUTORIALS = ROOT / "tutorials"
sys.path.insert(0, str(TUTORIALS))

from course import autograde as A  # noqa: E402

SOLUTION_MODULE = {"accelerate": "cal_coefficients", "weights_of_batch": "capstone_weights", "kl_loss": "capstone_kl"}
GRADED = ("01", "02", "03", "04", "05", "06", "07", "08")
COURSE = A.course_exercises()


def _notebook(number):
    return next(TUTORIALS.glob(f"{number}_*.ipynb"))


def _solution(function):
    """The reference answer for the student's function ``function`` (e.g. my_linear_backward), renamed."""
    key = function.removeprefix("my_")
    source = (TUTORIALS / "solutions" / f"{SOLUTION_MODULE.get(key, key)}.py").read_text()
    tree = ast.parse(source)
    imports = [ast.unparse(n) for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    body = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == key)
    body.name = function
    return imports, ast.unparse(body)


def _paste(nb, replacements):
    """Replace every top-level definition of a function in ``replacements`` ({name: source or None for a
    solution}) inside its own cell, as a student pastes code into a stub; imports go at the top of that cell."""
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        tree = ast.parse("\n".join("" if line.startswith("%") else line for line in cell.source.splitlines()))
        lines = cell.source.splitlines()
        imports = []
        for node in reversed(tree.body):
            if isinstance(node, ast.FunctionDef) and node.name in replacements:
                new = replacements[node.name]
                if new is None:
                    more, new = _solution(node.name)
                    imports += more
                lines[node.lineno - 1 : node.end_lineno] = new.splitlines()
        cell.source = "\n".join(sorted(set(imports)) + lines)
    return nb


def _fake_outputs(nb):
    """Every check cell 'printed' PASSED: the autograder must not read it."""
    for cell in nb.cells:
        if cell.cell_type == "code" and "check_" in cell.source:
            cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="PASSED: everything is right\n")]
            cell.execution_count = 1
    return nb


# what student (b) gets wrong or leaves unfinished: {notebook: {function: wrong source or "stub"}}
WRONG = {
    "02": {"my_relu_backward": "def my_relu_backward(dout, cache):\n    return dout"},
    "03": {"my_shapley_two": "def my_shapley_two(v):\n    return [v[(0,)] - v[()], v[(1,)] - v[()]]"},
    "04": {"my_ogm_k": "stub"},
    "05": {
        "my_kl_backward": "def my_kl_backward(dkl, cache):\n    mu, sigma = cache\n"
        "    return dkl * mu, dkl * (sigma - 1 / sigma)",  # the 1/N forgotten
        "my_bottleneck_betas": "stub",
    },
    "06": {"my_auc": "def my_auc(levels, accs):\n    return float(np.mean(accs))"},
    "08": {
        "my_kl_forward": "def my_kl_forward(mu, sigma):\n    return float(np.sum(mu ** 2 + sigma ** 2) / mu.shape[0])",
        "my_kl_loss": "stub",
    },
}

CHEAT_CELL = """import exercises
from contextlib import nullcontext
from course import grading as G
G.hide = nullcontext
exercises.check_kl_backward = lambda fn, *a, **k: G.passed("right")
for _name in dir(exercises):
    if _name.startswith("check_"):
        setattr(exercises, _name, lambda fn, *a, **k: G.passed("right"))
"""

# (c): no real code. Each function calls the library, returns nothing useful, or tampers with the grader at call
# time; the notebook also monkeypatches at top level and prints PASSED in its check cells.
CHEATS = {
    "my_linear_backward": "def my_linear_backward(dout, cache):\n    return L.linear_backward(dout, cache)",
    "my_relu_backward": "def my_relu_backward(dout, cache):\n    from mini_cal import layers\n"
    "    return layers.relu_backward(dout, cache)",
    "my_softmax_ce_backward": "def my_softmax_ce_backward(dloss, cache):\n    from course import grading\n"
    "    grading.compare_outputs = lambda *a, **k: None\n    grading.diagnose = lambda *a, **k: None\n"
    "    return cache[0]",
    "my_kl_forward": "def my_kl_forward(mu, sigma):\n    from contextlib import nullcontext\n"
    "    from course import grading\n    grading.hide = nullcontext\n    return L.gaussian_kl_forward(mu, sigma)[0]",
    "my_kl_backward": "def my_kl_backward(dkl, cache):\n    return L.gaussian_kl_backward(dkl, cache)",
    "my_bottleneck_forward": "def my_bottleneck_forward(h, w_mu, b_mu, w_s, b_s, eps=None, sigma_min=1e-4, "
    "shift=5.0):\n    return L.gaussian_bottleneck_forward(h, w_mu, b_mu, w_s, b_s, eps=eps, sigma_min=sigma_min, "
    "shift=shift)[0]",
    "my_coalition_values": "def my_coalition_values(shares, bias, y_onehot, h_y):\n    import sys\n    sys.exit(0)",
    "my_shapley_two": "def my_shapley_two(v):\n    from mini_cal import contribution\n"
    "    return contribution.shapley(v, 2)",
    "my_confidence": "def my_confidence(logits_m, num_classes):\n    from mini_cal import contribution as C\n"
    "    return C.confidence(logits_m, num_classes)",
}

HANG = "def my_shapley_two(v):\n    while True:\n        pass"  # notebook 03 only: the time limit ends it


def _student(name, number, kind):
    nb = nbformat.read(_notebook(number), as_version=4)
    functions = {ex.function for ex in COURSE[number]}
    if kind == "complete":
        _paste(nb, dict.fromkeys(functions))
    elif kind == "partial":
        wrong = WRONG.get(number, {})
        _paste(nb, {f: wrong.get(f) for f in functions if wrong.get(f) != "stub"})
    else:
        cheats = dict(CHEATS, my_shapley_two=HANG) if number == "03" else CHEATS
        _paste(nb, {f: cheats[f] for f in functions if f in cheats})
        nb.cells.insert(2, nbformat.v4.new_code_cell(CHEAT_CELL))
        for cell in nb.cells:  # `check(...); print('PASSED')` in every check cell
            if cell.cell_type == "code" and re.search(r"exercises\.check_\w+\(", cell.source):
                cell.source = cell.source.rstrip() + "\nprint('PASSED')"
    return _fake_outputs(nb)


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


def teaching_block(tag):
    """The fenced bash block of TEACHING.md that starts with the line ``# tested: <tag>``."""
    text = (TUTORIALS / "TEACHING.md").read_text()
    blocks = re.findall(r"```bash\n(# tested: (\w+)\n.*?)```", text, re.S)
    return next(body for body, name in blocks if name == tag)


def _points(rows, student):
    return {(r["notebook"], r["exercise"]): int(r["points"]) for r in rows if r["student"] == student}


def test_exercises_are_read_from_the_pristine_notebooks():
    assert set(COURSE) == set(GRADED)
    assert len(COURSE["08"]) == 15  # the thirteen pieces and the two assemblies
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
    assert len(alice) == sum(len(v) for v in COURSE.values()) == 36
    failed = {k: r["message"] for r in rows if r["student"] == "alice" and r["points"] == "0" for k in [r["exercise"]]}
    assert not failed, failed
    assert totals["alice"]["total"] == totals["alice"]["max_points"] == "36"


def test_the_partly_wrong_submission_gets_the_right_subset(graded):
    rows, totals, _ = graded
    bob = _points(rows, "bob")
    wrong = {(n, ex.name) for n, fs in WRONG.items() for ex in COURSE[n] if ex.function in fs}
    assert {k for k, p in bob.items() if p == 0} == wrong
    assert int(totals["bob"]["total"]) == 36 - len(wrong) == 28
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
    assert "alice: 36 of 36" in stdout and "bob: 28 of 36" in stdout and "mallory: 0 of 36" in stdout


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
