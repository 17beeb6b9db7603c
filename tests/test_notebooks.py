"""The tutorials: every notebook runs top to bottom, is stored without outputs, and the exercise checkers grade."""
import importlib.util
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from mini_cal import layers as L

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

ROOT = Path(__file__).resolve().parent.parent
TUTORIALS = ROOT / "tutorials"
NOTEBOOKS = sorted(TUTORIALS.glob("*.ipynb"))
CELL_TIMEOUT_S = 300


def _load(path: Path, name: str):
    """Import a tutorials module from its file, with tutorials/ importable for its own imports."""
    sys.path.insert(0, str(TUTORIALS))
    try:
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(TUTORIALS))


def test_there_are_notebooks():
    assert NOTEBOOKS, f"no notebooks found in {TUTORIALS}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs(path, monkeypatch):
    """Execute the notebook in a fresh python3 kernel, in fast mode; any cell error fails the test."""
    monkeypatch.setenv("MINI_CAL_FAST", "1")
    # the kernel imports this checkout's mini_cal even where it is not installed
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                                     resources={"metadata": {"path": str(TUTORIALS)}})
    client.execute()  # raises CellExecutionError, naming the cell, on any error
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_stored_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    dirty = [i for i, c in enumerate(nb.cells)
             if c.cell_type == "code" and (c.get("outputs") or c.get("execution_count") is not None)]
    assert not dirty, f"{path.name}: cells {dirty} have outputs or execution counts; strip them before committing"


# ------------------------------------------------------------------------------------- the exercise checker
@pytest.fixture(scope="module")
def check():
    return _load(TUTORIALS / "exercises.py", "tutorial_exercises").check_bottleneck_backward


@pytest.fixture(scope="module")
def solution():
    return _load(TUTORIALS / "solutions" / "bottleneck_backward.py", "tutorial_solution").bottleneck_backward


def _stub(dz, cache, dmu_extra=None, dsigma_extra=None):
    raise NotImplementedError("write the backward pass of the Gaussian bottleneck")


def _without(mistake):
    """A plausible wrong backward: the solution's steps with one of them left out or garbled."""
    def backward(dz, cache, dmu_extra=None, dsigma_extra=None):
        mu_cache, s_cache, a, eps = cache
        dmu = dz if dmu_extra is None or mistake == "dmu_extra" else dz + dmu_extra
        dsigma = np.zeros_like(a)
        if eps is not None and mistake != "eps":
            dsigma = dsigma + dz * eps
        if dsigma_extra is not None:
            dsigma = dsigma + dsigma_extra
        da = dsigma if mistake == "sigmoid" else dsigma * L.sigmoid(a)
        dh_mu, dw_mu, db_mu = L.linear_backward(dmu, mu_cache)
        dh_s, dw_s, db_s = L.linear_backward(da, s_cache)
        dh = dh_mu if mistake == "dh_sigma_path" else dh_mu + dh_s
        if mistake == "transposed":
            dw_mu = dw_mu.T
        return dh, dw_mu, db_mu, dw_s, db_s
    return backward


def test_checker_reports_the_unfilled_stub_without_raising(check):
    passed, message, rel_errors = check(_stub)
    assert passed is False
    assert "not implemented" in message.lower()
    assert rel_errors == {}


@pytest.mark.parametrize("mistake", ["sigmoid", "eps", "dmu_extra", "dh_sigma_path", "transposed"])
def test_checker_rejects_a_wrong_backward(check, mistake):
    passed, message, _ = check(_without(mistake))
    assert passed is False
    assert message.startswith("FAILED")


@pytest.mark.parametrize("answer", [lambda *args: None, lambda *args: (1, 2, 3)], ids=["None", "three values"])
def test_checker_rejects_a_malformed_answer(check, answer):
    passed, message, _ = check(answer)
    assert passed is False
    assert "expected a tuple of 5 arrays" in message


def test_checker_accepts_the_solution_and_the_library(check, solution):
    for fn in (solution, L.gaussian_bottleneck_backward):
        passed, message, rel_errors = check(fn)
        assert passed, message
        assert len(rel_errors) == 5
        assert max(e for errs in rel_errors.values() for e in errs.values()) < 1e-6


def test_notebook_02_ships_the_stub_not_the_solution():
    nb = nbformat.read(TUTORIALS / "02_backprop_by_hand.ipynb", as_version=4)
    exercise = [c.source for c in nb.cells if c.cell_type == "code" and "def my_bottleneck_backward" in c.source]
    assert len(exercise) == 1
    assert "raise NotImplementedError" in exercise[0]
    assert "sigmoid" not in exercise[0]


# ------------------------------------------------------------------ notebook 03: the Shapley value checker
@pytest.fixture(scope="module")
def check_shapley():
    return _load(TUTORIALS / "exercises.py", "tutorial_exercises_03").check_shapley_three


@pytest.fixture(scope="module")
def shapley_solution():
    return _load(TUTORIALS / "solutions" / "shapley_three.py", "tutorial_solution_03").shapley_three


def _shapley_stub(v):
    raise NotImplementedError("write the Shapley value of a three-modality game")


def _wrong_shapley(mistake):
    """A plausible wrong answer: the marginal contributions of each modality with one thing garbled."""
    def shapley_three(v):
        phi = []
        for m in range(3):
            j, k = [o for o in range(3) if o != m]
            joined = lambda S: tuple(sorted(S + (m,)))  # noqa: E731
            gains = [v[joined(())] - v[()], v[joined((j,))] - v[(j,)], v[joined((k,))] - v[(k,)],
                     v[(0, 1, 2)] - v[(j, k)]]
            weights = [1 / 3, 1 / 6, 1 / 6, 1 / 3]
            if mistake == "equal weights":
                weights = [1 / 4] * 4
            elif mistake == "swapped weights":
                weights = [1 / 6, 1 / 3, 1 / 3, 1 / 6]
            elif mistake == "forgot v({})":
                gains[0] = v[joined(())]
            elif mistake == "alone":
                gains, weights = [v[joined(())] - v[()]], [1.0]
            elif mistake == "leave-one-out":
                gains, weights = [v[(0, 1, 2)] - v[(j, k)]], [1.0]
            phi.append(sum(w * g for w, g in zip(weights, gains)))
        return phi
    return shapley_three


def test_shapley_checker_reports_the_unfilled_stub_without_raising(check_shapley):
    passed, message, errors = check_shapley(_shapley_stub)
    assert passed is False
    assert "not implemented" in message.lower()
    assert errors == {}


@pytest.mark.parametrize("mistake", ["equal weights", "swapped weights", "forgot v({})", "alone", "leave-one-out"])
def test_shapley_checker_rejects_a_wrong_answer(check_shapley, mistake):
    passed, message, errors = check_shapley(_wrong_shapley(mistake))
    assert passed is False
    assert message.startswith("FAILED")
    assert max(errors.values()) > 1e-3


@pytest.mark.parametrize("answer", [lambda v: None, lambda v: (1.0, 2.0), lambda v: v[(3,)]],
                         ids=["None", "two values", "raises KeyError"])
def test_shapley_checker_rejects_a_malformed_answer_without_raising(check_shapley, answer):
    passed, message, _ = check_shapley(answer)
    assert passed is False
    assert message.startswith("FAILED")


def test_shapley_checker_accepts_the_solution_and_the_library(check_shapley, shapley_solution):
    from mini_cal.contribution import shapley

    for fn in (shapley_solution, lambda v: shapley(v, 3)):
        passed, message, errors = check_shapley(fn)
        assert passed, message
        assert len(errors) == 8
        assert max(errors.values()) < 1e-9


def test_notebook_03_ships_the_stub_not_the_solution():
    nb = nbformat.read(TUTORIALS / "03_measuring_contribution.ipynb", as_version=4)
    exercise = [c.source for c in nb.cells if c.cell_type == "code" and "def my_shapley_three" in c.source]
    assert len(exercise) == 1
    assert "raise NotImplementedError" in exercise[0]
    assert "/ 3" not in exercise[0] and "/ 6" not in exercise[0] and "C.shapley" not in exercise[0]


# ------------------------------------------------------------------------ notebook 05: the KL's gradient checker
@pytest.fixture(scope="module")
def check_kl():
    return _load(TUTORIALS / "exercises.py", "tutorial_exercises_05").check_kl_backward


@pytest.fixture(scope="module")
def kl_solution():
    return _load(TUTORIALS / "solutions" / "kl_backward.py", "tutorial_solution_05").kl_backward


def _kl_stub(dkl, cache):
    raise NotImplementedError("write the backward pass of the KL term")


def _wrong_kl(mistake):
    """A plausible wrong backward of KL = (1/N) sum 1/2 (mu^2 + sigma^2 - log sigma^2 - 1), times dkl."""
    def kl_backward(dkl, cache):
        mu, sigma = cache
        n = 1 if mistake == "forgot 1/N" else mu.shape[0]
        scale = (1.0 if mistake == "forgot dkl" else dkl) / n
        dmu = (2 * mu if mistake == "forgot the 1/2" else mu) * scale
        if mistake == "log sigma, not log sigma^2":
            dsigma = (sigma - 0.5 / sigma) * scale
        elif mistake == "sign of 1/sigma":
            dsigma = (sigma + 1.0 / sigma) * scale
        else:
            dsigma = (sigma - 1.0 / sigma) * scale
        return dmu, dsigma
    return kl_backward


def test_kl_checker_reports_the_unfilled_stub_without_raising(check_kl):
    passed, message, rel_errors = check_kl(_kl_stub)
    assert passed is False
    assert "not implemented" in message.lower()
    assert rel_errors == {}


@pytest.mark.parametrize("mistake", ["forgot 1/N", "forgot dkl", "forgot the 1/2", "log sigma, not log sigma^2",
                                     "sign of 1/sigma"])
def test_kl_checker_rejects_a_wrong_backward(check_kl, mistake):
    passed, message, rel_errors = check_kl(_wrong_kl(mistake))
    assert passed is False
    assert message.startswith("FAILED")
    assert max(e for errs in rel_errors.values() for e in errs.values()) > 1e-3


@pytest.mark.parametrize("answer", [lambda dkl, cache: None, lambda dkl, cache: cache[0],
                                    lambda dkl, cache: (cache[0], cache[1].T), lambda dkl, cache: 1 / 0],
                         ids=["None", "one array", "transposed dsigma", "raises ZeroDivisionError"])
def test_kl_checker_rejects_a_malformed_answer_without_raising(check_kl, answer):
    passed, message, _ = check_kl(answer)
    assert passed is False
    assert message.startswith("FAILED")


def test_kl_checker_accepts_the_solution_and_the_library(check_kl, kl_solution):
    for fn in (kl_solution, L.gaussian_kl_backward):
        passed, message, rel_errors = check_kl(fn)
        assert passed, message
        assert len(rel_errors) == 5
        assert max(e for errs in rel_errors.values() for e in errs.values()) < 1e-6


def test_notebook_05_ships_the_stub_not_the_solution():
    nb = nbformat.read(TUTORIALS / "05_information_bottleneck.ipynb", as_version=4)
    exercise = [c.source for c in nb.cells if c.cell_type == "code" and "def my_kl_backward" in c.source]
    assert len(exercise) == 1
    assert "raise NotImplementedError" in exercise[0]
    assert "1.0 / sigma" not in exercise[0] and "1 / sigma" not in exercise[0]
