# 083_a_join_after_a_failed_ddl.pl
#   A kmd_ddl whose outcome depends on the rows (a CHECK constraint that
#   existing rows break) fails on every node.  A node that joins later
#   replays the system partition's log but takes partition 1 from an image
#   (its leader compacted the log): when it applies the statement, its
#   table is still empty, so the statement would succeed there alone, and
#   the node would carry a constraint no other node has, and refuse every
#   image after it.  Its outcome there must be the other nodes'.
#
# Copyright (c) 2026, kommander developers
#
# t/083_a_join_after_a_failed_ddl.pl

use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use KmdTest;

my $conf = "kommander.snapshot_threshold = 10\nkommander.balance_interval = 0\n";
my @nodes = KmdTest::new_cluster(2, conf => $conf);
my ($n1, $n2) = @nodes;
KmdTest::create_kv($n1);
KmdTest::upsert_kv($n1, map { "k$_" } 1 .. 20);

my ($rc, $out, $err) = $n1->psql('postgres',
	q{SELECT kmd_ddl('ALTER TABLE public.kv ADD CONSTRAINT only_y CHECK (v = ''y'')')});
like($err, qr/violated by some row/, 'the constraint fails for the rows it finds');
ok(KmdTest::compact_past($n1, 1, $n1->safe_psql('postgres',
	'SELECT last_index FROM kommander.partitions WHERE partition_id = 1')),
	'node 1 compacted the log of partition 1');

my $n3 = KmdTest::new_node('node3', conf => $conf);
is($n3->safe_psql('postgres',
	"SELECT kmd_join('node3', " . KmdTest::quote(KmdTest::conninfo($n3)) . ', '
	  . KmdTest::quote(KmdTest::conninfo($n1)) . ')'), '3', 'node 3 joins');
push @nodes, $n3;
ok($n3->log_contains(qr/node \d told the outcome of the kmd_ddl statement/),
	'it took the outcome of the statement from another node');
ok(KmdTest::wait_converged(\@nodes), 'node 3 applies every partition');
for my $node (@nodes)
{
	is($node->safe_psql('postgres',
		"SELECT count(*) FROM pg_constraint WHERE conname = 'only_y'"),
		'0', $node->name . ' has no constraint only_y');
}
KmdTest::upsert_kv($n3, 'after');
ok(KmdTest::wait_converged(\@nodes), 'a write through node 3 reaches every node');
KmdTest::same_state(\@nodes);

done_testing();
