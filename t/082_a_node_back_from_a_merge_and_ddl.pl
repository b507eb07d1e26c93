# 082_a_node_back_from_a_merge_and_ddl.pl
#   A node that was down while two partitions merged and a kmd_ddl ran (in
#   either order) comes back to the same map, rows and tables: the merged
#   away partition, which no other node runs any more, does not hold its
#   DDL for good, nor does the merge hold the partition it went into,
#   also when the merge comes long after the DDL in the partition it went
#   into.  A node that joins after all of it replays the map, which
#   creates the merged-away partitions again: they never get their logs
#   either, and must not hold its DDL.
#
# Copyright (c) 2026, kommander developers
#
# t/082_a_node_back_from_a_merge_and_ddl.pl

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
$n1->safe_psql('postgres', 'SELECT count(*) FROM kmd_create_partitions(4)');
KmdTest::upsert_kv($n1, map { "k$_" } 1 .. 20);
KmdTest::wait_converged(\@nodes);

my $map = q{SELECT string_agg(partition_id || ':' || coalesce(lo::text, '') || ':' || coalesce(hi::text, '') || ':' || generation || ':' || state, ',' ORDER BY partition_id) FROM kommander.partitions};

# two partitions side by side, the left one led by a node that stays up
sub adjacent
{
	return split /\|/, $n1->safe_psql('postgres', q{
		SELECT l.partition_id, r.partition_id FROM kommander.partitions l
		  JOIN kommander.partitions r ON r.lo = l.hi
		 WHERE l.partition_id > 0 AND l.state = 'active' AND r.state = 'active' ORDER BY l.lo LIMIT 1});
}

# $node has node1's map, ran the DDL that created $table, applies every
# partition and holds the same state as the others
sub same_as_the_others
{
	my ($node, $what, $table) = @_;
	my $name = $node->name;
	ok($node->poll_query_until('postgres',
		"SELECT ($map) = " . KmdTest::quote($n1->safe_psql('postgres', $map))),
		"$what: $name has the partition map");
	ok($node->poll_query_until('postgres', "SELECT to_regclass('public.$table') IS NOT NULL"),
		"$what: $name ran the DDL");
	ok(KmdTest::wait_converged(\@nodes), "$what: $name applies every partition");
	KmdTest::same_state(\@nodes);
}

sub back_and_same
{
	my ($what, $table) = @_;
	$n3->start;
	same_as_the_others($n3, $what, $table);
}

# the merge, then the DDL
$n3->stop('immediate');
my ($l, $r) = adjacent();
is($n1->safe_psql('postgres', "SELECT kmd_merge($l, $r)"), $l, 'merged with node3 down');
KmdTest::upsert_kv($n2, map { "k$_" } 21 .. 40);
ok($n1->safe_psql('postgres', "SELECT kmd_ddl('CREATE TABLE public.after_merge (i int)') > 0"),
	'DDL after the merge');
KmdTest::upsert_kv($n1, map { "k$_" } 41 .. 60);
back_and_same('merge, then DDL', 'after_merge');

# the DDL, then the merge
$n3->stop('immediate');
($l, $r) = adjacent();
ok($n1->safe_psql('postgres', "SELECT kmd_ddl('CREATE TABLE public.before_merge (i int)') > 0"),
	'DDL before the merge');
KmdTest::upsert_kv($n2, map { "k$_" } 61 .. 80);
is($n1->safe_psql('postgres', "SELECT kmd_merge($l, $r)"), $l, 'merged with node3 down again');
KmdTest::upsert_kv($n1, map { "k$_" } 81 .. 100);
back_and_same('DDL, then merge', 'before_merge');

# the DDL, then more entries in the left partition than the node applies
# at once, then the merge: held at its barrier entry, the left partition
# does not see the merge ahead, and the right one is never served again
$n3->stop('immediate');
($l, $r) = adjacent();
ok($n1->safe_psql('postgres', "SELECT kmd_ddl('CREATE TABLE public.far_before_merge (i int)') > 0"),
	'DDL long before the merge');
my $left_key = KmdTest::key_in($n1, $l, 'far');
KmdTest::upsert_kv($n1, ($left_key) x 100);
is($n1->safe_psql('postgres', "SELECT kmd_merge($l, $r)"), $l, 'merged with node3 down a third time');
back_and_same('DDL, entries, then merge', 'far_before_merge');

# a node that joins now replays both: each merged-away partition is
# created again here and never served, its group stopped everywhere, and
# the DDL after it must not wait for it
my $n4 = KmdTest::new_node('node4');
is($n4->safe_psql('postgres',
	"SELECT kmd_join('node4', " . KmdTest::quote(KmdTest::conninfo($n4)) . ', '
	  . KmdTest::quote(KmdTest::conninfo($n2)) . ')'), '4', 'node4 joins after the merges and DDLs');
push @nodes, $n4;
same_as_the_others($n4, 'a join after all of it', 'far_before_merge');

done_testing();
