#!/usr/bin/env bash
# scripts/test.sh [suite ...]
#   Installs what is missing, builds with warnings as errors, installs the
#   extension and runs the suites named (core, sim, regress, tap, broken,
#   asan), or all of them.  Servers and tests run as the postgres user.  A server log
#   that shows a crash (a signal, PANIC, a failed assertion, a sanitizer
#   report) fails its suite.  A failed TAP file has the end of its log and
#   of its servers' logs printed.  Exits non-zero if any suite fails.
#
#   broken: the nemesis test (t/180_nemesis.pl) against four builds, each
#   with a deliberate defect (a leader acknowledging before commit; leases
#   ended early after a leader change; a read barrier that does not wait;
#   request ids forgotten), in a private copy of Postgres: it must find
#   anomalies in each (scripts/nemesis.sh --broken).
#
#   tap runs three TAP files at a time (prove -j3), asan two (its servers
#   compute more): the tests spend most of their time waiting for a
#   cluster, not computing.  PROVE_FLAGS replaces that (PROVE_FLAGS=-j1
#   runs one file at a time).
#
#   asan: the extension built with AddressSanitizer and UBSan, installed
#   into a private copy of Postgres whose servers run with the ASan runtime
#   preloaded; the regress suite and the TAP files of ASAN_TESTS run against
#   it (KMD_ASAN_TESTS=all: every TAP file; PROVE_TESTS, if set, wins).
#
# Copyright (c) 2026, kommander developers

set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

suites=("$@")
[ ${#suites[@]} -eq 0 ] && suites=(core sim regress tap broken asan)
for s in "${suites[@]}"; do
  case "$s" in core|sim|regress|tap|broken|asan) ;; *) echo "unknown suite: $s (core, sim, regress, tap, broken, asan)" >&2; exit 2;; esac
done

kmd_install_packages || exit 1
echo "== build"
kmd_build_install || { echo "build failed"; echo "0 passed, 1 failed"; exit 1; }

passed=0
failed=0
failed_names=()
run_suite() {
  local name="$1"; shift
  echo "== suite $name"
  local t0=$SECONDS
  if "$@"; then
    passed=$((passed + 1))
    echo "== suite $name passed ($((SECONDS - t0)) s)"
  else
    failed=$((failed + 1))
    failed_names+=("$name")
    echo "== suite $name FAILED ($((SECONDS - t0)) s)"
  fi
}

# regress and tap in the tree $1, with the Postgres of bin directory $2:
# the suite fails on a failed test or on a crash in any server log.
regress_in() {
  kmd_as_postgres "cd '$1' && make -s PG_CONFIG=$2/pg_config regress || { cat regression.diffs 2>/dev/null | head -200; exit 1; }"
  local rc=$?
  kmd_check_logs "$1/log" || rc=1
  return $rc
}
tap_in() {
  local out="$1/prove.out"
  kmd_as_postgres "cd '$1' && set -o pipefail && make -s PG_CONFIG=$2/pg_config tap PROVE_FLAGS='${PROVE_FLAGS--j$3 --timer}' PROVE_TESTS='${PROVE_TESTS:-}' 2>&1 | tee '$out'"
  local rc=$?
  [ $rc = 0 ] || tap_failures "$1/tmp_check" "$out"
  kmd_check_logs "$1/tmp_check/log" || rc=1
  return $rc
}

# The end of the log of each TAP file that failed, and of its servers'
# logs: what a failure in CI leaves to read.
tap_failures() {
  local dir="$1" out="$2" t name f
  for t in $(sed -n '/^Test Summary Report/,$p' "$out" | grep -o '^t/[^ ]*\.pl' | sort -u); do
    name="$(basename "$t" .pl)"
    echo "--- $dir/log/regress_log_$name"
    tail -150 "$dir/log/regress_log_$name" 2>/dev/null
    for f in "$dir/log/${name}"_*.log; do
      [ -f "$f" ] || continue
      echo "--- $f"
      tail -40 "$f"
    done
  done
}

# The TAP files the asan suite runs: those that drive the memory-heavy paths
# (catalog refresh with many partitions, splits and merges, compaction and
# images, an image waited for, removal, barriers, the change feed, the
# apply worker's recovery from its own errors) and every decoder fed bad
# input.  The others exercise the same code under different timing.
ASAN_TESTS="t/010_replication.pl t/046_the_apply_worker_outlives_its_own_errors.pl
t/050_split_merge_under_load.pl t/070_remove_node.pl
t/082_a_node_back_from_a_merge_and_ddl.pl
t/100_thousand_partitions.pl t/110_compaction_and_images.pl
t/114_an_image_never_takes_a_node_back.pl
t/115_an_image_older_than_the_leaders_log.pl
t/128_ddl_barrier.pl
t/140_poison_entries_are_contained.pl t/142_undecodable_entries_stop_their_partition.pl
t/146_peers_are_held_to_their_identity.pl t/148_the_peer_stream_checks_every_batch.pl
t/150_refusals_with_their_sqlstates.pl
t/168_change_feed.pl"

# The sanitized build in its own tree and Postgres copy; its servers start
# through a wrapper that preloads the ASan runtime (Postgres itself is not
# instrumented).  Any report aborts the process and shows in its log.
asan_suite() {
  local root="${KMD_ASAN_ROOT:-/tmp/kommander-asan}"
  local bin src libasan libubsan
  bin="$(kmd_pg_copy "$root/pg")" || return 1
  libasan="$(readlink -f "$(gcc -print-file-name=libasan.so)")"
  libubsan="$(readlink -f "$(gcc -print-file-name=libubsan.so)")"
  # see test/asan/swift_demangle.c for why this comes with the runtime
  gcc -shared -fPIC -O2 -o "$root/swift_demangle.so" "$KMD_ROOT/test/asan/swift_demangle.c" || return 1
  if [ ! -f "$bin/postgres.bin" ]; then
    mv "$bin/postgres" "$bin/postgres.bin"
    cat > "$bin/postgres" <<EOS
#!/bin/bash
# Postgres with the ASan runtime preloaded, for the sanitized kommander.
LD_PRELOAD="$libasan $libubsan $root/swift_demangle.so" \\
ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:halt_on_error=1:quarantine_size_mb=64:disable_coredump=1 \\
UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \\
exec -a "\$0" "\$(dirname "\$0")/postgres.bin" "\$@"
EOS
    chmod 755 "$bin/postgres"
  fi
  src="$root/src"
  rm -rf "$src"
  mkdir -p "$src"
  (cd "$KMD_ROOT" && tar --exclude=./build --exclude=./.git -cf - .) | tar -C "$src" -xf -
  local copt="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all"
  (cd "$src" && make -s clean PG_CONFIG="$bin/pg_config" >/dev/null &&
     make -s $KMD_JOBS WERROR=1 PG_CONFIG="$bin/pg_config" COPT="$copt" >/dev/null &&
     make -s install WERROR=1 PG_CONFIG="$bin/pg_config" COPT="$copt" >/dev/null) ||
    { echo "sanitized build failed"; return 1; }
  # every object of the runtime must be instrumented, or a report is missed
  for o in "$src"/src/*.o; do
    [ "$(nm "$o" | grep -c __asan_init)" -gt 0 ] || { echo "not instrumented: $o"; return 1; }
  done
  chown -R postgres:postgres "$root"
  local rc=0
  echo "-- asan: regress"
  regress_in "$src" "$bin" || rc=1
  echo "-- asan: tap"
  local tests="${PROVE_TESTS:-}"
  if [ -z "$tests" ] && [ "${KMD_ASAN_TESTS:-}" != all ]; then
    tests="$(echo $ASAN_TESTS)"
  fi
  PROVE_TESTS="$tests" tap_in "$src" "$bin" 2 || rc=1
  return $rc
}

# Each deliberate defect must be caught (scripts/nemesis.sh --broken).  One
# after the other: side by side on two cores, the early-commit build's 40 s
# once found no anomaly (seed 404895), where alone it found 9 to 25 in
# four runs.  The early-commit build draws only isolated leaders since a
# run drawing kill, pause and hole as well found none (seed 410724).
broken_suite() {
  local rc=0
  bash "$KMD_ROOT/scripts/nemesis.sh" --broken commit --seconds 40 || rc=1
  bash "$KMD_ROOT/scripts/nemesis.sh" --broken lease --seconds 30 || rc=1
  bash "$KMD_ROOT/scripts/nemesis.sh" --broken read --seconds 30 || rc=1
  bash "$KMD_ROOT/scripts/nemesis.sh" --broken request --seconds 40 || rc=1
  return $rc
}

work=""
for s in "${suites[@]}"; do
  case "$s" in
    core) run_suite core make -s $KMD_JOBS -C "$KMD_ROOT" WERROR=1 core ;;
    sim) run_suite sim make -s $KMD_JOBS -C "$KMD_ROOT" WERROR=1 simcheck ;;
    regress|tap)
      [ -n "$work" ] || work="$(kmd_work_tree)"
      if [ "$s" = regress ]; then
        run_suite regress regress_in "$work" "$PG_BIN"
      else
        run_suite tap tap_in "$work" "$PG_BIN" 3
      fi
      ;;
    broken) run_suite broken broken_suite ;;
    asan) run_suite asan asan_suite ;;
  esac
done

echo
[ ${#failed_names[@]} -gt 0 ] && echo "failed suites: ${failed_names[*]}"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
