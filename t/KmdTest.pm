# KmdTest.pm
#   Helpers for kommander's TAP tests: nodes with kommander preloaded, a
#   cluster formed with kmd_bootstrap and kmd_join, and waits on cluster
#   state.  Every wait polls with a deadline (poll_query_until), never sleeps.
#
# Copyright (c) 2026, kommander developers
#
# t/KmdTest.pm

package KmdTest;

use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use Fcntl qw(:flock);
use File::Path ();

# Short Raft timings keep failover tests quick; they are still far above
# what the machine needs to answer a heartbeat.
our $ELECTION_TIMEOUT_MS = 500;
our $HEARTBEAT_MS = 50;

# $node->init, with the data directory copied from one initdb per test run
# instead of an initdb per node (a second or more each on a busy machine,
# and a run makes a hundred nodes).  PostgreSQL::Test::Cluster runs initdb
# through system_or_bail; that one call is turned into a copy of the
# template, made by the first node of the run under a lock (test files run
# side by side).  Everything else init does (the settings it appends, the
# port) is its own.  The nodes share a system identifier, which kommander
# does not use.
sub init_node
{
	my ($node) = @_;
	my $run = \&PostgreSQL::Test::Utils::system_or_bail;
	no warnings 'redefine';
	local *PostgreSQL::Test::Utils::system_or_bail = sub {
		my @cmd = @_;
		return $run->(@cmd) unless $cmd[0] eq 'initdb' && $cmd[1] eq '-D';
		my $pgdata = $cmd[2];
		my $template = "$PostgreSQL::Test::Utils::tmp_check/initdb_template";
		open my $lock, '>', "$template.lock" or die "cannot open $template.lock: $!";
		flock($lock, LOCK_EX) or die "cannot lock $template.lock: $!";
		if (!-d $template)
		{
			$run->('initdb', '-D', "$template.tmp", @cmd[ 3 .. $#cmd ]);
			rename("$template.tmp", $template) or die "cannot rename $template.tmp: $!";
		}
		close $lock;
		$run->('cp', '-RPp', $template, $pgdata);
	};
	$node->init;
	return;
}

# A started node with kommander loaded and the extension created.
sub new_node
{
	my ($name, %opts) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	init_node($node);
	set_up_node($node, %opts);
	return $node;
}

# $node, stopped at once, started again on a new data directory (a wiped
# disk) with what new_node gave it: the same port, so the same conninfo.
sub wipe_node
{
	my ($node, %opts) = @_;
	$node->stop('immediate');
	File::Path::rmtree($node->data_dir);
	init_node($node);
	set_up_node($node, %opts);
	return;
}

sub set_up_node
{
	my ($node, %opts) = @_;
	$node->append_conf('postgresql.conf', <<"EOC");
shared_preload_libraries = 'kommander'
kommander.database = 'postgres'
kommander.election_timeout = $ELECTION_TIMEOUT_MS
kommander.heartbeat_interval = $HEARTBEAT_MS
kommander.propose_timeout = 20000
# two Raft workers whatever the machine's cores: partitions of one node
# live in different workers (t/010 checks the automatic choice)
kommander.workers = 2
max_worker_processes = 16
log_min_messages = warning
EOC
	$node->append_conf('postgresql.conf', $opts{conf}) if $opts{conf};
	$node->start;
	$node->safe_psql('postgres', 'CREATE EXTENSION kommander');
	return;
}

# Rows k<from>..k<to> of kv (with its column n, which tests add) upserted
# through $node, one proposal after the other, in one session.
sub write_rows
{
	my ($node, $from, $to) = @_;
	$node->safe_psql('postgres', qq{
DO \$\$
BEGIN
  FOR i IN $from..$to LOOP
    PERFORM kmd_propose('k' || i, jsonb_build_object('op', 'upsert', 'table', 'kv',
      'row', jsonb_build_object('k', 'k' || i, 'v', md5(i::text), 'n', i)));
  END LOOP;
END \$\$});
	return;
}

# Partition 1 split in two; every node of @$nodes knows a leader of each.
sub split_in_two
{
	my ($nodes) = @_;
	$nodes->[0]->safe_psql('postgres', 'SELECT kmd_split(1)');
	for my $node (@$nodes)
	{
		$node->poll_query_until('postgres',
			"SELECT count(*) = 2 FROM kommander.partitions WHERE partition_id > 0 AND leader_name IS NOT NULL")
		  or die 'the split did not reach ' . $node->name;
	}
	return;
}

# How peers reach a node.
sub conninfo
{
	my ($node) = @_;
	return $node->connstr('postgres');
}

sub quote
{
	my ($s) = @_;
	$s =~ s/'/''/g;
	return "'$s'";
}

# n nodes: the first bootstraps, the others join through it and are promoted.
sub new_cluster
{
	my ($n, %opts) = @_;
	my @nodes = map { new_node("node$_", %opts) } (1 .. $n);
	$nodes[0]->safe_psql('postgres',
		"SELECT kmd_bootstrap('node1', " . quote(conninfo($nodes[0])) . ")");
	wait_leaders($nodes[0]);
	for my $i (1 .. $n - 1)
	{
		my $id = $nodes[$i]->safe_psql('postgres',
			"SELECT kmd_join('node" . ($i + 1) . "', " . quote(conninfo($nodes[$i]))
			  . ", " . quote(conninfo($nodes[0])) . ")");
		is($id, $i + 1, "node" . ($i + 1) . " joined with id " . ($i + 1));
	}
	wait_voters(\@nodes, $n) if $n > 1;
	return @nodes;
}

# Every partition of the node knows a leader.
sub wait_leaders
{
	my ($node) = @_;
	$node->poll_query_until('postgres',
		"SELECT count(*) > 0 AND bool_and(leader_name IS NOT NULL) FROM kommander.partitions WHERE state = 'active'")
	  or die "no leader on " . $node->name;
}

# Every node sees $n voters in the roster and every partition has a leader.
sub wait_voters
{
	my ($nodes, $n) = @_;
	for my $node (@$nodes)
	{
		$node->poll_query_until('postgres',
			"SELECT count(*) = $n FROM kommander.nodes WHERE role = 'voter'")
		  or die "roster not complete on " . $node->name;
		wait_leaders($node);
	}
	# every partition's group has every node as a voter: no learner left
	for my $node (@$nodes)
	{
		$node->poll_query_until('postgres',
			"SELECT bool_and(role IN ('leader', 'follower')) FROM kommander.partitions WHERE state = 'active'")
		  or die "a group still has a learner on " . $node->name;
	}
}

# A key ("$prefix<n>") that $node routes to $partition; dies if none of the
# first thousand does.
sub key_in
{
	my ($node, $partition, $prefix) = @_;
	my $key = $node->safe_psql('postgres', qq{
		SELECT k FROM generate_series(1, 1000) i, LATERAL (SELECT '$prefix' || i AS k) s,
		       LATERAL kmd_route(s.k) r
		 WHERE r.partition_id = $partition ORDER BY i LIMIT 1});
	die "no key routes to partition $partition on " . $node->name if $key eq '';
	return $key;
}

# The name of the node leading a partition, as $node sees it.
sub leader_of
{
	my ($node, $partition) = @_;
	return $node->safe_psql('postgres',
		"SELECT leader_name FROM kommander.partitions WHERE partition_id = $partition");
}

# Wait until every node has applied, for every partition, at least the
# highest commit index any of them reports now.
sub wait_converged
{
	my ($nodes) = @_;
	my %target;
	for my $node (@$nodes)
	{
		for my $row (split /\n/, $node->safe_psql('postgres',
				'SELECT partition_id, commit_index FROM kommander.partitions'))
		{
			my ($id, $c) = split /\|/, $row;
			$target{$id} = $c if !defined $target{$id} || $c > $target{$id};
		}
	}
	my $values = join(',', map { "($_, $target{$_})" } sort keys %target);
	for my $node (@$nodes)
	{
		$node->poll_query_until('postgres',
			"SELECT bool_and(p.applied_index >= t.c) FROM kommander.partitions p "
			  . "JOIN (VALUES $values) AS t(id, c) ON t.id = p.partition_id")
		  or return 0;
	}
	return 1;
}

# A client proposing from $node until the file "$dir/stop" exists (at most
# 5000 proposals, 120 s), appending each acknowledged key to "$dir/$tag.acked"
# and each key whose outcome is unknown (K0003) to "$dir/$tag.unknown"; the
# SQLSTATE of every failure goes to "$dir/$tag.codes" (see load_errors).
# $command is the jsonb command, with KEY standing for each proposal's key
# ("$tag-1", "$tag-2", ...).
sub start_load
{
	my ($node, $dir, $tag, $command) = @_;
	(my $cmd = $command) =~ s/KEY/\$key/g;
	$cmd =~ s/"/\\"/g;
	my $conninfo = conninfo($node);
	my $script = <<"EOS";
i=0
end=\$((SECONDS + 120))
while [ ! -e '$dir/stop' ] && [ \$i -lt 5000 ] && [ \$SECONDS -lt \$end ]; do
  i=\$((i + 1))
  key="$tag-\$i"
  if psql -X -q -t -A -v VERBOSITY=verbose -d '$conninfo' -c "SELECT kmd_propose('\$key', '$cmd')" >/dev/null 2>'$dir/$tag.last'; then
    echo "\$key" >> '$dir/$tag.acked'
  else
    cat '$dir/$tag.last' >> '$dir/$tag.err'
    code=\$(grep -o -m1 'ERROR:  [0-9A-Z]\\{5\\}' '$dir/$tag.last' | cut -c9-13)
    echo "\${code:-none} \$key" >> '$dir/$tag.codes'
    [ "\$code" = K0003 ] && echo "\$key" >> '$dir/$tag.unknown'
  fi
done
EOS
	return IPC::Run::start([ 'bash', '-c', $script ]);
}

# The failures a load client met that a client must not meet: any SQLSTATE
# but stale generation, no quorum, outcome unknown, frozen partition
# (K0001-K0004), overloaded (K0007, retry later) and a lost or refused
# connection (08xxx, 57P0x, or none: psql could not connect).  Returns the offending lines.
sub load_errors
{
	my ($dir, $tag) = @_;
	open(my $fh, '<', "$dir/$tag.codes") or return ();
	my @bad = grep { !/^(K000[1-47]|08...|57P0.|none) / } map { chomp; $_ } <$fh>;
	close $fh;
	return @bad;
}

# The keys a load client got K0003 for: committed or not, read to know.
sub unknown_keys
{
	my ($dir, $tag) = @_;
	open(my $fh, '<', "$dir/$tag.unknown") or return ();
	my @keys = map { chomp; $_ } <$fh>;
	close $fh;
	return @keys;
}

# Run $sql on $node expecting a failure: (exit code, SQLSTATE, message).
sub error_of
{
	my ($node, $sql) = @_;
	my ($rc, $out, $err) = $node->psql('postgres', $sql,
		extra_params => [ '-v', 'VERBOSITY=verbose' ]);
	my ($code, $msg) = $err =~ /ERROR:\s+([0-9A-Z]{5}):\s+([^\n]*)/;
	return ($rc, $code // '', $msg // $err);
}

# Start $sql through psql on $node without waiting for it; returns the
# IPC::Run handle (finish it) and a reference to its stderr, verbose.
sub start_sql
{
	my ($node, $sql) = @_;
	my ($out, $err) = ('', '');
	my $h = IPC::Run::start(
		[ 'psql', '-X', '-q', '-v', 'VERBOSITY=verbose', '-d', conninfo($node), '-c', $sql ],
		'>', \$out, '2>', \$err);
	return ($h, \$err);
}

# A digest of everything a node holds by consensus: every control table's
# rows, the counters, the roster, the live partitions of the map and the
# remembered outcomes of requests.
sub state_digest
{
	my ($node) = @_;
	my @tables = split /\n/, $node->safe_psql('postgres',
		'SELECT relid::text FROM kommander.tables ORDER BY relid::text');
	my $sql = join(' || ', (map { "coalesce((SELECT md5(string_agg(t::text, ',' ORDER BY t::text)) FROM $_ t), '-')" } @tables),
		q{coalesce((SELECT md5(string_agg(name || '=' || value, ',' ORDER BY name)) FROM kommander.counters), '-')},
		q{coalesce((SELECT md5(string_agg(node_id || node_name || role, ',' ORDER BY node_id)) FROM kommander.roster), '-')},
		q{coalesce((SELECT md5(string_agg(partition_id || ':' || coalesce(lo::text, '') || ':' || coalesce(hi::text, '') || ':' || generation || ':' || state, ',' ORDER BY partition_id)) FROM kommander.partition_map WHERE state <> 'gone'), '-')},
		q{coalesce((SELECT md5(string_agg(ROW(key, request_id, extract(epoch FROM at), command_hash, idx, term, partition_id, applied, sqlstate, message, detail, result)::text, ',' ORDER BY key, request_id)) FROM kommander.requests), '-')});
	return $node->safe_psql('postgres', "SELECT md5($sql)");
}

# Every node of @$nodes holds the same state as the first (state_digest).
sub same_state
{
	my ($nodes) = @_;
	my $want = state_digest($nodes->[0]);
	for my $node (@$nodes[ 1 .. $#$nodes ])
	{
		Test::More::is(state_digest($node), $want,
			$node->name . ' holds the same control tables, counters, roster, map and requests as '
			  . $nodes->[0]->name);
	}
}

# The keys a load client saw acknowledged.
sub acked_keys
{
	my ($dir, $tag) = @_;
	open(my $fh, '<', "$dir/$tag.acked") or return ();
	my @keys = map { chomp; $_ } <$fh>;
	close $fh;
	return @keys;
}

# Hold $holder's apply of each of @$partitions back: a row of kv in each is
# written through $writer, locked on $holder by an open transaction, and
# written again, so that $holder's apply worker retries that partition's
# update until the lock goes.  Returns the background session holding the
# locks (COMMIT and quit it to let go) and the keys, one per partition.
sub hold_back
{
	my ($writer, $holder, $partitions) = @_;
	my @keys = map { key_in($writer, $_, "held$_-") } @$partitions;
	my $upsert = sub {
		qq{SELECT kmd_propose('$_[0]', '{"op":"upsert","table":"kv","row":{"k":"$_[0]","v":"$_[1]"}}')};
	};
	my $list = join(', ', map { "'$_'" } @keys);
	$writer->safe_psql('postgres', $upsert->($_, '0')) for @keys;
	$holder->poll_query_until('postgres', "SELECT count(*) = " . @keys . " FROM kv WHERE k IN ($list)")
	  or die $holder->name . " did not apply the first writes";
	my $locker = $holder->background_psql('postgres');
	$locker->query_safe('BEGIN');
	$locker->query_safe("SELECT * FROM kv WHERE k IN ($list) FOR UPDATE");
	$writer->safe_psql('postgres', $upsert->($_, '1')) for @keys;
	$holder->poll_query_until('postgres',
		"SELECT count(*) = " . @$partitions . " FROM kommander.partitions WHERE partition_id IN ("
		  . join(', ', @$partitions) . ") AND stalled = 'retrying'")
	  or die $holder->name . " did not hold back partitions @$partitions";
	return ($locker, @keys);
}

# $node takes the lead of $partition; counts as one test.
sub lead
{
	my ($node, $partition) = @_;
	$node->safe_psql('postgres', "SELECT kmd_transfer_leader($partition, '" . $node->name . "')");
	Test::More::ok($node->poll_query_until('postgres',
		"SELECT leader_name = '" . $node->name . "' FROM kommander.partitions WHERE partition_id = $partition"),
		$node->name . " leads partition $partition");
}

# A lease granted through $node with twenty rows of public.claims (job
# text PRIMARY KEY, owner text; created and registered here) attached,
# "job-1" to "job-20", all in partition 1, which is then split in two so
# that some of the rows are parted from the lease; counts as two tests.
# Returns the lease, the partition that owns it and the other one.
sub parted_lease
{
	my ($nodes) = @_;
	my $node = $nodes->[0];
	$node->safe_psql('postgres', q{
SELECT kmd_ddl('CREATE TABLE public.claims (job text PRIMARY KEY, owner text)');
SELECT kmd_register_table('public.claims');
});
	wait_converged($nodes);
	my $lease = $node->safe_psql('postgres', "SELECT kmd_lease_grant('10 min', 'job-1')");
	$node->safe_psql('postgres', qq{SELECT kmd_propose('$_',
	'{"op":"insert","table":"claims","row":{"job":"$_","owner":"w"},"lease":$lease}')})
	  for map { "job-$_" } (1 .. 20);
	Test::More::is($node->safe_psql('postgres', 'SELECT kmd_split(1)'), '2', 'partition 1 split in two');
	wait_leaders($_) for @$nodes;
	my $home = $node->safe_psql('postgres', "SELECT partition_id FROM kommander.leases WHERE id = $lease");
	my $away = $home == 1 ? 2 : 1;
	my $parted = $node->safe_psql('postgres',
		"SELECT count(*) FROM claims c, LATERAL kmd_route(c.job) r WHERE r.partition_id = $away");
	Test::More::ok($parted > 0 && $parted < 20, "the split put $parted of the lease's rows in partition $away");
	wait_converged($nodes);
	return ($lease, $home, $away);
}

# Propose $n commands through $node, each for a key "$prefix<i>" that
# $node routes to $partition; $command is the command as an SQL jsonb
# expression of that key, `k'.
sub propose_routed
{
	my ($node, $partition, $prefix, $n, $command) = @_;
	$node->safe_psql('postgres', qq{
DO \$\$
DECLARE
  n int := 0;
  i int := 0;
  k text;
BEGIN
  WHILE n < $n LOOP
    i := i + 1;
    k := '$prefix' || i;
    IF (SELECT partition_id FROM kmd_route(k)) = $partition THEN
      PERFORM kmd_propose(k, $command);
      n := n + 1;
    END IF;
  END LOOP;
END \$\$});
}

# Write 250 rows of kv through $node, all routed to $partition, and wait
# until the compacted log of $partition on $node starts past $index (the
# nodes run with a small kommander.snapshot_threshold); false if it does not.
sub compact_past
{
	my ($node, $partition, $index) = @_;
	propose_routed($node, $partition, 'c', 250,
		q{jsonb_build_object('op', 'upsert', 'table', 'kv', 'row', jsonb_build_object('k', k, 'v', 'c'))});
	return $node->poll_query_until('postgres',
		"SELECT snapshot_index > $index FROM kommander.partitions WHERE partition_id = $partition");
}

# The system partition compacted by $node past index $index: eighty kmd_ddl
# statements (comments on public.kv) through $node, then a wait until its
# snapshot passes $index (kommander.snapshot_threshold must be low enough).
# Returns the wait's result.
sub compact_system_past
{
	my ($node, $index) = @_;
	$node->safe_psql('postgres', q{
DO $$
BEGIN
  FOR i IN 1..80 LOOP
    PERFORM kmd_ddl('COMMENT ON TABLE public.kv IS ''comment ' || i || '''');
  END LOOP;
END $$});
	return $node->poll_query_until('postgres',
		"SELECT snapshot_index > $index FROM kommander.partitions WHERE partition_id = 0");
}

# The table most tests write to, created and registered through $node:
# public.kv (k text PRIMARY KEY, v text).
# One upsert of kv's row $key (value 'x') through $node, which may fail:
# psql's (exit code, stdout, stderr), the error's SQLSTATE in stderr.
sub try_upsert
{
	my ($node, $key) = @_;
	return $node->psql('postgres', qq{\\set VERBOSITY verbose
SELECT kmd_propose('$key', jsonb_build_object('op', 'upsert', 'table', 'kv',
  'row', jsonb_build_object('k', '$key', 'v', 'x')))});
}

# Upsert one row of kv per key, value 'x', each in a kmd_propose of its own
# through $node.
sub upsert_kv
{
	my ($node, @keys) = @_;
	$node->safe_psql('postgres', join(";\n", map {
		"SELECT kmd_propose('$_', '{\"op\":\"upsert\",\"table\":\"kv\",\"row\":{\"k\":\"$_\",\"v\":\"x\"}}')"
	} @keys));
}

sub create_kv
{
	my ($node) = @_;
	$node->safe_psql('postgres', q{
SELECT kmd_ddl('CREATE TABLE public.kv (k text PRIMARY KEY, v text)');
SELECT kmd_register_table('public.kv');
});
}

# How many active user partitions' ranges break the tiling of the hash space
# on $node (a hole, an overlap, a first range not starting at the lowest hash
# or a last one bounded above); 0 when they tile it.
sub range_defects
{
	my ($node) = @_;
	return $node->safe_psql('postgres', q{
		SELECT count(*) FROM (SELECT lo, hi, lag(hi) OVER (ORDER BY lo) AS prev,
		                             row_number() OVER (ORDER BY lo) AS n, count(*) OVER () AS total
		  FROM kommander.partitions WHERE partition_id > 0 AND state = 'active') r
		 WHERE (n = 1 AND lo <> -9223372036854775808) OR (n > 1 AND lo IS DISTINCT FROM prev)
		    OR (n = total AND hi IS NOT NULL)});
}

# How many rows of $table (keyed by column k) on $node lie in other than
# exactly one active partition's range; 0 when each lies in one.
sub misplaced_rows
{
	my ($node, $table) = @_;
	return $node->safe_psql('postgres', qq{
		SELECT count(*) FROM $table t WHERE (SELECT count(*) FROM kommander.partitions p
		 WHERE p.partition_id > 0 AND p.state = 'active'
		   AND kmd_key_hash(t.k) >= p.lo AND (p.hi IS NULL OR kmd_key_hash(t.k) < p.hi)) <> 1});
}

# How many of @$keys are missing from the column k of $table on $node.
sub missing_keys
{
	my ($node, $table, $keys) = @_;
	return 0 if !@$keys;
	my $list = join(',', map { "('$_')" } @$keys);
	return $node->safe_psql('postgres',
		"SELECT count(*) FROM (VALUES $list) AS a(k) WHERE NOT EXISTS (SELECT 1 FROM $table t WHERE t.k = a.k)");
}


# Let the output plugin kommander be used on @$nodes (wal_level = logical
# must be in their configuration): a Postgres that has the setting
# output_plugin_libraries (recent minor releases) lets only the plugins it
# lists be used.
sub allow_feed
{
	my ($nodes) = @_;
	for my $node (@$nodes)
	{
		next if $node->safe_psql('postgres',
			"SELECT count(*) FROM pg_settings WHERE name = 'output_plugin_libraries'") eq '0';
		$node->safe_psql('postgres',
			"ALTER SYSTEM SET output_plugin_libraries = 'pgoutput', 'test_decoding', 'kommander'");
		$node->reload;
		$node->poll_query_until('postgres',
			"SELECT 'kommander' = ANY (string_to_array(current_setting('output_plugin_libraries'), ', '))")
		  or die "output_plugin_libraries not reloaded on " . $node->name;
	}
}

1;
