#!/usr/bin/env bash
# scripts/test.sh [suite ...]
#   Installs what is missing, builds with warnings as errors, installs the
#   extension and runs the suites named (core, sim, regress, tap), or all of
#   them.  Servers and tests run as the postgres user.  Exits non-zero if
#   any suite fails.
#
# Copyright (c) 2026, kommander developers

set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

suites=("$@")
[ ${#suites[@]} -eq 0 ] && suites=(core sim regress tap)
for s in "${suites[@]}"; do
  case "$s" in core|sim|regress|tap) ;; *) echo "unknown suite: $s (core, sim, regress, tap)" >&2; exit 2;; esac
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

work=""
for s in "${suites[@]}"; do
  case "$s" in
    core) run_suite core make -s -C "$KMD_ROOT" WERROR=1 core ;;
    sim) run_suite sim make -s -C "$KMD_ROOT" WERROR=1 simcheck ;;
    regress|tap)
      [ -n "$work" ] || work="$(kmd_work_tree)"
      if [ "$s" = regress ]; then
        run_suite regress kmd_as_postgres "cd '$work' && make -s PG_CONFIG=$PG_BIN/pg_config regress || { cat regression.diffs 2>/dev/null | head -200; exit 1; }"
      else
        run_suite tap kmd_as_postgres "cd '$work' && make -s PG_CONFIG=$PG_BIN/pg_config tap PROVE_FLAGS='${PROVE_FLAGS:-}' PROVE_TESTS='${PROVE_TESTS:-}' || { for f in tmp_check/log/regress_log_*; do echo \"--- \$f\"; tail -50 \"\$f\"; done; exit 1; }"
      fi
      ;;
  esac
done

echo
[ ${#failed_names[@]} -gt 0 ] && echo "failed suites: ${failed_names[*]}"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
