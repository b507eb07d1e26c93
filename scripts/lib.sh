#!/usr/bin/env bash
# scripts/lib.sh
#   Shared by scripts/test.sh and scripts/demo.sh: install what is missing,
#   build and install the extension, and run commands as the postgres user.
#
# Copyright (c) 2026, kommander developers

KMD_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
KMD_PACKAGES="postgresql-15 postgresql-server-dev-15 libpq-dev libprotobuf-c-dev
protobuf-c-compiler libipc-run-perl libcmocka-dev make gcc"
PG_BIN=/usr/lib/postgresql/15/bin

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

# Build with warnings as errors and install into the system's Postgres.
kmd_build_install() {
  (cd "$KMD_ROOT" && make -s WERROR=1 PG_CONFIG="$PG_BIN/pg_config" && \
     make -s install PG_CONFIG="$PG_BIN/pg_config") >/dev/null
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
