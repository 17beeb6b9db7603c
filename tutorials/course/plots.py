"""Figure style shared by the course notebooks: at most ~1000 px wide at dpi 100 (``figsize`` width <= 10 in),
fonts readable at a notebook column's width, legends in empty corners or outside the data, labelled axes."""

from __future__ import annotations

import matplotlib.pyplot as plt

MAX_WIDTH = 10.0  # inches; at dpi 100 a figure is at most 1000 px wide
STYLE = {
    "figure.dpi": 100,
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "legend.fontsize": 9,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
}


def figure(ncols: int = 1, nrows: int = 1, width: float = 7.5, height: float = 4.0, **kwargs):
    """``plt.subplots`` with the course's style; the width is capped at :data:`MAX_WIDTH` inches."""
    plt.rcParams.update(STYLE)
    return plt.subplots(nrows, ncols, figsize=(min(width, MAX_WIDTH), height), **kwargs)


def legend_outside(ax, **kwargs):
    """A legend to the right of the axes, off the data."""
    return ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, fontsize=9, **kwargs)


def finish(fig, path: str | None = None):
    """tight_layout, optionally save (for checking a figure outside the notebook), and show."""
    fig.tight_layout()
    if path:
        fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.show()
