# 202_a_leader_that_cannot_apply_hands_over.pl
#   A session on the leader's node holds a lock on a control table, so the
#   leader's apply of its partition waits there (a failure of that node
#   only) while the partition goes on committing.  The leases counted down
#   on the leader alone; granted meanwhile, one would expire nowhere until
#   the lock went.  The leader hands the partition to a node that applies,
#   where the lease expires and its row goes, while the lock is still
#   held; the node that held it catches up once it is released.
#
# Copyright (c) 2026, kommander developers
#
# t/202_a_leader_that_cannot_apply_hands_over.pl

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
$n1->safe_psql('postgres', q{
SELECT kmd_ddl('CREATE TABLE public.claims (job text PRIMARY KEY, owner text)');
SELECT kmd_register_table('public.claims');
SELECT kmd_transfer_leader(1, 'node1');
});
ok($n2->poll_query_until('postgres',
	"SELECT leader_name = 'node1' FROM kommander.partitions WHERE partition_id = 1"),
	'node1 leads partition 1');
KmdTest::wait_converged(\@nodes);

# a session of node1 holds the table: node1's apply of partition 1 waits
my $holder = $n1->background_psql('postgres');
$holder->query_safe('BEGIN');
$holder->query_safe('LOCK TABLE claims IN ACCESS EXCLUSIVE MODE');

# a row through node2, which applies it; node1 cannot
$n2->safe_psql('postgres',
	q{SELECT kmd_propose('job-0', '{"op":"insert","table":"claims","row":{"job":"job-0","owner":"w"}}')});
ok($n1->poll_query_until('postgres',
	"SELECT stalled = 'retrying' FROM kommander.partitions WHERE partition_id = 1"),
	'node1 cannot apply partition 1');

# a lease granted after it, and its row: node1 applies neither
my $id = $n2->safe_psql('postgres', "SELECT kmd_lease_grant('2 s', 'job-1')");
$n2->safe_psql('postgres',
	qq{SELECT kmd_propose('job-1', '{"op":"insert","table":"claims","row":{"job":"job-1","owner":"w"},"lease":$id}')});

# node1 hands the partition on; the lease, kept alive by no one, expires
ok($n2->poll_query_until('postgres',
	"SELECT leader_name <> 'node1' FROM kommander.partitions WHERE partition_id = 1"),
	'node1 no longer leads partition 1');
ok($n2->poll_query_until('postgres', "SELECT count(*) = 0 FROM claims WHERE job = 'job-1'"),
	'the lease expired and took its row, while the lock is held');
ok($n3->poll_query_until('postgres', "SELECT count(*) = 0 FROM claims WHERE job = 'job-1'"),
	'on node3 too');
is($n1->safe_psql('postgres',
	"SELECT value > 0 FROM kommander.stats WHERE name = 'stall_handoffs' AND partition_id IS NULL"),
	't', 'node1 counted the handoff');
ok($n1->log_contains('handing partition 1 to node'), 'and logged it');

# the lock goes: node1 applies everything, the lease's end included
$holder->query_safe('COMMIT');
$holder->quit;
KmdTest::wait_converged(\@nodes);
is($n1->safe_psql('postgres', "SELECT string_agg(job, ',' ORDER BY job) FROM claims"), 'job-0',
	'node1 applied the row and deleted the lease\'s');
KmdTest::same_state(\@nodes);

done_testing();
