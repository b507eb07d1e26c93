# 228_an_idle_partition_forgets_its_request_ids.pl
#   The outcomes of commands with request ids are forgotten by later
#   entries of their partition, never by a node's clock.  A partition
#   whose clients went away would keep them for good, and every other
#   partition's forgetting would read past them: its leader proposes one
#   "forget" entry once its log has not grown for
#   kommander.request_retention, and no more until the log grows again.
#
# Copyright (c) 2026, kommander developers
#
# t/228_an_idle_partition_forgets_its_request_ids.pl

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
$n1->safe_psql('postgres', 'SELECT count(*) FROM kmd_create_partitions(2)');
KmdTest::wait_converged(\@nodes);
my ($busy, $idle) = split /\n/, $n1->safe_psql('postgres',
	"SELECT partition_id FROM kommander.partitions WHERE state = 'active' AND partition_id > 0 ORDER BY lo");
KmdTest::lead($n1, $busy);
KmdTest::lead($n1, $idle);

# request ids in both partitions
my @idle_keys = map { KmdTest::key_in($n1, $idle, "i$_") } (1 .. 5);
my $busy_key = KmdTest::key_in($n1, $busy, 'b');
for my $k (@idle_keys, $busy_key)
{
	$n1->safe_psql('postgres',
		"SELECT kmd_propose('$k', '{\"op\":\"upsert\",\"table\":\"kv\",\"row\":{\"k\":\"$k\",\"v\":\"x\"},\"request_id\":\"r-$k\"}')");
}
KmdTest::wait_converged(\@nodes);
my $idle_ids = "SELECT count(*) FROM kommander.requests WHERE request_id LIKE 'r-i%'";
is($_->safe_psql('postgres', $idle_ids), '5', $_->name . ' remembers the idle partition\'s ids')
  for @nodes;

# a short retention from now on; the idle partition's log stops growing
# (read while the retention is still 10 minutes: no "forget" before)
my $last = $n1->safe_psql('postgres', "SELECT last_index FROM kommander.partitions WHERE partition_id = $idle");
for my $node (@nodes)
{
	$node->safe_psql('postgres',
		"ALTER SYSTEM SET kommander.request_retention = '2s'; SELECT pg_reload_conf()");
}
for my $node (@nodes)
{
	ok($node->poll_query_until('postgres', "SELECT ($idle_ids) = 0"),
		$node->name . ' forgot the idle partition\'s ids with no write to it');
}
my $forget = $n1->safe_psql('postgres', "SELECT last_index FROM kommander.partitions WHERE partition_id = $idle");
cmp_ok($forget, '>', $last, 'an entry of the idle partition did it');

# nothing more while it stays idle: one entry per idle spell.  A write
# to the other partition starts an idle spell there, after the idle
# one's "forget": once that spell's own "forget" came, a retention has
# passed over the idle partition too
my $busy_last = $n1->safe_psql('postgres',
	"SELECT kmd_propose('$busy_key', '{\"op\":\"upsert\",\"table\":\"kv\",\"row\":{\"k\":\"$busy_key\",\"v\":\"y\"}}')");
ok($n1->poll_query_until('postgres',
		"SELECT last_index > $busy_last FROM kommander.partitions WHERE partition_id = $busy"),
	'the other partition got its own entry a retention after its write');
is($n1->safe_psql('postgres', "SELECT last_index FROM kommander.partitions WHERE partition_id = $idle"),
	$forget, 'and no other entry followed');
KmdTest::same_state(\@nodes);

done_testing();
