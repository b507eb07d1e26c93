# 223_a_lagging_node_applies_a_name_reused.pl
#   node4 is removed and a wiped server joins under the same name (a new
#   id) while node3 applies no roster change (a session's lock holds its
#   apply back).  node3 then applies the removal, the addition and the
#   promotion in one transaction: the addition must see the removal
#   before it, as on the nodes that applied them one by one, and node3
#   end with the new node4 as a voter, the outcome of every entry the
#   same as elsewhere.  It refused the addition before ("node4 is already
#   a voter"): a read-only read took the transaction's first snapshot.
#   The apply now advances the snapshot's command id before each entry,
#   and the addition's reads are read-only again: this shows that too.
#
# Copyright (c) 2026, kommander developers
#
# t/223_a_lagging_node_applies_a_name_reused.pl

use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use KmdTest;

my $conf = "kommander.balance_interval = 0\n";
my @nodes = KmdTest::new_cluster(4, conf => $conf);
my ($n1, $n2, $n3, $n4) = @nodes;
# node1 leads every partition: node3's stale roster leads none of them
for my $p (split /\n/, $n1->safe_psql('postgres',
		"SELECT partition_id FROM kommander.partitions WHERE coalesce(leader_name, '') <> 'node1'"))
{
	KmdTest::lead($n1, $p);
}
my $errors = q{SELECT value FROM kommander.stats WHERE name = 'apply_errors' AND partition_id = 0};
my $errors_before = $n3->safe_psql('postgres', $errors);

# node3 applies no roster change while a session holds this lock
my $locker = $n3->background_psql('postgres');
$locker->query_safe('BEGIN');
$locker->query_safe('LOCK TABLE kommander.roster IN SHARE MODE');

$n1->safe_psql('postgres', "SELECT kmd_remove_node('node4')");
KmdTest::wipe_node($n4, conf => $conf);
is($n4->safe_psql('postgres',
		"SELECT kmd_join('node4', " . KmdTest::quote(KmdTest::conninfo($n4)) . ', '
		  . KmdTest::quote(KmdTest::conninfo($n1)) . ')'),
	'5', 'a wiped server joined as node4 again, under id 5');
is($n3->safe_psql('postgres', "SELECT node_id FROM kommander.roster WHERE node_name = 'node4'"),
	'4', 'node3 has not applied it: node4 is node 4 there');

$locker->query_safe('COMMIT');
$locker->quit;
KmdTest::wait_converged(\@nodes) or die 'no convergence';
for my $node (@nodes)
{
	is($node->safe_psql('postgres', "SELECT node_id || ' ' || role FROM kommander.roster WHERE node_name = 'node4'"),
		'5 voter', $node->name . ' has the new node4 as a voter');
}
is($n3->safe_psql('postgres', $errors), $errors_before, 'no roster change failed on node3');

done_testing();
