# 082_a_node_back_from_a_merge_and_ddl.pl
#   A node that was down while two partitions merged and a kmd_ddl ran (in
#   either order) comes back to the same map, rows and tables: the merged
#   away partition, which no other node runs any more, does not hold its
#   DDL for good, nor does the merge hold the partition it went into.
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

sub back_and_same
{
	my ($what, $table) = @_;
	$n3->start;
	ok($n3->poll_query_until('postgres',
		"SELECT ($map) = " . KmdTest::quote($n1->safe_psql('postgres', $map))),
		"$what: node3 has the partition map again");
	ok($n3->poll_query_until('postgres', "SELECT to_regclass('public.$table') IS NOT NULL"),
		"$what: node3 ran the DDL");
	ok(KmdTest::wait_converged(\@nodes), "$what: node3 applies every partition again");
	KmdTest::same_state(\@nodes);
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

done_testing();
