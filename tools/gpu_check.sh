#!/usr/bin/env bash
# The one GPU check (issues 8 and 10). In order of what matters most if time runs out: record the
# environment; build for sm_90; the whole test suite with every [cuda] test; the reference recipe
# trained on the GPU (every engine kind) and on the CPU, compared; the static plan and the host's
# cost per epoch; the strong recipe on both engines (30 epochs, unseen people), compared; PyTorch
# on the GPU on the same pairs (eager); ncu kernel by kernel over one fused step (custom and tiled
# conv) against the plan's floors; PyTorch with torch.compile(mode="reduce-overhead") (CUDA
# graphs); compute-sanitizer memcheck on 2-epoch GPU trainings and racecheck on the kernels with
# shared memory; throughput at 8192 pairs a step; --profile's per-phase table and ncu over the
# unfused steps; memcheck on every [cuda] test. Without a GPU it runs the CPU parts and says why
# each GPU part was skipped.
#
# usage: tools/gpu_check.sh RESULTS_DIR [ORL_DIR]    (env: EPOCHS=13, BUDGET=470 seconds, QUICK=0)
#
# QUICK=1: the rerun after a fix, in about a third of the time: the build, the [cuda] tests only
# (ctest -L cuda), and the reference recipe trained on the GPU (default, --fused, --conv tiled
# --fused), the fused runs compared with the default one; nothing else.
#
# Every stage runs under `timeout`, capped by what is left of BUDGET, so the script ends in time
# whatever hangs. RESULTS_DIR gets exactly four files: table.txt (printed last, also on failure),
# env.txt, results.json (every figure), logs.tar.gz (every log and run folder).
#
# On the lent GPU machine (no Debian packages, no network; nvcc, CMake and PyTorch present,
# cuDNN only as the pip wheel nvidia-cudnn-cu13):
#   here:    tools/pack_gpu_deps.sh && rm -rf .orl && cp -r ../shared/data/orl_faces .orl
#   device:  run(command="bash tools/gpu_check.sh $OUT .orl", carry=[".deps", ".orl"], timeout_s=540)
set -u
out=${1:?usage: tools/gpu_check.sh RESULTS_DIR [ORL_DIR]}
orl=${2:-${SIAMESE_ORL_DIR:-../shared/data/orl_faces}}
epochs=${EPOCHS:-13}
budget=${BUDGET:-470}
quick=${QUICK:-0}
root=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$out"
out=$(cd "$out" && pwd)
[ -d "$orl" ] && orl=$(cd "$orl" && pwd)
cd "$root"
export PATH=/usr/local/cuda/bin:$PATH
export SIAMESE_ORL_DIR=$orl
logs=$(mktemp -d)/gpu_check
mkdir -p "$logs"
table="$out/table.txt"
: > "$table"
stages="$logs/stages.tsv"
: > "$stages"
[ "$quick" = 1 ] && : > "$logs/quick"  # the report says "not run: QUICK=1" for the rest
t0=$SECONDS
jobs=$(nproc)

row() { printf '%-30s %s\n' "$1" "$2" >> "$table"; }
left() { echo $(( budget - (SECONDS - t0) )); }

# stage NAME LIMIT CMD... : runs CMD under timeout min(LIMIT, time left - 20 s), output in
# $logs/NAME.log; records name, status and seconds. Status 124 = timed out; "skipped" when no
# time is left.
stage() {
  local name=$1 limit=$2; shift 2
  local avail=$(( $(left) - 20 ))
  [ "$avail" -lt "$limit" ] && limit=$avail
  if [ "$limit" -lt 10 ]; then
    printf '%s\tskipped\t0\n' "$name" >> "$stages"
    echo "SKIPPED: no time left in the ${budget}s budget" > "$logs/$name.log"
    return 99
  fi
  local s=$SECONDS
  timeout -k 5 "$limit" "$@" > "$logs/$name.log" 2>&1
  local rc=$?
  printf '%s\t%s\t%s\n' "$name" "$rc" "$(( SECONDS - s ))" >> "$stages"
  return $rc
}
status_word() {  # rc -> word
  case $1 in 0) echo ok ;; 99) echo "SKIPPED (time budget spent)" ;; 124|137) echo "TIMED OUT" ;; *) echo "FAILED (rc $1)" ;; esac
}

finish() {
  # Everything but the four result files goes into logs.tar.gz.
  python3 "$root/tools/gpu_check_report.py" "$logs" "$out/results.json" "$table" "$epochs" >> "$table" 2>> "$logs/report.err" ||
    row "report" "FAILED (see report.err in logs.tar.gz)"
  row "wall time" "$(( SECONDS - t0 )) s of a ${budget} s budget"
  tar -czf "$out/logs.tar.gz" -C "$(dirname "$logs")" gpu_check 2>/dev/null
  echo
  echo "== gpu_check (files in $out: $(ls "$out" | tr '\n' ' ')) =="
  cat "$table"
}
trap finish EXIT

# 0. the environment
have_gpu=0
{
  echo "date: $(date -u +%FT%TZ)"
  echo "host: $(uname -a)"
  echo "cpus: $jobs; memory: $(free -g 2>/dev/null | awk '/Mem:/ {print $2 " GiB"}')"
  echo "--- nvidia-smi"
  if command -v nvidia-smi >/dev/null 2>&1 && timeout 30 nvidia-smi; then have_gpu=1; else echo "no nvidia-smi or no GPU"; fi
  echo "--- nvcc"; timeout 20 nvcc --version 2>&1 || echo "no nvcc"
  echo "--- cmake"; cmake --version 2>&1 | head -1; command -v ninja >/dev/null && echo "ninja $(ninja --version)"
  echo "--- cuBLAS"; ls /usr/local/cuda/lib64/libcublas.so* /usr/local/cuda/lib/libcublas.so* 2>/dev/null | head -3
  echo "--- cuDNN"
  ls /usr/local/cuda/lib64/libcudnn.so* /usr/local/cuda/lib/libcudnn.so* 2>/dev/null | head -2
  # nvidia.cudnn is a namespace package in recent wheels: __file__ is None, __path__ is not.
  timeout 30 python3 -c "import nvidia.cudnn as m, os; d=list(m.__path__)[0]; print('wheel:', d); print(sorted(os.listdir(os.path.join(d, 'lib'))))" 2>&1 | head -3
  echo "--- python / torch"
  # (and the L2's bytes, on a line of their own, for the half-bank row below)
  timeout 60 python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'available', torch.cuda.is_available(), 'cudnn', torch.backends.cudnn.version()); torch.cuda.is_available() and print('L2_cache_size', getattr(torch.cuda.get_device_properties(0), 'L2_cache_size', ''))" 2>&1 | tail -2
  echo "--- tools"
  command -v compute-sanitizer >/dev/null && compute-sanitizer --version 2>&1 | head -2 || echo "compute-sanitizer: not found"
  command -v ncu >/dev/null && ncu --version 2>&1 | tail -1 || echo "ncu: not found"
  command -v nsys >/dev/null && nsys --version 2>&1 | tail -1 || echo "nsys: not found"
  echo "--- data: $orl"; ls "$orl" 2>/dev/null | head -3
} > "$out/env.txt" 2>&1
gpu_name=$( [ $have_gpu = 1 ] && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -1)
row "gpu" "${gpu_name:-none: GPU parts SKIPPED}"
# The peaks the plan's floors are set at: this GPU's (an H100's memory is 3.35 TB/s, an H200's
# 4.8); an H200's where the GPU is neither, or absent. And its L2, which the half-bank row sizes
# its bank by (read off the device: KINDS.md saw 50 MB on an H100 and 60 MB on an H200).
case "$gpu_name" in *H100*) gpu_kind=h100 ;; *) gpu_kind=h200 ;; esac
l2_bytes=$(awk '/^L2_cache_size / {print $2}' "$out/env.txt")
case "$l2_bytes" in ''|*[!0-9]*) l2_bytes=$(( $( [ $gpu_kind = h100 ] && echo 50 || echo 60 ) * 1048576 )) ;; esac
row "plan peaks" "--gpu $gpu_kind$( [ $have_gpu = 1 ] || echo ' (no GPU: an H200'"'"'s)'); L2 $(( l2_bytes / 1048576 )) MiB"
echo "$gpu_kind" > "$logs/gpu_kind.txt"
data_args=(--data "$orl")
if [ ! -d "$orl/s1" ]; then
  data_args=()
  row "data" "ORL not found at $orl: built-in synthetic faces instead"
fi

# 1. build: SASS for sm_90 and PTX; the header-only dependencies from .deps when carried;
#    CMAKE_POLICY_VERSION_MINIMUM lets CMake 4 (pip) read Debian's older package files; no CPU
#    emulation of the CUDA code (its tests are for machines without a GPU).
gen=(); command -v ninja >/dev/null && gen=(-G Ninja)
prefix=(); [ -d .deps ] && prefix=("-DCMAKE_PREFIX_PATH=$root/.deps")
stage configure 120 cmake -S . -B build-gpu "${gen[@]}" -DCMAKE_BUILD_TYPE=Release \
  "-DCMAKE_CUDA_ARCHITECTURES=90-real;90-virtual" -DCMAKE_POLICY_VERSION_MINIMUM=3.5 -DSIAMESE_CUDA_EMULATION=OFF "${prefix[@]}" \
  "-DPython3_EXECUTABLE=$(command -v python3)"  # the python whose site-packages hold the cuDNN wheel
build_rc=$?
[ $build_rc = 0 ] && { stage build 300 cmake --build build-gpu -j"$jobs"; build_rc=$?; }
row "build (sm_90)" "$(status_word $build_rc)"
[ $build_rc = 0 ] || exit 1
grep -E "siamese: (CUDA|cuDNN)" "$logs/configure.log" | sed 's/^-- //' >> "$out/env.txt"
bin=build-gpu/siamese
[ -x build-gpu/tests/siamese_cuda_tests ] && build-gpu/tests/siamese_cuda_tests --list-test-names-only > "$logs/cuda_test_names.txt" 2>&1
# cuDNN from the wheel loads its sub-libraries by name: put its folder on the loader's path.
wheel_lib=$(python3 -c "import nvidia.cudnn as m, os; print(os.path.join(list(m.__path__)[0], 'lib'))" 2>/dev/null)
[ -n "$wheel_lib" ] && export LD_LIBRARY_PATH="$wheel_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

# 2. the whole suite, [cuda] included (120 s per test at most)
# Two OpenMP threads a test: 8 tests at once with one thread per core each oversubscribed 16
# cores and timed out three CPU tests at 120 s (2026-11-29).
only=(); [ "$quick" = 1 ] && only=(-L cuda)
# -V: every test's output in the log, passed ones too, for the records some [cuda] tests print.
OMP_NUM_THREADS=2 stage ctest 200 ctest --test-dir build-gpu -j"$(( jobs < 8 ? jobs : 8 ))" --timeout 120 -V "${only[@]}"
row "ctest" "$(grep -E 'tests passed' "$logs/ctest.log" | tail -1 || echo 'no summary')"
# Records printed by [cuda] tests: cuBLAS's TF32 against the CPU's emulations, and the captured
# step's kernel nodes against the plan (library calls included).
printed() { [ -n "$1" ] && echo "$1" || echo "not printed (the test was skipped or failed)"; }
row "tf32 vs cpu emulation" "$(printed "$(grep -oE 'tf32: first gradient.*' "$logs/ctest.log" | head -1)")"
row "captured kernel nodes" "$(printed "$(grep -oE '[a-z+]+: [0-9]+ kernel nodes in the captured step, plan [0-9]+ launches \([0-9]+ library calls\)' "$logs/ctest.log" | sed 's/ in the captured step, plan/ vs plan/; s/ launches//' | tr '\n' ';')")"

# 3. the reference recipe: GPU custom, GPU cuDNN, GPU tiled, CPU (same seed, same pairs)
train() {  # name limit args...
  local name=$1 limit=$2; shift 2
  stage "train_$name" "$limit" "$bin" train "${data_args[@]}" --epochs "$epochs" --seed 1 --out "$logs/run_$name" "$@"
}
if [ "$quick" = 1 ]; then
  if [ $have_gpu = 1 ]; then
    train cuda 90 --device cuda
    train cuda_fused 90 --device cuda --fused
    train cuda_tiled_fused 90 --device cuda --conv tiled --fused
    train cuda_tiled_fused_gemm 90 --device cuda --conv tiled --fused --gemm custom
  fi
  exit 0  # the report (finish) compares what ran
fi
if [ $have_gpu = 1 ]; then
  train cuda 90 --device cuda
  train cuda_cudnn 90 --device cuda --conv cudnn
  train cuda_tiled 90 --device cuda --conv tiled
  train cuda_fused 90 --device cuda --fused
  train cuda_tiled_fused 90 --device cuda --conv tiled --fused
  train cuda_tf32 90 --device cuda --tf32
  train cuda_tiled_fused_two 90 --device cuda --conv tiled --fused --side-stream  # the same bits on two streams: its time
  train cuda_tiled_fused_half 90 --device cuda --conv tiled --fused --half-bank    # the FP16 bank: its AUC and time
  train cuda_tiled_fused_gemm 90 --device cuda --conv tiled --fused --gemm custom  # the dense products our own: time
else
  for s in cuda cuda_cudnn cuda_tiled cuda_fused cuda_tiled_fused cuda_tf32 cuda_tiled_fused_two cuda_tiled_fused_half \
           cuda_tiled_fused_gemm; do
    echo "SKIPPED: no GPU" > "$logs/train_$s.log"
  done
fi
# The static plan of the step (no GPU needed), fused and not: what the ncu rows are set against.
"$bin" plan --gpu $gpu_kind > "$logs/plan.txt" 2>&1; "$bin" plan --gpu $gpu_kind --fused >> "$logs/plan.txt" 2>&1
"$bin" plan --gpu $gpu_kind --fused --conv tiled >> "$logs/plan.txt" 2>&1
"$bin" plan --gpu $gpu_kind --fused --conv tiled --gemm custom >> "$logs/plan.txt" 2>&1
# The trainer's own cost per epoch on this machine's CPU (an engine that takes no time).
stage host_overhead 60 build-gpu/host_overhead 200
train cpu 150 --device cpu
train cpu_tf32 90 --device cpu --tf32  # the CPU's TF32 emulation, to set beside cuBLAS's TF32
# The strong recipe (P-K batches, augmentation, L2 head) on unseen people, 30 epochs, both engines.
strong() {  # name limit args...
  local name=$1 limit=$2; shift 2
  stage "train_$name" "$limit" "$bin" train "${data_args[@]}" --recipe strong --protocol people --train-people 1-30 \
    --test-people 31-40 --epochs 30 --seed 1 --out "$logs/run_$name" "$@"
}
if [ $have_gpu = 1 ]; then strong strong_cuda 60 --device cuda; else echo "SKIPPED: no GPU" > "$logs/train_strong_cuda.log"; fi
strong strong_cpu 60 --device cpu

# 4. PyTorch on the same pairs, eager (compiled at the end: it is the slowest)
py=python3; timeout 60 python3 -c 'import torch' 2>/dev/null || py=/usr/bin/python3  # Debian's, on a CPU machine
torch_dev=cpu; [ $have_gpu = 1 ] && torch_dev=cuda
pytorch() {  # mode limit
  stage "pytorch_$1" "$2" $py tools/pytorch_twin.py "${data_args[@]}" --pairs "$logs/pairs.json" --epochs "$epochs" \
    --device $torch_dev --mode "$1"
}
have_torch=0
if [ ${#data_args[@]} -gt 0 ] && timeout 60 $py -c 'import torch, numpy' 2>/dev/null; then
  have_torch=1
  "$bin" pairs "${data_args[@]}" --seed 1 --out "$logs/pairs.json" > "$logs/pairs.log" 2>&1
  pytorch eager 90
else
  echo "SKIPPED: no python3 torch or no ORL data" > "$logs/pytorch_eager.log"
fi

# 5. kernel by kernel, first: the fused step (custom and tiled conv) under ncu, each launch set
#    against its floor in `siamese plan` (ncu's SpeedOfLight section: duration, SM and memory
#    throughput; eager launches; --clock-control none: the clocks as found, as the workplace's
#    method asks, not ncu's default lock at base). 30 launches: one whole step (10 launches +
#    cuBLAS split-K) wherever the window starts. The table is ncu_<name>.csv, summarised in table.txt.
have_ncu=0; [ $have_gpu = 1 ] && command -v ncu >/dev/null && have_ncu=1
ncu_run() {  # name skip count args...
  local name=$1 skip=$2 count=$3; shift 3
  if [ $have_ncu = 0 ]; then
    echo "SKIPPED: $( [ $have_gpu = 1 ] && echo 'ncu not found' || echo 'no GPU')" > "$logs/ncu_$name.log"
    return
  fi
  stage "ncu_$name" 90 ncu --clock-control none --launch-skip "$skip" --launch-count "$count" --section SpeedOfLight --csv \
    --log-file "$logs/ncu_$name.csv" "$bin" train "${data_args[@]}" --device cuda --no-graphs --quiet \
    --out "$logs/run_ncu_$name" "$@"
}
ncu_run fused 200 30 --epochs 1 --fused
ncu_run tiled_fused 200 30 --epochs 1 --fused --conv tiled
ncu_run tiled_fused_gemm 200 30 --epochs 1 --fused --conv tiled --gemm custom

# 6. PyTorch at its best: torch.compile (CUDA graphs on the GPU), the peer the 5 ms epoch is set against
if [ $have_torch = 1 ]; then
  pytorch compile 150
else
  echo "SKIPPED: no python3 torch or no ORL data" > "$logs/pytorch_compile.log"
fi

# 7. compute-sanitizer: memcheck on 2-epoch GPU trainings (the fused, tiled step first: the
#    newest kernels), racecheck on the kernels with shared memory (the loss reduction, Thrust's
#    sort in the AUC, the tail, the column sums, the conv pair forward), then memcheck on every [cuda] test.
sanitizer_ok=0
cs=(compute-sanitizer --error-exitcode 9 --print-limit 20)
if [ $have_gpu = 1 ] && command -v compute-sanitizer >/dev/null; then
  sanitizer_ok=1
  stage memcheck_train_fused 90 "${cs[@]}" --tool memcheck "$bin" train "${data_args[@]}" --epochs 2 --device cuda --quiet \
    --fused --conv tiled --gemm custom --out "$logs/run_memcheck_fused"
  stage memcheck_train 120 "${cs[@]}" --tool memcheck "$bin" train "${data_args[@]}" --epochs 2 --device cuda --quiet \
    --out "$logs/run_memcheck"
  stage racecheck 90 "${cs[@]}" --tool racecheck build-gpu/tests/siamese_cuda_tests "[loss],[eval],[strong],[tail],[colsum],[pair],[gemm]"
else
  for s in memcheck_train memcheck_train_fused memcheck_tests racecheck; do
    echo "SKIPPED: $( [ $have_gpu = 1 ] && echo 'compute-sanitizer not found' || echo 'no GPU')" > "$logs/$s.log"
  done
fi

# 8. throughput at 8192 pairs a step (2 steps an epoch: a speed figure, not an accuracy one),
#    ours (default and fused + tiled) and PyTorch eager on the same pairs.
if [ $have_gpu = 1 ]; then
  train cuda_b8192 60 --device cuda --batch 8192
  train cuda_b8192_fused 60 --device cuda --batch 8192 --fused --conv tiled
  [ $have_torch = 1 ] && stage pytorch_eager_b8192 60 $py tools/pytorch_twin.py "${data_args[@]}" --pairs "$logs/pairs.json" \
    --epochs "$epochs" --device $torch_dev --mode eager --batch 8192
else
  for s in train_cuda_b8192 train_cuda_b8192_fused pytorch_eager_b8192; do echo "SKIPPED: no GPU" > "$logs/$s.log"; done
fi

# 8b. --half-bank where a bank outgrows the L2: generated people of 10 photos each (the mission's
#     organisation: some 500 people and up), as many as make the FP32 bank 1.4x this GPU's L2 and
#     so the FP16 one 0.7x (56x46 pixels, 10,304 bytes a photo in FP32: 713 people for an H100's
#     50 MiB, 855 for an H200's 60 MiB); tiled fused, FP32 against FP16 (the plan's floor moves by
#     2%: it charges every byte at HBM speed, so only this run can show what the L2 does).
big_people=$(( (l2_bytes * 14 / 10 + 103039) / 103040 ))
echo "$big_people people x 10 photos: FP32 bank $(( big_people * 103040 / 1048576 )) MiB, L2 $(( l2_bytes / 1048576 )) MiB" > "$logs/big_bank.txt"
if [ $have_gpu = 1 ]; then
  stage synth_big 60 "$bin" synth --out "$logs/faces_big" --people "$big_people" --images 10
  for v in fp32 half; do
    flag=(); [ $v = half ] && flag=(--half-bank)
    stage "train_big_$v" 60 "$bin" train --data "$logs/faces_big" --epochs 3 --seed 1 --device cuda --conv tiled --fused \
      --quiet --out "$logs/run_big_$v" "${flag[@]}"
  done
  rm -rf "$logs/faces_big"  # thousands of images: not for the logs archive
else
  for s in train_big_fp32 train_big_half; do echo "SKIPPED: no GPU" > "$logs/$s.log"; done
fi

# 9. per-phase timings (CUDA events recorded inside the replayed graphs: epoch 1 the separate
#    calls, then the epoch graph) of the fused, tiled step; the unfused steps under ncu
if [ $have_gpu = 1 ]; then
  stage profile 60 "$bin" train "${data_args[@]}" --epochs 3 --device cuda --profile --fused --conv tiled --quiet \
    --out "$logs/run_profile"
else
  echo "SKIPPED: no GPU" > "$logs/profile.log"
fi
ncu_run reference 200 30 --epochs 1
ncu_run tiled 200 30 --epochs 1 --conv tiled
ncu_run strong 120 40 --recipe strong --protocol people --train-people 1-30 --test-people 31-40 --epochs 2
# Shared memory and occupancy of the tiled fused step's kernels (the next tuning's first question:
# bank conflicts in the tiles, registers, warps resident), in their own pass after the others so
# that a metric this ncu lacks costs this row alone.
if [ $have_ncu = 1 ]; then
  stage ncu_smem 60 ncu --clock-control none --launch-skip 200 --launch-count 30 --csv --log-file "$logs/ncu_smem.csv" \
    --metrics l1tex__data_bank_conflicts_pipe_lsu_mem_shared_op_ld.sum,l1tex__data_pipe_lsu_wavefronts_mem_shared_op_ld.sum,\
l1tex__data_bank_conflicts_pipe_lsu_mem_shared_op_st.sum,l1tex__data_pipe_lsu_wavefronts_mem_shared_op_st.sum,\
sm__warps_active.avg.pct_of_peak_sustained_active,launch__registers_per_thread \
    "$bin" train "${data_args[@]}" --device cuda --no-graphs --quiet --out "$logs/run_ncu_smem" --epochs 1 --fused --conv tiled
else
  echo "SKIPPED: $( [ $have_gpu = 1 ] && echo 'ncu not found' || echo 'no GPU')" > "$logs/ncu_smem.log"
fi

# 10. last, the longest: memcheck on every [cuda] test but the whole-engine [training] ones (six
#     engine kinds each: too slow under memcheck; the trainings above cover the engine).
[ $sanitizer_ok = 1 ] && stage memcheck_tests 200 "${cs[@]}" --tool memcheck build-gpu/tests/siamese_cuda_tests "[cuda]~[training]"
exit 0  # the table says what failed; a non-zero status is kept for a build that failed
