# 199_an_image_of_a_merge_keeps_the_leases_it_froze.pl
#   A merge gives the leases of the partition it froze their whole TTL
#   again from when a node applies it: they could not be kept alive while
#   the partition was frozen (t/197).  A node that does not apply the merge
#   but takes an image of the partition it went into (cut off from the
#   others, not restarted, while the merge went in and the log was
#   compacted) must count those leases the same way, not on from the grant
#   or keepalive it applied before: leading the partition later, it could
#   end them early.
#
# Copyright (c) 2026, kommander developers
#
# t/199_an_image_of_a_merge_keeps_the_leases_it_froze.pl

use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use KmdTest;
use KmdNemesis;
use KmdProxy;

my $t = KmdNemesis::new_cluster(3, conf => "kommander.balance_interval = 0\n");
my @nodes = @{ $t->{nodes} };
my ($n1, $n2, $n3) = @nodes;
for my $node (@nodes)
{
	$node->safe_psql('postgres', q{
ALTER SYSTEM SET kommander.snapshot_threshold = 10;
SELECT pg_reload_conf();
});
}
KmdTest::create_kv($n1);
$n1->safe_psql('postgres',
	"SELECT kmd_transfer_leader(partition_id, 'node1') FROM kommander.partitions WHERE state = 'active'");
ok($n3->poll_query_until('postgres',
	q{SELECT bool_and(leader_name = 'node1') FROM kommander.partitions WHERE state = 'active'}),
	'node 1 leads every partition');

# two partitions side by side
my ($l, $r) = split /\|/, $n1->safe_psql('postgres', q{
	SELECT l.partition_id, r.partition_id FROM kommander.partitions l
	  JOIN kommander.partitions r ON r.lo = l.hi
	 WHERE l.partition_id > 0 AND l.state = 'active' AND r.state = 'active' ORDER BY l.lo LIMIT 1});
my $key = KmdTest::key_in($n1, $r, 'l');
my $lease = $n1->safe_psql('postgres', "SELECT kmd_lease_grant('60 s', '$key')");
ok($n3->poll_query_until('postgres',
	"SELECT countdown_ends IS NOT NULL FROM kommander.leases WHERE id = $lease"),
	"node 3 counts down the lease of partition $r");

# node 3 cut off from the others: not restarted, which would count every
# lease from then
my @links = ('1>3', '2>3', '3>1', '3>2');
KmdProxy::set($t->{proxy}, $_, 'cut') for @links;
is($n1->safe_psql('postgres', "SELECT kmd_merge($l, $r)"), $l, "partition $r merged into $l without node 3");
ok(KmdTest::compact_past($n1, $l, $n1->safe_psql('postgres',
	"SELECT last_index FROM kommander.partitions WHERE partition_id = $l")),
	"node 1 compacted partition $l past the merge");
my $offset = -s $n3->logfile;
KmdProxy::set($t->{proxy}, $_, 'up') for @links;

ok($n3->wait_for_log(qr/installed an image of partition $l from node/, $offset),
	"node 3 took an image of partition $l");
ok(KmdTest::wait_converged(\@nodes), 'node 3 applies every partition');
is($n3->safe_psql('postgres', "SELECT partition_id FROM kommander.leases WHERE id = $lease"),
	$l, "node 3 has the lease in partition $l");
my $ends = $n1->safe_psql('postgres', "SELECT countdown_ends FROM kommander.leases WHERE id = $lease");
is($n3->safe_psql('postgres',
	"SELECT countdown_ends >= '$ends' FROM kommander.leases WHERE id = $lease"),
	't', "node 3's countdown ends no sooner than node 1's, which applied the merge");
KmdTest::same_state(\@nodes);

KmdProxy::stop($t->{proxy});
done_testing();
