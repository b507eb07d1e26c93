#!/usr/bin/env bash
# sim/lincheck-tests.sh
#   Tests of kmd-lincheck, the history checker: histories known to be
#   linearizable and known not to be (sim/histories/), operations of
#   unknown outcome taken as possibly applied, the smallest failing window,
#   malformed input refused with its line, and agreement with the
#   simulator on histories it recorded.  Prints TAP; needs `make sim'.
#
# Copyright (c) 2026, kommander developers

set -uo pipefail
cd "$(dirname "$0")/.."
CHECK=./sim/kmd-lincheck
SIM=./sim/kmd-sim
H=sim/histories
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
n=0

echo "1..22"

# name expected-status file [args...]: the exit status, output in $out/last
status_is() {
  local name="$1" want="$2"; shift 2
  "$CHECK" "$@" >"$out/last" 2>&1
  local rc=$?
  n=$((n + 1))
  if [ "$rc" -eq "$want" ]; then echo "ok $n - $name"
  else echo "not ok $n - $name (exit $rc, expected $want)"; sed 's/^/# /' "$out/last"; fi
}

# name pattern: the last output holds the line
output_has() {
  n=$((n + 1))
  if grep -qxF -- "$2" "$out/last"; then echo "ok $n - $1"
  else echo "not ok $n - $1"; echo "# wanted: $2"; sed 's/^/# /' "$out/last"; fi
}

status_is "a linearizable history of three keys passes" 0 $H/linearizable.jsonl
output_has "its failed write is left out, its keys 7 and \"7\" are two" \
  "linearizable: 9 operations (0 of unknown outcome, 1 failed) on 3 keys"
status_is "a stale read fails" 1 $H/stale-read.jsonl
output_has "the failure names the key" 'key "x": not linearizable'
output_has "the window is the write the read missed and the read, no more" \
  'smallest failing window found: 2 of the key'"'"'s 8 operations, from time 80 (the key'"'"'s value then unknown) to time 110:'
n=$((n + 1))
if [ "$(grep -c '^  lines' "$out/last")" -eq 2 ] && grep -q '^  lines 9, 10 .* write 3' "$out/last" &&
   grep -q '^  lines 11, 12 .* read 2' "$out/last"; then echo "ok $n - the window lists those two operations with their lines"
else echo "not ok $n - the window lists those two operations with their lines"; sed 's/^/# /' "$out/last"; fi
status_is "writes and a cas of unknown outcome (info, or never completed) may be read back" 0 $H/info-read-back.jsonl
status_is "the same write marked fail may not be read back" 1 $H/fail-read-back.jsonl
status_is "a write of unknown outcome may also never take effect" 0 $H/info-never.jsonl
status_is "a cas that did not swap from the value it expected fails" 1 $H/cas-not-swapped.jsonl
status_is "a search out of budget is inconclusive, not linearizable" 3 --budget 1 $H/linearizable.jsonl
output_has "and says so" 'inconclusive: key "x": search gave up after 1 steps (6 operations) (try a larger --budget)'

# malformed input: refused with its line
bad() {
  printf '%s\n' "$2" >"$out/bad.jsonl"
  "$CHECK" "$out/bad.jsonl" >"$out/last" 2>&1
  local rc=$?
  n=$((n + 1))
  if [ "$rc" -eq 2 ] && grep -q "^kmd-lincheck: $out/bad.jsonl:$3: " "$out/last"; then
    echo "ok $n - refused at line $3: $1"
  else echo "not ok $n - refused at line $3: $1 (exit $rc)"; sed 's/^/# /' "$out/last"; fi
}
bad "not JSON" '{"process":1,"type":"invoke","f":"read","key":"x","time":1' 1
bad "a completion with nothing open" '{"process":1,"type":"ok","f":"read","key":"x","value":1,"time":1}' 1
bad "a process invoking twice" '{"process":1,"type":"invoke","f":"read","key":"x","time":1}
{"process":1,"type":"invoke","f":"read","key":"x","time":2}' 2
bad "a completion before its invocation" '{"process":1,"type":"invoke","f":"write","key":"x","value":1,"time":5}
{"process":1,"type":"ok","time":4}' 2
bad "a negative time" '{"process":1,"type":"invoke","f":"read","key":"x","time":-1}' 1
bad "a cas without [expected, new]" '{"process":1,"type":"invoke","f":"cas","key":"x","value":1,"time":1}' 1
bad "a completion for another key" '{"process":1,"type":"invoke","f":"read","key":"x","time":1}
{"process":1,"type":"ok","f":"read","key":"y","value":null,"time":2}' 2
printf '%s\n' '{"process":1,"type":"invoke","f":"read","key":"x","time":1}' >"$out/open.jsonl"
status_is "a history with no completed operation proves nothing" 2 "$out/open.jsonl"

# agreement with the simulator on histories it recorded
n=$((n + 1))
if $SIM --seed 7 --history "$out/sim.jsonl" >/dev/null 2>&1 && $CHECK "$out/sim.jsonl" >"$out/last" 2>&1; then
  echo "ok $n - a history the simulator found linearizable passes"
else echo "not ok $n - a history the simulator found linearizable passes"; sed 's/^/# /' "$out/last"; fi
n=$((n + 1))
# the first seed whose stale read the simulator catches (runs move as the
# simulator grows), then that seed's history
seed=$($SIM --seed 1 --seeds 300 --partitions --groups 16 --bug stale-read --expect linearizability 2>/dev/null |
  sed -n 's/^caught: seed \([0-9]*\):.*/\1/p')
$SIM --seed "${seed:-1}" --partitions --groups 16 --bug stale-read --history "$out/bug.jsonl" >"$out/sim.log" 2>&1
key=$(sed -n 's/^violation: .*: linearizability: key \([0-9]*\): .*/\1/p' "$out/sim.log")
$CHECK "$out/bug.jsonl" >"$out/last" 2>&1
rc=$?
# the simulator names the first key it finds; that key alone must fail too
grep "\"key\":$key," "$out/bug.jsonl" >"$out/key.jsonl"
$CHECK "$out/key.jsonl" >"$out/last-key" 2>&1
rck=$?
if [ -n "$key" ] && [ "$rc" -eq 1 ] && [ "$rck" -eq 1 ] && grep -qx "key $key: not linearizable" "$out/last-key"; then
  echo "ok $n - a history with a stale read the simulator caught fails, on the key it named too"
else echo "not ok $n - a history with a stale read the simulator caught fails, on the key it named too (key '$key', exit $rc, $rck)"
  sed 's/^/# /' "$out/last" "$out/last-key"; fi
