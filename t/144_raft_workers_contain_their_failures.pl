# 144_raft_workers_contain_their_failures.pl
#   The Raft workers keep their own session settings whatever the node's
#   database says (read-only transactions by default, a lock_timeout); a
#   partition whose durable state on a node is inconsistent goes offline on
#   that node alone, shown in kommander.partitions and the log, while the
#   other partitions of its worker go on (and the other nodes elect another
#   leader when it led there, asked or not), and comes back once repaired; and
#   a worker that keeps stopping is started again after a delay that grows.
#
# Copyright (c) 2026, kommander developers
#
# t/144_raft_workers_contain_their_failures.pl

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
$n1->safe_psql('postgres', 'SELECT count(*) FROM kmd_create_partitions(3)');
for my $node (@nodes)
{
	$node->poll_query_until('postgres',
		"SELECT count(*) = 3 FROM kommander.partitions WHERE partition_id > 0 AND leader_name IS NOT NULL")
	  or die 'the splits did not reach ' . $node->name;
}
KmdTest::wait_converged(\@nodes) or die 'no convergence';

# Propose an insert of $key through $node; the SQLSTATE it fails with, or
# 'ok'.  A client proposes in a transaction that may write (node3's
# database makes them read-only below: the workers must not care, a
# client must say so, as for any write).
sub insert_through
{
	my ($node, $key) = @_;
	my ($rc, $out, $err) = $node->psql('postgres',
		"SET default_transaction_read_only = off; SET kommander.propose_timeout = 5000; "
		  . "SELECT kmd_propose('$key', "
		  . "'{\"op\":\"insert\",\"table\":\"kv\",\"row\":{\"k\":\"$key\",\"v\":\"x\"}}')",
		extra_params => [ '-v', 'VERBOSITY=verbose' ]);
	return 'ok' if $rc == 0;
	return $err =~ /ERROR:\s+([0-9A-Z]{5}):/ ? $1 : "no SQLSTATE in: $err";
}

# --- node3's database makes transactions read-only and locks time out ---
$n3->safe_psql('postgres', q{
ALTER DATABASE postgres SET default_transaction_read_only = on;
ALTER DATABASE postgres SET lock_timeout = '1ms';
ALTER DATABASE postgres SET idle_in_transaction_session_timeout = '10ms';
});
$n3->restart;
KmdTest::wait_leaders($n3);
is(insert_through($n3, 'read-only-db'), 'ok', 'node3 proposes, persists and applies all the same');
ok(KmdTest::wait_converged(\@nodes), 'and keeps up with the others');

# --- partition 3's snapshot marker on node3 is malformed ---
# partitions 1 and 3 live in the same Raft worker (kommander.workers = 2).
# Partition 3 is led from node1 first (its leader on node3 comes below).
# Move the lead of partitions @parts to $leader, seen so on every node.
sub lead_from
{
	my ($leader, @parts) = @_;
	my $list = join(', ', @parts);
	$n1->safe_psql('postgres', "SELECT kmd_transfer_leader($_, '$leader')") for @parts;
	for my $node (@nodes)
	{
		$node->poll_query_until('postgres',
			"SELECT bool_and(leader_name = '$leader') FROM kommander.partitions WHERE partition_id IN ($list)")
		  or die "partitions $list are not led from $leader on " . $node->name;
	}
}
lead_from('node1', 3);
my $conf = $n3->safe_psql('postgres', 'SELECT conf FROM kommander.snapshot WHERE partition_id = 3');
$n3->safe_psql('postgres', q{
SET default_transaction_read_only = off;
UPDATE kommander.snapshot SET conf = '\x0102' WHERE partition_id = 3;
});
$n3->restart;
ok($n3->poll_query_until('postgres',
		"SELECT stalled = 'offline' AND stall_error LIKE '%malformed snapshot marker%' AND role IS NULL "
		  . "FROM kommander.partitions WHERE partition_id = 3"),
	'partition 3 is offline on node3, with the error');
ok($n3->log_contains(qr/partition 3 is offline on this node/), 'which the log says');
$n3->poll_query_until('postgres',
	"SELECT role IS NOT NULL AND leader_name IS NOT NULL FROM kommander.partitions WHERE partition_id = 1")
  or die 'partition 1 does not run on node3';
is(insert_through($n3, KmdTest::key_in($n3, 1, 'one')), 'ok',
	'partition 1, in the same worker, still proposes and applies on node3');
is(insert_through($n1, KmdTest::key_in($n1, 3, 'three')), 'ok',
	'partition 3 goes on on the other nodes');
my $via3 = KmdTest::key_in($n1, 3, 'via-three');
my ($rc, $out, $err) = $n3->psql('postgres',
	"SET default_transaction_read_only = off; SELECT kmd_propose('$via3', "
	  . "'{\"op\":\"insert\",\"table\":\"kv\",\"row\":{\"k\":\"$via3\",\"v\":\"x\"}}')",
	extra_params => [ '-v', 'VERBOSITY=verbose' ]);
like($err, qr/K0002: partition 3 is offline on this node/,
	'a proposal through node3 fails, saying that the partition is offline there');
like($err, qr/DETAIL:\s+Its durable Raft state here cannot be loaded .*send the request through another node/,
	'and where to send it');
is($n3->safe_psql('postgres', 'SELECT count(*) FROM kommander.partitions WHERE stalled IS NOT NULL'),
	'1', 'no other partition of node3 is stalled');

# repaired, it is started again at its next try
$n3->safe_psql('postgres',
	"SET default_transaction_read_only = off; UPDATE kommander.snapshot SET conf = '$conf' WHERE partition_id = 3");
ok($n3->poll_query_until('postgres',
		'SELECT stalled IS NULL AND role IS NOT NULL FROM kommander.partitions WHERE partition_id = 3'),
	'partition 3 comes back once its state is repaired');
ok($n3->log_contains(qr/partition 3 is online again on this node/), 'which the log says');
ok(KmdTest::wait_converged(\@nodes), 'and node3 catches up on it');

# --- the same, with partitions 2 and 3 led from node3 ---
# Their followers rest (the partitions are idle) and node3 answers their
# keepalives.  node3 tells its peers which partitions it cannot run, so
# partition 2's copies wake and elect another leader although nobody asks
# anything of it.  A read barrier or a forwarded proposal tells them too
# (when it comes first): partition 3's wait for the new leader instead of
# failing.
lead_from('node3', 2, 3);
for my $node ($n1, $n2)
{
	$node->poll_query_until('postgres',
		'SELECT bool_and(quiesced) FROM kommander.partitions WHERE partition_id IN (2, 3)')
	  or die 'partitions 2 and 3 do not rest on ' . $node->name;
}
my $conf2 = $n3->safe_psql('postgres', 'SELECT conf FROM kommander.snapshot WHERE partition_id = 2');
$n3->safe_psql('postgres', q{
SET default_transaction_read_only = off;
UPDATE kommander.snapshot SET conf = '\x0102' WHERE partition_id IN (2, 3);
});
$n3->restart;
ok($n3->poll_query_until('postgres',
		"SELECT count(*) = 2 FROM kommander.partitions WHERE partition_id IN (2, 3) AND stalled = 'offline'"),
	'partitions 2 and 3 are offline on node3, their leader');
for my $node ($n1, $n2)
{
	ok($node->poll_query_until('postgres',
			"SELECT leader_name IN ('node1', 'node2') FROM kommander.partitions WHERE partition_id = 2"),
		'partition 2, asked nothing, is led from node1 or node2 again on ' . $node->name);
}
my $in3 = KmdTest::key_in($n2, 3, 'read-led-from-three');
($rc, $out, $err) = $n2->psql('postgres',
	"SET kommander.propose_timeout = 5000; SELECT kmd_read_barrier('$in3') > 0",
	extra_params => [ '-v', 'VERBOSITY=verbose' ]);
is($rc == 0 ? $out : $err, 't', 'a read barrier through node2 waits for a new leader and returns');
is(insert_through($n1, KmdTest::key_in($n1, 3, 'led-from-three')), 'ok',
	'a proposal through node1 goes in');
like($n1->safe_psql('postgres', 'SELECT leader_name FROM kommander.partitions WHERE partition_id = 3'),
	qr/^node[12]$/, 'which runs on node1 or node2');
is(insert_through($n2, KmdTest::key_in($n2, 3, 'led-from-three-2')), 'ok',
	'and node2 proposes to it too');
is(insert_through($n2, KmdTest::key_in($n2, 2, 'led-from-three-3')), 'ok',
	'and to partition 2');
$n3->safe_psql('postgres',
	"SET default_transaction_read_only = off; "
	  . "UPDATE kommander.snapshot SET conf = '$conf2' WHERE partition_id = 2; "
	  . "UPDATE kommander.snapshot SET conf = '$conf' WHERE partition_id = 3");
ok($n3->poll_query_until('postgres',
		'SELECT count(*) = 2 FROM kommander.partitions WHERE partition_id IN (2, 3) '
		  . 'AND stalled IS NULL AND role IS NOT NULL'),
	'partitions 2 and 3 come back on node3 once repaired');
ok(KmdTest::wait_converged(\@nodes), 'as followers that catch up');

# --- a worker that keeps stopping is started again later and later ---
my $apply_pid = "SELECT pid FROM pg_stat_activity WHERE backend_type = 'kommander apply'";
for my $delay (1000, 2000, 4000)
{
	my $pid = $n3->safe_psql('postgres', $apply_pid);
	$n3->safe_psql('postgres', "SELECT pg_terminate_backend($pid)");
	ok($n3->poll_query_until('postgres', "SELECT count(*) = 1 FROM ($apply_pid) a WHERE pid <> $pid"),
		'the apply worker is started again');
	ok($n3->log_contains(qr/kommander apply worker stopped; starting it again in $delay ms/),
		"after $delay ms");
}

done_testing();
