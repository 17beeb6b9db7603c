"""mini_cal: a teaching implementation of Contribution-Guided Asymmetric Learning (CAL; Xu, Kou, Wu, Liu,
arXiv 2510.26289) and its peers, in pure NumPy with hand-written backpropagation."""

import os as _os

# mini_cal multiplies small matrices (a few dozen rows and columns). There, BLAS worker threads cost more in
# synchronisation than they save (measured: a joint run takes 1.7 s with OpenBLAS's default threads, 0.44 s with
# one), and compare's worker processes would oversubscribe the cores. So one BLAS thread per process, unless the
# variables are already set, and only if NumPy has not been imported yet (it reads them when it loads).
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    _os.environ.setdefault(_var, "1")

__version__ = "0.2.0"
