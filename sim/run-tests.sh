#!/usr/bin/env bash
# sim/run-tests.sh
#   The simulator's test suite: thousands of seeds across cluster shapes and
#   fault mixes, partitions split and merged under faults and membership
#   changes, logs compacted and partition images sent to nodes that fell
#   behind or joined (cut short by crashes and cuts, and tried again), the
#   regression seeds of liveness failures found by soaks, every deliberate
#   bug (core, partition host, images, runtime membership) caught by the
#   invariant meant to catch it, the same code under sanitizers, and the
#   same seed giving the same trace twice.  A seed fails on any violation,
#   on a history with no completed operation, and on a linearizability
#   search that ran out of budget (kmd-sim counts those as give-ups).
#   Runs on both cores.
#
# Copyright (c) 2026, kommander developers

set -uo pipefail
cd "$(dirname "$0")/.."
SIM=./sim/kmd-sim
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

ok() { echo "ok - $1"; }
fail() { echo "not ok - $1"; [ -f "$2" ] && grep -m1 -A12 '^violation\|^inconclusive' "$2"; }

# name args...: every seed must pass, with no give-up
run_clean() {
  local name="$1"; shift
  if $SIM "$@" >"$out/$name.log" 2>"$out/$name.err"; then
    ok "$name: $(grep '^seeds:' "$out/$name.log" | cut -d' ' -f1-8) ($(cat "$out/$name.err"))"
  else
    fail "$name: $(grep '^seeds:' "$out/$name.log" | cut -d' ' -f1-8)" "$out/$name.log"
  fi
}

# bug invariant first-seed seeds [args...]: from first-seed on, within
# `seeds' seeds, one must violate `invariant' (other violations on the way
# do not count)
run_bug() {
  local bug="$1" inv="$2" first="$3" seeds="$4"
  shift 4
  $SIM --seed "$first" --seeds "$seeds" --bug "$bug" --expect "$inv" "$@" >"$out/bug-$bug.log" 2>/dev/null
  local rc=$?
  if [ $rc -eq 0 ]; then
    ok "bug $bug caught: $(grep -m1 '^caught' "$out/bug-$bug.log")"
  else
    fail "bug $bug not caught by \"$inv\" in seeds $first..$((first + seeds - 1)) (exit $rc)" "$out/bug-$bug.log"
  fi
}

echo "1..42"
# two batches in parallel, one per core
(
  run_clean 3n-1g-all           --seed 1     --seeds 1500 --nodes 3 --groups 1
  run_clean 3n-1g-no-membership --seed 10001 --seeds 600  --nodes 3 --groups 1 --no-membership
  run_clean 5n-1g-crash-part    --seed 20001 --seeds 500  --nodes 5 --groups 1 --faults partition,crash
  run_clean 3n-64g              --seed 30001 --seeds 40   --nodes 3 --groups 64
  run_clean 3n-16p-split-merge  --seed 80001 --seeds 1000 --nodes 3 --groups 16 --partitions
  # a merge committed while the right partition had let a leaving member
  # of the left one go: the new group split off later never got a leader;
  # the merge rules alone kept it live, with the promotion flaw back too.
  # The regression seeds no longer replay the runs that found them since
  # merged partitions stop, logs are compacted and the simulator runs the
  # runtime's merge finisher and balancer; they stay, with the issue's
  # arguments, as cases that once failed
  run_clean seed-327289         --seed 327289 --seeds 1 --nodes 3 --groups 16 --steps 20000 --clients 4 --partitions
  run_clean seed-327289-merge-rules --seed 327289 --seeds 1 --nodes 3 --groups 16 --partitions --bug promote-unheard --no-host-moves
  # logs compacted as short as can be: an image for nearly every laggard
  run_clean 3n-16p-compact-2    --seed 88001 --seeds 300  --nodes 3 --groups 16 --partitions --compact 2
) >"$out/batch1" 2>&1 &
(
  run_clean 5n-8g-all           --seed 40001 --seeds 500  --nodes 5 --groups 8
  run_clean 7n-1g-all           --seed 50001 --seeds 400  --nodes 7 --groups 1
  run_clean 3n-4g-net-only      --seed 60001 --seeds 500  --nodes 3 --groups 4 --faults drop,dup,reorder,delay,partition --no-membership
  run_clean 4n-2g-disk-only     --seed 70001 --seeds 300  --nodes 4 --groups 2 --faults crash,fsync,stall
  run_clean 5n-32p-split-merge  --seed 85001 --seeds 300  --nodes 5 --groups 32 --partitions
  run_clean 4n-8p-split-merge   --seed 87001 --seeds 200  --nodes 4 --groups 8 --partitions
  # whole logs, as before compaction: splits replayed from the log
  run_clean 3n-16p-no-compact   --seed 89001 --seeds 200  --nodes 3 --groups 16 --partitions --compact 0
  # two leaving voters handed the lead to each other for ever
  run_clean seed-2335           --seed 2335 --seeds 1 --nodes 4 --groups 8 --partitions
  # a learner promoted without ever answering: a group of two voters, one silent
  run_clean seed-2005559        --seed 2005559 --seeds 1 --nodes 4 --groups 8 --partitions
  # a node learned from one image that a partition was merged away, then
  # installed the image of the partition that took it in from a node that
  # had not applied that merge yet: a hole in its map (range coverage)
  run_clean seed-518524         --seed 518524 --seeds 1 --nodes 3 --groups 16 --partitions
) >"$out/batch2" 2>&1 &
wait
cat "$out/batch1" "$out/batch2"

# Each deliberate bug, with the invariant it must trip.  The rare flaws
# of the runtime's membership run from a seed known to catch them (the
# first of a few in the range); if a change of the simulator moves them,
# find new ones with: kmd-sim --seed 1 --seeds 20000 --bug B --expect I ...
# (the last search: when merged partitions started to stop and logs to be
# compacted; stale-read's and lone-voter's again when commit news went
# unanswered: stale-read is caught in 5 of seeds 1..600 as before in 7,
# lone-voter, rare before too (1 of seeds 3100..5099), first at 5870;
# lone-voter's again when commit news went only to nodes that wait for
# it, and with late-member's when the leader tracked what commit index it
# sent each follower: lone-voter first at 1977 (and at 4086 of seeds from
# 4001), late-member first at 895 (and at 3435 of seeds from 3001);
# reuse-id's when a leader stopped trading probes and rejections as fast
# as it could with a member whose log went back: first at 1178, then
# 1929, where it was at 208; late-member's, lone-voter's and reuse-id's
# when a leader stopped removing a voter while the voters left held no
# majority that answers: first at 403, 1800 and 1272)
# stale-reconcile needs a lead lost and won back between two ticks, which
# random runs no longer reach: sim/test_reconcile.c scripts it.
(run_bug commit-old-term "leader completeness" 1 100
 run_bug forget-vote "durability" 1 100
 run_bug double-vote "vote once" 1 100
 run_bug double-vote "election safety" 1 100 --ignore "vote once"
 run_bug no-fencing "generation fencing" 1 200 --partitions --groups 16
 run_bug stale-read "linearizability" 1 400 --partitions --groups 16
  run_bug late-member "catch-up" 351 100 --partitions --groups 16
  run_bug remove-early "liveness" 500 2900 --partitions --groups 16
  run_bug lone-voter "membership convergence" 1751 100 --partitions --groups 8 --nodes 4
  # strand-merge and promote-unheard are no longer caught: a member a
  # merge strands, or a learner promoted unheard, now recovers by an image
  # (3,000 seeds of the two together without the host's moves, 6,000 of
  # promote-unheard on 4 nodes x 8 partitions, found neither)
) >"$out/bugs1" 2>&1 &
(run_bug no-prevote-term "pre-vote changed the term" 1 10
 run_bug early-apply "applied past commit" 1 10
 run_bug early-merge "state machine determinism" 1 200 --partitions --groups 16
 run_bug split-overlap "range coverage" 1 20 --partitions --groups 16
  run_bug reuse-id "leader completeness" 1221 100 --partitions --groups 16 --nodes 4
  run_bug leave-early "liveness" 1375 500 --partitions --groups 16
  run_bug image-index "image state" 1 20 --partitions --groups 16
) >"$out/bugs2" 2>&1 &
wait
cat "$out/bugs1" "$out/bugs2"

# the same code under AddressSanitizer and UBSan
if [ -x build/sim/kmd-sim-asan ]; then
  if build/sim/kmd-sim-asan --seed 90001 --seeds 150 --nodes 3 --groups 2 >"$out/asan.log" 2>"$out/asan.err"; then
    ok "150 seeds under AddressSanitizer and UBSan"
  else
    fail "seeds under AddressSanitizer and UBSan" "$out/asan.log"; tail -30 "$out/asan.err"
  fi
  if build/sim/kmd-sim-asan --seed 95001 --seeds 100 --nodes 3 --groups 16 --partitions >"$out/asan-p.log" 2>"$out/asan-p.err"; then
    ok "100 split/merge seeds under AddressSanitizer and UBSan"
  else
    fail "split/merge seeds under AddressSanitizer and UBSan" "$out/asan-p.log"; tail -30 "$out/asan-p.err"
  fi
else
  fail "build/sim/kmd-sim-asan is missing"
  fail "build/sim/kmd-sim-asan is missing"
fi >"$out/asan" 2>&1
cat "$out/asan"

# the checks themselves: nothing passes vacuously
{
  # a run in which no client operation completes fails
  $SIM --seed 5 --steps 30 --clients 1 >"$out/noops.log" 2>&1
  if [ $? -eq 1 ] && grep -q ': no operations: ' "$out/noops.log"; then
    ok "a run with no completed client operation fails"
  else fail "a run with no completed client operation passed" "$out/noops.log"; fi
  # an invariant expected but never violated is a failure of --expect
  $SIM --seed 1 --seeds 3 --expect "election safety" >"$out/expect.log" 2>&1
  if [ $? -eq 1 ] && grep -q '^not caught' "$out/expect.log"; then
    ok "a bug that trips no invariant is not caught"
  else fail "--expect passed with no bug" "$out/expect.log"; fi
  # compaction and images happen, and some transfers are cut short
  $SIM --seed 91001 --seeds 100 --nodes 3 --groups 16 --partitions >"$out/images.log" 2>&1
  if [ $? -eq 0 ] && grep -Eq 'compactions: [1-9][0-9]* images: [1-9][0-9]* cut: [1-9]' "$out/images.log"; then
    ok "logs compacted, images installed, transfers cut short: $(grep -o 'compactions: .*' "$out/images.log")"
  else fail "no compaction, image or cut transfer in 100 partition seeds" "$out/images.log"; fi
  # a bug caught by another invariant than the one named is not caught
  $SIM --seed 1 --seeds 10 --bug early-apply --expect "election safety" >"$out/other.log" 2>&1
  if [ $? -eq 1 ] && grep -q ': applied past commit: ' "$out/other.log"; then
    ok "a bug caught by an unrelated invariant does not count"
  else fail "a bug counted as caught by an unrelated invariant" "$out/other.log"; fi
} >"$out/meta" 2>&1
cat "$out/meta"

# determinism: the same seed twice, byte for byte
{
  a=$($SIM --seed 4242 --nodes 5 --groups 8 --trace 2>/dev/null | md5sum)
  b=$($SIM --seed 4242 --nodes 5 --groups 8 --trace 2>/dev/null | md5sum)
  if [ "$a" = "$b" ]; then ok "same seed, same trace and digest"; else fail "same seed gave different traces"; fi
  a=$($SIM --seed 4243 --nodes 3 --groups 16 --partitions --trace 2>/dev/null | md5sum)
  b=$($SIM --seed 4243 --nodes 3 --groups 16 --partitions --trace 2>/dev/null | md5sum)
  if [ "$a" = "$b" ]; then ok "same split/merge seed, same trace and digest"; else fail "same split/merge seed gave different traces"; fi
} >"$out/det" 2>&1
cat "$out/det"

all="$out/batch1 $out/batch2 $out/bugs1 $out/bugs2 $out/asan $out/meta $out/det"
# shellcheck disable=SC2086
passed=$(cat $all | grep -c '^ok')
# shellcheck disable=SC2086
failed=$(cat $all | grep -c '^not ok')
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -eq 42 ]
