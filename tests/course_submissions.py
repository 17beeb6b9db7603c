"""Made-up course submissions for the autograder tests (tests/test_course_autograde.py, tests/test_course_nbgrader.py):
complete and correct (the reference answers of tutorials/solutions/ pasted into the stubs), partly wrong, and one
that writes no real code and uses the tricks of issue 19 points 1 and 3."""

import ast
import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
TUTORIALS = ROOT / "tutorials"
if str(TUTORIALS) not in sys.path:
    sys.path.insert(0, str(TUTORIALS))

from course import autograde as A  # noqa: E402
from course.nbgrader_course import solution_source  # noqa: E402

COURSE = A.course_exercises()


def _notebook(number):
    return next(TUTORIALS.glob(f"{number}_*.ipynb"))


def _solution(function):
    """The reference answer for the student's function ``function`` (e.g. my_linear_backward), renamed."""
    imports, definition, _ = solution_source(function)
    definition.name = function
    return imports, ast.unparse(definition)


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
    "09": {  # statistics of each split instead of the training split's
        "my_standardize": "def my_standardize(train, *others):\n"
        "    return [{m: (x - x.mean(0)) / x.std(0) for m, x in s.items()} for s in (train, *others)]"
    },
    "08": {
        "my_kl_forward": "def my_kl_forward(mu, sigma):\n    return float(np.sum(mu ** 2 + sigma ** 2) / mu.shape[0])",
        "my_kl_loss": "stub",
        "my_cal_step": "stub",
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


def _student(name, number, kind, path=None):
    """Student ``name``'s notebook ``number`` of ``kind`` (complete, partial or cheat), made from the pristine
    notebook or from ``path`` (the nbgrader release version)."""
    nb = nbformat.read(path or _notebook(number), as_version=4)
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


def teaching_block(tag):
    """The fenced bash block of TEACHING.md that starts with the line ``# tested: <tag>``."""
    text = (TUTORIALS / "TEACHING.md").read_text()
    blocks = re.findall(r"```bash\n(# tested: (\w+)\n.*?)```", text, re.S)
    return next(body for body, name in blocks if name == tag)
