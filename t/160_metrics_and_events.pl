# 160_metrics_and_events.pl
#   The numbers move: a proposal counts in kommander.stats (on the node and
#   its partition) and shows in kommander.latency; a proposal through a
#   follower counts as forwarded; a fenced proposal counts as fenced; a
#   command that fails counts one apply error on each node; the
#   leader's kommander.peers shows its followers caught up, replicating;
#   killing a leader starts and wins an election elsewhere, which counts
#   and is timed.  LISTEN kommander_events hears leader changes, a split,
#   a merge and roster changes, each once (a removal's two steps apart); a
#   joining node tells of none of the roster's history it replays.  Every
#   query of docs/queries.yaml runs.
#
# Copyright (c) 2026, kommander developers
#
# t/160_metrics_and_events.pl

use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use KmdTest;

my @nodes = KmdTest::new_cluster(3, conf => "kommander.balance_interval = 0\n");
my ($n1, $n2, $n3) = @nodes;
KmdTest::create_kv($n1);
$n1->safe_psql('postgres', "SELECT kmd_transfer_leader(p, 'node1') FROM generate_series(0, 1) p");
KmdTest::wait_converged(\@nodes);

# A counter of $node: the node's (partition undef) or a partition's
sub counter
{
	my ($node, $name, $partition) = @_;
	my $where = defined $partition ? "partition_id = $partition" : 'partition_id IS NULL';
	return $node->safe_psql('postgres',
		"SELECT value FROM kommander.stats WHERE name = '$name' AND $where");
}

# The same counter summed over @$nodes
sub stat_sum
{
	my ($nodes, $name) = @_;
	my $sum = 0;
	$sum += counter($_, $name) for @$nodes;
	return $sum;
}

# ---------------------------------------------------------------------------
# a proposal
# ---------------------------------------------------------------------------
my $proposals = counter($n1, 'proposals');
my $proposals_p1 = counter($n1, 'proposals', 1);
my $key = KmdTest::key_in($n1, 1, 'm');
$n1->safe_psql('postgres',
	qq{SELECT kmd_propose('$key', '{"op":"insert","table":"kv","row":{"k":"$key","v":"1"}}')});
is(counter($n1, 'proposals') - $proposals, 1, 'a proposal counts once on the node');
is(counter($n1, 'proposals', 1) - $proposals_p1, 1, 'and once on its partition');
cmp_ok(counter($n1, 'commits', 1), '>', 0, 'the partition counts commits');
cmp_ok(counter($n1, 'applies', 1), '>', 0, 'and applies');
cmp_ok(counter($n1, 'log_append_batches'), '>', 0, 'log transactions are counted');
cmp_ok(counter($n1, 'wal_flushes'), '>', 0, 'and those that flushed the WAL');
cmp_ok(counter($n1, 'batches_sent'), '>', 0, 'batches to peers are counted');
cmp_ok(counter($n2, 'batches_received'), '>', 0, 'and on the other side');
cmp_ok(counter($n1, 'messages_sent'), '>', 0, 'Raft messages are counted');
is($n1->safe_psql('postgres', q{
	SELECT count(*) FROM kommander.latency
	 WHERE operation = 'propose' AND partition_id = 1 AND count > 0
	   AND p50_ms > 0 AND p50_ms <= p99_ms AND p99_ms <= max_ms}), '1',
	'the proposal shows in the propose latency of its partition');
is($n1->safe_psql('postgres', q{
	SELECT count(*) FROM kommander.latency
	 WHERE operation IN ('propose', 'commit', 'apply', 'log_append', 'peer_round_trip')
	   AND partition_id IS NULL AND count > 0}), '5',
	'the node has propose, commit, apply, log append and peer round trip figures');

# through a follower: forwarded
my $forwarded = counter($n2, 'proposals_forwarded', 1);
$n2->safe_psql('postgres',
	qq{SELECT kmd_propose('$key', '{"op":"upsert","table":"kv","row":{"k":"$key","v":"2"}}')});
is(counter($n2, 'proposals_forwarded', 1) - $forwarded, 1, 'a proposal through a follower is forwarded');

# fenced: an expected generation that is not the partition's
my $fenced = counter($n2, 'proposals_rejected_fenced');
my ($rc, $out, $err) = $n2->psql('postgres',
	qq{SELECT kmd_propose('$key', '{"op":"upsert","table":"kv","row":{"k":"$key","v":"3"}}', 999)},
	extra_params => [ '-v', 'VERBOSITY=verbose' ]);
like($err, qr/K0001/, 'a stale generation is fenced');
is(counter($n2, 'proposals_rejected_fenced') - $fenced, 1, 'and counted');
cmp_ok(counter($n2, 'proposals_rejected_fenced', 1), '>=', 1, 'on its partition too');

# a command whose outcome is an error: once on every node, which all apply it
my @errors = map { counter($_, 'apply_errors', 1) } @nodes;
($rc, $out, $err) = $n1->psql('postgres',
	qq{SELECT kmd_propose('$key', '{"op":"insert","table":"kv","row":{"k":"$key","v":"4"}}')},
	extra_params => [ '-v', 'VERBOSITY=verbose' ]);
like($err, qr/23505/, 'an insert of a key there is a duplicate');
KmdTest::wait_converged(\@nodes);
is(join(',', map { counter($nodes[$_], 'apply_errors', 1) - $errors[$_] } 0 .. 2), '1,1,1',
	'and counts one apply error on each node');

# ---------------------------------------------------------------------------
# the leader's view of its followers
# ---------------------------------------------------------------------------
KmdTest::wait_converged(\@nodes);
ok($n1->poll_query_until('postgres', q{
	SELECT count(*) = 2 AND bool_and(r.state = 'replicate' AND r.lag = 0 AND r.inflight = 0
	                                 AND r.match_index = p.last_index AND r.next_index = p.last_index + 1
	                                 AND r.last_contact IS NOT NULL)
	  FROM kommander.peers r JOIN kommander.partitions p USING (partition_id)
	 WHERE partition_id = 1}), 'kommander.peers: both followers of partition 1 caught up, replicating');
is($n1->safe_psql('postgres', q{SELECT string_agg(node_name, ',' ORDER BY node_id) FROM kommander.peers WHERE partition_id = 1}),
	'node2,node3', 'named');
is($n2->safe_psql('postgres', 'SELECT count(*) FROM kommander.peers'), '0', 'a node that leads nothing shows no peers');

# ---------------------------------------------------------------------------
# docs/queries.yaml: every query postgres_exporter would run, runs
# ---------------------------------------------------------------------------
my %queries;
{
	open(my $fh, '<', "$FindBin::RealBin/../docs/queries.yaml") or die "docs/queries.yaml: $!";
	my ($key, $indent);
	while (my $line = <$fh>)
	{
		if (defined $indent && $line =~ /^(\s*)(.*)$/ && length($1) >= $indent && $2 ne '')
		{
			$queries{$key} .= "$2\n";
			next;
		}
		undef $indent;
		$key = $1 if $line =~ /^(\w+):\s*$/;
		$indent = length($1) + 2 if $line =~ /^(\s+)query: \|\s*$/;
	}
	close $fh;
}
is(scalar(keys %queries), 6, 'docs/queries.yaml has its six queries');
for my $key (sort keys %queries)
{
	my ($qrc, $qout, $qerr) = $n1->psql('postgres', $queries{$key});
	is($qerr, '', "docs/queries.yaml: $key runs");
	isnt($qout, '', "docs/queries.yaml: $key has rows on a leader");
}

# ---------------------------------------------------------------------------
# events: a listener on node2
# ---------------------------------------------------------------------------
my $listener = $n2->background_psql('postgres');
$listener->query_safe('LISTEN kommander_events');
my $heard = '';

# Wait until the listener has heard a notification matching $re.
sub hear
{
	my ($re) = @_;
	my $deadline = time() + $PostgreSQL::Test::Utils::timeout_default;
	while (time() < $deadline)
	{
		return 1 if $heard =~ $re;
		$heard .= $listener->query('SELECT 1');
		select(undef, undef, undef, 0.1);
	}
	diag("heard: $heard");
	return 0;
}

$n1->safe_psql('postgres', "SELECT kmd_transfer_leader(1, 'node3')");
ok(hear(qr/\{"event":"leader","partition":1,"term":\d+,"leader_id":3,"leader_name":"node3"\}/),
	'a leader change is heard');
my $new = $n1->safe_psql('postgres', 'SELECT kmd_split(1)');
ok(hear(qr/\{"event":"split","partition":1,"index":\d+,"new_partition":$new\}/), 'a split is heard');
# every node knows the new partition's leader before the merge: a node
# where it has none for three election timeouts takes an image of the left
# partition instead of applying the freeze and the merge (no events)
KmdTest::wait_leaders($_) for @nodes;
$n1->safe_psql('postgres', "SELECT kmd_merge(1, $new)");
ok(hear(qr/\{"event":"freeze","partition":$new,"index":\d+\}/), 'the freeze of a merge is heard');
ok(hear(qr/\{"event":"merge","partition":1,"index":\d+,"merged":$new\}/), 'and the merge');
# a learner that never comes, added and removed
$n1->safe_psql('postgres', "SELECT kmd_add_node('ghost', 'host=/nonexistent port=1')");
ok(hear(qr/\{"event":"roster","change":"add","index":\d+,"node_name":"ghost"\}/), 'a roster change is heard');
$n1->safe_psql('postgres', "SELECT kmd_remove_node('ghost')");
ok(hear(qr/\{"event":"roster","change":"removing","index":\d+,"node_name":"ghost"\}/),
	'its removal: first the node is marked');
ok(hear(qr/\{"event":"roster","change":"remove","index":\d+,"node_name":"ghost"\}/), 'then taken out');
$listener->quit;
is(scalar(() = $heard =~ /"event":"roster"/g), 3, 'each roster change is heard once');

# ---------------------------------------------------------------------------
# a leader killed: an election elsewhere, counted and timed
# ---------------------------------------------------------------------------
KmdTest::wait_converged(\@nodes);
my $leader = KmdTest::leader_of($n1, 1);
my ($dead) = grep { $_->name eq $leader } @nodes;
my @alive = grep { $_->name ne $leader } @nodes;
my $started = stat_sum(\@alive, 'elections_started');
my $won = stat_sum(\@alive, 'elections_won');
my $changes = stat_sum(\@alive, 'leader_changes');
$dead->stop('immediate');
ok($alive[0]->poll_query_until('postgres',
	"SELECT leader_name IS NOT NULL AND leader_name <> '$leader' FROM kommander.partitions WHERE partition_id = 1"),
	'a new leader of partition 1 after killing ' . $leader);
cmp_ok(stat_sum(\@alive, 'elections_started'), '>', $started, 'an election started');
cmp_ok(stat_sum(\@alive, 'elections_won'), '>', $won, 'and was won');
cmp_ok(stat_sum(\@alive, 'leader_changes'), '>', $changes, 'the survivors saw the leader change');
my $timed = 0;
$timed += $_->safe_psql('postgres',
	"SELECT coalesce(sum(count), 0) FROM kommander.latency WHERE operation = 'election' AND partition_id = 1")
  for @alive;
cmp_ok($timed, '>', 0, 'the election is timed');

# alone, a node starts a pre-vote round every election timeout, each one
# counted though its role and term stay as they were (a follower: a
# leader left alone may rest, quiesced, and start none)
my ($lone, $other) = @alive;
$lone->safe_psql('postgres', "SELECT kmd_transfer_leader(1, '" . $other->name . "')");
$lone->poll_query_until('postgres',
	"SELECT leader_name = '" . $other->name . "' FROM kommander.partitions WHERE partition_id = 1")
  or die $other->name . ' does not lead partition 1';
$other->stop('immediate');
my $rounds = $lone->safe_psql('postgres',
	"SELECT value FROM kommander.stats WHERE name = 'prevotes_started' AND partition_id = 1");
ok($lone->poll_query_until('postgres',
	"SELECT value >= $rounds + 5 FROM kommander.stats WHERE name = 'prevotes_started' AND partition_id = 1"),
	'a node alone counts every pre-vote round');
$other->start;
$dead->start;
KmdTest::wait_voters(\@nodes, 3);
ok(KmdTest::wait_converged(\@nodes), 'converged again');
is(counter($dead, 'proposals'), '0', 'a restarted node counts from zero');

# ---------------------------------------------------------------------------
# a node joining replays the system partition's log, with roster changes
# its copy of the roster holds already: they change nothing, and it tells
# of none of them
# ---------------------------------------------------------------------------
my $n4 = KmdTest::new_node('node4', conf => "kommander.balance_interval = 0\n");
my $joiner = $n4->background_psql('postgres');
$joiner->query_safe('LISTEN kommander_events');
$n4->safe_psql('postgres', "SELECT kmd_join('node4', " . KmdTest::quote(KmdTest::conninfo($n4))
	  . ", " . KmdTest::quote(KmdTest::conninfo($n1)) . ")");
KmdTest::wait_voters([ @nodes, $n4 ], 4);
my $joined = '';
my $deadline = time() + $PostgreSQL::Test::Utils::timeout_default;
until ($joined =~ /"change":"promote","index":\d+,"node_name":"node4"/ || time() > $deadline)
{
	$joined .= $joiner->query('SELECT 1');
	select(undef, undef, undef, 0.1);
}
$joiner->quit;
like($joined, qr/"change":"promote","index":\d+,"node_name":"node4"/,
	'the joined node tells of its promotion');
is(join(' ', $joined =~ /"node_name":"(node[123]|ghost)"/g), '',
	'and of no roster change from before it joined');

done_testing();
