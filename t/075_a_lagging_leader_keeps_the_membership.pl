# 075_a_lagging_leader_keeps_the_membership.pl
#   A leader whose roster is behind the system partition's log changes no
#   group's membership.  Node 2's apply worker is held up by a lock on
#   kommander.roster while node 3 is removed through node 1; node 2 then
#   takes the lead of a partition with node 3 still a voter in its roster.
#   It must not add node 3 back to the group; once it applies the removal,
#   no group holds node 3.
#
# Copyright (c) 2026, kommander developers
#
# t/075_a_lagging_leader_keeps_the_membership.pl

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

# node 1 leads every partition, so that it alone removes node 3
for my $id (split /\n/, $n1->safe_psql('postgres',
		"SELECT partition_id FROM kommander.partitions WHERE state = 'active'"))
{
	$n1->safe_psql('postgres', "SELECT kmd_transfer_leader($id, 'node1')");
}

my $holder = $n2->background_psql('postgres');
$holder->query_safe('BEGIN');
$holder->query_safe('LOCK TABLE kommander.roster IN SHARE MODE');
$n1->safe_psql('postgres', "SELECT kmd_remove_node('node3')");
$n3->stop('immediate');
is($n2->safe_psql('postgres', "SELECT role FROM kommander.roster WHERE node_name = 'node3'"),
	'voter', 'node 2 has not applied the removal');

# node 2 takes the lead of partition 1, which reconciles its membership at
# once: a step it took is in its log by the time it committed all of it
$n1->safe_psql('postgres', "SELECT kmd_transfer_leader(1, 'node2')");
ok($n2->poll_query_until('postgres',
	"SELECT role = 'leader' AND commit_index = last_index FROM kommander.partitions WHERE partition_id = 1"),
	'node 2 leads partition 1 and committed its log');
is($n2->safe_psql('postgres',
	'SELECT count(*) FROM kommander.peers WHERE partition_id = 1 AND node_id = 3'),
	'0', 'node 2 did not add node 3 back to partition 1');
is($n2->safe_psql('postgres',
	"SELECT voters FROM kommander.partitions WHERE partition_id = 1"),
	'2', 'partition 1 has two voters');

$holder->query_safe('COMMIT');
$holder->quit;
ok($n2->poll_query_until('postgres',
	"SELECT count(*) = 0 FROM kommander.roster WHERE node_name = 'node3'"),
	'node 2 applied the removal');
KmdTest::upsert_kv($n2, 'after');
KmdTest::wait_converged([ $n1, $n2 ]);
for my $node ($n1, $n2)
{
	is($node->safe_psql('postgres', 'SELECT count(*) FROM kommander.peers WHERE node_id = 3'),
		'0', $node->name . ': no group holds node 3');
}
KmdTest::same_state([ $n1, $n2 ]);

done_testing();
