"""The three moments at which code may attach to the training loop (:func:`mini_cal.train.train`), and the two
hooks the loop itself always uses: :class:`FiniteGuard` and the progress bar.

A :class:`Hook` sees the loop's state (:class:`mini_cal.train.Run`: model, parameters, optimiser, random
generator, history, data) before the first epoch, after every optimiser step and after every epoch. Every method
is a hook too (most do nothing there; a method that measures something on held-out data once per epoch, or keeps
the validation split at hand, does it here). The lab attaches checkpoints, resume and Ctrl-C handling the same way
(:mod:`mini_cal.lab.checkpoint`).
"""

from __future__ import annotations

import contextlib
import math

import numpy as np

from . import backend as B


class Hook:
    """Behaviour attached around the loop without changing it; override what you need."""

    def on_start(self, run) -> None:
        """Before the first epoch (a resume restores ``run`` here)."""

    def on_step(self, run, row: dict) -> None:
        """After each optimiser step; ``row`` holds the step's loss terms, diagnostics and gradient norm."""

    def on_epoch_end(self, run) -> None:
        """After each epoch's validation and model selection (``run.epoch`` epochs are complete)."""


class DivergenceError(FloatingPointError):
    """A loss term, the gradient norm or a parameter became NaN or inf."""


class FiniteGuard(Hook):
    """Stops the run with :class:`DivergenceError` as soon as a loss term, the gradient norm or (at the end of an
    epoch) a parameter is NaN or inf."""

    def on_step(self, run, row):
        for name, value in row["terms"].items():
            if not math.isfinite(value):
                raise DivergenceError(f"loss term {name!r} is {value} {self.where(row)}")
        if not math.isfinite(row["grad_norm"]):
            raise DivergenceError(f"gradient norm is {row['grad_norm']} {self.where(row)}")

    @staticmethod
    def where(row) -> str:
        return f"at epoch {row['epoch'] + 1}, step {row['step']}"

    def on_epoch_end(self, run):
        xp = B.xp()
        finite = B.to_numpy(xp.stack([xp.all(xp.isfinite(p)) for p in run.params.values()]))  # one transfer
        if not bool(np.all(finite)):
            raise DivergenceError(f"a parameter is not finite at the end of epoch {run.epoch}")


@contextlib.contextmanager
def progress_bar(config, method, start_epoch: int):
    """A tqdm bar over epochs (when ``config.progress``); yields ``update(row)``."""
    if not config.progress:
        yield lambda row: None
        return
    from tqdm.auto import tqdm

    bar = tqdm(
        total=config.epochs, initial=start_epoch, desc=str(getattr(method, "name", method)), unit="epoch", leave=False
    )

    def update(row):
        bar.update(1)
        bar.set_postfix(loss=f"{row['loss']:.3f}", val=f"{row['val_acc']:.3f}")

    try:
        yield update
    finally:
        bar.close()
