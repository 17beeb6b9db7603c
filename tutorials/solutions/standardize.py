"""Solution to notebook 09's exercise: standardise every feature with the training split's statistics.

Per modality and per feature (column): the training split's mean and standard deviation (np.std, ddof=0), computed
in float64, applied to every split. A feature whose training values are all equal gets std 1: it becomes 0 on train
and keeps its change from the training value elsewhere. "All equal" is tested on the values themselves (np.ptp),
not by std == 0, because np.std of a constant column is often a rounding residue (about 1e-16) rather than 0.
"""

import numpy as np


def standardize(train, *others):
    """train, others[i]: dicts {modality name: array (N, D_m)} -> [train', *others'] (new float64 arrays)."""
    stats = {}
    for name, x in train.items():
        x = np.asarray(x, dtype=np.float64)
        constant = np.ptp(x, axis=0) == 0
        mean = np.where(constant, x[0], x.mean(axis=0))
        std = np.where(constant, 1.0, x.std(axis=0))
        stats[name] = mean, std
    return [
        {name: (np.asarray(x, dtype=np.float64) - stats[name][0]) / stats[name][1] for name, x in split.items()}
        for split in (train, *others)
    ]
