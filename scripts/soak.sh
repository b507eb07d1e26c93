#!/usr/bin/env bash
# scripts/soak.sh [proposals]
#   Endless writes, bounded resources: a local 3-node cluster (4 user
#   partitions, leaders spread) takes `proposals' upserts (default 200,000)
#   from pgbench, and after a tenth of them and after all of them the script
#   prints each kommander worker's memory (pg_log_backend_memory_contexts)
#   and the largest number of kommander.log rows any partition keeps on
#   each node.  kommander.snapshot_threshold is KMD_SOAK_THRESHOLD (default
#   1,000), so that logs are at their steady length after a tenth of the
#   proposals.  A benchmark, not a test: it prints figures and never fails
#   on them.  Its cluster lives in /tmp/kommander-soak (KMD_SOAK_DIR) and is
#   removed at the end.
#
# Copyright (c) 2026, kommander developers

set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

TOTAL="${1:-200000}"
KMD_CLUSTER_DIR="${KMD_SOAK_DIR:-/tmp/kommander-soak}"
KMD_CLUSTER_PORT="${KMD_SOAK_PORT:-5533}"
NODES=3
CLIENTS=8

kmd_install_packages
kmd_build_install
kmd_cluster_down $NODES
rm -rf "$KMD_CLUSTER_DIR"
trap 'kmd_cluster_down $NODES; rm -rf "$KMD_CLUSTER_DIR"' EXIT

echo "== a 3-node cluster under $KMD_CLUSTER_DIR"
kmd_cluster_up $NODES <<EOF
kommander.balance_interval = 0
kommander.snapshot_threshold = ${KMD_SOAK_THRESHOLD:-1000}
EOF
kmd_psql_on 1 -c "SELECT kmd_ddl('CREATE TABLE public.kv (k text PRIMARY KEY, v bigint)')" \
            -c "SELECT kmd_register_table('public.kv')" \
            -c "SELECT count(*) FROM kmd_create_partitions(4)" \
            -c "SELECT kmd_rebalance()" >/dev/null

script="$KMD_CLUSTER_DIR/propose.sql"
cat > "$script" <<'EOF'
\set k random(1, 100000)
SELECT kmd_propose('k' || :k, jsonb_build_object('op', 'upsert', 'table', 'kv', 'row', jsonb_build_object('k', 'k' || :k, 'v', :k)));
EOF
chmod 644 "$script"

# pgbench with $1 transactions in all, clients spread over the nodes
load() {
  local per=$(( $1 / CLIENTS / NODES )) n pids=()
  for n in $(seq 1 $NODES); do
    kmd_as_postgres "$PG_BIN/pgbench -n -h '$KMD_CLUSTER_DIR' -p $(kmd_port_of "$n") -c $CLIENTS -j 1 -t $per -f '$script' app" \
      > "$KMD_CLUSTER_DIR/pgbench-$n.out" 2>&1 &
    pids+=($!)
  done
  for n in "${pids[@]}"; do wait "$n"; done
  grep -h "tps = " "$KMD_CLUSTER_DIR"/pgbench-*.out | sed 's/^/   /'
}

# "node type pid bytes" for every kommander worker, and the longest log
measure() {
  local n pid type offset total
  for n in $(seq 1 $NODES); do
    while read -r pid type; do
      offset=$(stat -c %s "$KMD_CLUSTER_DIR/node$n.log")
      kmd_psql_on "$n" -At -c "SELECT pg_log_backend_memory_contexts($pid)" >/dev/null
      total=""
      for _ in $(seq 1 50); do
        total=$(tail -c +$((offset + 1)) "$KMD_CLUSTER_DIR/node$n.log" |
                  grep -o "\[$pid\].*Grand total: [0-9]* bytes" | grep -o "[0-9]* bytes" | head -1 || true)
        [ -n "$total" ] && break
        sleep 0.1
      done
      printf "   node%s %-22s %10s\n" "$n" "$type" "${total% bytes}"
    done < <(kmd_psql_on "$n" -At -F ' ' -c "SELECT pid, replace(backend_type, ' ', '_') FROM pg_stat_activity WHERE backend_type IN ('kommander raft worker', 'kommander apply') ORDER BY backend_type, pid")
    printf "   node%s %-22s %10s\n" "$n" "longest_log_rows" \
      "$(kmd_psql_on "$n" -At -c 'SELECT coalesce(max(c), 0) FROM (SELECT count(*) AS c FROM kommander.log GROUP BY partition_id) s')"
  done
}

echo "== $((TOTAL / 10)) proposals"
load $((TOTAL / 10))
measure | tee "$KMD_CLUSTER_DIR/first"
echo "== $((TOTAL - TOTAL / 10)) more"
load $((TOTAL - TOTAL / 10))
measure | tee "$KMD_CLUSTER_DIR/last"

echo "== after all of them, relative to after a tenth"
paste "$KMD_CLUSTER_DIR/first" "$KMD_CLUSTER_DIR/last" |
  awk '{ printf "   %s %-22s %10s -> %10s  (%+.1f%%)\n", $1, $2, $3, $6, ($3 > 0 ? ($6 - $3) * 100.0 / $3 : 0) }'
