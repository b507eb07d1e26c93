# 118_a_partition_that_fits_again_goes_on.pl
#   A node restarted with kommander.max_partitions below the partitions
#   it hosted leaves some out; once a merge frees an entry, a partition
#   left out is served again from the index it had applied, not from the
#   start of its log: a command applied before the restart is not applied
#   a second time.
#
# Copyright (c) 2026, kommander developers
#
# t/118_a_partition_that_fits_again_goes_on.pl

use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use KmdTest;

my @nodes = KmdTest::new_cluster(3, conf => "kommander.balance_interval = 0\n");
my ($n1, $n2, $n3) = @nodes;
KmdTest::create_kv($n1);
$n1->safe_psql('postgres', q{SELECT kmd_ddl('ALTER TABLE public.kv ADD COLUMN n int')});
KmdTest::split_in_two(\@nodes);
$n1->safe_psql('postgres', 'SELECT kmd_split(2)');
for my $node (@nodes)
{
	$node->poll_query_until('postgres',
		"SELECT count(*) = 3 FROM kommander.partitions WHERE partition_id > 0 AND leader_name IS NOT NULL")
	  or die 'the second split did not reach ' . $node->name;
}

# a counter in every user partition, counted up a few times
my @parts = split /\n/, $n1->safe_psql('postgres',
	'SELECT partition_id FROM kommander.partitions WHERE partition_id > 0 ORDER BY 1');
my %key = map { $_ => KmdTest::key_in($n1, $_, 'counter') } @parts;
for my $p (@parts)
{
	$n1->safe_psql('postgres', "SELECT kmd_propose('$key{$p}', "
		  . qq{'{"op":"insert","table":"kv","row":{"k":"$key{$p}","v":"c","n":0}}')});
	for (1 .. 5)
	{
		$n1->safe_psql('postgres', "SELECT kmd_propose('$key{$p}', "
			  . qq{'{"op":"update","table":"kv","key":{"k":"$key{$p}"},"set":{"n":{"add":1}}}')});
	}
}
ok(KmdTest::wait_converged(\@nodes), 'every node applied the counters');
my $counters = q{SELECT string_agg(k || '=' || n, ',' ORDER BY k) FROM kv WHERE v = 'c'};
my $want = $n1->safe_psql('postgres', $counters);
is($n3->safe_psql('postgres', $counters), $want, 'node3 counted like node1');

# node3 has room for the system partition and two user partitions
my $offset = -s $n3->logfile;
$n3->append_conf('postgresql.conf', "kommander.max_partitions = 3\n");
$n3->restart;
$n3->wait_for_log(qr/1 partition does not fit in kommander.max_partitions/, $offset);
# the groups of the others run; the one left out has none
$n3->poll_query_until('postgres',
	'SELECT count(*) FILTER (WHERE role IS NULL) = 1 AND count(*) FILTER (WHERE role IS NOT NULL) = 3 '
	  . 'FROM kommander.partitions')
  or die 'node3 did not start the partitions that fit';
my $left_out = $n3->safe_psql('postgres',
	'SELECT partition_id FROM kommander.partitions WHERE role IS NULL');
is($left_out, $parts[-1], "node3 leaves the newest partition, $left_out, out");

# merge the two partitions node3 hosts: their merge frees an entry there
my @hosted = split /\n/, $n1->safe_psql('postgres',
	"SELECT partition_id FROM kommander.partition_map WHERE partition_id > 0 "
	  . "AND partition_id <> $left_out AND state = 'active' ORDER BY lo");
$n1->safe_psql('postgres', "SELECT kmd_merge($hosted[0], $hosted[1])");
ok($n3->poll_query_until('postgres',
	"SELECT count(*) = 1 FROM kommander.partitions WHERE partition_id = $left_out AND role IS NOT NULL AND leader_name IS NOT NULL"),
	"node3 serves partition $left_out again once the merge freed an entry");
ok(KmdTest::wait_converged(\@nodes), 'and catches up');
is($n3->safe_psql('postgres', $counters), $want,
	'node3 did not apply the counters of the partition left out again');

# and goes on with it
$n1->safe_psql('postgres', "SELECT kmd_propose('$key{$left_out}', "
	  . qq{'{"op":"update","table":"kv","key":{"k":"$key{$left_out}"},"set":{"n":{"add":1}}}')});
ok(KmdTest::wait_converged(\@nodes), 'every node applied one more');
$want = $n1->safe_psql('postgres', $counters);
is($n3->safe_psql('postgres', $counters), $want, 'node3 counted it once');
done_testing();
