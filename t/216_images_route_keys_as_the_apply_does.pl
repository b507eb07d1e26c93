# 216_images_route_keys_as_the_apply_does.pl
#   A row's partition is the hash of its routing key as its type's output
#   function writes it: so the apply checks a row, and so a proposer
#   routes it.  An image must pick and clear a partition's rows by the
#   same text, not by a cast to text, which for some types writes
#   another (a boolean's 'true' for 't', an inet's netmask): a node that
#   catches up by an image of such a row's partition would keep its old
#   row, or one of another partition.
#
# Copyright (c) 2026, kommander developers
#
# t/216_images_route_keys_as_the_apply_does.pl

use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use KmdTest;

my @nodes = KmdTest::new_cluster(3,
	conf => "kommander.snapshot_threshold = 10\nkommander.balance_interval = 0\n");
my ($n1, $n2, $n3) = @nodes;
KmdTest::create_kv($n1);
$n1->safe_psql('postgres', q{SELECT count(*) FROM kmd_create_partitions(8)});
$n1->safe_psql('postgres', q{
SELECT kmd_ddl('ALTER TABLE public.kv ADD COLUMN n int');
SELECT kmd_ddl('CREATE TABLE public.flags (k boolean PRIMARY KEY, v text)');
SELECT kmd_register_table('public.flags');
SELECT kmd_ddl('CREATE TABLE public.hosts (k inet PRIMARY KEY, v text)');
SELECT kmd_register_table('public.hosts');
});
ok(KmdTest::wait_converged(\@nodes), 'the partitions and tables reach every node');

# rows whose keys' cast to text is not their output
my @rows;
push @rows, [ 'flags', $_ ] for qw(t f);
push @rows, [ 'hosts', "10.0.0.$_" ] for 1 .. 6;
sub write_keyed
{
	my ($v) = @_;
	$n1->safe_psql('postgres', join(";\n", map {
		my ($t, $k) = @$_;
		"SELECT kmd_propose(format('%s', '$k'::" . ($t eq 'flags' ? 'boolean' : 'inet')
		  . "), jsonb_build_object('op', 'upsert', 'table', '$t', 'row', jsonb_build_object('k', '$k', 'v', '$v')))"
	} @rows));
}
write_keyed('first');
ok(KmdTest::wait_converged(\@nodes), 'the rows reach every node');

# node3 away while the partition of the row true (routed by 't')
# compacts past its log, the rows rewritten; the partition of 'true', the
# cast's text, does not
my $part = $n1->safe_psql('postgres', q{SELECT partition_id FROM kmd_route('t')});
isnt($part, $n1->safe_psql('postgres', q{SELECT partition_id FROM kmd_route('true')}),
	'the cast of true to text routes elsewhere');
$n3->stop('immediate');
write_keyed('second');
my $last = $n1->safe_psql('postgres', "SELECT last_index FROM kommander.partitions WHERE partition_id = $part");
ok(KmdTest::compact_past($n1, $part, $last), "partition $part compacted");
my $offset = -s $n3->logfile;
$n3->start;
ok(KmdTest::wait_converged(\@nodes), 'node3 catches up');
ok($n3->log_contains(qr/installed an image of partition $part /, $offset), "through an image of partition $part");
for my $t (qw(flags hosts))
{
	is($n3->safe_psql('postgres', "SELECT string_agg(k::text || '=' || v, ',' ORDER BY k) FROM $t"),
		$n1->safe_psql('postgres', "SELECT string_agg(k::text || '=' || v, ',' ORDER BY k) FROM $t"),
		"node3 holds node1's rows of $t");
}
KmdTest::same_state(\@nodes);
done_testing();
