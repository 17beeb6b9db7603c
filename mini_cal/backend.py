"""The one place in mini_cal that knows which array library is in use.

Every compute module asks this module for its array namespace (``xp()``) and uses only operations that NumPy 2,
CuPy and the Python array API standard share, spelled the standard's way (``xp.take``, ``xp.astype``-style helpers
below, ``@`` for matmul, ``.T`` on 2-D arrays). Nothing else in mini_cal imports CuPy.

Backends:

* ``"numpy"`` (default): NumPy on the CPU (as ``mini_cal/_fast_numpy.py`` hands it out: four calls made direct, for
  speed only).
* ``"cupy"``: CuPy on an NVIDIA GPU (``pip install mini_cal[gpu]``); data and random numbers are created on the
  device.
* ``"array_api_strict"``: a strict reference implementation of the array API standard. It runs on the CPU but
  refuses NumPy-only functions and methods and any mixing of NumPy arrays with its own, as CuPy does, so the test
  suite uses it as a stand-in device library to catch NumPy-only code without a GPU. One gap: on its default
  device it lets ``np.asarray(x)`` copy an array to the host silently, which CuPy refuses; host copies in mini_cal
  go through :func:`to_numpy` for that reason.

Randomness never comes from global state: callers pass a :class:`Rng` made by :func:`make_rng`.
"""

from __future__ import annotations

import contextlib
import importlib

import numpy as np

from ._fast_numpy import NUMPY  # numpy itself, four calls made direct: faster, the same numbers

BACKENDS = ("numpy", "cupy", "array_api_strict")
_state = {"name": "numpy", "xp": NUMPY}


def xp():
    """The array namespace in use (``numpy``, ``cupy`` or ``array_api_strict``)."""
    return _state["xp"]


def get_backend() -> str:
    """Name of the backend in use."""
    return _state["name"]


def set_backend(name: str):
    """Switch the array library used by all compute code; returns the namespace."""
    if name not in BACKENDS:
        raise ValueError(f"backend: expected one of {BACKENDS}, got {name!r}")
    if name == "numpy":
        module = NUMPY
    else:
        try:
            module = importlib.import_module(name)
        except ImportError as exc:  # pragma: no cover - depends on the machine
            hint = "pip install 'mini_cal[gpu]'" if name == "cupy" else "pip install array-api-strict"
            raise RuntimeError(f"backend {name!r} is not installed ({exc}); try: {hint}") from exc
        if name == "cupy":
            try:
                module.cuda.runtime.getDeviceCount()
            except Exception as exc:  # pragma: no cover - needs a GPU
                raise RuntimeError(f"backend 'cupy' is installed but no CUDA device is usable: {exc}") from exc
    _state["name"], _state["xp"] = name, module
    return module


@contextlib.contextmanager
def use_backend(name: str):
    """Context manager: run a block under another backend, then restore the previous one."""
    previous = get_backend()
    set_backend(name)
    try:
        yield xp()
    finally:
        set_backend(previous)


def asarray(a, dtype=None):
    """Host data (NumPy array, list, scalar) or a backend array -> a backend array on the device."""
    if isinstance(dtype, str):
        dtype = float_dtype(dtype)
    return xp().asarray(a, dtype=dtype)


def to_numpy(a) -> np.ndarray:
    """A backend array -> a NumPy array on the host (an explicit copy off the device)."""
    name = get_backend()
    if isinstance(a, np.ndarray) or np.isscalar(a):
        return np.asarray(a)
    if name == "cupy":
        return a.get()
    if name == "array_api_strict":
        return np.asarray(a._array) if hasattr(a, "_array") else np.asarray(a)
    return np.asarray(a)


def to_float(a) -> float:
    """A 0-d backend array -> a Python float (one explicit device-to-host transfer)."""
    return float(to_numpy(a))


def float_dtype(name: str = "float32"):
    """The backend's dtype object for ``"float32"`` or ``"float64"``."""
    if name not in ("float32", "float64"):
        raise ValueError(f"dtype: expected 'float32' or 'float64', got {name!r}")
    return getattr(xp(), name)


def astype(a, dtype):
    """Array API spelling of a dtype conversion, for libraries that predate ``xp.astype``."""
    module = xp()
    if hasattr(module, "astype"):
        return module.astype(a, dtype)
    return a.astype(dtype)  # pragma: no cover - older CuPy


def dtype_name(a) -> str:
    """``"float32"`` or ``"float64"`` for a backend float array."""
    module = xp()
    return "float64" if a.dtype == module.float64 else "float32"


def make_rng(seed) -> Rng:
    """The only constructor of randomness in mini_cal."""
    return Rng(seed)


class Rng:
    """A seeded source of randomness that lives where the arrays live.

    ``host`` is a :class:`numpy.random.Generator` for cheap host-side draws (shuffling indices, choosing attacked
    samples). :meth:`normal` draws Gaussian noise directly on the device: with CuPy from a CuPy generator seeded
    from ``host``, otherwise from ``host`` itself. The same seed gives the same numbers on the same backend.
    """

    def __init__(self, seed):
        self.host = np.random.default_rng(seed)
        self._device = None
        if get_backend() == "cupy":  # pragma: no cover - needs a GPU
            self._reseed_device()

    def _reseed_device(self) -> None:  # pragma: no cover - needs a GPU
        import cupy

        self._device = cupy.random.default_rng(int(self.host.integers(2**63 - 1)))

    def normal(self, shape, dtype="float32"):
        """Standard-normal array of ``shape`` on the device."""
        if isinstance(dtype, str):
            dtype_str = dtype
        else:
            dtype_str = "float64" if dtype == xp().float64 else "float32"
        if self._device is not None:  # pragma: no cover - needs a GPU
            return self._device.standard_normal(shape, dtype=dtype_str)
        return asarray(self.host.standard_normal(shape, dtype=np.dtype(dtype_str)))

    def permutation(self, n: int) -> np.ndarray:
        """A random permutation of ``range(n)`` on the host."""
        return self.host.permutation(n)

    def get_state(self) -> dict:
        """Serialisable state (for checkpoints, and for replaying draws with :meth:`set_state`).

        cuRAND's device state cannot be exported, so on CuPy the device stream is derived from the host state:
        it is re-seeded from the host generator here and in :meth:`set_state`. Draws after ``set_state(s)`` then
        repeat the draws after the ``get_state()`` that returned ``s`` on every backend; on CuPy, a run that
        saves its state draws different (but reproducible) device noise from one that does not.
        """
        state = {"host": self.host.bit_generator.state}
        if self._device is not None:  # pragma: no cover - needs a GPU
            self._reseed_device()
        return state

    def set_state(self, state: dict) -> None:
        self.host.bit_generator.state = state["host"]
        if self._device is not None:  # pragma: no cover - needs a GPU
            self._reseed_device()


def cuda_available() -> bool:
    """True when CuPy imports and sees at least one CUDA device."""
    try:
        cupy = importlib.import_module("cupy")
        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


def synchronize() -> None:
    """Wait until the device has finished all queued work (a no-op on the CPU); call it before reading a clock."""
    if get_backend() == "cupy":  # pragma: no cover - needs a GPU
        xp().cuda.Device().synchronize()
