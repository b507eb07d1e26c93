# 211_notes_left_out_of_memory_reach_their_leaders.pl
#   Two leases, each holding 300 rows that splits parted into a partition
#   of their own, end in different orders on two nodes: node2 applies the
#   end of lease A first, whose notes fill its memory, and node3 that of
#   lease B.  Node2 leads the partition of B's rows and node3 that of A's:
#   each node's memory holds only notes of the partition the other leads,
#   and neither proposes a drop, so no drop ever makes room.  The notes
#   left out must reach memory again, the led partitions' first: the rows
#   of both leases go, on every node.
#
# Copyright (c) 2026, kommander developers
#
# t/211_notes_left_out_of_memory_reach_their_leaders.pl

use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use KmdTest;

# the leaders chosen below must stay where they are put
my $conf = "kommander.balance_interval = 0\nkommander.election_timeout = 1000\n";
my @nodes = KmdTest::new_cluster(3, conf => $conf);
my ($n1, $n2, $n3) = @nodes;
KmdTest::create_kv($n1);
$n1->safe_psql('postgres', q{
SELECT kmd_ddl('CREATE TABLE public.claims (job text PRIMARY KEY, owner text)');
SELECT kmd_register_table('public.claims');
});

# partition 1's range in quarters: lease A lives in the first, its rows in
# the second; lease B in the third, its rows in the fourth
my ($q1, $q2, $q3) = split /\|/, $n1->safe_psql('postgres', q{
SELECT (lo + s)::bigint, (lo + 2 * s)::bigint, (lo + 3 * s)::bigint
  FROM (SELECT lo::numeric AS lo, (coalesce(hi::numeric, 9223372036854775807) - lo::numeric) / 4 AS s
          FROM kommander.partitions WHERE partition_id = 1) p});
my $grant_key = KmdTest::key_in($n1, 1, 'lease-');
my ($lease_a, $lease_b);
for my $i (1 .. 200)
{
	my $id = $n1->safe_psql('postgres', "SELECT kmd_lease_grant('10 min', '$grant_key')");
	my $h = $n1->safe_psql('postgres', "SELECT kommander.key_hash('$id')");
	if (!defined $lease_a && $h < $q1) { $lease_a = $id; }
	elsif (!defined $lease_b && $h >= $q2 && $h < $q3) { $lease_b = $id; }
	else { $n1->safe_psql('postgres', "SELECT kmd_lease_revoke($id)"); }
	last if defined $lease_a && defined $lease_b;
}
ok(defined $lease_a && defined $lease_b, 'a lease in the first quarter and one in the third');

# 300 rows each, attached while all of partition 1 was one
for ([ $lease_a, 'a-', $q1, $q2 ], [ $lease_b, 'b-', $q3, undef ])
{
	my ($lease, $prefix, $from, $to) = @$_;
	my $below = defined $to ? "AND kommander.key_hash(s.k) < $to" : '';
	$n1->safe_psql('postgres', qq{
DO \$\$
DECLARE job text;
BEGIN
  FOR job IN SELECT s.k FROM generate_series(1, 20000) i, LATERAL (SELECT '$prefix' || i AS k) s
            WHERE kommander.key_hash(s.k) >= $from $below ORDER BY i LIMIT 300 LOOP
    PERFORM kmd_propose(job, jsonb_build_object('op', 'insert', 'table', 'claims',
      'row', jsonb_build_object('job', job, 'owner', 'w'), 'lease', $lease));
  END LOOP;
END \$\$});
}
is($n1->safe_psql('postgres', 'SELECT count(*) FROM claims'), '600', '600 rows attached');

# the splits at the quarters
my $rows_a = $n1->safe_psql('postgres', "SELECT kmd_split(1, $q1)");
my $home_b = $n1->safe_psql('postgres', "SELECT kmd_split($rows_a, $q2)");
my $rows_b = $n1->safe_psql('postgres', "SELECT kmd_split($home_b, $q3)");
KmdTest::wait_leaders($_) for @nodes;
ok(KmdTest::wait_converged(\@nodes), 'every node applied the splits');
is($n1->safe_psql('postgres',
	"SELECT string_agg(DISTINCT r.partition_id::text, ',') FROM claims c, LATERAL kmd_route(c.job) r WHERE c.job LIKE 'a-%'"),
	$rows_a, "lease A's rows are all in partition $rows_a");
is($n1->safe_psql('postgres',
	"SELECT string_agg(DISTINCT r.partition_id::text, ',') FROM claims c, LATERAL kmd_route(c.job) r WHERE c.job LIKE 'b-%'"),
	$rows_b, "lease B's rows are all in partition $rows_b");

# node3 leads A's rows, node2 B's; node2 cannot apply B's end yet, node3
# not A's
KmdTest::lead($n3, $rows_a);
KmdTest::lead($n2, $rows_b);
my ($hold2) = KmdTest::hold_back($n1, $n2, [$home_b]);
my ($hold3) = KmdTest::hold_back($n1, $n3, [1]);
$n1->safe_psql('postgres', "SELECT kmd_lease_revoke($lease_a)");
$n1->safe_psql('postgres', "SELECT kmd_lease_revoke($lease_b)");
ok($n2->poll_query_until('postgres', "SELECT count(*) = 0 FROM kommander.leases WHERE id = $lease_a"),
	"node2 applied the end of lease A");
ok($n3->poll_query_until('postgres', "SELECT count(*) = 0 FROM kommander.leases WHERE id = $lease_b"),
	"node3 applied the end of lease B");
$hold2->query_safe('ROLLBACK');
$hold2->quit;
$hold3->query_safe('ROLLBACK');
$hold3->quit;

for my $node (@nodes)
{
	ok($node->poll_query_until('postgres',
		"SELECT count(*) = 0 FROM claims WHERE job LIKE 'a-%' OR job LIKE 'b-%'"),
		$node->name . ': the rows of both leases are gone');
	ok($node->poll_query_until('postgres',
		'SELECT (SELECT count(*) FROM kommander.lease_rows) + (SELECT count(*) FROM kommander.lease_orphans) = 0'),
		$node->name . ': and so are their attachments and notes');
}
ok(KmdTest::wait_converged(\@nodes), 'the nodes converge');
KmdTest::same_state(\@nodes);

done_testing();
