"""tutorials/course/grading.py: Result, call_student, hide and diagnose."""

import os
import re
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tutorials"))

from course import grading as G  # noqa: E402

from mini_cal import layers as L  # noqa: E402
from mini_cal.layers import linear_backward as imported_linear_backward  # noqa: E402

HINTS = {"scale_n": "MEAN-HINT", "transpose": "SHAPE-HINT"}


@pytest.fixture
def arrays():
    rng = np.random.default_rng(0)
    return rng.standard_normal((4, 3)), rng.standard_normal((3, 3)), rng.standard_normal(5)


def test_result_prints_only_its_message():
    r = G.Result(False, "FAILED: dW is transposed.", {"errors": [1, 2]})
    assert repr(r) == str(r) == "FAILED: dW is transposed."
    assert not r and G.Result(True, "PASSED") and G.failed("x").message == "FAILED: x"


def test_diagnose_accepts_a_match_and_tiny_noise(arrays):
    a, _, _ = arrays
    assert G.diagnose(a, a) is None
    assert G.diagnose(a + 1e-12, a) is None
    assert G.diagnose(np.zeros(3), np.zeros(3)) is None


@pytest.mark.parametrize(
    "make, expected_words",
    [
        (lambda a: a * 4, "N = 4 times too large"),
        (lambda a: a / 4, "N = 4 times too small"),
        (lambda a: -a, "wrong sign"),
        (lambda a: 2.5 * a, "2.5 times"),
        (lambda a: a[::-1], "reversed order"),
        (lambda a: a[[1, 0, 3, 2]], "wrong order"),
        (lambda a: a[:, ::-1], "columns in reversed order"),
        (lambda a: a.T, "transposed"),
        (lambda a: a[None].repeat(2, 0) / 2, "batch"),
        (lambda a: a.ravel(), "shape (12,)"),
        (lambda a: np.where(np.arange(12).reshape(4, 3) == 5, np.nan, a), "NaN"),
    ],
)
def test_diagnose_names_the_mistake(arrays, make, expected_words):
    a, _, _ = arrays
    message = G.diagnose(make(a), a, name="dW", n=4, hints=HINTS)
    assert message is not None and "dW" in message and expected_words in message, message


def test_diagnose_square_transpose_and_partial(arrays):
    _, sq, vec = arrays
    assert "transposed" in G.diagnose(sq.T, sq, name="dW", hints=HINTS)
    assert G.diagnose(sq.T, sq, name="dW", hints=HINTS).endswith("SHAPE-HINT")
    wrong = sq.copy()
    wrong[1, 2] += 1.0
    message = G.diagnose(wrong, sq, name="dW")
    assert "1 of 9 entries of dW differ" in message and "(1, 2)" in message
    assert "reversed" in G.diagnose(vec[::-1], vec, name="db")
    assert "N = 4 times too large" in G.diagnose(vec * 4, vec, name="db", n=4, hints=HINTS)
    assert G.diagnose(vec * 4, vec, name="db", n=4, hints=HINTS).endswith("MEAN-HINT")
    assert "wrong in every entry" in G.diagnose(vec + 1, vec, name="db")
    assert "None" in G.diagnose(None, vec, name="db")


def test_messages_differ_between_mistakes(arrays):
    a, _, _ = arrays
    messages = {
        G.diagnose(f(a), a, name="dW", n=4)
        for f in (lambda x: 4 * x, lambda x: x / 4, lambda x: -x, lambda x: x.T, lambda x: x[::-1])
    }
    assert len(messages) == 5


def test_compare_outputs_reports_the_first_wrong_output(arrays):
    a, sq, vec = arrays
    assert G.compare_outputs((a, sq, vec), (a, sq, vec), ("dx", "dw", "db")) is None
    message = G.compare_outputs((a, sq, -vec), (a, sq, vec), ("dx", "dw", "db"), where="in case 'x'")
    assert message.startswith("FAILED in case 'x': db has the wrong sign")
    assert "expected 3 values" in G.compare_outputs((a, sq), (a, sq, vec), ("dx", "dw", "db"))


def test_call_student_never_raises():
    def stub(x):
        raise NotImplementedError("write the forward pass")

    def buggy(x):
        return x[10]

    assert G.call_student(lambda x: x + 1, 1) == (2, None)
    value, message = G.call_student(stub, 1)
    assert value is None and "not implemented yet" in message
    value, message = G.call_student(buggy, [1], where="in case 'a'")
    assert "IndexError" in message and "in case 'a'" in message
    assert "expected a function" in G.call_student(3, 1)[1]


def test_hide_makes_the_library_function_unavailable_and_restores_it():
    rng = np.random.default_rng(1)
    x, w, dout = rng.standard_normal((2, 3)), rng.standard_normal((3, 4)), rng.standard_normal((2, 4))
    original = L.linear_backward
    reference = L.linear_backward(dout, (x, w))
    with G.hide((L, "linear_backward")):
        with pytest.raises(G.LibraryHidden):
            L.linear_backward(dout, (x, w))
        with pytest.raises(G.LibraryHidden):  # imported by name before the block: disabled too
            imported_linear_backward(dout, (x, w))
        value, message = G.call_student(lambda d, c: L.linear_backward(d, c), dout, (x, w))
        assert value is None and "hidden" in message
        value, message = G.call_student(imported_linear_backward, dout, (x, w))
        assert value is None and "library's own function mini_cal.layers.linear_backward" in message
        value, message = G.call_student(original, dout, (x, w))
        assert "library's own function" in message
    assert L.linear_backward is original
    for got, want in zip(imported_linear_backward(dout, (x, w)), reference):
        np.testing.assert_array_equal(got, want)
    assert G.call_student(original, dout, (x, w))[1] is None  # outside hide(): allowed


def test_hide_restores_after_an_exception():
    original = L.relu_backward
    with pytest.raises(ZeroDivisionError):
        with G.hide("mini_cal.layers.relu_backward", ("mini_cal.layers", "softmax_ce_backward")):
            raise ZeroDivisionError  # an error inside the block: hide() must still restore
    assert L.relu_backward is original
    out = L.relu_backward(np.ones(3), np.array([1.0, -1.0, 2.0]))
    np.testing.assert_array_equal(out, [1.0, 0.0, 1.0])
    assert G.library_function_passed(original) is None


def test_grade_notebook_reports_stubs_and_accepts_the_answer_key(tmp_path):
    """The autograder on notebook 02: the handed-out stubs are NOT YET; with each stub replaced by the solution,
    every exercise PASSES end to end (checker, hide() and all, inside a real kernel)."""
    nbformat = pytest.importorskip("nbformat")
    pytest.importorskip("nbclient")
    import shutil

    tutorials = os.path.join(os.path.dirname(__file__), "..", "tutorials")
    work = tmp_path / "tutorials"
    shutil.copytree(tutorials, work, ignore=shutil.ignore_patterns("*.ipynb", "__pycache__"))
    nb = nbformat.read(os.path.join(tutorials, "02_backprop_by_hand.ipynb"), as_version=4)
    nbformat.write(nb, work / "stubs.ipynb")
    answers = {
        "my_linear_backward": "linear_backward",
        "my_relu_backward": "relu_backward",
        "my_softmax_ce_backward": "softmax_ce_backward",
        "my_bottleneck_backward": "bottleneck_backward",
    }
    for cell in nb.cells:
        for mine, solution in answers.items():
            if cell.cell_type == "code" and f"def {mine}(" in cell.source:
                cell.source = f"from solutions.{solution} import {solution} as {mine}"
    nbformat.write(nb, work / "solved.ipynb")
    os.environ.setdefault("PYTHONPATH", "")
    root = os.path.abspath(os.path.join(tutorials, ".."))
    old = os.environ["PYTHONPATH"]
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [root, old]))
    try:
        stubs = G.grade_notebook(work / "stubs.ipynb")
        solved = G.grade_notebook(work / "solved.ipynb")
    finally:
        os.environ["PYTHONPATH"] = old
    assert list(stubs) == list(answers.values()) and set(stubs.values()) == {"NOT YET"}, stubs
    assert set(solved.values()) == {"PASSED"}, solved


# ------------------------------------------------------------- issue 19, point 7: verdicts that do not mislead
def test_a_float32_answer_is_named_as_rounding_not_as_a_factor_of_one():
    rng = np.random.default_rng(1)
    want = rng.standard_normal((6, 5))
    got = (want * (1 + 3e-6)).astype(np.float32)
    message = G.diagnose(got, want, name="dx")
    assert "float32" in message and "close to the right answer" in message, message
    assert "1 times" not in message and "constant factor" not in message
    message = G.diagnose(want * (1 + 3e-6), want, name="dx")  # float64, yet just outside the tolerance
    assert "outside the tolerance" in message and "1 times" not in message, message


def test_a_wrong_number_gets_no_factor_and_no_expected_value():
    message = G.diagnose(0.3, 0.2271, name="your D(m)")
    assert "times the right answer" not in message and "0.2271" not in message and "0.227" not in message, message
    assert "too large" in message
    assert "N = 4 times too large" in G.diagnose(0.8, 0.2, name="kl", n=4)  # a factor that means something stays
    assert "wrong sign" in G.diagnose(-0.2, 0.2, name="kl")
    assert "NaN" in G.diagnose(float("nan"), 0.2, name="kl")


def test_swapped_outputs_are_named_as_swapped():
    rng = np.random.default_rng(2)
    a, b, c = rng.standard_normal((3, 4)), rng.standard_normal((3, 4)), rng.standard_normal(4)
    message = G.compare_outputs((b, a, c), (a, b, c), ("dmu", "dsigma", "db"))
    assert "dmu and dsigma are swapped" in message and "(dmu, dsigma, db)" in message, message
    message = G.compare_outputs((b, b, c), (a, b, c), ("dmu", "dsigma", "db"))
    assert "dmu holds what dsigma should be" in message, message
    assert G.compare_outputs((a, b, c), (a, b, c), ("dmu", "dsigma", "db")) is None


def test_exercise_docstrings_do_not_name_the_library_function_graded():
    """A student reading exercises.py should not be told which library function holds the answer (issue 19,
    point 8): no docstring names, qualified or as code, a function its checker hides."""
    import inspect

    import exercises

    for name, check in inspect.getmembers(exercises, inspect.isfunction):
        if not name.startswith("check_"):
            continue
        hidden = []

        def spy(*args, hidden=hidden, **kwargs):
            hidden.extend(qualname for _, qualname, _ in G._HIDDEN.values())
            raise NotImplementedError("spy")

        check(spy)
        doc = check.__doc__ or ""
        assert "Grades against" not in doc, name
        for qualname in set(hidden):
            short = qualname.rsplit(".", 1)[-1]
            assert not re.search(rf"\w\.{short}\b|``{short}``", doc), (name, qualname)


# ------------------------------------------------- issue 19, point 4: checkers that a student's code cannot break
def test_call_student_gives_up_on_a_function_that_never_returns(monkeypatch):
    monkeypatch.setattr(G, "TIME_LIMIT", 0.5)

    def forever(x):
        while True:
            pass

    value, message = G.call_student(forever, 1, where="in case 'a'")
    assert value is None and "did not return within 0.5 s" in message and "in case 'a'" in message, message
    assert G.call_student(lambda x: x + 1, 1) == (2, None)  # and the timer is off again


def test_call_student_contains_system_exit_and_a_raised_keyboard_interrupt():
    def leave(x):
        raise SystemExit(3)

    def interrupt(x):
        raise KeyboardInterrupt

    value, message = G.call_student(leave, 1)
    assert value is None and "SystemExit(3)" in message, message
    value, message = G.call_student(interrupt, 1)
    assert value is None and "KeyboardInterrupt" in message, message


def test_a_real_ctrl_c_still_interrupts():
    import signal

    def slow(x):
        signal.raise_signal(signal.SIGINT)  # what a Ctrl-C (or a kernel interrupt) does
        return x

    with pytest.raises(KeyboardInterrupt):
        G.call_student(slow, 1)


@pytest.mark.parametrize(
    "fn, args, name",
    [
        (lambda dout, x: (dout.__setitem__(x <= 0, 0.0), dout)[1], (np.ones(3), np.array([1.0, -1.0, 2.0])), "dout"),
        (lambda dloss, cache: cache[0].__isub__(cache[1]), (1.0, (np.full((2, 2), 0.5), np.eye(2))), "cache[0]"),
        (lambda v: v.pop((0,)), ({(): 0.0, (0,): 1.0},), "v"),
    ],
)
def test_call_student_names_an_input_changed_in_place(fn, args, name):
    originals = [G._copy(a) for a in args]
    value, message = G.call_student(fn, *args)
    assert value is None and f"changed its input {name} in place" in message, message
    for before, after in zip(originals, args):  # the checker's own arrays are untouched
        assert G._changed(before, after, "x") is None


def test_call_student_rejects_a_number_that_is_not_finite():
    for bad, word in [(float("inf"), "infinite"), (float("nan"), "NaN"), (np.float32("-inf"), "infinite")]:
        value, message = G.call_student(lambda bad=bad: bad)
        assert value is None and f"returned {word}" in message, message
    assert G.call_student(lambda: float("nan"), allow_nonfinite=True)[1] is None


def test_an_infinite_effective_lr_does_not_pass():
    from course import nb01

    result = nb01.check_effective_lr(lambda lr, s: float("inf"))
    assert not result and "infinite" in result.message, result.message
    assert not nb01.check_effective_lr(lambda lr, s: float("nan"))


# ------------------------------------------------- issue 19, point 3: the library's answer in disguise
def _linear_backward_check(fn):
    rng = np.random.default_rng(3)
    x, w, dout = rng.standard_normal((2, 3)), rng.standard_normal((3, 4)), rng.standard_normal((2, 4))
    with G.hide((L, "linear_backward")):
        return G.call_student(fn, dout, (x, w))


def test_a_clone_of_the_library_code_is_the_library_function():
    import inspect
    import types

    clone = types.FunctionType(L.linear_backward.__code__, L.linear_backward.__globals__, "mine")
    replaced = types.FunctionType(L.linear_backward.__code__.replace(co_name="mine"), L.linear_backward.__globals__)
    namespace = dict(vars(L))
    exec(inspect.getsource(L.linear_backward), namespace)
    executed = namespace["linear_backward"]

    def wrapper(dout, cache):  # calls an exec'd copy by name
        return executed(dout, cache)

    for fn in (clone, replaced, executed, wrapper):
        value, message = _linear_backward_check(fn)
        assert value is None and "library's own" in message and "linear_backward" in message, (fn, message)

    def mine(dout, cache):
        x, w = cache
        return dout @ w.T, x.T @ dout, dout.sum(axis=0)

    assert _linear_backward_check(mine)[1] is None


def test_a_library_function_that_is_not_hidden_is_caught_when_passed():
    from mini_cal.methods import ogm_ge

    with G.hide((L, "linear_backward")):
        assert "mini_cal.layers.softmax" in G.call_student(L.softmax, np.zeros((2, 3)))[1]
        method = ogm_ge.OGMGE(ge=False).modify_gradients
        assert "OGMGE.modify_gradients" in G.call_student(method, {}, None)[1]


def test_teaching_says_what_formative_checks_cannot_stop():
    """Issue 19, Build: TEACHING.md says which cheats a check in the student's kernel cannot stop, and that the
    autograder's hidden cases are the grade."""
    with open(os.path.join(os.path.dirname(__file__), "..", "tutorials", "TEACHING.md"), encoding="utf-8") as f:
        text = f.read()
    section = text[text.index("**What a formative check cannot stop.**") :][:1200]
    for words in ("subprocess", "importlib.reload", "sys._getframe", "monkeypatch", "hidden cases"):
        assert words in section, words
