"""Notebook 07's checker: accepts the solution, reports a stub as unfinished, refuses the library's own function,
and tells typical wrong answers apart with different messages."""

import sys
from pathlib import Path

import numpy as np

TUTORIALS = Path(__file__).resolve().parents[1] / "tutorials"
sys.path.insert(0, str(TUTORIALS))

from course import nb07  # noqa: E402
from solutions.log_softmax import log_softmax  # noqa: E402

from mini_cal import backend as B  # noqa: E402
from mini_cal import layers as L  # noqa: E402


def stub(logits):
    raise NotImplementedError("write it")


def numpy_only(logits):  # right values on NumPy, but np.* on a device array
    shifted = logits - np.max(logits, axis=1, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=1, keepdims=True))


def methods(logits):  # NumPy's array methods
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - B.xp().log(B.xp().exp(shifted).sum(axis=1, keepdims=True))


def unstable(logits):
    xp = B.xp()
    return logits - xp.log(xp.sum(xp.exp(logits), axis=1, keepdims=True))


def softmax_only(logits):
    xp = B.xp()
    return xp.exp(log_softmax(logits))


def over_columns(logits):
    xp = B.xp()
    shifted = logits - xp.max(logits, axis=0, keepdims=True)
    return shifted - xp.log(xp.sum(xp.exp(shifted), axis=0, keepdims=True))


def to_host(logits):  # right values, but copies to the host and returns a NumPy array
    x = np.asarray(B.to_numpy(logits))
    shifted = x - x.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


WRONG = [
    (unstable, "NaN or inf"),
    (softmax_only, "softmax (probabilities)"),
    (over_columns, "axis 0"),
    (numpy_only, "NumPy functions"),
    (methods, "NumPy functions"),
    (to_host, "left the device"),
]


def test_checker():
    assert nb07.check_log_softmax(log_softmax).passed, nb07.check_log_softmax(log_softmax).message
    assert "not implemented" in nb07.check_log_softmax(stub).message
    result = nb07.check_log_softmax(L.log_softmax)
    assert not result.passed and "library" in result.message
    messages = set()
    for fn, expected in WRONG:
        result = nb07.check_log_softmax(fn)
        assert not result.passed, fn.__name__
        assert expected in result.message, (fn.__name__, result.message)
        messages.add(result.message)
    assert len(messages) >= 5  # numpy_only and methods may share the device message
    assert B.get_backend() == "numpy"  # the checker restores the backend


def test_never_raises_on_garbage():
    for fn in (lambda x: None, lambda x: "text", lambda x: 1 / 0):
        assert not nb07.check_log_softmax(fn).passed


def test_a_shift_other_than_each_rows_maximum_is_refused():
    """Subtracting a row's mean, or the whole array's maximum, is exact on logits of similar size: only a case
    with logits far apart within a row and between rows tells them from the row maximum."""

    def row_mean(logits):
        xp = B.xp()
        shifted = logits - xp.mean(logits, axis=1, keepdims=True)
        return shifted - xp.log(xp.sum(xp.exp(shifted), axis=1, keepdims=True))

    def global_max(logits):
        xp = B.xp()
        shifted = logits - xp.max(logits)
        return shifted - xp.log(xp.sum(xp.exp(shifted), axis=1, keepdims=True))

    for fn in (row_mean, global_max):
        with np.errstate(all="ignore"):
            result = nb07.check_log_softmax(fn)
        assert not result.passed and "OWN maximum" in result.message, (fn.__name__, result.message)
