#!/usr/bin/env bash
# Speed of the reference recipe, side by side with PyTorch at its best, on the same pairs.
#   usage: tools/bench.sh [BUILD_DIR] [ORL_DIR]
#   env:   EPOCHS=4 THREADS=2 ROUNDS=2 DEVICE=cpu TORCH_PYTHONS="python3 /usr/bin/python3"
# Every engine trains EPOCHS epochs; its figure is the median of epochs 2..EPOCHS (the first
# holds one-off costs: allocation, torch.compile). The engines run interleaved, ROUNDS times
# (ours, peer, peer..., ours, peer...), so that a noisy machine slows all alike; the table shows
# each round and the best round, and each peer's best over ours.
# Peers, each at its best where it is installed: Debian's PyTorch on OpenBLAS-OpenMP with glibc
# told to keep freed memory (without it every multi-MB tensor costs page faults on these VMs);
# a PyPI torch 2.x eager and torch.compile'd (mode reduce-overhead on CUDA).
# Last, ours against the arithmetic: the recipe's GFLOP per epoch (forward, input and weight
# gradients of every layer) over ours' time, and the machine's FMA peak (build/fma_peak).
set -u
build=${1:-build}
orl=${2:-${SIAMESE_ORL_DIR:-../shared/data/orl_faces}}
epochs=${EPOCHS:-4}
threads=${THREADS:-2}
rounds=${ROUNDS:-2}
device=${DEVICE:-cpu}
root=$(cd "$(dirname "$0")/.." && pwd)
case "${1:-}" in -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;; esac
[ -x "$build/siamese" ] || { echo "bench.sh: build first ($build/siamese missing)" >&2; exit 2; }
[ -d "$orl/s1" ] || { echo "bench.sh: ORL faces not found at $orl (give ORL_DIR or set SIAMESE_ORL_DIR)" >&2; exit 2; }
[ "$epochs" -ge 2 ] 2>/dev/null || { echo "bench.sh: EPOCHS must be >= 2 (the first epoch is not timed)" >&2; exit 2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

median_of_rest() {  # JSON list of epoch seconds -> median of all but the first
  python3 -c 'import json,statistics,sys; e=json.loads(sys.argv[1]); print(f"{statistics.median(e[1:]):.3f}")' "$1"
}

"$build/siamese" pairs --data "$orl" --seed 1 --out "$tmp/pairs.json" > /dev/null || exit 1

# Engines: label <TAB> kind <TAB> python <TAB> env (space-separated KEY=VALUE) <TAB> mode
engines="$tmp/engines.tsv"
printf 'siamese %s (--threads %s)\tours\t-\t-\t-\n' "$device" "$threads" > "$engines"
keep_freed="MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=17179869184 MALLOC_TOP_PAD_=536870912"
seen=""
for py in ${TORCH_PYTHONS:-python3 /usr/bin/python3}; do
  real=$(command -v "$py" 2>/dev/null) || continue
  real=$(readlink -f "$real")
  case " $seen " in *" $real "*) continue ;; esac
  seen="$seen $real"
  ver=$("$py" -c 'import torch; print(torch.__version__)' 2>/dev/null) || continue
  env_=$keep_freed
  label="pytorch $ver eager"
  if [ "$device" = cpu ] && [ "$real" = "$(readlink -f /usr/bin/python3)" ]; then  # Debian's torch
    if [ -d /usr/lib/x86_64-linux-gnu/openblas-openmp ]; then
      env_="$env_ LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-openmp"
      label="$label (Debian, OpenBLAS-OpenMP, freed memory kept)"
    else
      # Debian's reference BLAS is ~2x slower for this network (9.5 against 4.7 s/epoch, 2026-11-30).
      echo "bench.sh: Debian's PyTorch runs on the reference BLAS here, not at its best: apt-get install libopenblas0-openmp" >&2
      label="$label (reference BLAS: NOT the peer at its best)"
    fi
  fi
  printf '%s\tpeer\t%s\t%s\teager\n' "$label" "$py" "$env_" >> "$engines"
  if "$py" -c 'import torch, sys; sys.exit(0 if hasattr(torch, "compile") else 1)' 2>/dev/null; then
    printf '%s\tpeer\t%s\t%s\tcompile\n' "pytorch $ver torch.compile" "$py" "$env_" >> "$engines"
  fi
done

run_engine() {  # kind python env mode -> prints the median s/epoch, or "failed"
  local kind=$1 py=$2 env_=$3 mode=$4 secs
  if [ "$kind" = ours ]; then
    rm -rf "$tmp/run"
    "$build/siamese" train --data "$orl" --seed 1 --epochs "$epochs" --device "$device" --threads "$threads" --quiet \
      --out "$tmp/run" > "$tmp/ours.log" 2>&1 || { echo failed; return; }
    median_of_rest "$(python3 -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1]))["epoch_seconds"]))' "$tmp/run/summary.json")"
  else
    # shellcheck disable=SC2086
    env $env_ OMP_NUM_THREADS="$threads" "$py" "$root/tools/pytorch_twin.py" --data "$orl" --pairs "$tmp/pairs.json" \
      --epochs "$epochs" --threads "$threads" --device "$device" --mode "$mode" > "$tmp/peer.log" 2>&1 || { echo failed; return; }
    secs=$(python3 -c 'import json,sys; l=[x for x in open(sys.argv[1]) if x.startswith("RESULT ")][-1]; print(json.dumps(json.loads(l[7:])["epoch_seconds"]))' "$tmp/peer.log") ||
      { echo failed; return; }
    median_of_rest "$secs"
  fi
}

results="$tmp/results.tsv"
: > "$results"
for r in $(seq 1 "$rounds"); do
  i=0
  while IFS=$'\t' read -r label kind py env_ mode; do
    printf 'round %s: %s ...\n' "$r" "$label" >&2
    printf '%s\t%s\t%s\n' "$i" "$r" "$(run_engine "$kind" "$py" "$env_" "$mode")" >> "$results"
    i=$((i + 1))
  done < "$engines"
done

peak=""
[ "$device" = cpu ] && [ -x "$build/fma_peak" ] && peak=$("$build/fma_peak" "$threads" 2>/dev/null)
train_pairs=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["train_pairs"])' "$tmp/run/summary.json" 2>/dev/null || echo 0)
echo "machine: $(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1), $(nproc) CPUs; $(date -u +%F)"
python3 - "$engines" "$results" "$rounds" "$device" "$threads" "$epochs" "${peak:-0}" "$train_pairs" <<'EOF'
import sys
engines = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
rounds = int(sys.argv[3])
res = {}
for line in open(sys.argv[2]):
    i, r, v = line.split()
    res.setdefault(int(i), {})[int(r)] = None if v == "failed" else float(v)
def best(i):
    vals = [v for v in res.get(i, {}).values() if v is not None]
    return min(vals) if vals else None
ours = best(0)
cols = " | ".join(f"round {r}" for r in range(1, rounds + 1))
print(f"s / epoch, ORL reference recipe, {sys.argv[4]}, {sys.argv[5]} threads, median of epochs 2-{sys.argv[6]}\n")
print(f"| engine | {cols} | best | best over ours |")
print("|---|" + "---|" * rounds + "---|---|")
for i, e in enumerate(engines):
    rs = " | ".join("failed" if res.get(i, {}).get(r) is None else f"{res[i][r]:.3f}" for r in range(1, rounds + 1))
    b = best(i)
    ratio = f"{b / ours:.2f}" if b is not None and ours else "-"
    name = f"**{e[0]}**" if e[1] == "ours" else e[0]
    print(f"| {name} | {rs} | {'failed' if b is None else f'{b:.3f}'} | {ratio} |")
peers = [best(i) for i in range(1, len(engines)) if best(i) is not None]
if ours and peers:
    print(f"\nthe strongest peer over ours: {min(peers) / ours:.2f}x")
# The arithmetic: multiply-adds per image of the reference recipe's layers (conv: F*C*K*K*Ho*Wo,
# dense: I*O), forward + weight gradient for every layer + input gradient for all but the first.
conv = [(1, 56, 46, 6, 3), (6, 27, 22, 12, 3)]
dense = [(1440, 128), (128, 50)]
fwd = [F * C * K * K * (H - K + 1) * (W - K + 1) for C, H, W, F, K in conv] + [i * o for i, o in dense]
macs = 3 * sum(fwd) - fwd[0]
pairs, peak = int(sys.argv[8]), float(sys.argv[7])
if ours and pairs:
    gflop = 2 * macs * 2 * pairs / 1e9
    line = (f"ours: {gflop:.1f} GFLOP per epoch ({2 * pairs} images x {2 * macs / 1e6:.2f} MFLOP) in {ours:.3f} s"
            f" = {gflop / ours:.1f} GFLOP/s")
    if peak > 0:
        line += (f"; FMA peak of {sys.argv[5]} threads (build/fma_peak) {peak:.1f} GFLOP/s: {100 * gflop / ours / peak:.0f}%"
                 f" of peak, floor {gflop / peak:.3f} s/epoch")
    print(line)
EOF
