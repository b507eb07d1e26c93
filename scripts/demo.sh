#!/usr/bin/env bash
# scripts/demo.sh [start|stop|clean]
#   Starts a local 3-node kommander cluster on loopback under a directory of
#   its own (demo-cluster/, or $KMD_DEMO_DIR), creates a control table, runs
#   a short workload through every node, and shows each node's view of the
#   partitions.  `stop' stops the nodes, `clean' also removes their data.
#
# Copyright (c) 2026, kommander developers

set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DIR="${KMD_DEMO_DIR:-$KMD_ROOT/demo-cluster}"
PORT="${KMD_DEMO_PORT:-5433}"
NODES=3

port_of() { echo $((PORT + $1 - 1)); }
conninfo_of() { echo "host=$DIR port=$(port_of "$1") dbname=app"; }
psql_on() { local n="$1"; shift; kmd_as_postgres "$PG_BIN/psql -X -q -v ON_ERROR_STOP=1 -h '$DIR' -p $(port_of "$n") -d app $(printf "%q " "$@")"; }

stop_nodes() {
  for n in $(seq 1 $NODES); do
    if [ -f "$DIR/node$n/postmaster.pid" ]; then
      kmd_as_postgres "$PG_BIN/pg_ctl -D '$DIR/node$n' -m fast stop" >/dev/null || true
    fi
  done
}

case "${1:-start}" in
  stop)
    stop_nodes
    echo "demo cluster stopped (data kept in $DIR; 'scripts/demo.sh clean' removes it)"
    exit 0
    ;;
  clean)
    stop_nodes
    rm -rf "$DIR"
    echo "demo cluster removed"
    exit 0
    ;;
  start) ;;
  *) echo "usage: scripts/demo.sh [start|stop|clean]" >&2; exit 2 ;;
esac

kmd_install_packages
echo "== building and installing kommander"
kmd_build_install

if [ -d "$DIR" ]; then
  echo "$DIR exists: run 'scripts/demo.sh clean' first" >&2
  exit 1
fi
mkdir -p "$DIR"
[ "$(id -u)" = 0 ] && chown postgres:postgres "$DIR"

echo "== starting $NODES nodes under $DIR (ports $(port_of 1)-$(port_of $NODES))"
for n in $(seq 1 $NODES); do
  kmd_as_postgres "$PG_BIN/initdb -D '$DIR/node$n' -A trust -N >/dev/null"
  kmd_as_postgres "cat >> '$DIR/node$n/postgresql.conf'" <<EOF
port = $(port_of "$n")
listen_addresses = ''
unix_socket_directories = '$DIR'
shared_preload_libraries = 'kommander'
kommander.database = 'app'
max_worker_processes = 16
EOF
  kmd_as_postgres "$PG_BIN/pg_ctl -D '$DIR/node$n' -l '$DIR/node$n.log' -w start >/dev/null"
  kmd_as_postgres "$PG_BIN/createdb -h '$DIR' -p $(port_of "$n") app"
  psql_on "$n" -c "CREATE EXTENSION kommander"
done

echo "== forming the cluster: node1 bootstraps, node2 and node3 join"
psql_on 1 -c "SELECT kmd_bootstrap('node1', '$(conninfo_of 1)') AS cluster_id"
for n in 2 3; do
  psql_on "$n" -c "SELECT kmd_join('node$n', '$(conninfo_of "$n")', '$(conninfo_of 1)') AS node_id"
done

echo "== a control table, created on every node through the system partition"
psql_on 1 -c "SELECT kmd_ddl('CREATE TABLE public.jobs (id text PRIMARY KEY, state text NOT NULL, owner text)')" \
          -c "SELECT kmd_register_table('public.jobs')"

echo "== a short workload through every node"
for i in $(seq 1 30); do
  n=$(( (i % NODES) + 1 ))
  psql_on "$n" -c "SELECT kmd_propose('job-$i', '{\"op\":\"insert\",\"table\":\"jobs\",\"row\":{\"id\":\"job-$i\",\"state\":\"queued\"}}')" >/dev/null
done
# two workers race to claim job-1: compare-and-set lets exactly one win
psql_on 2 -c "SELECT kmd_propose_result('job-1', '{\"op\":\"update\",\"table\":\"jobs\",\"key\":{\"id\":\"job-1\"},\"set\":{\"state\":\"running\",\"owner\":\"node2\"},\"if\":{\"state\":\"queued\"}}')->'applied' AS node2_claimed"
psql_on 3 -c "SELECT kmd_propose_result('job-1', '{\"op\":\"update\",\"table\":\"jobs\",\"key\":{\"id\":\"job-1\"},\"set\":{\"state\":\"running\",\"owner\":\"node3\"},\"if\":{\"state\":\"queued\"}}')->'applied' AS node3_claimed"

for n in $(seq 1 $NODES); do
  echo "== node$n"
  psql_on "$n" -c "SELECT kmd_read_barrier() AS read_index" \
              -c "SELECT count(*) AS jobs, count(*) FILTER (WHERE state = 'running') AS running FROM jobs" \
              -c "SELECT partition_id, generation, role, term, leader_name, commit_index, applied_index FROM kommander.partitions"
done

cat <<EOF

The cluster is running. Connect to any node:

  psql -h $DIR -p $(port_of 1) -d app      # node1 (also $(port_of 2), $(port_of 3))
  $( [ "$(id -u)" = 0 ] && echo "(as the postgres user: su postgres -c \"psql -h $DIR -p $(port_of 1) -d app\")" )

and try:  SELECT * FROM kommander.nodes;
          SELECT kmd_propose('job-99', '{"op":"insert","table":"jobs","row":{"id":"job-99","state":"queued"}}');

Stop it with scripts/demo.sh stop, remove it with scripts/demo.sh clean.
EOF
