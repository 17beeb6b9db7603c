#!/usr/bin/env bash
# One prepared check for a machine with an NVIDIA GPU and CUDA 12: install the gpu and test extras, run the
# GPU-marked tests (none may be skipped), and run the step benchmark on the CPU and on the GPU, printing every
# figure; JSON copies go to $OUT (default: results/gpu-check). About 2-4 minutes, most of it pip and CuPy's
# first-call kernel compilation.
#
#   bash benchmarks/gpu_check.sh
#   OUT=/tmp/figures STEPS=50 bash benchmarks/gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-results/gpu-check}"
STEPS="${STEPS:-30}"
mkdir -p "$OUT"

echo "== machine"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || echo "nvidia-smi: not found"
python3 --version

echo "== install (gpu and test extras)"
python3 -m pip install --quiet -e '.[gpu,test]'
python3 - <<'EOF'
from mini_cal import backend as B
import cupy
print("cupy", cupy.__version__, "- CUDA devices:", cupy.cuda.runtime.getDeviceCount())
if not B.cuda_available():
    raise SystemExit("backend.cuda_available() is False: the GPU tests would be skipped; stopping here")
EOF

echo "== GPU-marked tests (pytest -m gpu): none may be skipped"
python3 -m pytest -m gpu -v -rs -p no:cacheprovider tests 2>&1 | tee "$OUT/pytest-gpu.txt"
if grep -q "SKIPPED" "$OUT/pytest-gpu.txt"; then
    echo "some GPU tests were skipped although a GPU is present" >&2
    exit 1
fi

echo "== step benchmark, CPU (NumPy)"
python3 benchmarks/bench_step.py --device cpu --steps "$STEPS" --json "$OUT/bench-cpu.json"

echo "== step benchmark, GPU (CuPy)"
python3 benchmarks/bench_step.py --device gpu --steps "$STEPS" --json "$OUT/bench-gpu.json"

echo "== done: figures in $OUT/"
