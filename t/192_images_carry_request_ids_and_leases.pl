# 192_images_carry_request_ids_and_leases.pl
#   A node that was down while its partition's log was compacted catches
#   up by an image, and the image carries the partition's remembered
#   request ids and its leases with their rows: a retry through that node
#   applies nothing again, and once it leads the partition it expires a
#   lease that is no longer kept alive, which takes its rows everywhere.
#
# Copyright (c) 2026, kommander developers
#
# t/192_images_carry_request_ids_and_leases.pl

use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use KmdTest;

my $conf = "kommander.snapshot_threshold = 20\nkommander.balance_interval = 0\n";
my @nodes = KmdTest::new_cluster(3, conf => $conf);
my ($n1, $n2, $n3) = @nodes;
$n1->safe_psql('postgres', q{
SELECT kmd_ddl('CREATE TABLE public.counters (k text PRIMARY KEY, n int NOT NULL)');
SELECT kmd_register_table('public.counters');
SELECT kmd_propose('ctr', '{"op":"insert","table":"counters","row":{"k":"ctr","n":0}}');
});
$n1->safe_psql('postgres', "SELECT kmd_transfer_leader(p, 'node1') FROM generate_series(0, 1) p");
KmdTest::wait_converged(\@nodes);

# a lease with two rows, kept alive through node1 every 300 ms
my $lease = $n1->safe_psql('postgres', "SELECT kmd_lease_grant('10 s', 'held-1')");
for my $k ('held-1', 'held-2')
{
	$n1->safe_psql('postgres',
		qq{SELECT kmd_propose('$k', '{"op":"insert","table":"counters","row":{"k":"$k","n":0},"lease":$lease}')});
}
is($n1->safe_psql('postgres', "SELECT partition_id FROM kmd_route('held-2')"),
	$n1->safe_psql('postgres', "SELECT partition_id FROM kmd_route('held-1')"), 'one partition holds both rows');
my $dir = PostgreSQL::Test::Utils::tempdir();
my $conninfo = KmdTest::conninfo($n1);
my $client = IPC::Run::start([ 'bash', '-c', <<"EOS" ]);
while [ ! -e '$dir/stop' ]; do
  psql -X -q -t -A -d '$conninfo' -c "SELECT kmd_lease_keepalive($lease)" >/dev/null 2>>'$dir/errors' && echo ok >> '$dir/kept'
  sleep 0.3
done
EOS

# node3 is down while 300 increments with request ids go through node1
$n3->stop('immediate');
$n1->safe_psql('postgres', q{
DO $$
BEGIN
  FOR i IN 1..300 LOOP
    PERFORM kmd_propose('ctr', jsonb_build_object('op', 'update', 'table', 'counters',
      'key', jsonb_build_object('k', 'ctr'), 'set', jsonb_build_object('n', jsonb_build_object('add', 1)),
      'request_id', 'inc-' || i));
  END LOOP;
END $$});
ok($n1->poll_query_until('postgres',
	"SELECT snapshot_index > 0 FROM kommander.partitions WHERE partition_id = 1"),
	'node1 compacted the log of partition 1');

my $offset = -s $n3->logfile;
$n3->start;
ok($n3->wait_for_log(qr/installed an image of partition 1 from node/, $offset),
	'node3 caught up by an image of partition 1');
KmdTest::wait_converged(\@nodes) or die 'no convergence';

my $requests = q{SELECT count(*) || ':' || md5(string_agg(key || request_id || at || idx || term || applied || sqlstate, ',' ORDER BY key, request_id)) FROM kommander.requests};
# what keepalives do not change (they go on meanwhile)
my $leases = q{SELECT (SELECT md5(string_agg(id || ':' || ttl_ms || ':' || granted_at, ',' ORDER BY id)) FROM kommander.lease_state)
  || (SELECT md5(string_agg(r::text, ',' ORDER BY key)) FROM kommander.lease_rows r)};
is($n3->safe_psql('postgres', $requests), $n1->safe_psql('postgres', $requests),
	'node3 remembers the same request ids and outcomes as node1');
like($n3->safe_psql('postgres', $requests), qr/^300:/, 'all 300 of them');
is($n3->safe_psql('postgres', "SELECT rows FROM kommander.leases WHERE id = $lease"), '2',
	'node3 has the lease, kept alive meanwhile, with its two rows');
is($n3->safe_psql('postgres', $leases), $n1->safe_psql('postgres', $leases),
	'node3 has the same lease and attached rows as node1');

# a retry through node3 of an increment it never applied from the log
my $first = $n1->safe_psql('postgres', "SELECT idx FROM kommander.requests WHERE request_id = 'inc-7'");
is($n3->safe_psql('postgres', q{SELECT kmd_propose('ctr',
	'{"op":"update","table":"counters","key":{"k":"ctr"},"set":{"n":{"add":1}},"request_id":"inc-7"}')}),
	$first, 'a retry through node3 answers with the first index');
KmdTest::wait_converged(\@nodes);
for my $node (@nodes)
{
	is($node->safe_psql('postgres', "SELECT n FROM counters WHERE k = 'ctr'"), '300',
		$node->name . ' counted every increment once');
}

# node3 takes the lead, the lease is no longer kept alive: node3, which
# knows the lease from the image only, expires it
$n1->safe_psql('postgres', "SELECT kmd_transfer_leader(1, 'node3')");
open(my $fh, '>', "$dir/stop"); close $fh;
$client->finish;
for my $node (@nodes)
{
	ok($node->poll_query_until('postgres', "SELECT count(*) = 0 FROM counters WHERE k LIKE 'held-%'"),
		$node->name . ': the lease expired under node3 and took its rows');
}
is(KmdTest::leader_of($n1, 1), 'node3', 'node3 led the partition meanwhile');
KmdTest::same_state(\@nodes);

done_testing();
