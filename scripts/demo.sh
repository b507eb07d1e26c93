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

KMD_CLUSTER_DIR="${KMD_DEMO_DIR:-$KMD_ROOT/demo-cluster}"
KMD_CLUSTER_PORT="${KMD_DEMO_PORT:-5433}"
DIR="$KMD_CLUSTER_DIR"
NODES=3

case "${1:-start}" in
  stop)
    kmd_cluster_down $NODES
    echo "demo cluster stopped (data kept in $DIR; 'scripts/demo.sh clean' removes it)"
    exit 0
    ;;
  clean)
    kmd_cluster_down $NODES
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
echo "== starting $NODES nodes under $DIR (ports $(kmd_port_of 1)-$(kmd_port_of $NODES));"
echo "   node1 bootstraps the cluster, node2 and node3 join it"
kmd_cluster_up $NODES </dev/null

echo "== a control table, created on every node through the system partition"
kmd_psql_on 1 -c "SELECT kmd_ddl('CREATE TABLE public.jobs (id text PRIMARY KEY, state text NOT NULL, owner text)')" \
          -c "SELECT kmd_register_table('public.jobs')"
# the other nodes know the table once they have applied the system
# partition that far: a read barrier on each waits for it
for n in $(seq 2 $NODES); do
  kmd_psql_on "$n" -c "SELECT kmd_read_barrier()" >/dev/null
done

echo "== a short workload through every node"
for i in $(seq 1 30); do
  n=$(( (i % NODES) + 1 ))
  kmd_psql_on "$n" -c "SELECT kmd_propose('job-$i', '{\"op\":\"insert\",\"table\":\"jobs\",\"row\":{\"id\":\"job-$i\",\"state\":\"queued\"}}')" >/dev/null
done
# two workers race to claim job-1: compare-and-set lets exactly one win
kmd_psql_on 2 -c "SELECT kmd_propose_result('job-1', '{\"op\":\"update\",\"table\":\"jobs\",\"key\":{\"id\":\"job-1\"},\"set\":{\"state\":\"running\",\"owner\":\"node2\"},\"if\":{\"state\":\"queued\"}}')->'applied' AS node2_claimed"
kmd_psql_on 3 -c "SELECT kmd_propose_result('job-1', '{\"op\":\"update\",\"table\":\"jobs\",\"key\":{\"id\":\"job-1\"},\"set\":{\"state\":\"running\",\"owner\":\"node3\"},\"if\":{\"state\":\"queued\"}}')->'applied' AS node3_claimed"

for n in $(seq 1 $NODES); do
  echo "== node$n"
  kmd_psql_on "$n" -c "SELECT kmd_read_barrier() AS read_index" \
              -c "SELECT count(*) AS jobs, count(*) FILTER (WHERE state = 'running') AS running FROM jobs" \
              -c "SELECT partition_id, generation, role, term, leader_name, commit_index, applied_index FROM kommander.partitions"
done

cat <<EOF

The cluster is running. Connect to any node:

  psql -h $DIR -p $(kmd_port_of 1) -d app      # node1 (also $(kmd_port_of 2), $(kmd_port_of 3))
  $( [ "$(id -u)" = 0 ] && echo "(as the postgres user: su postgres -c \"psql -h $DIR -p $(kmd_port_of 1) -d app\")" )

and try:  SELECT * FROM kommander.nodes;
          SELECT kmd_propose('job-99', '{"op":"insert","table":"jobs","row":{"id":"job-99","state":"queued"}}');

Stop it with scripts/demo.sh stop, remove it with scripts/demo.sh clean.
EOF
