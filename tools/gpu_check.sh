#!/usr/bin/env bash
# The one GPU check (issue 3): configure and build for sm_90, run the whole test suite with the
# [cuda] tests, compute-sanitizer memcheck and racecheck on the [cuda] kernel tests, train the
# reference recipe on the GPU (custom and cuDNN convolutions) and on the CPU, run the PyTorch
# twin on the GPU on the same pairs, and print a short table last. Full logs go to RESULTS_DIR.
# Without a GPU it runs the CPU parts and says what it skipped. Budget: under 8 minutes.
#
# usage: tools/gpu_check.sh RESULTS_DIR [ORL_DIR]      (EPOCHS=13 by default)
# On the lent GPU machine (no Debian packages, no network): first, here, tools/pack_gpu_deps.sh
# and `cp -r ../shared/data/orl_faces .orl`; then run `tools/gpu_check.sh $OUT .orl` there with
# carry [".deps", ".orl"]. .deps/ is used as CMAKE_PREFIX_PATH when present.
set -u
out=${1:?usage: tools/gpu_check.sh RESULTS_DIR [ORL_DIR]}
orl=${2:-${SIAMESE_ORL_DIR:-../shared/data/orl_faces}}
epochs=${EPOCHS:-13}
root=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$out"
out=$(cd "$out" && pwd)
cd "$root"
export PATH=/usr/local/cuda/bin:$PATH
jobs=$(nproc)
table="$out/table.txt"
: > "$table"
row() { printf '%-34s %s\n' "$1" "$2" | tee -a "$table" >/dev/null; }
t0=$(date +%s)

have_gpu=0
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L > "$out/gpu.txt" 2>&1; then have_gpu=1; fi
row "gpu" "$( [ $have_gpu = 1 ] && head -1 "$out/gpu.txt" || echo 'none: GPU parts SKIPPED')"

data_args=(--data "$orl")
if [ ! -d "$orl/s1" ]; then
  data_args=()
  row "data" "ORL not found at $orl: built-in synthetic faces instead"
else
  row "data" "$orl"
fi

# 1. build for sm_90 (SASS) + PTX
arch=90
prefix=(); [ -d .deps ] && prefix=("-DCMAKE_PREFIX_PATH=$root/.deps")
cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release "-DCMAKE_CUDA_ARCHITECTURES=${arch}-real;${arch}-virtual" "${prefix[@]}" \
  > "$out/configure.log" 2>&1 && cmake --build build-gpu -j"$jobs" > "$out/build.log" 2>&1
build_rc=$?
row "build (sm_$arch)" "$( [ $build_rc = 0 ] && echo ok || echo "FAILED (see build.log)")"
[ $build_rc = 0 ] || { cat "$table"; exit 1; }
bin=build-gpu/siamese

# 2. the whole test suite, [cuda] included
ctest --test-dir build-gpu -j"$jobs" --output-on-failure > "$out/ctest.log" 2>&1
row "ctest" "$(grep -E 'tests passed' "$out/ctest.log" | tail -1)"
row "ctest skipped" "$(grep -c '(Skipped)' "$out/ctest.log")"

# 3. compute-sanitizer on the kernel tests
if [ $have_gpu = 1 ] && command -v compute-sanitizer >/dev/null; then
  # memcheck on every kernel test; racecheck where shared memory is used (the loss reduction).
  for tool in memcheck racecheck; do
    filter="[cuda]~[training]"; [ $tool = racecheck ] && filter="[loss]"
    timeout 150 compute-sanitizer --tool $tool --error-exitcode 9 build-gpu/tests/siamese_cuda_tests "$filter" \
      > "$out/sanitizer_$tool.log" 2>&1
    rc=$?
    row "compute-sanitizer $tool" "$( [ $rc = 0 ] && echo clean || echo "rc=$rc: $(grep -m1 -E 'ERROR|error' "$out/sanitizer_$tool.log")")"
  done
else
  row "compute-sanitizer" "SKIPPED (no GPU or no compute-sanitizer)"
fi

# 4. the reference recipe: GPU custom, GPU cuDNN, CPU; 5. PyTorch on the GPU, same pairs
train() {  # name, extra args...
  local name=$1; shift
  timeout 300 "$bin" train "${data_args[@]}" --epochs "$epochs" --seed 1 --out "$out/run_$name" "$@" > "$out/train_$name.log" 2>&1
  python3 - "$out/run_$name/summary.json" "$name" <<'PY' >> "$table" || echo "train $name: FAILED (see train_$name.log)" >> "$table"
import json, sys, statistics
s = json.load(open(sys.argv[1])); t = s["test"]; e = s["epoch_seconds"]
steady = statistics.median(e[1:]) if len(e) > 1 else e[0]
print(f"{'train ' + sys.argv[2]:<34} {steady:7.3f} s/epoch (median of 2..)  acc {t['accuracy']:.4f}  acc@thr {t['accuracy_at_threshold']:.4f}  auc {t['auc']:.4f}")
PY
}
if [ $have_gpu = 1 ]; then
  train cuda --device cuda
  train cuda_cudnn --device cuda --conv cudnn
  timeout 120 "$bin" train "${data_args[@]}" --epochs 1 --device cuda --profile --no-graphs --out "$out/run_profile" > "$out/profile.log" 2>&1
  row "profile (1 epoch, no graphs)" "see profile.log"
else
  row "train cuda" "SKIPPED (no GPU)"
fi
train cpu --device cpu
if [ ${#data_args[@]} -gt 0 ]; then
  "$bin" pairs "${data_args[@]}" --seed 1 --out "$out/pairs.json" > /dev/null
  py=python3; python3 -c 'import torch' 2>/dev/null || py=/usr/bin/python3
  dev=cpu; [ $have_gpu = 1 ] && dev=cuda
  timeout 300 $py tools/pytorch_twin.py "${data_args[@]}" --pairs "$out/pairs.json" --epochs "$epochs" --device $dev \
    > "$out/pytorch_$dev.log" 2>&1
  python3 - "$out/pytorch_$dev.log" "$dev" <<'PY' >> "$table" || echo "pytorch $dev: FAILED (see pytorch_$dev.log)" >> "$table"
import json, sys, statistics
line = [l for l in open(sys.argv[1]) if l.startswith("RESULT ")][-1]
r = json.loads(line[7:]); e = r["epoch_seconds"]
steady = statistics.median(e[1:]) if len(e) > 1 else e[0]
print(f"{'pytorch ' + sys.argv[2] + ' ' + r['torch']:<34} {steady:7.3f} s/epoch (median of 2..)  acc {r['accuracy']:.4f}  acc@thr {r['accuracy_at_threshold']:.4f}  auc {r['auc']:.4f}")
PY
fi
row "wall time" "$(( $(date +%s) - t0 )) s"
echo
echo "== gpu_check summary (logs in $out) =="
cat "$table"
