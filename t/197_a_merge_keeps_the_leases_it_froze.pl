# 197_a_merge_keeps_the_leases_it_froze.pl
#   While a merge freezes the right partition, the leases it owns cannot be
#   kept alive (a keepalive fails with K0004 until the merge is done), and
#   every node's countdown of them runs on.  Once the merge is applied,
#   the left partition's leader counts them: each must get its whole TTL
#   again from the merge, not be expired at once for the time it was
#   frozen.  A client keeps a 2 s lease of partition 2 alive every 600 ms
#   (within a third of its TTL) through node 2 while partition 2 is frozen
#   until node 3, the leader of partition 1, counted it out; partition 2
#   is led by node 2.
#
# Copyright (c) 2026, kommander developers
#
# t/197_a_merge_keeps_the_leases_it_froze.pl

use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use KmdTest;

my @nodes = KmdTest::new_cluster(3, conf => "kommander.balance_interval = 0\n");
my ($n1, $n2, $n3) = @nodes;
KmdTest::create_kv($n1);
KmdTest::split_in_two(\@nodes);

# the left partition led where the right one is not
$n1->safe_psql('postgres', "SELECT kmd_transfer_leader(1, 'node3'), kmd_transfer_leader(2, 'node2')");
for my $node (@nodes)
{
	$node->poll_query_until('postgres', q{SELECT string_agg(leader_name, ',' ORDER BY partition_id)
		= 'node3,node2' FROM kommander.partitions WHERE partition_id IN (1, 2)})
	  or die 'the leaders did not move on ' . $node->name;
}

my $key = KmdTest::key_in($n1, 2, 'l');
# (time for a keepalive through node2 once it applied the merge, on a
# busy machine too)
my $lease = $n2->safe_psql('postgres', "SELECT kmd_lease_grant('5 s', '$key')");
is($n2->safe_psql('postgres', "SELECT partition_id FROM kommander.leases WHERE id = $lease"),
	'2', 'the lease belongs to partition 2');
my $dir = PostgreSQL::Test::Utils::tempdir();
my $conninfo = KmdTest::conninfo($n2);
my $keeper = IPC::Run::start([ 'bash', '-c', <<"EOS" ]);
while [ ! -e '$dir/stop' ]; do
  psql -X -q -t -A -v VERBOSITY=verbose -d '$conninfo' -c "SELECT kmd_lease_keepalive($lease)" >/dev/null 2>>'$dir/errors'
  sleep 0.6
done
EOS

# node 1's apply is held, so kmd_merge gives up once the freeze committed
my $locker = $n1->background_psql('postgres');
$locker->query_safe('BEGIN');
$locker->query_safe('LOCK TABLE kommander.partition_map IN SHARE MODE');
my ($rc, $out, $err) = $n1->psql('postgres', "SET kommander.propose_timeout = '2s'; SELECT kmd_merge(1, 2)");
isnt($rc, 0, 'kmd_merge gives up while node 1 cannot apply');
ok($n2->poll_query_until('postgres',
	"SELECT state = 'frozen' FROM kommander.partitions WHERE partition_id = 2"),
	'partition 2 is frozen');
# frozen until node 3, which leads partition 1, saw the lease's countdown
# run out: the keepalives fail meanwhile
ok($n3->poll_query_until('postgres',
	"SELECT countdown_ends < now() FROM kommander.leases WHERE id = $lease"),
	'the countdown ran out while partition 2 was frozen');
$locker->query_safe('COMMIT');
$locker->quit;
ok($n1->poll_query_until('postgres',
	"SELECT state = 'frozen' FROM kommander.partitions WHERE partition_id = 2"),
	'node 1 applied the freeze');
is($n1->safe_psql('postgres', 'SELECT kmd_merge(1, 2)'), '1', 'the merge completes');
my $merged_at = $n1->safe_psql('postgres', 'SELECT now()');
like(slurp_file("$dir/errors"), qr/K0004/, 'keepalives failed while partition 2 was frozen');

# until the lease is gone or the keeper renewed it after the merge
ok($n3->poll_query_until('postgres', qq{SELECT NOT EXISTS (SELECT 1 FROM kommander.leases WHERE id = $lease)
	OR EXISTS (SELECT 1 FROM kommander.leases WHERE id = $lease AND renewed_at > '$merged_at')}),
	'the lease was kept alive or ended after the merge');
KmdTest::wait_converged(\@nodes);
for my $node (@nodes)
{
	is($node->safe_psql('postgres', "SELECT partition_id FROM kommander.leases WHERE id = $lease"),
		'1', $node->name . ': the lease lives on, in partition 1');
}
unlike(slurp_file("$dir/errors"), qr/K0013/, 'no keepalive found the lease gone');

open(my $fh, '>', "$dir/stop") or die $!;
close $fh;
$keeper->finish;
KmdTest::wait_converged(\@nodes);
KmdTest::same_state(\@nodes);

done_testing();
