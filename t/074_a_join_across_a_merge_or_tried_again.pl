# 074_a_join_across_a_merge_or_tried_again.pl
#   A node that joins while a merge completes.  kmd_join reads from its
#   seed how far each partition has committed and waits until this node
#   has applied as much; a partition merged away meanwhile stops short of
#   that here, its log carried on by its left neighbour's.  The seed here
#   (node 2) has committed the merge of partition 2 into partition 1 but
#   not applied it, so it still lists partition 2, frozen; node 3 applies
#   the merge while it catches up.  kmd_join must count partition 2 as
#   caught up and promote node 3, not wait for it and fail (in a
#   REPEATABLE READ transaction too, whose snapshot would not show the
#   merge, and while writes go on in the other partition).  A join that
#   stopped after the node took its identity goes on when run again.  A
#   join whose conninfo leads elsewhere than to the node is refused
#   before the node is added.
#
# Copyright (c) 2026, kommander developers
#
# t/074_a_join_across_a_merge_or_tried_again.pl

use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use KmdTest;

my ($n1, $n2) = KmdTest::new_cluster(2);
KmdTest::create_kv($n1);
KmdTest::split_in_two([ $n1, $n2 ]);
my $left_key = KmdTest::key_in($n1, 1, 'k');
my $right_key = KmdTest::key_in($n1, 2, 'k');
KmdTest::upsert_kv($n1, $left_key, $right_key);
KmdTest::wait_converged([ $n1, $n2 ]);

# node 3 is added to the roster through node 2, then waits to write its
# identity: a session of its own holds kommander.local
my $n3 = KmdTest::new_node('node3');
my $holder = $n3->background_psql('postgres');
$holder->query_safe('BEGIN');
$holder->query_safe('LOCK TABLE kommander.local IN SHARE MODE');
my ($join_out, $join_err) = ('', '');
my $join = IPC::Run::start(
	[
		'psql', '-XAtq', '-d', $n3->connstr('postgres'),
		'-c', "SET kommander.propose_timeout = '10s'",
		'-c', "SET default_transaction_isolation = 'repeatable read'",
		'-c', "SELECT current_setting('transaction_isolation') || ' ' || kmd_join('node3', "
		  . KmdTest::quote(KmdTest::conninfo($n3)) . ', '
		  . KmdTest::quote(KmdTest::conninfo($n2)) . ')'
	],
	'>', \$join_out, '2>', \$join_err);
ok($n2->poll_query_until('postgres', "SELECT count(*) = 1 FROM kommander.roster WHERE node_name = 'node3'"),
	'node 3 is in the roster');

# node 2 applies the freeze of partition 2 but not the merge, which
# updates partition 1's row of the map
my $stall = $n2->background_psql('postgres');
$stall->query_safe('BEGIN');
$stall->query_safe('SELECT 1 FROM kommander.partition_map WHERE partition_id = 1 FOR UPDATE');
is($n1->safe_psql('postgres', 'SELECT kmd_merge(1, 2)'), '1', 'partition 2 merged into partition 1 through node 1');
ok($n2->poll_query_until('postgres',
	"SELECT state = 'frozen' FROM kommander.partitions WHERE partition_id = 2"),
	'node 2 lists partition 2, frozen');

# writes go on through node 1 meanwhile, one after the other (for a minute
# at most): node 3 must tell the partition whose log ended from the
# others, which move
my $writer = IPC::Run::start(
	[
		'psql', '-XAtq', '-d', $n1->connstr('postgres'), '-c', q{
DO $$
DECLARE
  i int := 0;
  t timestamptz := clock_timestamp();
BEGIN
  WHILE clock_timestamp() < t + interval '60 s' AND NOT EXISTS (SELECT 1 FROM kv WHERE k = 'stop') LOOP
    i := i + 1;
    PERFORM kmd_propose('w' || i, jsonb_build_object('op', 'upsert', 'table', 'kv',
      'row', jsonb_build_object('k', 'w' || i, 'v', 'w')));
  END LOOP;
END $$}
	]);
ok($n1->poll_query_until('postgres', "SELECT count(*) > 0 FROM kv WHERE k LIKE 'w%'"), 'writes go on');

# node 3 writes its identity and reads node 2's commit indexes
$holder->query_safe('COMMIT');
ok($n3->poll_query_until('postgres',
	"SELECT state = 'gone' FROM kommander.partition_map WHERE partition_id = 2"),
	'node 3 applied the merge');
# the promotion goes through node 2, which must apply it
$stall->query_safe('COMMIT');
$stall->quit;
$holder->quit;

$join->finish;
chomp $join_out;
ok($writer->pumpable, 'the join ended while the writes went on');
KmdTest::upsert_kv($n1, 'stop');
$writer->finish;
is($join_out, 'repeatable read 3', 'kmd_join returned the new node id') or diag($join_err);
ok($n1->poll_query_until('postgres', "SELECT role = 'voter' FROM kommander.nodes WHERE node_name = 'node3'"),
	'node 3 is a voter');
KmdTest::wait_converged([ $n1, $n2, $n3 ]);
is($n3->safe_psql('postgres', "SELECT string_agg(k || '=' || v, ',' ORDER BY k) FROM kv WHERE v = 'x' AND k <> 'stop'"),
	join(',', map { "$_=x" } sort ($left_key, $right_key)),
	'node 3 holds the rows of both partitions');
KmdTest::same_state([ $n1, $n2, $n3 ]);

# A join that stopped once the node had its identity (here one that did
# not promote) goes on when run again with the same arguments, through
# any member; other arguments are refused.
my $n4 = KmdTest::new_node('node4');
my $join4 = sub {
	my ($name, $seed, $promote) = @_;
	return $n4->psql('postgres',
		"SELECT kmd_join('$name', " . KmdTest::quote(KmdTest::conninfo($n4)) . ', '
		  . KmdTest::quote(KmdTest::conninfo($seed)) . ", $promote)",
		extra_params => [ '-v', 'VERBOSITY=verbose' ]);
};
# A conninfo that does not lead to the node itself (another node's, or
# this server's other database) is refused before the node is added:
# the others would reach something else, and the name would be taken
for my $wrong ([ KmdTest::conninfo($n3), qr/another server/ ],
	[ KmdTest::conninfo($n4) =~ s/dbname=\S+/dbname=template1/r, qr/database "template1" of this server/ ])
{
	my ($conninfo, $which) = @$wrong;
	my ($wrc, $wout, $werr) = $n4->psql('postgres',
		"SELECT kmd_join('node4', " . KmdTest::quote($conninfo) . ', '
		  . KmdTest::quote(KmdTest::conninfo($n1)) . ", false)",
		extra_params => [ '-v', 'VERBOSITY=verbose' ]);
	like($werr, qr/22023: conninfo does not reach this node/, "a join through $conninfo is refused");
	like($werr, $which, 'naming what it reaches');
}
is($n1->safe_psql('postgres', "SELECT count(*) FROM kommander.roster WHERE node_name = 'node4'"),
	'0', 'node 4 was not added');
my ($rc, $out, $err) = $join4->('node4', $n1, 'false');
is($out, '4', 'node 4 joins without being promoted');
is($n1->safe_psql('postgres', "SELECT role FROM kommander.nodes WHERE node_name = 'node4'"),
	'learner', 'node 4 is a learner');
ok($n2->poll_query_until('postgres', "SELECT count(*) = 1 FROM kommander.roster WHERE node_name = 'node4'"),
	'node 2 knows node 4');
($rc, $out, $err) = $join4->('node5', $n2, 'true');
like($err, qr/55000: this node already belongs to a kommander cluster as node "node4"/,
	'a join under another name is refused');
($rc, $out, $err) = $join4->('node4', $n2, 'true');
is($out, '4', 'the same join again goes on as node 4') or diag($err);
ok($n1->poll_query_until('postgres', "SELECT role = 'voter' FROM kommander.nodes WHERE node_name = 'node4'"),
	'node 4 is a voter');
is($n1->safe_psql('postgres', "SELECT count(*) FROM kommander.roster WHERE node_name = 'node4'"),
	'1', 'the roster holds node 4 once');
KmdTest::wait_converged([ $n1, $n2, $n3, $n4 ]);
KmdTest::same_state([ $n1, $n2, $n3, $n4 ]);

done_testing();
