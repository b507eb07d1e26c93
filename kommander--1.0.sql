/* kommander--1.0.sql: catalog, SQL functions and views of kommander 1.0 */

\echo Use "CREATE EXTENSION kommander" to load this file. \quit

CREATE SCHEMA kommander;
GRANT USAGE ON SCHEMA kommander TO PUBLIC;

-- The role that peers connect as to deliver Raft messages.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'kommander_peer') THEN
        CREATE ROLE kommander_peer NOLOGIN;
    END IF;
END
$$;

------------------------------------------------------------------------
-- This node's identity: local, never replicated.
------------------------------------------------------------------------
CREATE TABLE kommander.local (
    singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    node_id     int NOT NULL,
    cluster_id  uuid NOT NULL,
    -- a joined node's roster is a copy as of this system partition index:
    -- roster changes up to it are already in the copy, not applied again
    roster_index bigint NOT NULL DEFAULT 0,
    -- the WAL timeline the node had when it took its identity: on another
    -- one its data went back (restored to a point, promoted from a standby)
    -- and it must not run as this node
    timeline    bigint
);

-- The token this data directory joins with, made before it asks to be
-- added: a join tried again from here gives the same one and gets back
-- the id its first try was given; another server joining under the same
-- name (a wiped disk) gives another, and is refused that id.
CREATE TABLE kommander.join_token (
    singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    token       uuid NOT NULL
);

------------------------------------------------------------------------
-- Raft storage, one row set per partition (DESIGN.md, Storage).
------------------------------------------------------------------------
CREATE TABLE kommander.log (
    partition_id int NOT NULL,
    idx          bigint NOT NULL,
    term         bigint NOT NULL,
    kind         smallint NOT NULL,
    data         bytea,
    PRIMARY KEY (partition_id, idx)
);

CREATE TABLE kommander.hard_state (
    partition_id int PRIMARY KEY,
    term         bigint NOT NULL,
    vote         int NOT NULL,
    commit_index bigint NOT NULL
);

-- The snapshot marker: the log up to idx is replaced by the state as of idx;
-- conf is the Raft configuration in force there (encoded by the runtime).
-- image_wanted: the partition's state here must come from an image of
-- another node before its log is applied (it was created here by an image
-- of another partition, so its rows are not its state at idx).
CREATE TABLE kommander.snapshot (
    partition_id int PRIMARY KEY,
    idx          bigint NOT NULL,
    term         bigint NOT NULL,
    conf         bytea NOT NULL,
    image_wanted boolean NOT NULL DEFAULT false
);

CREATE TABLE kommander.applied (
    partition_id  int PRIMARY KEY,
    applied_index bigint NOT NULL,
    applied_term  bigint NOT NULL
);

------------------------------------------------------------------------
-- The system partition's state machine: written only by applied entries.
------------------------------------------------------------------------
CREATE TABLE kommander.roster (
    node_id   int PRIMARY KEY,
    node_name text NOT NULL UNIQUE,
    conninfo  text NOT NULL,
    role      text NOT NULL CHECK (role IN ('voter', 'learner', 'removing')),
    -- the login role this node's peer connections use; when set, the other
    -- nodes take batches from this node only from a session of that role
    peer_role text CHECK (peer_role <> ''),
    -- the join token of the server that took this learner's id (NULL: added
    -- by kmd_add_node without one, and no server has asked for it since)
    join_token uuid
);

-- Key-hash range [lo, hi) of each user partition; hi NULL means unbounded above.
-- A merged-away partition stays as a tombstone (state 'gone') for fencing.
CREATE TABLE kommander.partition_map (
    partition_id int PRIMARY KEY,
    lo           bigint,            -- NULL for the system partition (no keys)
    hi           bigint,
    generation   bigint NOT NULL,
    state        text NOT NULL CHECK (state IN ('active', 'frozen', 'gone')),
    frozen_at    bigint,            -- frozen: index of the freeze in its own log
    parent       int,               -- the partition whose log split it off
    merged_into  int                -- gone: the partition whose log merged it
);

-- Counters of the system partition's state machine (next_partition_id, next_node_id).
CREATE TABLE kommander.counters (
    name  text PRIMARY KEY,
    value bigint NOT NULL
);

CREATE TABLE kommander.tables (
    relid       regclass PRIMARY KEY,
    registered  bigint NOT NULL     -- system partition index of the registration
);

CREATE TABLE kommander.appliers (
    name       text PRIMARY KEY,
    fn         regprocedure NOT NULL,
    registered bigint NOT NULL      -- system partition index of the registration
);

-- Every statement kmd_ddl committed, by system partition index, and the
-- role that called kmd_ddl, which every node runs it as (NULL: an entry
-- that names none, run as the apply worker's superuser): a node that
-- installs an image of the system partition runs those it has not run.
CREATE TABLE kommander.ddl (
    idx     bigint PRIMARY KEY,
    command text NOT NULL,
    role    text,
    rules   int NOT NULL DEFAULT 0  -- the entry's KMD_RULE_* bits
);

-- The outcome of each recent command that carried a "request_id", so that
-- a retry gets it and applies nothing again (src/requests.c).  State of
-- user partitions: a row belongs to the partition that owns its key, is
-- written by the entry that first used the id and deleted by a later entry
-- of the partition, and an image of the partition carries it.
CREATE TABLE kommander.requests (
    key          text NOT NULL,        -- the command's routing key
    request_id   text NOT NULL,
    at           timestamptz NOT NULL, -- the entry's time (apply_context.at)
    command_hash bigint NOT NULL,      -- of the command the id came with
    idx          bigint NOT NULL,      -- the entry, and its outcome:
    term         bigint NOT NULL,
    partition_id integer NOT NULL,     -- whose log holds the entry
    applied      boolean NOT NULL,
    sqlstate     text NOT NULL,
    message      text,
    detail       text,
    result       text,
    PRIMARY KEY (key, request_id)
);

-- What an applier function learns about the entry it applies: the same on
-- every node (API.md, Appliers).
CREATE TYPE kommander.apply_context AS (
    partition_id int,
    index        bigint,
    term         bigint,
    key          text,
    origin_node  int,
    at           timestamptz        -- when proposed, by the proposer's clock
);

REVOKE ALL ON ALL TABLES IN SCHEMA kommander FROM PUBLIC;
GRANT SELECT ON kommander.partition_map, kommander.tables,
    kommander.appliers, kommander.applied, kommander.counters TO PUBLIC;
-- a conninfo may hold a password: kommander.nodes shows it masked
GRANT SELECT (node_id, node_name, role, peer_role) ON kommander.roster TO PUBLIC;
-- peers copy a partition's rows of it into their images
GRANT SELECT ON kommander.requests TO kommander_peer;
-- a node whose partitions wait for images asks which statements ran
GRANT SELECT (idx) ON kommander.ddl TO kommander_peer;

------------------------------------------------------------------------
-- Cluster life cycle
------------------------------------------------------------------------
-- peer_role: the login role this node's Raft workers connect to its peers
-- as (NULL: the user of each peer's conninfo, and no check by peers).
CREATE FUNCTION kmd_bootstrap(node_name text, conninfo text, peer_role text DEFAULT NULL)
RETURNS uuid AS 'MODULE_PATHNAME', 'kmd_bootstrap' LANGUAGE C;

CREATE FUNCTION kmd_join(node_name text, conninfo text, seed_conninfo text,
                         promote boolean DEFAULT true, peer_role text DEFAULT NULL)
RETURNS int AS 'MODULE_PATHNAME', 'kmd_join' LANGUAGE C;

-- join_token: the joining server's (kommander.join_token), given by kmd_join
CREATE FUNCTION kmd_add_node(node_name text, conninfo text, peer_role text DEFAULT NULL,
                             join_token uuid DEFAULT NULL)
RETURNS int AS 'MODULE_PATHNAME', 'kmd_add_node' LANGUAGE C;

CREATE FUNCTION kmd_promote_node(node_name text)
RETURNS void AS 'MODULE_PATHNAME', 'kmd_promote_node' LANGUAGE C;

CREATE FUNCTION kmd_remove_node(node_name text)
RETURNS void AS 'MODULE_PATHNAME', 'kmd_remove_node' LANGUAGE C;

CREATE FUNCTION kmd_transfer_leader(partition_id int, node_name text)
RETURNS void AS 'MODULE_PATHNAME', 'kmd_transfer_leader' LANGUAGE C;

REVOKE ALL ON FUNCTION kmd_bootstrap(text, text, text), kmd_join(text, text, text, boolean, text),
    kmd_add_node(text, text, text, uuid), kmd_promote_node(text), kmd_remove_node(text),
    kmd_transfer_leader(int, text) FROM PUBLIC;

------------------------------------------------------------------------
-- Control tables
------------------------------------------------------------------------
CREATE FUNCTION kmd_ddl(command text)
RETURNS bigint AS 'MODULE_PATHNAME', 'kmd_ddl' LANGUAGE C;

CREATE FUNCTION kmd_register_table(tbl regclass)
RETURNS void AS 'MODULE_PATHNAME', 'kmd_register_table' LANGUAGE C;

CREATE FUNCTION kmd_register_applier(name text, fn regprocedure)
RETURNS void AS 'MODULE_PATHNAME', 'kmd_register_applier' LANGUAGE C;

REVOKE ALL ON FUNCTION kmd_ddl(text), kmd_register_table(regclass),
    kmd_register_applier(text, regprocedure) FROM PUBLIC;

-- Statement trigger on every control table: rejects writes from sessions.
CREATE FUNCTION kommander.control_table_guard()
RETURNS trigger AS 'MODULE_PATHNAME', 'kmd_control_table_guard' LANGUAGE C;

-- Row trigger on every control table: a command writes only rows of its
-- own partition.
CREATE FUNCTION kommander.control_row_guard()
RETURNS trigger AS 'MODULE_PATHNAME', 'kmd_control_row_guard' LANGUAGE C;

-- kommander makes these triggers itself; one a role put on a table of its
-- own would make the table pass for a control table (registered nowhere)
REVOKE EXECUTE ON FUNCTION kommander.control_table_guard(), kommander.control_row_guard() FROM PUBLIC;

------------------------------------------------------------------------
-- Writing and reading
------------------------------------------------------------------------
CREATE FUNCTION kmd_propose(key text, command jsonb, expected_generation bigint DEFAULT NULL)
RETURNS bigint AS 'MODULE_PATHNAME', 'kmd_propose' LANGUAGE C;

CREATE FUNCTION kmd_propose_result(key text, command jsonb, expected_generation bigint DEFAULT NULL)
RETURNS jsonb AS 'MODULE_PATHNAME', 'kmd_propose_result' LANGUAGE C;

CREATE FUNCTION kmd_read_barrier(key text DEFAULT NULL)
RETURNS bigint AS 'MODULE_PATHNAME', 'kmd_read_barrier' LANGUAGE C;

CREATE FUNCTION kmd_key_hash(key text)
RETURNS bigint AS 'MODULE_PATHNAME', 'kmd_key_hash'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE FUNCTION kmd_route(key text)
RETURNS TABLE (partition_id int, generation bigint, leader text)
AS 'MODULE_PATHNAME', 'kmd_route' LANGUAGE C;

------------------------------------------------------------------------
-- Partitions
------------------------------------------------------------------------
CREATE FUNCTION kmd_split(partition_id int, at bigint DEFAULT NULL)
RETURNS int AS 'MODULE_PATHNAME', 'kmd_split' LANGUAGE C;

CREATE FUNCTION kmd_create_partitions(n int)
RETURNS SETOF int AS 'MODULE_PATHNAME', 'kmd_create_partitions' LANGUAGE C;

CREATE FUNCTION kmd_merge(left_id int, right_id int)
RETURNS int AS 'MODULE_PATHNAME', 'kmd_merge' LANGUAGE C;

CREATE FUNCTION kmd_rebalance()
RETURNS int AS 'MODULE_PATHNAME', 'kmd_rebalance' LANGUAGE C;

REVOKE ALL ON FUNCTION kmd_split(int, bigint), kmd_create_partitions(int),
    kmd_merge(int, int), kmd_rebalance() FROM PUBLIC;

------------------------------------------------------------------------
-- Transport: peers call this to hand over a batch of messages.
------------------------------------------------------------------------
CREATE FUNCTION kommander.deliver(batch bytea)
RETURNS boolean AS 'MODULE_PATHNAME', 'kmd_deliver' LANGUAGE C STRICT;

REVOKE ALL ON FUNCTION kommander.deliver(bytea) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION kommander.deliver(bytea) TO kommander_peer;

-- The same as a stream: a peer's Raft worker calls this once per
-- connection, which then carries its batches in COPY BOTH mode.
CREATE PROCEDURE kommander.peer_stream()
AS 'MODULE_PATHNAME', 'kmd_peer_stream' LANGUAGE C;

REVOKE ALL ON PROCEDURE kommander.peer_stream() FROM PUBLIC;
GRANT EXECUTE ON PROCEDURE kommander.peer_stream() TO kommander_peer;

-- Partition images: a node whose log cannot catch up copies a partition's
-- state from a peer.  In one REPEATABLE READ transaction on the peer, this
-- describes the image (its index, term and configuration, the partition's
-- map rows, a row count and checksum per control table); the rows follow
-- by COPY, read by the same role with the same snapshot.
CREATE FUNCTION kommander.image_manifest(partition_id int, cluster_id uuid, to_node int)
RETURNS jsonb AS 'MODULE_PATHNAME', 'kmd_image_manifest'
LANGUAGE C SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

REVOKE ALL ON FUNCTION kommander.image_manifest(int, uuid, int) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION kommander.image_manifest(int, uuid, int) TO kommander_peer;

-- kmd_key_hash under a fixed name, for the range filters of images.
CREATE FUNCTION kommander.key_hash(key text)
RETURNS bigint AS 'MODULE_PATHNAME', 'kmd_key_hash'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

-- An entry forgets its partition's old request ids by time and key hash
-- (src/requests.c): the hash in the index, so that the old rows of other
-- partitions, which their own entries forget, are passed over without a
-- read of the table.
CREATE INDEX requests_at_hash ON kommander.requests (at, kommander.key_hash(key));

------------------------------------------------------------------------
-- Observing
------------------------------------------------------------------------
CREATE FUNCTION kommander.node_status(OUT node_id int, OUT is_local boolean,
                                      OUT reachable boolean, OUT last_contact timestamptz,
                                      OUT batches_dropped bigint)
RETURNS SETOF record AS 'MODULE_PATHNAME', 'kmd_node_status' LANGUAGE C;

-- A conninfo as the caller may see it: whole for superusers, else with
-- password=******** (and so for sslpassword).
CREATE FUNCTION kommander.visible_conninfo(conninfo text)
RETURNS text AS 'MODULE_PATHNAME', 'kmd_visible_conninfo' LANGUAGE C STABLE STRICT;

CREATE VIEW kommander.nodes AS
    SELECT r.node_id, r.node_name, kommander.visible_conninfo(r.conninfo) AS conninfo, r.role,
           coalesce(s.is_local, false) AS is_local,
           coalesce(s.reachable, false) AS reachable,
           s.last_contact,
           coalesce(s.batches_dropped, 0) AS batches_dropped
      FROM kommander.roster r
      LEFT JOIN kommander.node_status() s USING (node_id)
     ORDER BY r.node_id;

CREATE FUNCTION kommander.partition_status(
    OUT partition_id int, OUT role text, OUT term bigint, OUT leader_id int,
    OUT commit_index bigint, OUT applied_index bigint, OUT last_index bigint,
    OUT snapshot_index bigint, OUT voters int, OUT quiesced boolean,
    OUT stalled text, OUT stall_error text, OUT stalled_since timestamptz)
RETURNS SETOF record AS 'MODULE_PATHNAME', 'kmd_partition_status' LANGUAGE C;

-- stalled: why the partition does not move on here, NULL when it does:
-- 'retrying' (a failure of this node, tried again after a backoff),
-- 'stopped' (an entry this node cannot decode), 'offline' (its Raft group
-- does not run: its durable state here is inconsistent); stall_error says
-- what failed ('SQLSTATE: message').
CREATE VIEW kommander.partitions AS
    SELECT m.partition_id, m.lo, m.hi, m.generation, m.state,
           s.role, s.term, l.node_name AS leader_name,
           s.commit_index, s.applied_index, s.last_index, s.snapshot_index,
           s.voters, s.quiesced, s.stalled, s.stall_error, s.stalled_since
      FROM kommander.partition_map m
      LEFT JOIN kommander.partition_status() s USING (partition_id)
      LEFT JOIN kommander.roster l ON l.node_id = s.leader_id
     WHERE m.state <> 'gone'
     ORDER BY m.partition_id;

-- (views made after the REVOKE of every table above: what default
-- privileges gave PUBLIC goes, but SELECT)
REVOKE ALL ON kommander.nodes, kommander.partitions FROM PUBLIC;
GRANT SELECT ON kommander.nodes, kommander.partitions TO PUBLIC;

-- Counters, gauges and latency in shared memory (zero at every server start).
CREATE FUNCTION kommander.stat_values(OUT name text, OUT partition_id int, OUT value bigint)
RETURNS SETOF record AS 'MODULE_PATHNAME', 'kmd_stat_values' LANGUAGE C;

CREATE VIEW kommander.stats AS
    SELECT name, partition_id, value FROM kommander.stat_values();

CREATE FUNCTION kommander.latency_values(
    OUT operation text, OUT partition_id int, OUT count bigint,
    OUT p50_ms float8, OUT p90_ms float8, OUT p99_ms float8, OUT max_ms float8)
RETURNS SETOF record AS 'MODULE_PATHNAME', 'kmd_latency_values' LANGUAGE C;

CREATE VIEW kommander.latency AS
    SELECT operation, partition_id, count, p50_ms, p90_ms, p99_ms, max_ms
      FROM kommander.latency_values();

CREATE FUNCTION kommander.peer_status(
    OUT partition_id int, OUT node_id int, OUT match_index bigint,
    OUT next_index bigint, OUT inflight int, OUT lag bigint, OUT state text)
RETURNS SETOF record AS 'MODULE_PATHNAME', 'kmd_peer_status' LANGUAGE C;

-- On a leader: each other member of the groups it leads.
CREATE VIEW kommander.peers AS
    SELECT p.partition_id, p.node_id, r.node_name, p.match_index, p.next_index,
           p.inflight, p.lag, s.last_contact, p.state
      FROM kommander.peer_status() p
      LEFT JOIN kommander.roster r USING (node_id)
      LEFT JOIN kommander.node_status() s USING (node_id)
     ORDER BY p.partition_id, p.node_id;

REVOKE ALL ON kommander.stats, kommander.latency, kommander.peers FROM PUBLIC;
GRANT SELECT ON kommander.stats, kommander.latency, kommander.peers TO PUBLIC;

-- kmd_join writes the joining node's identity through this, over a
-- connection to the node itself, so that it commits before kmd_join returns.
CREATE FUNCTION kommander.join_local(node_id int, cluster_id uuid, roster jsonb,
                                     roster_index bigint, next_node_id bigint)
RETURNS void AS 'MODULE_PATHNAME', 'kmd_join_local' LANGUAGE C;
REVOKE ALL ON FUNCTION kommander.join_local(int, uuid, jsonb, bigint, bigint) FROM PUBLIC;

------------------------------------------------------------------------
-- Leases (src/lease.c): state of the partition that owns each lease's id
-- (routed as the id's text) and of the partition of each attached row;
-- partition images carry both tables.
------------------------------------------------------------------------
CREATE TABLE kommander.lease_state (
    id          bigint PRIMARY KEY,
    ttl_ms      bigint NOT NULL,
    granted_at  timestamptz NOT NULL,   -- the granting entry's time
    renewed_at  timestamptz NOT NULL,   -- the last keepalive's (or grant's)
    renewed_idx bigint NOT NULL         -- and its index in the log, or one
                                        -- more than the last renewal's
);

-- The rows attached to a lease: the primary key of each, under its
-- routing key; the entry that ends the lease deletes them.
CREATE TABLE kommander.lease_rows (
    key   text NOT NULL,
    tbl   text NOT NULL,                -- quoted, qualified table name
    pk    jsonb NOT NULL,
    lease bigint NOT NULL,
    PRIMARY KEY (key, tbl, pk)
);
CREATE INDEX lease_rows_lease ON kommander.lease_rows (lease);
-- a row deleted by an applier, a trigger or a cascade is found by its key
CREATE INDEX lease_rows_row ON kommander.lease_rows (tbl, pk);

-- This node's note of the rows a lease that ended left in other
-- partitions (a split since they were attached parted them), by the hash
-- of their routing keys: the leader of each partition holding some
-- proposes a "drop" entry there that deletes them.  Written by the entry
-- that ends the lease, deleted by the drop; read again when the apply
-- worker starts, so that a restart in between forgets nothing.  An image
-- of the lease's partition carries the sender's notes of it (routed by
-- the lease's id), which the receiver adds to its own, so that a node that
-- took the end of a lease from an image drops the rows too once it leads
-- their partition.
CREATE TABLE kommander.lease_orphans (
    lease    bigint NOT NULL,
    key_hash bigint NOT NULL,
    PRIMARY KEY (lease, key_hash)
);
GRANT SELECT ON kommander.lease_state, kommander.lease_rows, kommander.lease_orphans
    TO kommander_peer;

CREATE FUNCTION kmd_lease_grant(ttl interval, key text DEFAULT NULL)
RETURNS bigint AS 'MODULE_PATHNAME', 'kmd_lease_grant' LANGUAGE C;
CREATE FUNCTION kmd_lease_keepalive(id bigint)
RETURNS interval AS 'MODULE_PATHNAME', 'kmd_lease_keepalive' LANGUAGE C;
CREATE FUNCTION kmd_lease_revoke(id bigint)
RETURNS void AS 'MODULE_PATHNAME', 'kmd_lease_revoke' LANGUAGE C;
-- whoever holds a lease's id can end it, and so delete its rows: grant
-- these to the roles that run clients
REVOKE ALL ON FUNCTION kmd_lease_grant(interval, text), kmd_lease_keepalive(bigint),
    kmd_lease_revoke(bigint) FROM PUBLIC;

CREATE FUNCTION kommander.lease_countdown(id bigint)
RETURNS timestamptz AS 'MODULE_PATHNAME', 'kmd_lease_countdown' LANGUAGE C STRICT;
-- as the view below: a lease's id is what ends it
REVOKE ALL ON FUNCTION kommander.lease_countdown(bigint) FROM PUBLIC;

-- expires_at is renewed_at plus the TTL, by the clocks of the proposing
-- nodes: what the leader of the partition decides by is its own clock,
-- countdown_ends.
-- Functions and operators are named where an argument would need a cast
-- to match pg_catalog's: one of another schema matching exactly would be
-- bound into the view.
CREATE VIEW kommander.leases AS
    SELECT l.id, m.partition_id,
           pg_catalog.make_interval(secs => l.ttl_ms OPERATOR(pg_catalog./) 1000.0) AS ttl,
           l.granted_at, l.renewed_at,
           l.renewed_at + pg_catalog.make_interval(secs => l.ttl_ms OPERATOR(pg_catalog./) 1000.0) AS expires_at,
           (SELECT count(*) FROM kommander.lease_rows r WHERE r.lease = l.id) AS rows,
           kommander.lease_countdown(l.id) AS countdown_ends
      FROM kommander.lease_state l
      LEFT JOIN kommander.partition_map m
        ON m.partition_id > 0 AND m.state <> 'gone'
       AND kommander.key_hash(l.id::text) >= m.lo
       AND (m.hi IS NULL OR kommander.key_hash(l.id::text) < m.hi)
     ORDER BY l.id;

-- made after the REVOKE of every table above: nothing default privileges
-- gave PUBLIC stays (a lease's id is what ends it)
REVOKE ALL ON kommander.lease_state, kommander.lease_rows, kommander.lease_orphans,
    kommander.leases FROM PUBLIC;
