"""Shared machinery for the course's checkers: a verdict type, a safe way to call a student's function, a way to make
a library function unavailable while grading, and a diagnosis of a wrong array in one sentence.

A checker never raises on a wrong or unfinished answer: it returns a :class:`Result`, so that a notebook runs top to
bottom whatever the student has written so far. Typical shape of a checker::

    @checker                                          # an unforeseen error becomes a FAILED Result
    def check_linear_backward(fn):
        expected = reference(*args)                   # computed BEFORE hiding the library function
        with hide((mini_cal.layers, "linear_backward")):
            got, failure = call_student(fn, *args, where="in case 'batch of 4'")
        if failure:
            return failed(failure)
        message = compare_outputs(got, expected, ("dx", "dw", "db"), n=4, hints=HINTS)
        return failed(message) if message else passed("dx, dw and db are right.")

``python -m course.grading NOTEBOOK.ipynb ...`` executes notebooks and prints each exercise's verdict (the
autograder of ``tutorials/TEACHING.md``).
"""

from __future__ import annotations

import contextlib
import copy
import dis
import importlib
import inspect
import re
import signal
import sys
import threading
import traceback
import types
from dataclasses import dataclass, field

import numpy as np

TOLERANCE = 1e-6  # ||a - b|| / (||a|| + ||b||): a correct float64 answer agrees to ~1e-9 with finite differences
CLOSE = 1e-4  # a wrong answer closer than this is rounding (float32), not a wrong formula
TIME_LIMIT = 10.0  # seconds one call of a student's function may take before the checker gives up on it


# ------------------------------------------------------------------------------------------------------- Result
@dataclass
class Result:
    """A checker's verdict: ``passed``, a ``message`` (one verdict line, then at most a few lines of detail) and
    ``details`` (anything a test or a curious student may want: relative errors per case, the failing case...).

    Printing a Result (or leaving it as a cell's last value) shows only the message. ``bool(result)`` is ``passed``.
    """

    passed: bool
    message: str
    details: dict = field(default_factory=dict)

    def __repr__(self) -> str:
        return self.message

    __str__ = __repr__

    def _repr_pretty_(self, p, cycle) -> None:  # IPython's display of a cell's last value
        p.text(self.message)

    def __bool__(self) -> bool:
        return bool(self.passed)


def passed(message: str, **details) -> Result:
    """A passing Result; the message gets a "PASSED: " prefix unless it has one."""
    return Result(True, message if message.startswith("PASSED") else f"PASSED: {message}", details)


def failed(message: str, **details) -> Result:
    """A failing Result; the message gets a "FAILED" prefix unless it starts with FAILED or NOT YET."""
    if not message.startswith(("FAILED", "NOT YET")):
        message = f"FAILED: {message}"
    return Result(False, message, details)


# ------------------------------------------------------------------------------------------------ hiding
class LibraryHidden(RuntimeError):
    """Raised by a library function that a checker has made unavailable while it grades the student's version."""


_HIDDEN: dict = {}  # id(original function) -> (original, "module.name") while a hide() block is active


def _raising_code(name: str, qualname: str):
    """A code object that raises LibraryHidden, to swap onto a hidden function. It runs with the globals of the
    library module it is swapped into, so it reaches this module through sys.modules rather than by name."""
    message = (
        f"{qualname} is hidden while the checker grades your answer: write it yourself rather than "
        f"calling the library's own function."
    )
    source = (
        f"def {name}(*args, **kwargs):\n"
        f"    import sys\n"
        f"    raise sys.modules[{__name__!r}].LibraryHidden({message!r})\n"
    )
    namespace = {}
    exec(compile(source, f"<hidden {qualname}>", "exec"), namespace)
    return namespace[name].__code__


def _resolve(target):
    """``(module, "name")``, ``("module.path", "name")`` or ``"module.path.name"`` -> (module, name)."""
    if isinstance(target, str):
        module_name, _, name = target.rpartition(".")
        return importlib.import_module(module_name), name
    module, name = target
    if isinstance(module, str):
        module = importlib.import_module(module)
    return module, name


def _unwrap(fn):
    seen = set()
    while fn is not None and id(fn) not in seen:
        seen.add(id(fn))
        yield fn
        fn = getattr(fn, "__wrapped__", None)


def _fingerprint(code):
    """What a code object computes, whatever its name, file or line numbers: two functions with equal fingerprints
    are the same function (a clone by ``types.FunctionType(f.__code__, ...)``, ``f.__code__.replace(...)`` or
    ``exec(inspect.getsource(f))``)."""
    consts = tuple(
        _fingerprint(c) if isinstance(c, types.CodeType) else (type(c).__name__, repr(c)) for c in code.co_consts
    )
    # not co_code itself: the library's NumPy fast path may recompile its functions (LOAD_METHOD for LOAD_ATTR...)
    return (
        sum(1 for _ in dis.get_instructions(code)),
        consts,
        code.co_names,
        code.co_varnames,
        code.co_argcount,
        code.co_kwonlyargcount,
    )


# fingerprint -> "module.qualname" of every function defined in the loaded mini_cal modules, and their ids
_LIBRARY_INDEX: dict = {"modules": None, "index": {}, "ids": set()}


def _library_functions(module):
    for value in list(vars(module).values()):
        members = [value]
        if isinstance(value, type) and value.__module__ == module.__name__:
            members = list(vars(value).values())
        for member in members:
            for f in (member, getattr(member, "__func__", None), getattr(member, "fget", None)):
                code = getattr(f, "__code__", None)
                if isinstance(code, types.CodeType) and getattr(f, "__module__", None) == module.__name__:
                    yield f, code


def _library_index() -> dict:
    """{fingerprint: qualified name} of the functions (and methods) defined in the loaded mini_cal modules."""
    modules = sorted(n for n in sys.modules if n == "mini_cal" or n.startswith("mini_cal."))
    if modules != _LIBRARY_INDEX["modules"]:
        index, ids = {}, set()
        for name in modules:
            module = sys.modules.get(name)
            if module is None:
                continue
            for f, code in _library_functions(module):
                if code.co_filename.startswith("<hidden"):  # swapped by hide(): its real code is in _HIDDEN
                    continue
                index.setdefault(_fingerprint(code), f"{name}.{f.__qualname__}")
                ids.add(id(f))
        _LIBRARY_INDEX.update(modules=modules, index=index, ids=ids)
    index = dict(_LIBRARY_INDEX["index"])
    for _, qualname, original_code in _HIDDEN.values():
        index[_fingerprint(original_code)] = qualname
    return index


def _filled(cell) -> bool:
    try:
        return cell.cell_contents is not _filled  # always True; reading an empty cell raises
    except ValueError:
        return False


def _functions_in(fn):
    """fn, what it wraps (``__wrapped__``, a bound method's ``__func__``, a partial's ``func``) and the functions its
    code reaches by a global or an enclosing function's name, one level deep."""
    seen, stack, found = set(), [(fn, 0)], []
    while stack:
        f, depth = stack.pop()
        if f is None or id(f) in seen:
            continue
        seen.add(id(f))
        found.append(f)
        for attr in ("__wrapped__", "__func__", "func"):
            stack.append((getattr(f, attr, None), depth))
        code = getattr(f, "__code__", None)
        if depth == 0 and isinstance(code, types.CodeType):
            namespace = getattr(f, "__globals__", {}) or {}
            cells = [cell.cell_contents for cell in (getattr(f, "__closure__", None) or ()) if _filled(cell)]
            for target in [namespace.get(name) for name in code.co_names] + cells:
                if callable(target) and hasattr(target, "__code__"):
                    stack.append((target, 1))
    return found


def library_function_passed(fn):
    """The qualified name of the library function that ``fn`` is, wraps, calls by name, or is a clone of (same
    code, rebuilt from ``__code__`` or from the library's source), else None.

    Only meaningful inside a :func:`hide` block: there any mini_cal function passed as the answer counts, and so
    does a copy of any mini_cal function's code anywhere in what ``fn`` reaches."""
    if not _HIDDEN:
        return None
    index = None
    for depth, f in enumerate(_functions_in(fn)):
        code = getattr(f, "__code__", None)
        for original, qualname, original_code in _HIDDEN.values():
            if f is original or (code is not None and code is original_code):
                return qualname
        if not isinstance(code, types.CodeType) or code.co_filename.startswith("<hidden"):
            continue
        index = _library_index() if index is None else index
        qualname = index.get(_fingerprint(code))
        if qualname is None:
            continue
        is_library_object = id(f) in _LIBRARY_INDEX["ids"] or any(f is h[0] for h in _HIDDEN.values())
        if f is fn or getattr(fn, "__func__", None) is f or not is_library_object:  # the answer itself, or a clone
            return qualname
    return None


@contextlib.contextmanager
def hide(*targets):
    """Make library functions unavailable inside the block; restore them afterwards, even after an exception.

    Each target is ``(module, "name")`` (e.g. ``(mini_cal.layers, "linear_backward")``), ``("mini_cal.layers",
    "linear_backward")`` or ``"mini_cal.layers.linear_backward"``. Inside the block, calling the function raises
    :class:`LibraryHidden`, whichever way the student reached it: through the module attribute, or through a name
    imported earlier with ``from mini_cal.layers import linear_backward`` (the function object itself is disabled by
    swapping its code). Passing the library function itself to a checker is caught by :func:`call_student` with a
    clearer message. Library code that calls a hidden function fails too, so compute reference values first.
    """
    patched = []  # (module, name, original attribute, function whose code was swapped or None, its code)
    try:
        for target in targets:
            module, name = _resolve(target)
            original = getattr(module, name)
            qualname = f"{module.__name__}.{name}"
            func = next((f for f in _unwrap(original) if hasattr(f, "__code__")), None)
            entry = [module, name, original, None, None]
            patched.append(entry)
            if func is not None:
                _HIDDEN[id(func)] = (func, qualname, func.__code__)
                if func.__closure__ is None:
                    entry[3], entry[4] = func, func.__code__
                    func.__code__ = _raising_code(name, qualname)

            def stand_in(*args, _qualname=qualname, **kwargs):
                raise LibraryHidden(
                    f"{_qualname} is hidden while the checker grades your answer: write it "
                    f"yourself rather than calling the library's own function."
                )

            setattr(module, name, stand_in)
        yield
    finally:
        for module, name, original, func, code in reversed(patched):
            if func is not None:
                func.__code__ = code
            setattr(module, name, original)
            for f in _unwrap(original):
                _HIDDEN.pop(id(f), None)


# ------------------------------------------------------------------------------------------- calling a student
class _TimeLimit(BaseException):
    """Raised inside a student's function that runs past :data:`TIME_LIMIT` (a BaseException, so that the student's
    own ``except Exception`` does not swallow it)."""


class _Interrupted(BaseException):
    """A real Ctrl-C (or a kernel interrupt) while the student's function ran: re-raised as KeyboardInterrupt."""


@contextlib.contextmanager
def _time_limit(seconds):
    """Interrupt the block after ``seconds`` (SIGALRM, main thread only; elsewhere no limit), and tell a real
    SIGINT apart from a KeyboardInterrupt the student's code raises itself."""
    main = threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer")
    if not main:
        yield
        return

    def on_alarm(signum, frame):
        raise _TimeLimit

    def on_interrupt(signum, frame):
        raise _Interrupted

    old_alarm = signal.signal(signal.SIGALRM, on_alarm)
    try:
        old_interrupt = signal.signal(signal.SIGINT, on_interrupt)
    except (ValueError, TypeError):
        old_interrupt = None
    outer, _ = signal.setitimer(signal.ITIMER_REAL, seconds)
    start = __import__("time").monotonic()
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        if old_interrupt is not None:
            signal.signal(signal.SIGINT, old_interrupt)
        signal.signal(signal.SIGALRM, old_alarm)
        if outer:  # an enclosing timer: give it back what is left of it
            left = outer - (__import__("time").monotonic() - start)
            signal.setitimer(signal.ITIMER_REAL, max(left, 1e-3))


def _parameter_names(fn, args, kwargs):
    """{position or keyword: the student's name for that parameter} (e.g. {0: "dout", 1: "cache"})."""
    names = {i: f"argument {i + 1}" for i in range(len(args))}
    names.update({k: k for k in kwargs})
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return names
    for i, param in enumerate(params[: len(args)]):
        if param.kind in (param.POSITIONAL_ONLY, param.POSITIONAL_OR_KEYWORD):
            names[i] = param.name
    return names


def _copy(value):
    try:
        return copy.deepcopy(value)
    except Exception:  # noqa: BLE001 - an object that cannot be copied is passed as it is
        return value


def _changed(before, after, path):
    """The path (e.g. "cache[0]") of the first NumPy array in ``after`` that differs from ``before``, else None."""
    if isinstance(before, np.ndarray) and isinstance(after, np.ndarray):
        same = before.shape == after.shape and np.array_equal(before, after, equal_nan=before.dtype.kind in "fc")
        return None if same else path
    if isinstance(before, (list, tuple)) and isinstance(after, (list, tuple)):
        if len(before) != len(after):
            return path if isinstance(before, list) else None
        for i, (b, a) in enumerate(zip(before, after)):
            found = _changed(b, a, f"{path}[{i}]")
            if found:
                return found
        return None
    if isinstance(before, dict) and isinstance(after, dict):
        if set(before) != set(after):
            return path
        for key in before:
            found = _changed(before[key], after[key], f"{path}[{key!r}]")
            if found:
                return found
    return None


def _nonfinite(value) -> str | None:
    """``"NaN"`` or ``"infinite"`` when ``value`` is a number (or a 0-d array) that is not finite, else None."""
    if isinstance(value, (bool, np.bool_)):
        return None
    if isinstance(value, (int, float, np.number)) or (isinstance(value, np.ndarray) and value.ndim == 0):
        try:
            number = complex(value)
        except (TypeError, ValueError, OverflowError):
            return None
        if np.isnan(number.real) or np.isnan(number.imag):
            return "NaN"
        if np.isinf(number.real) or np.isinf(number.imag):
            return "infinite"
    return None


def call_student(fn, *args, where: str = "", mutable=(), allow_nonfinite: bool = False, **kwargs):
    """Call the student's ``fn(*args, **kwargs)``; return ``(value, None)`` or ``(None, failure message)``.

    The failure message is one line: "NOT YET: not implemented yet ..." for a stub that still raises
    NotImplementedError, "FAILED ...: you passed the library's own function" inside a :func:`hide` block (the
    library function itself, a bound method of a library class, or a clone of its code), "FAILED ...: your function
    calls <library function>, which is hidden ..." when it calls a hidden function, "FAILED ...: your function
    raised <error> (line ...)" for any other exception (SystemExit and a KeyboardInterrupt raised by the student's
    code included; a real Ctrl-C still interrupts), "did not return within 10 s" past :data:`TIME_LIMIT`, "changed
    its input <name> in place" when it modified an argument (the student gets copies; positions or keywords listed
    in ``mutable`` are passed as they are and may be changed), or "returned NaN" for a number that is not finite
    (unless ``allow_nonfinite``: the checker diagnoses that itself).
    """
    at = f" {where}" if where else ""
    if not callable(fn):
        return None, f"FAILED{at}: expected a function, got {type(fn).__name__}."
    library = library_function_passed(fn)
    if library is not None:
        return None, (
            f"FAILED{at}: you passed the library's own function {library} (or a copy of its code); the exercise "
            f"is to write it yourself."
        )
    names = _parameter_names(fn, args, kwargs)
    pristine = {}
    call_args, call_kwargs = list(args), dict(kwargs)
    for key, value in [*enumerate(args), *kwargs.items()]:
        if key in mutable:
            continue
        snapshot = _copy(value)
        if snapshot is value:
            continue
        pristine[key] = snapshot
        if isinstance(key, int):
            call_args[key] = _copy(value)
        else:
            call_kwargs[key] = _copy(value)
    try:
        with _time_limit(TIME_LIMIT):
            value = fn(*call_args, **call_kwargs)
    except _Interrupted:
        raise KeyboardInterrupt from None
    except _TimeLimit:
        return None, (
            f"FAILED{at}: your function did not return within {TIME_LIMIT:g} s (an endless loop, or far too much "
            f"work for these small inputs?)."
        )
    except NotImplementedError as exc:
        detail = f" ({exc})" if str(exc) else ""
        return None, f"NOT YET: not implemented yet{detail}. Fill in the stub and run the check again."
    except LibraryHidden as exc:
        return None, f"FAILED{at}: your function calls the library's own answer. {exc}"
    except SystemExit as exc:
        return None, (
            f"FAILED{at}: your function raised SystemExit({exc.code!r}) (sys.exit or exit()){_where_raised(exc)}: "
            f"return the answer instead."
        )
    except KeyboardInterrupt as exc:  # raised by the student's code, not by a real Ctrl-C (that is _Interrupted)
        return None, f"FAILED{at}: your function raised KeyboardInterrupt{_where_raised(exc)}."
    except Exception as exc:  # the student's bug, reported rather than raised
        return None, f"FAILED{at}: your function raised {type(exc).__name__}: {exc}{_where_raised(exc)}"
    for key, before in pristine.items():
        after = call_args[key] if isinstance(key, int) else call_kwargs[key]
        path = _changed(before, after, names.get(key, str(key)))
        if path is not None:
            return None, (
                f"FAILED{at}: your function changed its input {path} in place. Leave the inputs as they are and "
                f"return a new array (for example start from x.copy(), or write y = x * m rather than x *= m)."
            )
    bad = None if allow_nonfinite else _nonfinite(value)
    if bad:
        return None, f"FAILED{at}: your function returned {bad}, not a finite number."
    return value, None


def checker(fn):
    """Decorator for a checker: whatever goes wrong inside it (an answer of a form nobody foresaw) becomes a failing
    Result rather than a traceback, so that a notebook always runs on."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - a checker must never raise
            frame = traceback.extract_tb(exc.__traceback__)[-1]
            return Result(
                False,
                f"FAILED: the checker could not grade this answer ({type(exc).__name__}: {exc}, "
                f"line {frame.lineno}). Check the form of what your function returns.",
                {"exception": exc},
            )

    return wrapper


def _where_raised(exc) -> str:
    """ " (line L: source)" of the last frame in the student's own code (not NumPy's, nor the library's)."""
    frames = traceback.extract_tb(exc.__traceback__)[1:]  # [0] is call_student itself
    frames = [f for f in frames if not f.filename.endswith(("contextlib.py", "grading.py"))]
    library = ("site-packages", "/numpy/", "/mini_cal/", "/course/")
    own = [f for f in frames if not any(part in f.filename for part in library)] or frames
    if not own:
        return ""
    frame = own[-1]
    return f" (line {frame.lineno}: {frame.line})" if frame.line else f" (line {frame.lineno})"


# --------------------------------------------------------------------------------------------- diagnosis
def rel_error(a, b) -> float:
    """``||a - b|| / (||a|| + ||b||)`` in float64 (0 when both are zero)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return float("inf")
    denom = np.linalg.norm(a) + np.linalg.norm(b)
    return 0.0 if denom == 0 else float(np.linalg.norm(a - b) / denom)


def _close(a, b, tol) -> bool:
    return np.shape(a) == np.shape(b) and rel_error(a, b) < tol


def _hint(hints, key) -> str:
    text = (hints or {}).get(key)
    return f" {text}" if text else ""


def _near(c, target, tol=1e-3) -> bool:
    return target != 0 and abs(c - target) <= tol * abs(target)


def _permutation(got, expected, tol):
    """If the rows of ``got`` are those of ``expected`` in another order: the permutation (got[i] = expected[p[i]])."""
    k = expected.shape[0]
    scale = np.linalg.norm(expected) + np.linalg.norm(got)
    if scale == 0:
        return None
    perm, used = [], set()
    for i in range(k):
        match = next(
            (j for j in range(k) if j not in used and np.linalg.norm(got[i] - expected[j]) / scale < tol), None
        )
        if match is None:
            return None
        perm.append(match)
        used.add(match)
    return perm


def diagnose(
    got, expected, name: str = "the output", n: int | None = None, hints: dict | None = None, tol: float = TOLERANCE
):
    """``None`` if ``got`` matches ``expected`` (relative error ``||a-b|| / (||a|| + ||b||) < tol``), else ONE
    sentence naming ``name`` and the likely mistake, followed by the caller's pointer to the concept.

    Recognised, in this order: not an array; a batch axis not summed; transposed shape; wrong shape; NaN or inf;
    close but outside the tolerance (relative error under :data:`CLOSE`: rounding, named as float32 when ``got`` is
    float32); transposed values (square arrays); sign flipped (x -1); a factor N or 1/N (``n``, the batch size);
    another constant factor (arrays only: one number is a multiple of any other); rows (or the entries of a 1-D
    array, or columns) reversed or permuted; some entries wrong ("k of K entries differ, the largest at index
    ..."). For one number the message never prints the expected value (it would be the answer).

    ``hints`` maps a kind of mistake to a pointer appended to the sentence; keys: ``"not_array"``, ``"sum_batch"``,
    ``"shape"``, ``"nan"``, ``"close"``, ``"transpose"``, ``"sign"``, ``"scale_n"`` (x N), ``"scale_inv_n"`` (x 1/N),
    ``"scale"`` (another factor), ``"reversed"``, ``"permutation"``, ``"partial"``, and ``"default"`` (used when the
    specific key is absent).
    """
    hints = dict(hints or {})
    default = hints.get("default", "")

    def say(key, sentence):
        text = hints.get(key, default)
        return f"{sentence}{(' ' + text) if text else ''}"

    expected = np.asarray(expected, dtype=np.float64)
    dtype = np.dtype(getattr(got, "dtype", np.float64))
    low_precision = dtype in (np.float32, np.float16)
    if got is None:
        return say("not_array", f"{name} is None: return an array of shape {expected.shape}.")
    try:
        got = np.asarray(got, dtype=np.float64)
    except (TypeError, ValueError):
        return say("not_array", f"{name} is a {type(got).__name__}, not an array of numbers of shape {expected.shape}.")
    if got.shape != expected.shape:
        if got.ndim == expected.ndim + 1 and got.shape[1:] == expected.shape:
            summed = _close(got.sum(axis=0), expected, tol)
            return say(
                "sum_batch",
                f"{name} has shape {got.shape} but should have shape {expected.shape}: "
                f"{'its sum over the first (batch) axis is right' if summed else 'it has an extra first axis'}.",
            )
        if got.ndim == 2 and got.shape == expected.shape[::-1]:
            values = " and its transpose is right" if _close(got.T, expected, tol) else ""
            return say(
                "transpose",
                f"{name} has shape {got.shape} but should have shape {expected.shape}: it is transposed{values}.",
            )
        if got.size == expected.size and _close(got.reshape(expected.shape), expected, tol):
            return say("shape", f"{name} has the right values but shape {got.shape} instead of {expected.shape}.")
        return say("shape", f"{name} has shape {got.shape} but should have shape {expected.shape}.")
    bad = ~np.isfinite(got)
    if bad.any() and got.size == 1:
        value = float(got.reshape(()))
        return say("nan", f"{name} is {'NaN' if np.isnan(value) else 'infinite'}, not a finite number.")
    if bad.any():
        return say(
            "nan",
            f"{name} contains {int(bad.sum())} NaN or inf entr{'y' if bad.sum() == 1 else 'ies'} "
            f"(first at index {tuple(int(i) for i in np.argwhere(bad)[0])}).",
        )
    if _close(got, expected, tol):
        return None
    error = rel_error(got, expected)
    if error < CLOSE:
        cause = (
            f"it is {dtype.name}: compute in float64, the dtype of the inputs"
            if low_precision
            else "a step computed in float32, or a small term left out?"
        )
        return say(
            "close",
            f"{name} is close to the right answer but outside the tolerance (relative error {error:.1e}, "
            f"tolerance {tol:.0e}): {cause}",
        )
    if got.ndim == 2 and got.shape[0] == got.shape[1] and _close(got.T, expected, tol):
        return say("transpose", f"{name} is transposed: its transpose is right.")
    scalar = got.size == 1
    ee = float(np.sum(expected * expected))
    if ee > 0:
        c = float(np.sum(got * expected)) / ee
        if c != 0 and _close(got, c * expected, tol * 10):
            if _near(c, -1.0):
                return say("sign", f"{name} has the wrong sign: it is -1 times the right answer.")
            if n is not None and n > 1 and _near(c, float(n)):
                return say("scale_n", f"{name} is N = {n} times too large.")
            if n is not None and n > 1 and _near(c, 1.0 / n):
                return say("scale_inv_n", f"{name} is N = {n} times too small (1/N times the right answer).")
            if n is not None and n > 1 and _near(c, -float(n)):
                return say("scale_n", f"{name} is -N = -{n} times the right answer (wrong sign and x N).")
            if n is not None and n > 1 and _near(c, -1.0 / n):
                return say("scale_inv_n", f"{name} is -1/N times the right answer (wrong sign and / N, N = {n}).")
            if not scalar:  # one number is always a multiple of another: a factor says nothing
                factor = f"{c:.6g}" if abs(c - 1) < 0.01 else f"{c:.3g}"
                return say("scale", f"{name} is off by a constant factor: it is {factor} times the right answer.")
    if scalar:  # the expected value of a one-number exercise is its answer: do not print it
        direction = "too large" if float(got.reshape(())) > float(expected.reshape(())) else "too small"
        return say(
            "default_all",
            f"{name} is wrong: {float(got.reshape(())):.4g} is {direction} (relative error {error:.1e}).",
        )
    if got.ndim >= 1 and got.shape[0] > 1:
        axis_word = "rows" if got.ndim >= 2 else "entries"
        if _close(got[::-1], expected, tol):
            return say("reversed", f"{name} has its {axis_word} in reversed order.")
        perm = _permutation(got, expected, tol)
        if perm is not None:
            return say(
                "permutation",
                f"{name} has the right {axis_word} in the wrong order (position i holds the answer's entry {perm}[i]).",
            )
        if got.ndim == 2 and got.shape[1] > 1:
            if _close(got[:, ::-1], expected, tol):
                return say("reversed", f"{name} has its columns in reversed order.")
            perm = _permutation(got.T, expected.T, tol)
            if perm is not None:
                return say(
                    "permutation",
                    f"{name} has the right columns in the wrong order (column j holds the answer's column {perm}[j]).",
                )
    scale = max(float(np.max(np.abs(expected))), float(np.max(np.abs(got))), 1e-12)
    diff = np.abs(got - expected)
    wrong = diff > 1e-6 * scale
    k = int(wrong.sum())
    worst = tuple(int(i) for i in np.unravel_index(int(np.argmax(diff)), diff.shape))
    if 0 < k < got.size:
        return say(
            "partial",
            f"{k} of {got.size} entries of {name} differ, the largest at index {worst} "
            f"(got {got[worst]:.4g}, expected {expected[worst]:.4g}).",
        )
    return say(
        "default_all",
        f"{name} is wrong in every entry (relative error {rel_error(got, expected):.1e}; "
        f"at index {worst} got {got[worst]:.4g}, expected {expected[worst]:.4g}).",
    )


def compare_outputs(
    got, expected, names, n: int | None = None, hints: dict | None = None, where: str = "", tol: float = TOLERANCE
):
    """Check a tuple of outputs ``got`` against ``expected`` (same length as ``names``).

    Returns ``None`` when every output matches, else one "FAILED <where>: <diagnosis>" line for the first wrong
    output (in the order of ``names``). ``hints`` may be ``{kind: text}`` for all outputs or ``{output name:
    {kind: text}}`` per output.
    """
    at = f" {where}" if where else ""
    names = tuple(names)
    if len(names) == 1:  # a single output may come bare or as a 1-tuple
        got = got if isinstance(got, (tuple, list)) else (got,)
        expected = expected if isinstance(expected, (tuple, list)) else (expected,)
    if not isinstance(got, (tuple, list)) or len(got) != len(names):
        form = f"{len(got)} values" if isinstance(got, (tuple, list)) else f"a {type(got).__name__}"
        return f"FAILED{at}: expected {len(names)} values {names}, got {form}."
    swap = swapped_outputs(got, expected, names, tol)
    if swap:
        return f"FAILED{at}: {swap}"
    for name, g, e in zip(names, got, expected):
        h = hints.get(name, hints) if isinstance(hints, dict) and isinstance(hints.get(name), dict) else hints
        message = diagnose(g, e, name=name, n=n, hints=h, tol=tol)
        if message is not None:
            return f"FAILED{at}: {message}"
    return None


def _matches_array(a, b, tol) -> bool:
    try:
        return _close(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64), tol)
    except (TypeError, ValueError):
        return False


def swapped_outputs(got, expected, names, tol=TOLERANCE):
    """One sentence if some output of ``got`` is right but in another output's place (e.g. (dsigma, dmu) returned
    for (dmu, dsigma)), else None."""
    order = ", ".join(names)
    for i, name in enumerate(names):
        if _matches_array(got[i], expected[i], tol):
            continue
        for j, other in enumerate(names):
            if j == i or _matches_array(expected[i], expected[j], tol):
                continue
            if _matches_array(got[i], expected[j], tol):
                both = _matches_array(got[j], expected[i], tol)
                what = f"{name} and {other} are swapped" if both else f"{name} holds what {other} should be"
                return f"{what}: return them in the order ({order})."
    return None


# -------------------------------------------------------------------- grading against cases and typical mistakes
MATCH = 1e-6  # relative error under which an answer (right or wrong) counts as "this formula"


class FormError(ValueError):
    """The student's return value does not have the form the exercise asks for (the message says which)."""


def _rel(a, b) -> float:
    """rel_error, safe for huge entries (an unnormalised exp(T s) can reach 1e300)."""
    scale = max(float(np.max(np.abs(a))), float(np.max(np.abs(b))), 1e-300)
    return rel_error(np.asarray(a) / scale, np.asarray(b) / scale)


def _matches(got_all, wrongs) -> bool:
    """Does every case's answer equal that case's wrong answer, wherever the wrong answer is finite?"""
    compared = 0
    for got, wrong in zip(got_all, wrongs):
        wrong = np.asarray(wrong, dtype=float)
        if got.shape != wrong.shape:
            return False
        ok = np.isfinite(wrong)
        if not ok.any():
            continue
        if not np.all(np.isfinite(got[ok])) or _rel(got[ok], wrong[ok]) >= MATCH:
            return False
        compared += 1
    return compared > 0


def grade(fn, cases, *, hidden, to_array, messages, name, hints, what, parts=None, mutable=()):
    """Grade ``fn`` on ``cases``: [(label, args, expected array, {mistake id: wrong array})].

    The student's function is called on every case inside ``hide(*hidden)``; its return value becomes an
    array through ``to_array(value, args)`` (which raises :class:`FormError`). All cases right: passed. Otherwise
    the answers of all cases together are matched against each typical mistake (``messages``: {mistake id:
    message}, tried in order; each case gives its own wrong answer for each id, NaN where it has none, and several
    ids may share a message); failing that, ``diagnose`` describes the first wrong case. ``parts(args)``, when
    given, names the pieces the flat answer is made of, ``[(name, shape)]`` in order (a dict's keys): the diagnosis
    then names the first wrong piece (e.g. the gradient 'a0.w1') rather than an index into the flat array.
    ``mutable``: the argument positions the student may change in place (passed as they are, not as copies).
    """
    got_all = []
    with hide(*hidden):
        for label, args, _, _ in cases:
            value, failure = call_student(fn, *args, where=f"in case '{label}'", mutable=mutable, allow_nonfinite=True)
            if failure:
                return Result(False, failure, {"case": label})
            try:
                got_all.append(to_array(value, args))
            except FormError as exc:
                return failed(f"FAILED in case '{label}': {exc}", case=label)
    errors = {
        label: (_rel(got, expected) if got.shape == np.shape(expected) and np.all(np.isfinite(got)) else float("inf"))
        for (label, _, expected, _), got in zip(cases, got_all)
    }
    if all(e < TOLERANCE for e in errors.values()):
        return passed(
            f"your {name}: right on all {len(cases)} cases (largest relative error {max(errors.values()):.1e}).",
            errors=errors,
        )
    first = next(i for i, (label, *_) in enumerate(cases) if not errors[label] < TOLERANCE)
    label, _, expected, _ = cases[first]
    if all(g.shape == np.shape(e) for g, (_, _, e, _) in zip(got_all, cases)):
        for key, message in messages.items():
            if all(key in case[3] for case in cases):
                if _matches(got_all, [np.reshape(case[3][key], np.shape(case[2])) for case in cases]):
                    return failed(f"FAILED: {message}", errors=errors, mistake=key, case=label)
    got = got_all[first]
    if parts is not None and got.shape == np.shape(expected):
        diagnosis = _diagnose_parts(got, np.asarray(expected), parts(cases[first][1]), hints)
    else:
        diagnosis = diagnose(got, expected, name=f"your {what}", hints=hints)
        diagnosis = _one_factor_for_all(diagnosis, got_all, cases, first)
    detail = ""
    if 1 < np.size(expected) <= 8 and got.shape == np.shape(expected) and parts is None:  # one number: its answer
        detail = f"\n  got {np.round(got, 4).tolist()}, expected {np.round(expected, 4).tolist()}"
    return failed(f"FAILED in case '{label}': {diagnosis}{detail}", errors=errors, case=label)


_FACTOR = re.compile(r"(your .+?) is off by a constant factor: it is (\S+) times the right answer\.")


def _factor(got, expected) -> float | None:
    """c where ``got`` = c * ``expected`` (None when it is no multiple of it)."""
    got, expected = np.asarray(got, dtype=float), np.asarray(expected, dtype=float)
    ee = float(np.sum(expected * expected))
    if got.shape != expected.shape or ee == 0 or not np.all(np.isfinite(got)):
        return None
    c = float(np.sum(got * expected)) / ee
    return c if _rel(got, c * expected) < 10 * TOLERANCE else None


def _one_factor_for_all(diagnosis: str, got_all, cases, first: int) -> str:
    """A diagnosis "off by a constant factor" stands only when the factor is the same in every case; otherwise it
    says so and recommends no factor (an answer that is right on one case and twice the answer on another has terms
    weighted wrongly, and fixing "the factor" would break the other case)."""
    found = _FACTOR.search(diagnosis)
    if found is None:
        return diagnosis
    here = _factor(got_all[first], cases[first][2])
    for i, (label, _, expected, _) in enumerate(cases):
        c = _factor(got_all[i], expected) if np.shape(got_all[i]) == np.shape(expected) else None
        if i == first or here is None or (c is not None and abs(c - here) <= 1e-3 * abs(here)):
            continue
        there = "is no multiple of it" if c is None else ("is right" if abs(c - 1) <= 1e-3 else f"is {c:.3g} times it")
        sentence = (
            f"{found.group(1)} is {found.group(2)} times the right answer in this case, but not in every case (in "
            f"case '{label}' it {there}): no single factor fixes it. Look for terms weighted wrongly relative to one "
            "another."
        )
        return diagnosis[: found.start()] + sentence + diagnosis[found.end() :]
    return diagnosis


def _diagnose_parts(got, expected, parts, hints):
    """diagnose() of the first wrong piece of a flat answer, named, with the number of wrong pieces."""
    pieces, start = [], 0
    for part, shape in parts:
        size = int(np.prod(shape, dtype=int))
        pieces.append((part, got[start : start + size].reshape(shape), expected[start : start + size].reshape(shape)))
        start += size
    wrong = [(part, g, e) for part, g, e in pieces if not (np.all(np.isfinite(g)) and _close(g, e, TOLERANCE))]
    if not wrong:
        return diagnose(got, expected, name="your answer", hints=hints)
    part, g, e = wrong[0]
    named = ", ".join(p for p, _, _ in wrong[:4]) + (", ..." if len(wrong) > 4 else "")
    return f"wrong: {named} ({len(wrong)} of {len(pieces)}); " + diagnose(g, e, name=part, hints=hints)


# ------------------------------------------------------------------------------------------- autograder
def grade_notebook(path, fast: bool = True, timeout: int = 600) -> dict:
    """Execute a (student's) notebook in its own folder and collect the verdict of every checker cell.

    Returns ``{exercise: "PASSED" | "FAILED" | "NOT YET" | "no output" | "ERROR"}``, in notebook order; a checker
    cell is a code cell that calls ``exercises.check_<exercise>(`` (or ``nbXX.check_<exercise>(``). ``fast`` sets
    MINI_CAL_FAST=1 (the checkers do not depend on it; only the training cells get shorter). The notebook's folder
    must hold ``course/`` (as the handout does) and mini_cal must be importable.
    """
    import os
    import re
    from pathlib import Path

    import nbclient
    import nbformat

    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    env = {k: v for k, v in os.environ.items() if k != "MINI_CAL_FAST"}
    if fast:
        env["MINI_CAL_FAST"] = "1"
    client = nbclient.NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        allow_errors=True,
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute(env=env)
    verdicts = {}
    for cell in nb.cells:
        names = re.findall(r"\b(?:exercises|nb\d\d)\.check_(\w+)\(", cell.source) if cell.cell_type == "code" else []
        for name in names:
            text = "".join(o.get("text", "") or o.get("data", {}).get("text/plain", "") for o in cell.outputs)
            if any(o.get("output_type") == "error" for o in cell.outputs):
                verdicts[name] = "ERROR"
            else:
                verdicts[name] = next((v for v in ("PASSED", "NOT YET", "FAILED") if text.startswith(v)), "no output")
    return verdicts


def main(argv=None) -> int:
    """``python -m course.grading NOTEBOOK.ipynb ...`` (from the notebooks' folder): one line per exercise."""
    import argparse

    parser = argparse.ArgumentParser(description="Grade the exercises of executed student notebooks.")
    parser.add_argument("notebooks", nargs="+")
    parser.add_argument("--full", action="store_true", help="run in default mode instead of MINI_CAL_FAST=1")
    args = parser.parse_args(argv)
    total = passed_count = 0
    for nb_path in args.notebooks:
        verdicts = grade_notebook(nb_path, fast=not args.full)
        for name, verdict in verdicts.items():
            print(f"{nb_path}\t{name}\t{verdict}")
        total += len(verdicts)
        passed_count += sum(v == "PASSED" for v in verdicts.values())
    print(f"passed {passed_count} of {total} exercises")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
