"""The tutorials as handed out: every notebook runs top to bottom in fast mode from a copy of tutorials/ without
solutions/ and without the teacher's answer key, and every notebook is stored without outputs. The checkers
themselves are tested in tests/test_course_*.py."""

import os
import re
import shutil
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

ROOT = Path(__file__).resolve().parent.parent
TUTORIALS = ROOT / "tutorials"
NOTEBOOKS = sorted(TUTORIALS.glob("*.ipynb"))
CELL_TIMEOUT_S = 300
TEACHER_ONLY = ("solutions", "answers", "TEACHING.md")  # what a teacher withholds (tutorials/TEACHING.md)


@pytest.fixture(scope="session")
def handout(tmp_path_factory):
    """A copy of tutorials/ as a student receives it: no solutions/, no answers/, no TEACHING.md."""
    dest = tmp_path_factory.mktemp("course") / "tutorials"
    shutil.copytree(TUTORIALS, dest, ignore=shutil.ignore_patterns(*TEACHER_ONLY, "__pycache__", ".ipynb_checkpoints"))
    assert not (dest / "solutions").exists()
    return dest


def test_there_are_notebooks():
    assert NOTEBOOKS, f"no notebooks found in {TUTORIALS}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_without_solutions(path, handout, monkeypatch):
    """Execute the handed-out copy of the notebook in a fresh python3 kernel, in fast mode, with tutorials/solutions
    absent; any cell error fails the test."""
    monkeypatch.setenv("MINI_CAL_FAST", "1")
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):  # what `import mini_cal` sets, in
        monkeypatch.setenv(var, os.environ.get(var, "1"))  # case a notebook loads NumPy first (4x the CPU)
    # the kernel imports this checkout's mini_cal even where it is not installed; tutorials/ itself is NOT on the
    # path, so `import solutions` cannot succeed
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    nb = nbformat.read(handout / path.name, as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=CELL_TIMEOUT_S, kernel_name="python3", resources={"metadata": {"path": str(handout)}}
    )
    client.execute()  # raises CellExecutionError, naming the cell, on any error
    errors = [
        o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.get("output_type") == "error"
    ]
    assert not errors


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_stored_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    dirty = [
        i
        for i, c in enumerate(nb.cells)
        if c.cell_type == "code" and (c.get("outputs") or c.get("execution_count") is not None)
    ]
    assert not dirty, f"{path.name}: cells {dirty} have outputs or execution counts; strip them before committing"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_never_reveals_an_answer(path):
    """No notebook imports the solutions or prints the source of a function (a student's or the library's answer)."""
    nb = nbformat.read(path, as_version=4)
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert not re.search(r"^\s*(from|import)\s+solutions\b", code, re.M), f"{path.name} imports solutions/"
    stubs = {
        name
        for c in nb.cells
        if c.cell_type == "code" and "YOUR CODE HERE" in c.source
        for name in re.findall(r"def (\w+)\(", c.source)
    }
    for name in stubs | {"my_"}:
        assert f"getsource({name}" not in code, f"{path.name} prints the source of {name}, an exercise"


def test_exercise_stubs_raise_not_implemented():
    """Every exercise stub (a cell defining a function with 'YOUR CODE HERE') raises NotImplementedError."""
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code" and "YOUR CODE HERE" in cell.source:
                assert "raise NotImplementedError" in cell.source, f"{path.name}: a stub that does not raise"


COURSE_TEXT = sorted(TUTORIALS.glob("*.ipynb")) + sorted(TUTORIALS.glob("*.md")) + sorted(TUTORIALS.glob("course/*.py"))


@pytest.mark.parametrize("path", COURSE_TEXT, ids=lambda p: str(p.relative_to(TUTORIALS)))
def test_course_points_at_files_that_exist(path):
    """Every library file the course names (``mini_cal/....py``) exists, and the course imports names from where
    they live, not from the removed compatibility module ``mini_cal.experiments``."""
    text = path.read_text()
    missing = sorted({p for p in re.findall(r"mini_cal/[\w/]+\.py", text) if not (ROOT / p).exists()})
    assert not missing, f"{path.name} names files that do not exist: {missing}"
    assert "from mini_cal.experiments import" not in text and "mini_cal/experiments.py" not in text, path.name


# ------------------------------------------------------------------------------- the course map (issue 19, point 10)
HANDOUT_TEXT = [p for p in COURSE_TEXT if p.name != "TEACHING.md"]


def _predict_questions(path) -> int:
    """The **Predict** questions of a notebook: markdown lines that start with **Predict (not the intro's mention)."""
    nb = nbformat.read(path, as_version=4)
    return sum(
        len(re.findall(r"^\*\*Predict[.:]?\*\*[.:]? ", c.source, re.M)) for c in nb.cells if c.cell_type == "markdown"
    )


def test_teaching_table_lists_every_notebook_with_its_predict_count():
    rows = {
        m.group(1): int(m.group(2))
        for m in re.finditer(r"^\| (\d\d) \| \[[^\]]+\]\(\S+\.ipynb\) \| [^|]+ \| (\d+) \|", _read("TEACHING.md"), re.M)
    }
    counts = {path.name[:2]: _predict_questions(path) for path in NOTEBOOKS}
    assert rows == counts, f"TEACHING.md's table (notebook: Predict questions) {rows} != the notebooks' {counts}"


def _read(name):
    return (TUTORIALS / name).read_text(encoding="utf-8")


NUMBER_WORDS = "one two three four five six seven eight nine ten eleven twelve".split()


@pytest.mark.parametrize("path", COURSE_TEXT, ids=lambda p: str(p.relative_to(TUTORIALS)))
def test_course_counts_its_notebooks_right(path):
    """'eight notebooks' or 'all eight' in a course of nine: every count of the notebooks says how many there are."""
    text = path.read_text(encoding="utf-8").lower()
    said = re.findall(r"\b(\w+) notebooks\b", text) + re.findall(r"\ball (\w+) notebooks?\b|map of all (\w+)", text)
    words = [w for group in said for w in (group if isinstance(group, tuple) else (group,)) if w in NUMBER_WORDS]
    assert all(NUMBER_WORDS.index(w) + 1 == len(NOTEBOOKS) for w in words), (path.name, words)


@pytest.mark.parametrize("path", COURSE_TEXT, ids=lambda p: str(p.relative_to(TUTORIALS)))
def test_course_names_and_links_files_that_exist(path):
    """Every relative link resolves, every backticked file name ending in .md exists in the repository (a name
    such as `STYLE.md` that lives outside it is a dead reference), and nothing a student receives links to what the
    teacher withholds (the link would be dead in the handout)."""
    if path.suffix == ".ipynb":  # the prose only: code may hold "](" too
        text = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "markdown")
    else:
        text = path.read_text(encoding="utf-8")
    for target in re.findall(r"\]\(([^)#\s]+)", text):
        if "://" in target:
            continue
        assert (path.parent / target).exists(), f"{path.name} links to {target}, which does not exist"
        if path in HANDOUT_TEXT:
            assert not target.startswith(TEACHER_ONLY), f"{path.name} links to {target}, withheld from students"
    for name in set(re.findall(r"`([\w./-]+\.md)`", text)):
        if "XX" in name:
            continue
        candidates = [ROOT / name, TUTORIALS / name, *(ROOT / "docs").rglob(Path(name).name)]
        assert any(p.exists() and str(p).endswith(name) for p in candidates), f"{path.name} names {name}: not found"
