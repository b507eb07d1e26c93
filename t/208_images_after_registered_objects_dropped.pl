# 208_images_after_registered_objects_dropped.pl
#   A control table and an applier's function dropped through kmd_ddl
#   after they were registered.  The table's registration goes with it;
#   the applier's stays, calling a function that is gone.  A node that
#   comes back after both partitions compacted past its log then takes
#   images of the system partition and of the user partition: no image
#   may name the dropped table (its oid names nothing, or another
#   relation, elsewhere), and the applier fails there as it does on the
#   others.
#
# Copyright (c) 2026, kommander developers
#
# t/208_images_after_registered_objects_dropped.pl

use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use KmdTest;

my @nodes = KmdTest::new_cluster(3,
	conf => "kommander.snapshot_threshold = 10\nkommander.balance_interval = 0\n");
my ($n1, $n2, $n3) = @nodes;
KmdTest::create_kv($n1);
$n1->safe_psql('postgres', q{
SELECT kmd_ddl('CREATE TABLE public.doomed (k text PRIMARY KEY)');
SELECT kmd_register_table('public.doomed');
SELECT kmd_ddl($f$CREATE FUNCTION public.doomed_fn(args jsonb, ctx kommander.apply_context)
  RETURNS jsonb LANGUAGE sql AS 'SELECT args'$f$);
SELECT kmd_register_applier('doomed', 'public.doomed_fn(jsonb, kommander.apply_context)');
SELECT kmd_propose('d1', '{"op":"insert","table":"doomed","row":{"k":"d1"}}');
SELECT kmd_ddl('DROP TABLE public.doomed');
SELECT kmd_ddl('DROP FUNCTION public.doomed_fn(jsonb, kommander.apply_context)');
});
ok(KmdTest::wait_converged(\@nodes), 'every node applies the drops');
for my $node (@nodes)
{
	is($node->safe_psql('postgres', q{SELECT count(*) FROM kommander.tables t
		WHERE NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = t.relid)}),
		'0', $node->name . ' keeps no registration of a dropped table');
}
my $call = q{SELECT kmd_propose('c1', '{"op":"call","applier":"doomed"}')};
my (undef, undef, $err1) = $n1->psql('postgres', "\\set VERBOSITY terse\n$call");
like($err1, qr/the function of applier "doomed" was dropped/, 'the applier fails on node1');

# node3 away while both partitions compact past its log
$n3->stop('immediate');
my $sys = $n1->safe_psql('postgres', 'SELECT last_index FROM kommander.partitions WHERE partition_id = 0');
ok(KmdTest::compact_system_past($n1, $sys), 'node1 compacted the system partition past node3');
my $user = $n1->safe_psql('postgres', 'SELECT last_index FROM kommander.partitions WHERE partition_id = 1');
ok(KmdTest::compact_past($n1, 1, $user), 'and partition 1');

my $offset = -s $n3->logfile;
$n3->start;
ok(KmdTest::wait_converged(\@nodes), 'node3 catches up');
ok($n3->log_contains(qr/installed an image of partition 0 /, $offset),
	'through an image of the system partition');
ok($n3->log_contains(qr/installed an image of partition 1 /, $offset),
	'and one of partition 1');
my (undef, undef, $err3) = $n3->psql('postgres', "\\set VERBOSITY terse\n$call");
is($err3, $err1, 'the applier fails on node3 as on node1');
KmdTest::upsert_kv($n3, 'after');
ok(KmdTest::wait_converged(\@nodes), 'a write through node3 reaches every node');
KmdTest::same_state(\@nodes);
done_testing();
