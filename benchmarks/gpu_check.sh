#!/usr/bin/env bash
# One prepared check for a machine with an NVIDIA GPU, offline: it uses what is installed and never fetches.
# It installs this checkout without its dependencies and without any index (pip --no-deps --no-index
# --no-build-isolation -e .), checks the prerequisites and that CuPy sees a device and runs a kernel, runs the
# GPU-marked tests (none may be skipped), then the step benchmark on the CPU and on the GPU, printing every
# figure; JSON copies go to $OUT (default: results/gpu-check). A few minutes, most of it CuPy's first-call kernel
# compilation.
#
#   bash benchmarks/gpu_check.sh
#   OUT=/tmp/figures STEPS=50 PYTHON=python3.12 bash benchmarks/gpu_check.sh
#
# Needs, already installed: NumPy, SciPy, matplotlib, tqdm, pytest and a CuPy wheel matching the CUDA driver:
#   CUDA 12.x driver: cupy-cuda12x   (pip install -e '.[gpu]')
#   CUDA 13.x driver: cupy-cuda13x   (pip install -e '.[gpu-cuda13]')
# (the two extras of setup.py; install one of them where a registry can be reached, not here).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
OUT="${OUT:-results/gpu-check}"
STEPS="${STEPS:-30}"
mkdir -p "$OUT"

echo "== machine"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || echo "nvidia-smi: not found"
"$PYTHON" --version

echo "== prerequisites (nothing is downloaded)"
"$PYTHON" - <<'PY'
import importlib, importlib.metadata as md, sys
missing = []
for module in ("numpy", "scipy", "matplotlib", "tqdm", "pytest", "setuptools"):
    try:
        importlib.import_module(module)
        print(f"  {module:11s} {md.version(module)}")
    except ImportError:
        missing.append(module)
def _dist(name):
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return None
wheels = [(d, _dist(d)) for d in ("cupy-cuda13x", "cupy-cuda12x", "cupy") if _dist(d)]
print("  CuPy wheels:", ", ".join(f"{d} {v}" for d, v in wheels) or "none")
if not wheels:
    missing.append("cupy (cupy-cuda12x for a CUDA 12 driver, cupy-cuda13x for CUDA 13)")
if len(wheels) > 1:
    print("  warning: more than one CuPy wheel is installed; they share the module name `cupy`")
if missing:
    sys.exit("missing (install them where a registry can be reached; this script never fetches): " + ", ".join(missing))
PY

echo "== install this checkout (no dependencies, no index, no build isolation)"
"$PYTHON" -m pip install --quiet --no-deps --no-index --no-build-isolation -e .

echo "== CuPy sees a device and runs a kernel"
"$PYTHON" - <<'PY'
import cupy
from mini_cal import backend as B
runtime = cupy.cuda.runtime
count = runtime.getDeviceCount()
print(f"cupy {cupy.__version__}, CUDA runtime {runtime.runtimeGetVersion()}, driver {runtime.driverGetVersion()}, "
      f"devices: {count}")
if count < 1 or not B.cuda_available():
    raise SystemExit("CuPy sees no CUDA device: the GPU tests would be skipped; stopping here")
print("device 0:", runtime.getDeviceProperties(0)["name"].decode())
x = cupy.arange(1024, dtype=cupy.float32)
assert float((x * x).sum()) == float(sum(i * i for i in range(1024))), "a CuPy kernel gave a wrong sum"
print("a kernel ran and gave the right sum")
PY

echo "== GPU-marked tests (pytest -m gpu): none may be skipped"
"$PYTHON" -m pytest -m gpu -v -rs -p no:cacheprovider tests 2>&1 | tee "$OUT/pytest-gpu.txt"
if grep -q "SKIPPED" "$OUT/pytest-gpu.txt"; then
    echo "some GPU tests were skipped although a GPU is present" >&2
    exit 1
fi

echo "== step benchmark, CPU (NumPy)"
"$PYTHON" benchmarks/bench_step.py --device cpu --steps "$STEPS" --json "$OUT/bench-cpu.json"

echo "== step benchmark, GPU (CuPy)"
"$PYTHON" benchmarks/bench_step.py --device gpu --steps "$STEPS" --json "$OUT/bench-gpu.json"

echo "== done: figures in $OUT/"
