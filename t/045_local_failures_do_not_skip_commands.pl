# 045_local_failures_do_not_skip_commands.pl
#   A command fails alike on every node or nowhere: when one node's apply
#   worker hits a failure of its own (a lock it waits for longer than its
#   lock_timeout, a cancel while it waits), it rolls the command back and
#   applies the entry again later instead of recording the failure as the
#   command's outcome, and ends with the same rows as the others.  Its
#   database's own lock_timeout changes nothing, and the apply worker does
#   not stop.
#
# Copyright (c) 2026, kommander developers
#
# t/045_local_failures_do_not_skip_commands.pl

use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use KmdTest;

my @nodes = KmdTest::new_cluster(3);
my ($n1, $n2, $n3) = @nodes;
KmdTest::create_kv($n1);
KmdTest::wait_converged(\@nodes);

# node2 only: a lock_timeout for every session of its database; the apply
# worker keeps its own
$n2->safe_psql('postgres', "ALTER DATABASE postgres SET lock_timeout = '10ms'");
$n2->restart;
KmdTest::wait_leaders($_) for @nodes;

my $apply_pid = "SELECT pid FROM pg_stat_activity WHERE backend_type = 'kommander apply'";
my $pid = $n2->safe_psql('postgres', $apply_pid);

# Propose $key from node1 while a session on node2 holds kv in SHARE mode;
# wait until node2 shows the key's partition retrying on the lock.
sub propose_while_locked
{
	my ($key, $locker) = @_;
	$locker->query_safe('BEGIN');
	$locker->query_safe('LOCK TABLE kv IN SHARE MODE');
	$n1->safe_psql('postgres',
		"SELECT kmd_propose('$key', '{\"op\":\"insert\",\"table\":\"kv\",\"row\":{\"k\":\"$key\",\"v\":\"x\"}}')");
	my $part = $n1->safe_psql('postgres', "SELECT partition_id FROM kmd_route('$key')");
	return $n2->poll_query_until('postgres',
		"SELECT stalled = 'retrying' FROM kommander.partitions WHERE partition_id = $part");
}

my $locker = $n2->background_psql('postgres');

# the lock is held past the apply worker's lock_timeout, again and again
ok(propose_while_locked('timeout', $locker), 'node2 retries the entry while the lock is held');
like($n2->safe_psql('postgres', 'SELECT stall_error FROM kommander.partitions WHERE stalled IS NOT NULL'),
	qr/^55P03: /, 'and shows the lock it could not get');
is($n2->safe_psql('postgres', "SELECT count(*) FROM kv WHERE k = 'timeout'"), '0',
	'node2 has not recorded the entry as failed: it has no row yet');
$locker->query_safe('COMMIT');
KmdTest::wait_converged(\@nodes);
is($n2->safe_psql('postgres', "SELECT count(*) FROM kv WHERE k = 'timeout'"), '1',
	'node2 applied the row once the lock was released');

# the apply worker is cancelled while the entry waits
ok(propose_while_locked('cancel', $locker), 'node2 retries the next entry');
$n2->safe_psql('postgres', "SELECT pg_cancel_backend($pid)");
$locker->query_safe('COMMIT');
$locker->quit;
KmdTest::wait_converged(\@nodes);
is($n2->safe_psql('postgres', "SELECT count(*) FROM kv WHERE k = 'cancel'"), '1',
	'node2 applied the row after the cancel');
is($n2->safe_psql('postgres', $apply_pid), $pid, 'the apply worker of node2 never stopped');

my $rows = "SELECT string_agg(k, ',' ORDER BY k) FROM kv";
is($n2->safe_psql('postgres', $rows), $n1->safe_psql('postgres', $rows), 'node2 has the rows node1 has');
is($n3->safe_psql('postgres', $rows), $n1->safe_psql('postgres', $rows), 'node3 has the rows node1 has');

done_testing();
