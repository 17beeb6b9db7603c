"""The shape of the package: the teaching core never imports the lab, and a method is one declared file."""

import ast
import json
from pathlib import Path

import pytest

from mini_cal import methods, synthetic
from mini_cal.train import TrainConfig, train

PACKAGE = Path(__file__).resolve().parents[1] / "mini_cal"
CORE = [
    "backend",
    "layers",
    "gradcheck",
    "model",
    "contribution",
    "optim",
    "train",
    "evaluate",
    "noise",
    "data",
    "synthetic",
    "methods",
]


def _imports(path: Path) -> set:
    """Every mini_cal module a file imports (relative imports resolved), at any depth of the file."""
    package = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if path.name == "__init__.py":
        package += ".__init__"
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package.split(".")[: -node.level] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            found |= {module} | {f"{module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
    return {m for m in found if m.startswith("mini_cal")}


@pytest.mark.parametrize("name", CORE)
def test_core_never_imports_the_lab(name):
    files = list((PACKAGE / name).rglob("*.py")) if (PACKAGE / name).is_dir() else [PACKAGE / f"{name}.py"]
    for path in files:
        lab = sorted(m for m in _imports(path) if m.startswith("mini_cal.lab"))
        assert not lab, f"{path.relative_to(PACKAGE.parent)} imports {lab}"


def test_train_is_short_and_knows_no_checkpoints():
    tree = ast.parse((PACKAGE / "train.py").read_text())
    fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "train")
    assert fn.end_lineno - fn.lineno + 1 <= 60
    source = ast.get_source_segment((PACKAGE / "train.py").read_text(), fn)
    for word in ("checkpoint", "KeyboardInterrupt", "resume", "interrupt"):
        assert word not in source.split('"""')[-1], word  # the code, not the docstring


@pytest.fixture
def toy():
    import toy_method  # noqa: F401  (registers the method: the one file a new method needs)

    methods.register(toy_method.SPEC)  # again, in case another test unregistered it
    yield toy_method
    methods.unregister("toy")


def test_a_method_declared_in_one_file_trains_sweeps_compares_plots_and_checks(toy, tmp_path):
    from mini_cal.lab import experiments as X
    from mini_cal.lab.plots import comparison_figures
    from mini_cal.lab.selfcheck import run_all
    from mini_cal.lab.tables import config_table, results_table

    assert "toy" in methods.method_names() and "toy-strong" in methods.default_methods(2)
    ds = synthetic.load_preset("tiny")
    result = train(methods.make_method("toy"), ds, TrainConfig(epochs=2, progress=False, probe=False, shapley=False))
    assert result.history["steps"][0]["coef"] == [1.5, 1.5]
    source = {"preset": "tiny"}
    swept = X.sweep(source, ["toy"], budget=2, seeds=(7,), progress=False, epochs=1)
    assert len(swept["trials"]) == 2 and swept["chosen"]["toy"] in [t["config"] for t in swept["trials"]]
    compared = X.compare(source, ["joint", "toy", "toy-strong"], seeds=2, progress=False, epochs=2)
    assert [r["method"] for r in compared["records"]].count("toy-strong") == 2
    assert {
        s["baseline"]
        for s in X.compare(source, ["toy", "joint"], seeds=2, progress=False, epochs=1, reference="toy")["significance"]
    } == {"joint"}
    assert "toy-strong" in results_table(compared) and "weight=1.0" in config_table(compared)
    figures = comparison_figures(compared, tmp_path)
    assert any(p.endswith("gradient_coefficients.png") for p in figures)
    json.dumps(compared)  # JSON-ready
    checks = run_all()
    assert checks["model M=2 toy loss"] < 1e-7 and checks["model M=3 toy loss"] < 1e-7


def _module_of(name: str) -> str | None:
    """The mini_cal module a dotted import name refers to (``mini_cal.methods.cal.CAL`` -> ``mini_cal.methods.cal``)."""
    parts = name.split(".")
    while parts:
        path = PACKAGE.parent.joinpath(*parts)
        if path.with_suffix(".py").exists() or (path / "__init__.py").exists():
            return ".".join(parts)
        parts.pop()
    return None


def _import_graph() -> dict:
    graph = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        node = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        graph[node] = {m for m in map(_module_of, _imports(path)) if m and m != node}
    return graph


def test_no_import_cycle():
    """Every import in mini_cal points one way (function-level imports included): no module needs a module that
    needs it back, so each file can be read after the ones it imports."""
    graph, state, stack = _import_graph(), {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                raise AssertionError(" -> ".join(stack[stack.index(nxt) :] + [nxt]))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node)


def test_nothing_hidden():
    """No module-level __getattr__ (names resolved at run time, invisible to grep), and the registry lists every
    method file by hand."""
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text())
        assert not [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "__getattr__"], path
    registry = (PACKAGE / "methods" / "__init__.py").read_text()
    assert "pkgutil" not in registry and "import_module" not in registry
    declared = {p.stem for p in (PACKAGE / "methods").glob("*.py") if "\nSPEC = " in p.read_text()}
    assert declared and all(f"{stem}.SPEC" in registry for stem in declared), declared


def test_the_cal_reading_path_stays_short():
    """Issue 18's budget for what a student reads to follow one CAL step: the seven files at most 1,100 lines,
    methods/cal.py at most 150, and CAL's constructor at most 6 arguments (the design space is a subclass)."""
    import inspect

    from mini_cal.methods import CAL

    files = ["layers", "model", "contribution", "methods/base", "methods/cal", "train", "optim"]
    lines = {f: len((PACKAGE / f"{f}.py").read_text().splitlines()) for f in files}
    assert sum(lines.values()) <= 1100, lines
    assert lines["methods/cal"] <= 150
    assert len(inspect.signature(CAL).parameters) <= 6
