#!/usr/bin/env bash
# Profile a short training run: nsys when present (NVTX ranges name every phase), else ncu on a
# few kernels, else the engine's own CUDA-event table (siamese train --profile).
# usage: tools/profile.sh [BUILD_DIR] [siamese train args...]   (default: 2 epochs on built-in data)
set -eu
build=${1:-build}; shift || true
bin="$build/siamese"
[ -x "$bin" ] || { echo "profile.sh: $bin not found: build first (cmake -S . -B $build && cmake --build $build)" >&2; exit 2; }
args=("$@"); [ ${#args[@]} -gt 0 ] || args=(--epochs 2)
mkdir -p profile
export PATH=/usr/local/cuda/bin:$PATH
if command -v nsys >/dev/null; then
  nsys profile --trace=cuda,nvtx,cublas,cudnn -o profile/siamese --force-overwrite true \
    "$bin" train --device cuda --out profile/run "${args[@]}"
  nsys stats --report cuda_gpu_kern_sum profile/siamese.nsys-rep | head -40
elif command -v ncu >/dev/null; then
  ncu --clock-control none --launch-count 40 -o profile/siamese -f "$bin" train --device cuda --out profile/run --epochs 1
  ncu --import profile/siamese.ncu-rep --print-summary per-kernel | head -60
else
  "$bin" train --device cuda --profile --out profile/run "${args[@]}"
fi
