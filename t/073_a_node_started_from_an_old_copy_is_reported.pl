# 073_a_node_started_from_an_old_copy_is_reported.pl
#   A node started from an older copy of its data directory, on its own
#   WAL timeline (a file-system snapshot put back), cannot tell by itself.
#   The leader can: the node acknowledged entries it no longer holds.  The
#   leader's server log names the node and the partition, and the node is
#   not sent the entries it lost as if it were merely behind (the leader
#   and that node once traded probes and rejections as fast as they could).
#   The other two nodes go on committing.
#
# Copyright (c) 2026, kommander developers
#
# t/073_a_node_started_from_an_old_copy_is_reported.pl

use strict;
use warnings;
use File::Path ();
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::RecursiveCopy;
use PostgreSQL::Test::Utils;
use Test::More;
use KmdTest;

my @nodes = KmdTest::new_cluster(3, conf => "kommander.balance_interval = 0\n");
my ($n1, $n2, $n3) = @nodes;
KmdTest::create_kv($n1);
$n1->safe_psql('postgres', "SELECT kmd_transfer_leader(1, 'node1')");
$n1->poll_query_until('postgres',
	"SELECT leader_name = 'node1' FROM kommander.partitions WHERE partition_id = 1")
  or die 'node1 does not lead partition 1';

sub put
{
	my ($node, $prefix, $n) = @_;
	$node->safe_psql('postgres', qq{
DO \$\$
BEGIN
  FOR i IN 1..$n LOOP
    PERFORM kmd_propose('$prefix' || i, jsonb_build_object('op', 'upsert', 'table', 'kv',
      'row', jsonb_build_object('k', '$prefix' || i, 'v', 'x')));
  END LOOP;
END \$\$});
}

put($n1, 'a', 10);
ok(KmdTest::wait_converged(\@nodes), 'three nodes converge');

# a copy of node3's data directory, taken while it is stopped
$n3->stop;
my $copy = $n3->basedir . '/old_copy';
PostgreSQL::Test::RecursiveCopy::copypath($n3->data_dir, $copy);
$n3->start;
KmdTest::wait_leaders($n3);
put($n1, 'b', 20);
ok(KmdTest::wait_converged(\@nodes), 'node3 acknowledged and applied the later writes');

# put the copy back and start node3 from it, on the same timeline
$n3->stop('immediate');
File::Path::rmtree($n3->data_dir);
PostgreSQL::Test::RecursiveCopy::copypath($copy, $n3->data_dir);
chmod(0700, $n3->data_dir);
my $offset = -s $n1->logfile;
$n3->start;


# the leader finds out with the partition's next write
put($n1, 'c', 5);
ok($n2->poll_query_until('postgres', "SELECT count(*) = 5 FROM kv WHERE k LIKE 'c%'"),
	'node1 and node2 still commit');
$n1->wait_for_log(
	qr/WARNING:  node 3 \(node3\) lost entries of partition 1 that it had acknowledged/, $offset);
like(slurp_file($n1->logfile, $offset),
	qr/DETAIL:  It acknowledged the log up to index \d+ and now holds it up to index \d+ at most: its data went back/,
	'the leader says how far the node had acknowledged and where its log ends');
is($n3->safe_psql('postgres', "SELECT count(*) FROM kv WHERE k LIKE 'c%'"), '0',
	'node3 is not sent the later writes as if it were merely behind');

done_testing();
