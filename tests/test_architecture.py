"""The shape of the package: the teaching core never imports the lab, and a method is one declared file."""

import ast
import json
from pathlib import Path

import pytest

from mini_cal import data, methods
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
    ds = data.load_preset("tiny")
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
