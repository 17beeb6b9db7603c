"""The three moments at which code may attach to the training loop (:func:`mini_cal.train.train`).

A :class:`Hook` sees the loop's state (:class:`mini_cal.train.Run`: model, parameters, optimiser, random
generator, history, data) before the first epoch, after every optimiser step and after every epoch. Every method
is a hook too (most do nothing there; a method that measures something on held-out data once per epoch, or keeps
the validation split at hand, does it here). The lab attaches checkpoints, resume and Ctrl-C handling the same way
(:mod:`mini_cal.lab.checkpoint`).
"""

from __future__ import annotations


class Hook:
    """Behaviour attached around the loop without changing it; override what you need."""

    def on_start(self, run) -> None:
        """Before the first epoch (a resume restores ``run`` here)."""

    def on_step(self, run, row: dict) -> None:
        """After each optimiser step; ``row`` holds the step's loss terms, diagnostics and gradient norm."""

    def on_epoch_end(self, run) -> None:
        """After each epoch's validation and model selection (``run.epoch`` epochs are complete)."""
