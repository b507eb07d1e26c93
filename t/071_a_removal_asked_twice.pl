# 071_a_removal_asked_twice.pl
#   kmd_remove_node marks a node 'removing', waits until every partition's
#   group lets it go, then takes it out of the roster: each step names
#   itself in its entry.  Two sessions that remove node3 at once both
#   propose the first step (node1's apply of the roster is held back by a
#   lock, as a retry after K0003 would find it); the second must not be
#   taken for the last step, which would drop node3 from the roster while
#   the groups still count it.  With node2 down the groups cannot let
#   node3 go: both calls time out, and node3 stays 'removing'.  Once node2
#   is back, a node being removed cannot be promoted, and the removal
#   finishes.  A node cannot remove itself.
#
# Copyright (c) 2026, kommander developers
#
# t/071_a_removal_asked_twice.pl

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

# a node does not remove itself: it would never apply its own removal
my ($rc, $code, $msg) = KmdTest::error_of($n3, "SELECT kmd_remove_node('node3')");
is($code, '55000', "node3 does not remove itself ($msg)");
is($n1->safe_psql('postgres', "SELECT role FROM kommander.roster WHERE node_name = 'node3'"), 'voter',
	'node3 is still a voter');

$n2->stop;

# node1 applies no roster change while a session holds this lock
my $locker = $n1->background_psql('postgres');
$locker->query_safe('BEGIN');
$locker->query_safe('LOCK TABLE kommander.roster IN SHARE MODE');

my @removers = map {
	my ($h, $err) = KmdTest::start_sql($n1,
		"SET kommander.propose_timeout = 4000; SELECT kmd_remove_node('node3')");
	{ h => $h, err => $err }
} 1 .. 2;
$n1->poll_query_until('postgres',
	q{SELECT count(*) = 2 FROM pg_stat_activity WHERE query LIKE '%kmd_remove_node(''node3'')%'
	    AND wait_event = 'Extension'})
  or die 'the two removals do not wait';
# both have proposed their first step: the system partition commits them
# with node1 and node3
$n1->poll_query_until('postgres',
	q{SELECT commit_index >= applied_index + 2 FROM kommander.partitions WHERE partition_id = 0})
  or die 'the two roster changes did not commit';
$locker->query_safe('COMMIT');
$locker->quit;
$_->{h}->finish for @removers;
like(${ $_->{err} }, qr/K0002/, 'a removal waits for the groups and times out') for @removers;

my $role = q{SELECT coalesce((SELECT role FROM kommander.roster WHERE node_name = 'node3'), 'gone')};
is($n1->safe_psql('postgres', $role), 'removing', 'node3 is still in the roster, removing');

$n2->start;
KmdTest::wait_leaders($n1);
($rc, $code, $msg) = KmdTest::error_of($n1, "SELECT kmd_promote_node('node3')");
is($code, '55000', "a node being removed is not promoted ($msg)");
is($n1->safe_psql('postgres', $role), 'removing', 'node3 stays removing');
$n1->safe_psql('postgres', "SELECT kmd_remove_node('node3')");
is($n1->safe_psql('postgres', $role), 'gone', 'once node2 is back the removal finishes');
$n2->poll_query_until('postgres', "SELECT ($role) = 'gone'")
  or diag('node2 has node3 as ' . $n2->safe_psql('postgres', $role));
is($n2->safe_psql('postgres', $role), 'gone', 'node2 has the same roster');
$n1->safe_psql('postgres',
	q{SELECT kmd_propose('after', '{"op":"insert","table":"kv","row":{"k":"after","v":"x"}}')});
ok($n2->poll_query_until('postgres', "SELECT count(*) = 1 FROM kv WHERE k = 'after'"),
	'node1 and node2 commit without node3');

# two voters left, each removed through the other at once: both calls
# pass their own node's check, and the roster's log takes the first only
my @lockers = map {
	my $l = $_->background_psql('postgres');
	$l->query_safe('BEGIN');
	$l->query_safe('LOCK TABLE kommander.roster IN SHARE MODE');
	$l
} ($n1, $n2);
my @crossed = map {
	my ($node, $other) = @$_;
	my ($h, $err) = KmdTest::start_sql($node,
		"SET kommander.propose_timeout = 4000; SELECT kmd_remove_node('$other')");
	{ h => $h, err => $err, target => $other eq 'node1' ? $n1 : $n2 }
} ([ $n1, 'node2' ], [ $n2, 'node1' ]);
for my $node ($n1, $n2)
{
	$node->poll_query_until('postgres',
		q{SELECT count(*) = 1 FROM pg_stat_activity WHERE query LIKE '%kmd_remove_node(''node%'')%'
		    AND wait_event = 'Extension'})
	  or die $node->name . ': the removal does not wait';
}
$n1->poll_query_until('postgres',
	q{SELECT commit_index >= applied_index + 2 FROM kommander.partitions WHERE partition_id = 0})
  or die 'the two removals did not commit';
$_->query_safe('COMMIT'), $_->quit for @lockers;
$_->{h}->finish for @crossed;
my @refused = grep { ${ $_->{err} } =~ /55000: cannot remove the last voter/ } @crossed;
is(scalar(@refused), 1, 'one of two removals of the last two voters is refused when applied');
my $survivor = @refused ? $refused[0]->{target} : $n1;
is($survivor->safe_psql('postgres',
	"SELECT string_agg(node_name || ' ' || role, ', ' ORDER BY node_name) FROM kommander.roster WHERE role <> 'removing'"),
	$survivor->name . ' voter', 'the node it would have removed is still a voter');

done_testing();
