"""NumPy as :func:`mini_cal.backend.xp` hands it out: the ``numpy`` module's names, with four functions bound to
the calls they wrap. A speed trick only: the numbers are the same, bit for bit.

``np.sum``, ``np.max``, ``np.take`` and ``np.astype`` are Python functions that check their arguments, look for array
subclasses, then call a ufunc reduction (``np.add.reduce``, ``np.maximum.reduce``) or an array method (``.take``,
``.astype``). That costs about a microsecond per call, as much as the arithmetic on the default network's 64 x 64
arrays, and a training step makes ~20 such calls. Calling the reduction or the method directly gives the same numbers
bit for bit (``tests/test_backend.py`` checks it, and ``benchmarks/fingerprint.py``) and takes the default joint step
from 225 to 197 us (``benchmarks/README.md``). Compute code is unchanged: it still calls ``xp.sum(x, axis=1)``; CuPy
and array_api_strict are handed out as they are.
"""

from __future__ import annotations

import types

import numpy as np


def numpy_namespace() -> types.ModuleType:
    """A copy of the ``numpy`` module whose ``sum``, ``max``, ``take`` and ``astype`` call what NumPy's own call."""
    ns = types.ModuleType("numpy", np.__doc__)
    ns.__dict__.update(np.__dict__)  # every NumPy name, looked up as fast as on the module itself
    add, maximum = np.add.reduce, np.maximum.reduce

    def sum(x, axis=None, dtype=None, keepdims=False):
        return add(x, axis=axis, dtype=dtype, keepdims=keepdims)

    def max(x, axis=None, keepdims=False):
        return maximum(x, axis=axis, keepdims=keepdims)

    def take(x, indices, axis=None):
        return np.asarray(x).take(indices, axis=axis)

    def astype(x, dtype, copy=True):
        return np.asarray(x).astype(dtype, copy=copy)

    ns.sum, ns.max, ns.take, ns.astype = sum, max, take, astype
    return ns


NUMPY = numpy_namespace()
