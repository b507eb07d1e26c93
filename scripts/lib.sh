#!/usr/bin/env bash
# scripts/lib.sh
#   Shared by scripts/test.sh and scripts/demo.sh: install what is missing,
#   build and install the extension, and run commands as the postgres user.
#
# Copyright (c) 2026, kommander developers

KMD_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
KMD_PACKAGES="postgresql-15 postgresql-server-dev-15 libpq-dev libprotobuf-c-dev
protobuf-c-compiler libipc-run-perl libcmocka-dev libkrb5-dev openssl make gcc clang"
PG_BIN=/usr/lib/postgresql/15/bin
# builds run one make job per core
KMD_JOBS="-j$(nproc)"

# Install the Debian packages the build and the tests need, if missing.
kmd_install_packages() {
  local missing=()
  for p in $KMD_PACKAGES; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" != 0 ]; then
    echo "missing packages: ${missing[*]} (run as root to install them)" >&2
    return 1
  fi
  echo "== installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
}

# Build with warnings as errors and install into the system's Postgres, or
# into the private copy KMD_PG_ROOT names (see kmd_pg_copy), for a second
# checkout whose build must not replace the system's.
kmd_build_install() {
  if [ -n "${KMD_PG_ROOT:-}" ]; then
    PG_BIN="$(kmd_pg_copy "$KMD_PG_ROOT")" || return 1
    chown -R postgres:postgres "$KMD_PG_ROOT" 2>/dev/null
  fi
  (cd "$KMD_ROOT" && make -s $KMD_JOBS WERROR=1 PG_CONFIG="$PG_BIN/pg_config" && \
     make -s install PG_CONFIG="$PG_BIN/pg_config") >/dev/null
}

# A private copy of the system's Postgres installation under $1, made if
# missing; prints its bin directory.  Debian's Postgres finds its libraries
# and extensions relative to its binaries, so a build of the extension
# installed into the copy (the sanitized one) leaves the system's alone.
kmd_pg_copy() {
  local root="$1"
  local bin="$root/lib/postgresql/15/bin"
  if [ ! -x "$bin/postgres" ]; then
    rm -rf "$root"
    mkdir -p "$root/lib/postgresql" "$root/share/postgresql" || return 1
    cp -a /usr/lib/postgresql/15 "$root/lib/postgresql/" &&
      cp -a /usr/share/postgresql/15 "$root/share/postgresql/" &&
      ln -s /usr/include "$root/include" || return 1
  fi
  echo "$bin"
}

# What in the server logs under $1 shows a crash or a sanitizer report: a
# process killed by a signal, a PANIC, a failed assertion, AddressSanitizer
# or UBSan.  Prints each with its file and a few lines of context, and
# returns 1 if there is any.  A crash is a bug, never a way to recover.
kmd_check_logs() {
  local dir="$1" found=0 f
  local pattern='terminated by signal|PANIC:|TRAP:|ERROR: AddressSanitizer|runtime error:|ERROR: LeakSanitizer'
  for f in $(find "$dir" -name '*.log' 2>/dev/null | sort); do
    if grep -Eq "$pattern" "$f"; then
      echo "--- crash or sanitizer report in $f"
      grep -En -B1 -A40 "$pattern" "$f" | head -200
      found=1
    fi
  done
  return $found
}

# Run a command as the postgres user (servers refuse to run as root).
kmd_as_postgres() {
  if [ "$(id -u)" = 0 ]; then
    su postgres -s /bin/bash -c "$*"
  else
    bash -c "$*"
  fi
}

# A copy of the tree the postgres user can write to (test outputs).
kmd_work_tree() {
  local dir="${KMD_WORK:-/tmp/kommander-work}"
  if [ "$(id -u)" = 0 ]; then
    rm -rf "$dir"
    mkdir -p "$dir"
    (cd "$KMD_ROOT" && tar --exclude=./build --exclude=./.git -cf - .) | tar -C "$dir" -xf -
    chown -R postgres:postgres "$dir"
  else
    dir="$KMD_ROOT"
  fi
  echo "$dir"
}

# ---------------------------------------------------------------------------
# A local kommander cluster on loopback, for the demo and the benchmarks:
# node n of the cluster under directory $KMD_CLUSTER_DIR listens on Unix
# sockets there, port $KMD_CLUSTER_PORT + n - 1, and serves database app.
# ---------------------------------------------------------------------------
kmd_port_of() { echo $((KMD_CLUSTER_PORT + $1 - 1)); }
kmd_conninfo_of() { echo "host=$KMD_CLUSTER_DIR port=$(kmd_port_of "$1") dbname=app"; }

# psql on node $1 as the postgres user: the rest are psql's arguments.
kmd_psql_on() {
  local n="$1"; shift
  kmd_as_postgres "$PG_BIN/psql -X -q -v ON_ERROR_STOP=1 -h '$KMD_CLUSTER_DIR' -p $(kmd_port_of "$n") -d app $(printf "%q " "$@")"
}

# Create and start node $1, with the postgresql.conf lines on stdin added.
kmd_node_up() {
  local n="$1" dir="$KMD_CLUSTER_DIR/node$1" extra
  extra="$(cat)"
  kmd_as_postgres "$PG_BIN/initdb -D '$dir' -A trust -N >/dev/null"
  kmd_as_postgres "cat >> '$dir/postgresql.conf'" <<EOC
port = $(kmd_port_of "$n")
listen_addresses = ''
unix_socket_directories = '$KMD_CLUSTER_DIR'
shared_preload_libraries = 'kommander'
kommander.database = 'app'
max_worker_processes = 16
$extra
EOC
  kmd_as_postgres "$PG_BIN/pg_ctl -D '$dir' -l '$KMD_CLUSTER_DIR/node$n.log' -w start >/dev/null"
  kmd_as_postgres "$PG_BIN/createdb -h '$KMD_CLUSTER_DIR' -p $(kmd_port_of "$n") app"
  kmd_psql_on "$n" -c "CREATE EXTENSION kommander"
}

# A cluster of $1 nodes (extra settings on stdin): node1 bootstraps, the
# others join through it.
kmd_cluster_up() {
  local nodes="$1" extra n
  extra="$(cat)"
  mkdir -p "$KMD_CLUSTER_DIR"
  [ "$(id -u)" = 0 ] && chown postgres:postgres "$KMD_CLUSTER_DIR"
  for n in $(seq 1 "$nodes"); do
    echo "$extra" | kmd_node_up "$n" || return 1
  done
  kmd_psql_on 1 -c "SELECT kmd_bootstrap('node1', '$(kmd_conninfo_of 1)') AS cluster_id" || return 1
  for n in $(seq 2 "$nodes"); do
    kmd_psql_on "$n" -c "SELECT kmd_join('node$n', '$(kmd_conninfo_of "$n")', '$(kmd_conninfo_of 1)') AS node_id" || return 1
  done
}

# Stop the $1 nodes of the cluster (fast), those that run.
kmd_cluster_down() {
  local n
  for n in $(seq 1 "$1"); do
    if [ -f "$KMD_CLUSTER_DIR/node$n/postmaster.pid" ]; then
      kmd_as_postgres "$PG_BIN/pg_ctl -D '$KMD_CLUSTER_DIR/node$n' -m fast stop" >/dev/null || true
    fi
  done
}
