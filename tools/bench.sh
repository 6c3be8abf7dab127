#!/usr/bin/env bash
# Speed of the reference recipe, side by side with PyTorch at its best, on the same pairs.
# Prints seconds per 11,250-pair epoch (median of epochs 2..N) and each peer's time over ours.
#   usage: tools/bench.sh [BUILD_DIR] [ORL_DIR]     (EPOCHS=4, THREADS=2, DEVICE=cpu by default)
# Peers tried: every python with torch among $TORCH_PYTHONS (default: python3, /usr/bin/python3);
# Debian's torch runs both on its default BLAS and on OpenBLAS-OpenMP (its fastest).
set -u
build=${1:-build}
orl=${2:-${SIAMESE_ORL_DIR:-../shared/data/orl_faces}}
epochs=${EPOCHS:-4}
threads=${THREADS:-2}
device=${DEVICE:-cpu}
root=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
[ -x "$build/siamese" ] || { echo "bench.sh: build first ($build/siamese missing)" >&2; exit 2; }
[ -d "$orl/s1" ] || { echo "bench.sh: ORL faces not found at $orl" >&2; exit 2; }

median_of_rest() { python3 -c 'import json,statistics,sys; e=json.loads(sys.argv[1]); print(f"{statistics.median(e[1:] if len(e)>1 else e):.3f}")' "$1"; }

"$build/siamese" pairs --data "$orl" --seed 1 --out "$tmp/pairs.json" > /dev/null
"$build/siamese" train --data "$orl" --seed 1 --epochs "$epochs" --device "$device" --threads "$threads" --out "$tmp/run" > "$tmp/ours.log" 2>&1 \
  || { cat "$tmp/ours.log"; exit 1; }
ours=$(median_of_rest "$(python3 -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1]))["epoch_seconds"]))' "$tmp/run/summary.json")")
printf '%-58s %10s %8s\n' "engine ($device, $threads threads, ORL, $epochs epochs)" "s/epoch" "vs ours"
printf '%-58s %10s %8s\n' "siamese $device" "$ours" "1.00"

peer() {  # label, python, extra env
  local label=$1 py=$2; shift 2
  env "$@" OMP_NUM_THREADS="$threads" "$py" "$root/tools/pytorch_twin.py" --data "$orl" --pairs "$tmp/pairs.json" \
    --epochs "$epochs" --threads "$threads" --device "$device" > "$tmp/peer.log" 2>&1 || { printf '%-58s %10s\n' "$label" "failed"; return; }
  local secs
  secs=$(median_of_rest "$(python3 -c 'import json,sys; l=[x for x in open(sys.argv[1]) if x.startswith("RESULT ")][-1]; print(json.dumps(json.loads(l[7:])["epoch_seconds"]))' "$tmp/peer.log")")
  printf '%-58s %10s %8s\n' "$label" "$secs" "$(python3 -c "print(f'{$secs/$ours:.2f}')")"
}
for py in ${TORCH_PYTHONS:-python3 /usr/bin/python3 /tmp/torchvenv/bin/python}; do
  command -v "$py" >/dev/null || [ -x "$py" ] || continue
  ver=$("$py" -c 'import torch; print(torch.__version__)' 2>/dev/null) || continue
  peer "pytorch $ver ($py)" "$py"
  if [ "$device" = cpu ] && [ -d /usr/lib/x86_64-linux-gnu/openblas-openmp ] && [ "$py" = /usr/bin/python3 ]; then
    peer "pytorch $ver ($py, OpenBLAS-OpenMP)" "$py" LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-openmp
  fi
done
