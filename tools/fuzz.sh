#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan + UBSan) and runs each for SECONDS (default 60),
# starting from the committed seed corpora. Fails on any crash; the reproducer is left in
# build-fuzz/artifacts/ (turn it into a regression test in tests/).  usage: tools/fuzz.sh [SECONDS]
set -eu
secs=${1:-60}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
cmake -S . -B build-fuzz -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_C_COMPILER=clang -DSIAMESE_FUZZ=ON \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo > build-fuzz.log 2>&1 || { cat build-fuzz.log; exit 1; }
cmake --build build-fuzz -j2 >> build-fuzz.log 2>&1 || { cat build-fuzz.log; exit 1; }
mkdir -p build-fuzz/artifacts
for t in pgm checkpoint gallery train_state png jpeg pair_list; do
  work=build-fuzz/corpus_$t
  mkdir -p "$work"
  cp -n fuzz/corpus/$t/* "$work"/ 2>/dev/null || true
  echo "fuzz_$t: ${secs}s"
  build-fuzz/fuzz/fuzz_$t "$work" -max_total_time="$secs" -max_len=8192 -rss_limit_mb=2048 -timeout=10 \
    -artifact_prefix=build-fuzz/artifacts/$t- -print_final_stats=1 2> build-fuzz/fuzz_$t.log || {
      tail -40 build-fuzz/fuzz_$t.log; echo "fuzz_$t: CRASH (artifact in build-fuzz/artifacts)"; exit 1; }
  grep -E "stat::number_of_executed_units|stat::peak_rss_mb" build-fuzz/fuzz_$t.log | tr '\n' ' '
  echo " corpus files: $(ls "$work" | wc -l)"
done
