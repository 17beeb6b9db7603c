"""Notebook 01's checker (tutorials/course/nb01.py): the effective learning rate of a branch fed inputs scaled by s."""

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tutorials"))

from course import nb01  # noqa: E402
from solutions.effective_lr import effective_lr  # noqa: E402


def stub(lr, s):
    raise NotImplementedError("work out the effective learning rate")


def test_solution_passes_and_stub_is_not_implemented():
    result = nb01.check_effective_lr(effective_lr)
    assert result.passed, result.message
    result = nb01.check_effective_lr(stub)
    assert not result.passed and "not implemented" in result.message


@pytest.mark.parametrize(
    "wrong, words",
    [
        (lambda lr, s: lr * s, "one factor s, the one in the gradient"),
        (lambda lr, s: lr / s**2, "the factor is inverted"),
        (lambda lr, s: lr / s, "the factor is inverted"),
        (lambda lr, s: lr, "changes both the gradient and how much"),
        (lambda lr, s: lr * s**3, "Follow s through the gradient"),
        (lambda lr, s: "fast", "expected a number"),
    ],
)
def test_typical_mistakes_are_named(wrong, words):
    result = nb01.check_effective_lr(wrong)
    assert not result.passed and words in result.message, result.message


def test_messages_differ():
    messages = {
        nb01.check_effective_lr(f).message for f in (lambda lr, s: lr * s, lambda lr, s: lr / s**2, lambda lr, s: lr)
    }
    assert len(messages) == 3
