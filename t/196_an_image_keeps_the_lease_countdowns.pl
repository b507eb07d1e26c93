# 196_an_image_keeps_the_lease_countdowns.pl
#   Each node counts every lease down from the renewal it applied, and the
#   leader of the lease's partition expires it when its countdown ends.
#   Installing an image of another partition reads the leases again: a
#   lease not renewed since keeps its countdown (kommander.leases'
#   countdown_ends), or a node that installs images more often than a
#   lease's TTL would never expire it.  Node 3 is paused (not restarted)
#   while the log of partition 2 is compacted past it, and takes an image.
#
# Copyright (c) 2026, kommander developers
#
# t/196_an_image_keeps_the_lease_countdowns.pl

use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use KmdTest;
use KmdNemesis;

my $conf = "kommander.snapshot_threshold = 20\nkommander.balance_interval = 0\n";
my @nodes = KmdTest::new_cluster(3, conf => $conf);
my ($n1, $n2, $n3) = @nodes;
KmdTest::create_kv($n1);
KmdTest::split_in_two(\@nodes);
$n1->safe_psql('postgres', "SELECT kmd_transfer_leader(p, 'node1') FROM generate_series(0, 2) p");

# a lease of partition 1, never kept alive
my $key = KmdTest::key_in($n1, 1, 'l');
my $lease = $n1->safe_psql('postgres', "SELECT kmd_lease_grant('1 hour', '$key')");
KmdTest::wait_converged(\@nodes);
my $countdown = "SELECT countdown_ends FROM kommander.leases WHERE id = $lease";
my $before = $n3->safe_psql('postgres', $countdown);
isnt($before, '', 'node 3 counts the lease down');

# node 3 stops while partition 2's log is compacted past it
my $last = $n3->safe_psql('postgres', 'SELECT last_index FROM kommander.partitions WHERE partition_id = 2');
my @pids = KmdNemesis::pids_of({ nodes => \@nodes }, 3);
kill 'STOP', @pids;
ok(KmdTest::compact_past($n1, 2, $last), 'node 1 compacted the log of partition 2 past node 3');
my $offset = -s $n3->logfile;
kill 'CONT', @pids;
ok($n3->wait_for_log(qr/installed an image of partition 2 from node/, $offset),
	'node 3 caught up by an image of partition 2');

is($n3->safe_psql('postgres', $countdown), $before,
	'the lease, not renewed since, keeps its countdown on node 3');
# a keepalive starts it again
$n1->safe_psql('postgres', "SELECT kmd_lease_keepalive($lease)");
KmdTest::wait_converged(\@nodes);
is($n3->safe_psql('postgres', "SELECT countdown_ends > '$before' FROM kommander.leases WHERE id = $lease"),
	't', 'a keepalive starts it again');
KmdTest::same_state(\@nodes);

done_testing();
