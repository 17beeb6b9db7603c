import numpy as np
import pytest

from mini_cal import backend as B


@pytest.fixture(autouse=True)
def numpy_backend():
    """Every test starts on the NumPy backend (a test that switches is restored afterwards)."""
    B.set_backend("numpy")
    yield
    B.set_backend("numpy")


@pytest.fixture
def rng():
    return np.random.default_rng(0)
