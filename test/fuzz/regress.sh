#!/usr/bin/env bash
# test/fuzz/regress.sh
#   The fuzz targets over their corpus, once each input (test/fuzz/corpus/
#   TARGET: the generated seeds and every input a fuzzer found), so that
#   what was fixed stays fixed; and the generated seeds are still what
#   build/fuzz/make_corpus makes.  Prints TAP; needs `make fuzz'.
#
# Copyright (c) 2026, kommander developers

set -uo pipefail
cd "$(dirname "$0")/../.."
targets=(batch command)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

echo "1..$(( ${#targets[@]} + 1 ))"
n=0
for t in "${targets[@]}"; do
  n=$((n + 1))
  inputs=(test/fuzz/corpus/"$t"/*)
  if build/fuzz/fuzz_"$t" "${inputs[@]}" >"$out/$t.log" 2>&1; then
    echo "ok $n - fuzz_$t runs its ${#inputs[@]} corpus inputs cleanly"
  else
    echo "not ok $n - fuzz_$t over its corpus"
    grep -E -A30 'ERROR|runtime error|==[0-9]+==' "$out/$t.log" | head -60 | sed 's/^/# /'
  fi
done

# the generated seeds are what the encoders make today
n=$((n + 1))
if make -s build/fuzz/make_corpus >"$out/make.log" 2>&1 && mkdir -p "$out/gen/batch" "$out/gen/command" &&
   build/fuzz/make_corpus "$out/gen" >>"$out/make.log" 2>&1; then
  stale=0
  for t in "${targets[@]}"; do
    diff -r <(cd "$out/gen/$t" && md5sum gen-* | sort -k2) \
            <(cd test/fuzz/corpus/"$t" && md5sum gen-* | sort -k2) >>"$out/diff" || stale=1
  done
  if [ $stale -eq 0 ]; then echo "ok $n - the generated seed corpus is up to date"
  else echo "not ok $n - the generated seed corpus is stale: run make fuzz-corpus"; sed 's/^/# /' "$out/diff"; fi
else
  echo "not ok $n - make_corpus failed"; sed 's/^/# /' "$out/make.log"
fi
