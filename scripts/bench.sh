#!/usr/bin/env bash
# scripts/bench.sh [seconds]
#   kmd_propose against Postgres's own synchronous replication, side by side
#   on this machine: a local 3-node kommander cluster and a sync-rep trio
#   (a primary and two standbys, synchronous_standby_names 'ANY 1 (...)',
#   synchronous_commit on), both on Unix sockets, both fed the same upsert
#   of a 30-byte value by pgbench, `seconds' (default 10) per figure:
#
#     sync-rep: 1 client at the primary; 32 clients
#     kommander, 1 partition: 1 client at the leader; 1 client at a
#       follower (forwarded); 32 clients at the leader
#     kommander, 8 partitions with leaders spread: 1 client; 32 clients
#       spread over the three nodes
#
#   It prints one table with each figure's ratio to sync-rep's, and the
#   servers' CPU time per write (all three servers together; comparable
#   across runs on a machine that does other work, where times are not).  A
#   benchmark, not a test: it never fails on a figure, and CI does not run
#   it.  Everything lives under /tmp/kommander-bench (KMD_BENCH_DIR) and is
#   removed at the end.  KMD_BENCH_PROTOCOL=prepared runs every pgbench
#   with -M prepared (as an application with a driver sends its
#   statements: parsed and planned once per connection), =extended with
#   -M extended; the default is pgbench's simple protocol.
#
# Copyright (c) 2026, kommander developers

set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SECONDS_EACH="${1:-10}"
PROTOCOL="${KMD_BENCH_PROTOCOL:-simple}"
case "$PROTOCOL" in simple|extended|prepared) ;; *) echo "KMD_BENCH_PROTOCOL: simple, extended or prepared" >&2; exit 2;; esac
ROOT="${KMD_BENCH_DIR:-/tmp/kommander-bench}"
KMD_CLUSTER_DIR="$ROOT/kommander"
KMD_CLUSTER_PORT="${KMD_BENCH_PORT:-5633}"
SR_DIR="$ROOT/syncrep"
SR_PORT=$((KMD_CLUSTER_PORT + 10))
NODES=3

kmd_install_packages
kmd_build_install

cleanup() {
  kmd_cluster_down $NODES
  for d in primary s1 s2; do
    [ -f "$SR_DIR/$d/postmaster.pid" ] &&
      kmd_as_postgres "$PG_BIN/pg_ctl -D '$SR_DIR/$d' -m fast stop" >/dev/null 2>&1
  done
  rm -rf "$ROOT"
}
cleanup
trap cleanup EXIT
mkdir -p "$ROOT" "$SR_DIR"
chown postgres:postgres "$ROOT" "$SR_DIR" 2>/dev/null || true

# ---------------------------------------------------------------------------
# Postgres synchronous replication: a primary and two standbys
# ---------------------------------------------------------------------------
echo "== sync-rep: a primary and two standbys under $SR_DIR"
kmd_as_postgres "$PG_BIN/initdb -D '$SR_DIR/primary' -A trust -N >/dev/null"
kmd_as_postgres "cat >> '$SR_DIR/primary/postgresql.conf'" <<EOF
port = $SR_PORT
listen_addresses = ''
unix_socket_directories = '$SR_DIR'
wal_level = replica
max_wal_senders = 4
synchronous_commit = on
synchronous_standby_names = 'ANY 1 (s1, s2)'
EOF
kmd_as_postgres "$PG_BIN/pg_ctl -D '$SR_DIR/primary' -l '$SR_DIR/primary.log' -w start >/dev/null"
for s in 1 2; do
  kmd_as_postgres "$PG_BIN/pg_basebackup -h '$SR_DIR' -p $SR_PORT -D '$SR_DIR/s$s' -R -X stream -N >/dev/null"
  kmd_as_postgres "echo 'port = $((SR_PORT + s))' >> '$SR_DIR/s$s/postgresql.conf'"
  # after the primary_conninfo pg_basebackup -R wrote, which it overrides
  kmd_as_postgres "cat >> '$SR_DIR/s$s/postgresql.auto.conf'" <<EOF
primary_conninfo = 'host=$SR_DIR port=$SR_PORT application_name=s$s'
EOF
  kmd_as_postgres "$PG_BIN/pg_ctl -D '$SR_DIR/s$s' -l '$SR_DIR/s$s.log' -w start >/dev/null"
done
sr_psql() { kmd_as_postgres "$PG_BIN/psql -X -q -v ON_ERROR_STOP=1 -h '$SR_DIR' -p $SR_PORT -d postgres $(printf "%q " "$@")"; }
sync=0
for _ in $(seq 1 100); do
  sync=$(sr_psql -At -c "SELECT count(*) FROM pg_stat_replication WHERE sync_state IN ('sync', 'quorum')")
  [ "$sync" = 2 ] && break
  sleep 0.1
done
[ "$sync" = 2 ] || { echo "the standbys did not become synchronous" >&2; exit 1; }
sr_psql -c "CREATE TABLE kv (k text PRIMARY KEY, v text)"

# ---------------------------------------------------------------------------
# kommander: three nodes
# ---------------------------------------------------------------------------
echo "== kommander: three nodes under $KMD_CLUSTER_DIR"
kmd_cluster_up $NODES <<EOF
kommander.balance_interval = 0
EOF
kmd_psql_on 1 -c "SELECT kmd_ddl('CREATE TABLE public.kv (k text PRIMARY KEY, v text)')" \
            -c "SELECT kmd_register_table('public.kv')" \
            -c "SELECT kmd_transfer_leader(1, 'node1')" >/dev/null

cat > "$ROOT/syncrep.sql" <<'EOF'
\set k random(1, 100000)
INSERT INTO kv VALUES ('k' || :k, 'abcdefghijklmnopqrstuvwxyz0123') ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v;
EOF
cat > "$ROOT/propose.sql" <<'EOF'
\set k random(1, 100000)
SELECT kmd_propose('k' || :k, jsonb_build_object('op', 'upsert', 'table', 'kv', 'row', jsonb_build_object('k', 'k' || :k, 'v', 'abcdefghijklmnopqrstuvwxyz0123')));
EOF
chmod 644 "$ROOT"/*.sql

# pgbench: $1 host dir, $2 database, $3 script, $4 clients, then the ports to
# spread them over; prints "latency_ms tps" (latency averaged, tps summed)
bench() {
  local dir="$1" db="$2" script="$3" clients="$4"; shift 4
  local n=$# i=0 port per out=() pids=()
  for port in "$@"; do
    per=$(( clients / n + (i < clients % n ? 1 : 0) ))
    i=$((i + 1))
    [ "$per" -gt 0 ] || continue
    out+=("$ROOT/pgbench.$port.out")
    kmd_as_postgres "$PG_BIN/pgbench -n -h '$dir' -p $port -c $per -j $(( per < 4 ? per : 4 )) -T $SECONDS_EACH -M $PROTOCOL -f '$script' $db" \
      > "$ROOT/pgbench.$port.out" 2>&1 &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || true; done
  awk '/latency average/ { lat += $4; nl++ } /^tps = / { tps += $3 }
       END { printf "%.2f %.0f\n", (nl ? lat / nl : 0), tps }' "${out[@]}"
}

# CPU time, in clock ticks, of the servers whose data directories are
# given: each postmaster's own and that of its children, live or reaped
# (a pgbench connection's backend is gone by the time of the second
# reading; its time is in the postmaster's).  The difference of two
# readings is what the servers spent in between, whatever else runs on the
# machine: so this column is comparable across runs where wall-clock
# figures are not.
server_ticks() {
  local pms="" d
  for d in "$@"; do pms="$pms $(head -1 "$d/postmaster.pid")"; done
  # a process may end between the glob and its read: cat then fails,
  # which is no reason to stop the benchmark
  { cat /proc/[0-9]*/stat 2>/dev/null || true; } | awk -v pms="$pms" '
    BEGIN { n = split(pms, a, " "); for (i = 1; i <= n; i++) pm[a[i]] = 1 }
    { pid = $1; line = $0; sub(/^.*\) /, "", line); split(line, f, " ")
      if (pid in pm) t += f[12] + f[13] + f[14] + f[15]
      else if (f[2] in pm) t += f[12] + f[13] }
    END { printf "%d\n", t }'
}
HZ=$(getconf CLK_TCK)
KMD_DIRS=("$KMD_CLUSTER_DIR/node1" "$KMD_CLUSTER_DIR/node2" "$KMD_CLUSTER_DIR/node3")
SR_DIRS=("$SR_DIR/primary" "$SR_DIR/s1" "$SR_DIR/s2")

declare -A LAT TPS CPU LABEL
measure() {
  local id="$1" label="$2" t0 t1; shift 2
  local -n dirs="$1"; shift
  LABEL[$id]="$label"
  t0=$(server_ticks "${dirs[@]}")
  read -r "LAT[$id]" "TPS[$id]" < <(bench "$@")
  t1=$(server_ticks "${dirs[@]}")
  # microseconds of server CPU per write, on all three servers together
  CPU[$id]=$(awk -v d=$((t1 - t0)) -v hz="$HZ" -v n="${TPS[$id]}" -v s="$SECONDS_EACH" \
    'BEGIN { printf "%.0f", (n > 0 ? d / hz * 1e6 / (n * s) : 0) }')
  printf "   %-48s %8s ms %8s tps %6s us CPU/write\n" "$label" "${LAT[$id]}" "${TPS[$id]}" "${CPU[$id]}"
}

echo "== $SECONDS_EACH s per figure, pgbench's $PROTOCOL protocol"
measure sr1 "sync-rep, 1 client" SR_DIRS "$SR_DIR" postgres "$ROOT/syncrep.sql" 1 $SR_PORT
measure sr32 "sync-rep, 32 clients" SR_DIRS "$SR_DIR" postgres "$ROOT/syncrep.sql" 32 $SR_PORT
measure k1 "kommander, 1 partition, 1 client at the leader" KMD_DIRS "$KMD_CLUSTER_DIR" app "$ROOT/propose.sql" 1 "$(kmd_port_of 1)"
# the leader's own medians of that figure's steps (its window of 30 to 60 s
# holds little else: the set-up proposed a handful of commands)
STEPS=$(kmd_psql_on 1 -At -F ' ' -c "
  SELECT operation, p50_ms, count FROM kommander.latency
   WHERE partition_id IS NULL
     AND operation IN ('propose', 'commit', 'log_append', 'peer_round_trip', 'apply')
   ORDER BY array_position(ARRAY['propose', 'commit', 'log_append', 'peer_round_trip', 'apply'], operation)")
measure k1f "kommander, 1 partition, 1 client at a follower" KMD_DIRS "$KMD_CLUSTER_DIR" app "$ROOT/propose.sql" 1 "$(kmd_port_of 2)"
measure k32 "kommander, 1 partition, 32 clients at the leader" KMD_DIRS "$KMD_CLUSTER_DIR" app "$ROOT/propose.sql" 32 "$(kmd_port_of 1)"
kmd_psql_on 1 -c "SELECT count(*) FROM kmd_create_partitions(8)" -c "SELECT kmd_rebalance()" >/dev/null
measure p1 "kommander, 8 partitions, 1 client" KMD_DIRS "$KMD_CLUSTER_DIR" app "$ROOT/propose.sql" 1 "$(kmd_port_of 1)"
measure p32 "kommander, 8 partitions, 32 clients on 3 nodes" KMD_DIRS "$KMD_CLUSTER_DIR" app "$ROOT/propose.sql" 32 \
  "$(kmd_port_of 1)" "$(kmd_port_of 2)" "$(kmd_port_of 3)"

echo
echo "| workload | latency | tps | against sync-rep | server CPU per write |"
echo "|---|---|---|---|---|"
for id in sr1 k1 k1f p1; do
  awk -v n="${LABEL[$id]}" -v l="${LAT[$id]}" -v t="${TPS[$id]}" -v b="${LAT[sr1]}" \
      -v c="${CPU[$id]}" -v cb="${CPU[sr1]}" \
    'BEGIN { printf "| %s | %.2f ms | %d | latency %.2fx | %d us, %.2fx |\n", n, l, t, (b > 0 ? l / b : 0), c, (cb > 0 ? c / cb : 0) }'
done
for id in sr32 k32 p32; do
  awk -v n="${LABEL[$id]}" -v l="${LAT[$id]}" -v t="${TPS[$id]}" -v b="${TPS[sr32]}" \
      -v c="${CPU[$id]}" -v cb="${CPU[sr32]}" \
    'BEGIN { printf "| %s | %.2f ms | %d | throughput %.2fx | %d us, %.2fx |\n", n, l, t, (b > 0 ? t / b : 0), c, (cb > 0 ? c / cb : 0) }'
done

echo
echo "One client at the leader, step by step: the leader's medians (kommander.latency,"
echo "within about 25%) over that figure's run"
echo
echo "| step | median | count |"
echo "|---|---|---|"
awk '
  BEGIN { d["propose"] = "kmd_propose, call to answer (propose)"
          d["commit"] = "appended to committed, on the leader (commit)"
          d["log_append"] = "a log transaction with its fsync (log_append)"
          d["peer_round_trip"] = "a peer batch to its answer (peer_round_trip)"
          d["apply"] = "one entry applied (apply)" }
  NF == 3 { printf "| %s | %.3f ms | %d |\n", d[$1], $2, $3 }' <<<"$STEPS"
