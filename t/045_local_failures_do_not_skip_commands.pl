# 045_local_failures_do_not_skip_commands.pl
#   A command fails alike on every node or nowhere: when one node's apply
#   worker hits a failure of its own (a lock_timeout set for its database, a
#   cancel while it waits for a lock), it applies the entry again instead of
#   recording the failure as the command's outcome, and ends with the same
#   rows as the others.
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

# node2 only: a lock_timeout for every session of its database, the apply
# worker's included
$n2->safe_psql('postgres', "ALTER DATABASE postgres SET lock_timeout = '100ms'");
$n2->restart;
KmdTest::wait_leaders($_) for @nodes;

my $apply_waits = q{
	SELECT EXISTS (SELECT 1 FROM pg_locks l JOIN pg_stat_activity a USING (pid)
	                WHERE a.backend_type = 'kommander apply' AND NOT l.granted)};

# Propose $key from node1 while a session on node2 holds kv in SHARE mode;
# wait until node2's apply worker waits for the lock or got past the entry.
sub propose_while_locked
{
	my ($key, $locker) = @_;
	$locker->query_safe('BEGIN');
	$locker->query_safe('LOCK TABLE kv IN SHARE MODE');
	my $idx = $n1->safe_psql('postgres',
		"SELECT kmd_propose('$key', '{\"op\":\"insert\",\"table\":\"kv\",\"row\":{\"k\":\"$key\",\"v\":\"x\"}}')");
	my $part = $n1->safe_psql('postgres', "SELECT partition_id FROM kmd_route('$key')");
	$n2->poll_query_until('postgres',
		"SELECT ($apply_waits) OR (SELECT applied_index >= $idx FROM kommander.partitions WHERE partition_id = $part)")
	  or die "node2 neither applied nor waits for $key";
}

my $locker = $n2->background_psql('postgres');

# the lock is held past node2's lock_timeout
propose_while_locked('timeout', $locker);
ok($n2->poll_query_until('postgres', q{
	SELECT EXISTS (SELECT 1 FROM pg_locks l JOIN pg_stat_activity a USING (pid)
	                WHERE a.backend_type = 'kommander apply' AND NOT l.granted
	                  AND l.waitstart < clock_timestamp() - interval '1 s')}),
	'the apply worker of node2 waits for the lock ten times its database\'s lock_timeout');
$locker->query_safe('COMMIT');
KmdTest::wait_converged(\@nodes);
is($n2->safe_psql('postgres', "SELECT count(*) FROM kv WHERE k = 'timeout'"), '1',
	'node2 applied the row once the lock was released');

# the apply worker is cancelled while it waits
propose_while_locked('cancel', $locker);
my $pid = $n2->safe_psql('postgres',
	"SELECT pid FROM pg_stat_activity WHERE backend_type = 'kommander apply'");
$n2->safe_psql('postgres', "SELECT pg_cancel_backend($pid)");
ok($n2->poll_query_until('postgres',
	"SELECT pid <> $pid FROM pg_stat_activity WHERE backend_type = 'kommander apply'"),
	'a cancelled apply worker is started again');
$locker->query_safe('COMMIT');
$locker->quit;
KmdTest::wait_converged(\@nodes);
is($n2->safe_psql('postgres', "SELECT count(*) FROM kv WHERE k = 'cancel'"), '1',
	'node2 applied the row after the cancel');

my $rows = "SELECT string_agg(k, ',' ORDER BY k) FROM kv";
is($n2->safe_psql('postgres', $rows), $n1->safe_psql('postgres', $rows), 'node2 has the rows node1 has');
is($n3->safe_psql('postgres', $rows), $n1->safe_psql('postgres', $rows), 'node3 has the rows node1 has');

done_testing();
