#!/usr/bin/env bash
# scripts/fuzz.sh [seconds]
#   Builds the fuzz targets (libFuzzer; `make fuzz') and runs each of them
#   for that many seconds (default 60), one after the other, from its seed
#   corpus (test/fuzz/corpus/TARGET).  New inputs that reach new code go to
#   build/fuzz/work/TARGET, crashes to build/fuzz/artifacts/.  Exits 1 if a
#   target crashed: fix the code, then add the input to the target's corpus
#   under a name that says what it found, so the core suite replays it.
#
# Copyright (c) 2026, kommander developers

set -uo pipefail
cd "$(dirname "$0")/.."
secs="${1:-60}"
case "$secs" in ''|*[!0-9]*) echo "usage: scripts/fuzz.sh [seconds]" >&2; exit 2;; esac
make -s WERROR=1 fuzz || exit 1
mkdir -p build/fuzz/artifacts
crashed=0
for t in batch command; do
  mkdir -p "build/fuzz/work/$t"
  log="build/fuzz/$t.log"
  build/fuzz/fuzz_"$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="build/fuzz/artifacts/$t-" \
    "build/fuzz/work/$t" "test/fuzz/corpus/$t" >"$log" 2>&1
  rc=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
  if [ $rc -eq 0 ]; then
    echo "fuzz_$t: ${runs:-?} runs in $secs s, $cov, nothing found"
  else
    crashed=1
    echo "fuzz_$t: FOUND after ${runs:-?} runs (exit $rc), see $log:"
    grep -E -m3 'ERROR|runtime error|Test unit written' "$log"
  fi
done
exit $crashed
