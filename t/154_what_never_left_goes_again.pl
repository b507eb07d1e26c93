# 154_what_never_left_goes_again.pl
#   A follower forwards its clients' proposals to the leader in its batches;
#   a batch that finds no room on the connection (the leader's stream
#   backend stopped reading it, the socket full) is dropped, and Raft sends
#   its messages again.  The forwarded proposals in it never left the node:
#   they must go again with a later batch once there is room, not wait for
#   an answer that cannot come and end with an unknown outcome (K0003).
#   So must the leader's answer to a forwarded request (here a leadership
#   transfer asked through a follower) in a batch the follower's stopped
#   stream had no room for.  And a batch that reached the leader's node
#   when the inbox of its Raft worker there was full (the worker stopped)
#   is returned: the forwards in it go again once the worker takes them;
#   and so are the leader's answers in a batch that reached a follower
#   whose worker's inbox was full (filled here byte by byte).
#
# Copyright (c) 2026, kommander developers
#
# t/154_what_never_left_goes_again.pl

use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use KmdTest;
use KmdStream;

# a stopped stream is given up after ten election timeouts, and a
# stopped leader replaced after one: longer than this test stops one
# (the last two cases make sure of it, however slow the machine).
# Room for the clients that fill an inbox.
my $conf = "kommander.balance_interval = 0\nkommander.election_timeout = 6000\n"
  . "max_connections = 200\nkommander.max_queued_proposals = 256\n";
my @nodes = map { KmdTest::new_node("node$_", conf => $conf) } (1 .. 3);
my ($n1, $n2, $n3) = @nodes;
for my $node (@nodes)
{
	$node->safe_psql('postgres',
		'CREATE ROLE peer_node1 LOGIN IN ROLE kommander_peer; CREATE ROLE peer_node2 LOGIN IN ROLE kommander_peer');
}
$n1->safe_psql('postgres', "SELECT kmd_bootstrap('node1', " . KmdTest::quote(KmdTest::conninfo($n1)) . ", 'peer_node1')");
KmdTest::wait_leaders($n1);
for my $i (2, 3)
{
	$nodes[ $i - 1 ]->safe_psql('postgres', "SELECT kmd_join('node$i', "
		  . KmdTest::quote(KmdTest::conninfo($nodes[ $i - 1 ])) . ', '
		  . KmdTest::quote(KmdTest::conninfo($n1))
		  . ($i == 2 ? ", peer_role => 'peer_node2'" : '') . ')');
}
KmdTest::wait_voters(\@nodes, 3);
KmdTest::create_kv($n1);
$n1->safe_psql('postgres', "SELECT kmd_transfer_leader(1, 'node1')");
ok($n2->poll_query_until('postgres',
	"SELECT leader_name = 'node1' FROM kommander.partitions WHERE partition_id = 1"),
	'node 2 follows node 1 in partition 1');

# node 2 drops a batch as soon as one waits to be written
$n2->append_conf('postgresql.conf', "kommander.max_inflight_batches = 1\n");
$n2->reload;
ok($n2->poll_query_until('postgres', "SELECT current_setting('kommander.max_inflight_batches') = '1'"),
	'node 2 holds one unwritten batch at most');

# Stop processes @pids of $node (SIGSTOP) at a moment when all of them
# wait for something to do: one stopped in the middle of its work could
# hold a lock that the others need (an inbox's, the roster's), and stall
# what the test watches.  Returns once they are stopped so.
sub stop_resting
{
	my ($node, @pids) = @_;
	my $list = join(',', @pids);
	while (1)
	{
		kill 'STOP', @pids;
		return if $node->safe_psql('postgres',
			"SELECT count(*) FROM pg_stat_activity WHERE pid IN ($list) AND wait_event_type = 'Extension'")
		  == scalar(@pids);
		kill 'CONT', @pids;
	}
}

# the backends of $on that read the streams of $from's role stop reading
sub stop_streams
{
	my ($on, $from) = @_;
	my @pids = split /\n/, $on->safe_psql('postgres', qq{
		SELECT pid FROM pg_stat_activity
		 WHERE usename = 'peer_$from' AND application_name LIKE 'kommander worker%'});
	ok(@pids > 0, "${from}'s streams into " . $on->name . ' found');
	stop_resting($on, @pids);
	return @pids;
}

my $dropped_sql = "SELECT value FROM kommander.stats WHERE name = 'batches_dropped' AND partition_id IS NULL";

# the batches $node dropped so far
sub dropped
{
	my ($node) = @_;
	return $node->safe_psql('postgres', $dropped_sql);
}

# wait until $node dropped more batches than $before
sub drops_more
{
	my ($node, $before) = @_;
	return $node->poll_query_until('postgres', "SELECT value > $before FROM ($dropped_sql) s");
}

# $n proposals through $node large enough to fill a socket, from key $from
# on; each client's handle, output and errors
sub big_proposals
{
	my ($node, $from, $n) = @_;
	my @clients;
	for my $i ($from .. $from + $n - 1)
	{
		my ($out, $err) = ('', '');
		push @clients, [ IPC::Run::start(
			[ 'psql', '-X', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-v', 'VERBOSITY=verbose',
			  '-d', $node->connstr('postgres'), '-c',
			  "SELECT kmd_propose('big$i', jsonb_build_object('op', 'upsert', 'table', 'kv', "
				. "'row', jsonb_build_object('k', 'big$i', 'v', repeat('x', 60000))))" ],
			'>', \$out, '2>', \$err), \$out, \$err ];
	}
	return @clients;
}

# how many of the clients got an answer, the others' errors shown
sub answered
{
	my ($what, @clients) = @_;
	my $ok = 0;
	for my $c (@clients)
	{
		my ($h, $out, $err) = @$c;
		if ($h->finish) { $ok++ }
		else { diag("$what: $$err") }
	}
	return $ok;
}

# Forwards: node 1 stops reading node 2's streams
my @stopped = stop_streams($n1, 'node2');
my $dropped = dropped($n2);
my $n = 12;
my @clients = big_proposals($n2, 1, $n);
ok(drops_more($n2, $dropped), 'node 2 dropped batches meanwhile');
kill 'CONT', @stopped;
is(answered('a proposal through node 2', @clients), $n,
	'every proposal through node 2 is applied and answered');
ok(KmdTest::wait_converged(\@nodes), 'every node applies them');
for my $node (@nodes)
{
	is($node->safe_psql('postgres', "SELECT count(*) FROM kv WHERE k LIKE 'big%'"),
		$n, $node->name . ' holds every row');
}
KmdTest::same_state(\@nodes);

# Answers: node 2 stops reading node 1's streams, which node 1 fills
$n1->append_conf('postgresql.conf', "kommander.max_inflight_batches = 1\n");
$n1->reload;
ok($n1->poll_query_until('postgres', "SELECT current_setting('kommander.max_inflight_batches') = '1'"),
	'node 1 holds one unwritten batch at most');
@stopped = stop_streams($n2, 'node1');
$dropped = dropped($n1);
@clients = big_proposals($n1, 101, 2 * $n);
ok(drops_more($n1, $dropped), 'node 1 drops batches to node 2');
my ($tout, $terr) = ('', '');
my @transfer = ([ IPC::Run::start(
	[ 'psql', '-X', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-v', 'VERBOSITY=verbose',
	  '-d', $n2->connstr('postgres'), '-c', "SELECT kmd_transfer_leader(1, 'node3')" ],
	'>', \$tout, '2>', \$terr), \$tout, \$terr ]);
ok($n1->poll_query_until('postgres',
	"SELECT leader_name = 'node3' FROM kommander.partitions WHERE partition_id = 1"),
	'node 1 handed partition 1 over, as node 2 asked');
kill 'CONT', @stopped;
is(answered('the transfer through node 2', @transfer), 1, 'node 2 has the answer');
is(answered('a proposal through node 1', @clients), 2 * $n, 'every proposal through node 1 is answered');
ok(KmdTest::wait_converged(\@nodes), 'every node applies them');
KmdTest::same_state(\@nodes);

# Returned: node 3 leads partition 1 now; its Raft workers stop, and the
# forwards of node 2's clients fill the inbox of the one that serves the
# partition (8 MiB; 160 commands of 60 kB).  However long that takes on a
# busy machine, node 2 must go on forwarding to node 3: its copy of the
# partition rests when the stop comes (no election timer runs), it takes
# node 3 for alive (heard within an election timeout, which is a minute
# from here on), and node 1's Raft workers stop with node 3's (no
# election without them).
for my $node (@nodes)
{
	$node->append_conf('postgresql.conf',
		"kommander.max_inflight_batches = 64\nkommander.election_timeout = 60000\n");
	$node->reload;
	ok($node->poll_query_until('postgres', "SELECT current_setting('kommander.max_inflight_batches') = '64' "
		  . "AND current_setting('kommander.election_timeout') = '1min'"),
		$node->name . ' holds unwritten batches again, and waits longer for a silent node');
}

# wait until partition 1 rests on every node, each taking node 3 for its
# leader (handed to it, if another took it meanwhile, and a write through
# it: what a follower knows of the leader comes with the leader's appends)
my $fresh = 0;
sub rests
{
	$n1->safe_psql('postgres', "SELECT kmd_transfer_leader(1, 'node3')");
	KmdTest::upsert_kv($n3, 'fresh' . ++$fresh);
	for my $node (@nodes)
	{
		ok($node->poll_query_until('postgres',
			"SELECT quiesced AND leader_name = 'node3' FROM kommander.partitions WHERE partition_id = 1"),
			'partition 1 rests on ' . $node->name . ', led by node 3');
	}
}

my $fill = 160;
$n2->safe_psql('postgres', 'CREATE EXTENSION dblink');
my ($fin, $fout) = ('', '');
my $filler = IPC::Run::start(
	[ 'psql', '-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-d', $n2->connstr('postgres'), '-f', '-' ],
	'<', \$fin, '>', \$fout, '2>', \$fout,
	IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
$fin .= "SELECT count(dblink_connect('c' || i, " . KmdTest::quote($n2->connstr('postgres'))
  . ")) || ' connected' FROM generate_series(1, $fill) i;\n";
$filler->pump until $fout =~ /connected/;
# the Raft workers of $node
sub raft_workers
{
	my ($node) = @_;
	return split /\n/, $node->safe_psql('postgres',
		"SELECT pid FROM pg_stat_activity WHERE backend_type = 'kommander raft worker'");
}

# partition 1's term on node 2
sub term_now
{
	return $n2->safe_psql('postgres', 'SELECT term FROM kommander.partitions WHERE partition_id = 1');
}

my @workers = raft_workers($n3);
my @workers1 = raft_workers($n1);
is(scalar(@workers) + scalar(@workers1), 4, "the Raft workers of nodes 1 and 3 found");
my $refused_sql = "SELECT value FROM kommander.stats WHERE name = 'batches_refused' AND partition_id IS NULL";
my $refused = $n2->safe_psql('postgres', $refused_sql);
my $dropped_here_sql = "SELECT batches_dropped FROM kommander.nodes WHERE node_name = 'node2'";
my $dropped_here = $n3->safe_psql('postgres', $dropped_here_sql);
rests();
my $term = term_now();
stop_resting($n1, @workers1);
stop_resting($n3, @workers);
$fin .= "SELECT count(dblink_send_query('c' || i, format('SELECT kmd_propose(%L, %L::jsonb)', 'in' || i, "
  . "jsonb_build_object('op', 'upsert', 'table', 'kv', 'row', "
  . "jsonb_build_object('k', 'in' || i, 'v', repeat('x', 60000)))))) || ' sent' FROM generate_series(1, $fill) i;\n";
$filler->pump until $fout =~ /sent/;
ok($n2->poll_query_until('postgres', "SELECT value > $refused FROM ($refused_sql) s"),
	"node 3 refuses node 2's batches: no room in an inbox");
ok($n3->poll_query_until('postgres', "SELECT batches_dropped > $dropped_here FROM ($dropped_here_sql) s"),
	'node 3 counts the batches it had no room for');
kill 'CONT', @workers, @workers1;
# each session's outcome: one row, and no error
$fin .= "SELECT count(*) FILTER (WHERE g.n = 1 AND e = 'OK') || ' applied', "
  . "string_agg(e, ' | ') FILTER (WHERE e <> 'OK') FROM generate_series(1, $fill) i, "
  . "LATERAL (SELECT count(*) AS n FROM dblink_get_result('c' || i, false) AS t(v bigint)) g, "
  . "LATERAL (SELECT g.n AS got, dblink_error_message('c' || i) AS e) m;\n\\q\n";
$filler->finish;
like($fout, qr/^$fill applied\|$/m, 'every proposal through node 2 is applied and answered');
is(term_now(), $term, 'node 3 led partition 1 throughout');
ok(KmdTest::wait_converged(\@nodes), 'every node applies them');
for my $node (@nodes)
{
	is($node->safe_psql('postgres', "SELECT count(*) FROM kv WHERE k LIKE 'in%'"),
		$fill, $node->name . ' holds every row');
}
KmdTest::same_state(\@nodes);

# Answers returned: node 2 asks node 3, whose Raft workers are stopped,
# for a transfer and a proposal; then node 2's stop too, and the inbox of
# the one that serves partition 1 is filled to the last bytes by a stream
# in node 1's name.  Node 3's answers find no room there.
my $cid = $n2->safe_psql('postgres', "SELECT replace(cluster_id::text, '-', '') FROM kommander.local");
my %id = map {
	$_->name => $n2->safe_psql('postgres', "SELECT node_id FROM kommander.nodes WHERE node_name = '" . $_->name . "'")
} @nodes;
is(KmdTest::leader_of($n2, 1), 'node3', 'node 3 leads partition 1');
@workers = raft_workers($n3);
@workers1 = raft_workers($n1);
my @workers2 = raft_workers($n2);
is(scalar(@workers) + scalar(@workers1) + scalar(@workers2), 6, "the Raft workers of every node found");
# node 1 stops with node 3 (no election), node 2 later (a full inbox)
rests();
$term = term_now();
stop_resting($n1, @workers1);
stop_resting($n3, @workers);
my ($xout, $xerr, $pout, $perr) = ('', '', '', '');
my $transfer2 = IPC::Run::start(
	[ 'psql', '-X', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-v', 'VERBOSITY=verbose',
	  '-d', $n2->connstr('postgres'), '-c', "SELECT kmd_transfer_leader(1, 'node1')" ],
	'>', \$xout, '2>', \$xerr, IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
ok($n2->poll_query_until('postgres',
	"SELECT count(*) = 1 FROM pg_stat_activity WHERE query LIKE 'SELECT kmd_transfer_leader(1, %' "
	  . "AND wait_event_type = 'Extension'"),
	'the transfer through node 2 waits for its answer');
# the proposal's slot comes after the transfer's: once it is forwarded,
# so is the transfer
my $forwarded_sql = "SELECT value FROM kommander.stats WHERE name = 'proposals_forwarded' AND partition_id IS NULL";
my $forwarded = $n2->safe_psql('postgres', $forwarded_sql);
my $proposal = IPC::Run::start(
	[ 'psql', '-X', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-v', 'VERBOSITY=verbose',
	  '-d', $n2->connstr('postgres'), '-c',
	  q{SELECT kmd_propose('answered', '{"op": "upsert", "table": "kv", "row": {"k": "answered", "v": "1"}}')} ],
	'>', \$pout, '2>', \$perr, IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
ok($n2->poll_query_until('postgres', "SELECT value > $forwarded FROM ($forwarded_sql) s"),
	'node 2 forwarded both to node 3');
stop_resting($n2, @workers2);
my ($s, $type) = KmdStream::open_stream($n2, 'peer_node1');
is($type, 'W', "a stream into node 2 in node 1's name");
# partition 3 does not exist: the batches go to partition 1's worker and
# ask nothing of it
my ($size, $taken) = (8 * 1024 * 1024 - 4, 0);
while ($size >= 28)
{
	KmdStream::send_msg($s, 'd', 'T' . KmdStream::padded_batch($cid, $id{node1}, $id{node2}, 3, $size));
	my ($t, $answer) = KmdStream::read_msg($s);
	die 'the stream into node 2 ended' unless defined $t && $t eq 'd';
	if (ord(substr($answer, 1, 1)) & 2) { $size = int($size / 2) }
	else { $taken += $size }
}
cmp_ok($taken, '>', 8 * 1024 * 1024 - 64, "the inbox took all but a few bytes");
$refused = $n3->safe_psql('postgres', $refused_sql);
kill 'CONT', @workers, @workers1;
ok($n3->poll_query_until('postgres', "SELECT value > $refused FROM ($refused_sql) s"),
	"node 2 has no room for node 3's answers");
kill 'CONT', @workers2;
close $s;
ok($transfer2->finish, 'the transfer through node 2 is answered') or diag($xerr);
ok($proposal->finish, 'the proposal through node 2 is answered') or diag($perr);
ok($n2->poll_query_until('postgres',
	"SELECT leader_name = 'node1' FROM kommander.partitions WHERE partition_id = 1"),
	'node 1 leads partition 1, as node 2 asked');
is(term_now(), $term + 1, 'one election: the one the transfer asked for');
ok(KmdTest::wait_converged(\@nodes), 'every node applies them');
for my $node (@nodes)
{
	is($node->safe_psql('postgres', "SELECT count(*) FROM kv WHERE k = 'answered'"),
		1, $node->name . ' holds the row proposed');
}
KmdTest::same_state(\@nodes);

done_testing();
