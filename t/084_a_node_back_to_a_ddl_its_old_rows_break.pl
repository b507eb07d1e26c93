# 084_a_node_back_to_a_ddl_its_old_rows_break.pl
#   A node down while the others changed rows, compacted their logs and ran
#   a kmd_ddl that the new rows allow and the old ones break (a CHECK
#   constraint) comes back holding the old rows.  Its partitions take
#   images, so the statement, run on those rows, would fail there alone:
#   the node would lack the constraint, and every image after it would be
#   refused for good.  The statement must run there as it did on the other
#   nodes, whether the node applies it from the system partition's log or
#   takes it from an image of the system partition (whose log the others
#   compacted too).  Node 3's change feed shows the rows it deleted ahead
#   of an image as an image of the partition that brings no row, then the
#   image: replayed, it gives the rows node 3 holds.
#
# Copyright (c) 2026, kommander developers
#
# t/084_a_node_back_to_a_ddl_its_old_rows_break.pl

use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use JSON::PP;
use KmdTest;

my $conf = <<'EOC';
wal_level = logical
max_replication_slots = 4
kommander.snapshot_threshold = 10
kommander.balance_interval = 0
EOC
my @nodes = KmdTest::new_cluster(3, conf => $conf);
my ($n1, $n2, $n3) = @nodes;
KmdTest::allow_feed(\@nodes);
$n3->safe_psql('postgres', "SELECT pg_create_logical_replication_slot('feed', 'kommander')");
KmdTest::create_kv($n1);
my @keys = map { "k$_" } 1 .. 20;
KmdTest::upsert_kv($n1, @keys);
ok(KmdTest::wait_converged(\@nodes), 'every node holds the rows, v = x');

# the rows of @keys set to $v through $node
sub set_rows
{
	my ($node, $v) = @_;
	$node->safe_psql('postgres', join(";\n", map {
		"SELECT kmd_propose('$_', '{\"op\":\"upsert\",\"table\":\"kv\",\"row\":{\"k\":\"$_\",\"v\":\"$v\"}}')"
	} @keys));
}

sub last_index
{
	my ($partition) = @_;
	return $n1->safe_psql('postgres',
		"SELECT last_index FROM kommander.partitions WHERE partition_id = $partition");
}

# node 3 came back with old rows and ran constraint $name like the others
sub back_and_same
{
	my ($what, $name, $log_offset, $said) = @_;
	$n3->start;
	ok(KmdTest::wait_converged(\@nodes), "$what: node 3 applies every partition");
	for my $node (@nodes)
	{
		is($node->safe_psql('postgres',
			"SELECT count(*) FROM pg_constraint WHERE conname = '$name'"),
			'1', "$what: " . $node->name . " has constraint $name");
	}
	ok($n3->log_contains($said, $log_offset),
		"$what: node 3 ran the statement again without the rows images replace");
	ok(!$n3->log_contains(qr/this node's outcome differs/, $log_offset),
		"$what: no outcome of its own");
	# the statement's outcome is the second run's: no error (node 3's
	# figures start at its restart)
	is($n3->safe_psql('postgres',
		"SELECT value FROM kommander.stats WHERE name = 'apply_errors' AND partition_id IS NULL"),
		'0', "$what: node 3 counts no apply error");
	$n3->safe_psql('postgres',
		"SELECT kmd_propose('after-$name', '{\"op\":\"upsert\",\"table\":\"kv\",\"row\":{\"k\":\"after-$name\",\"v\":\"w\"}}')");
	ok(KmdTest::wait_converged(\@nodes), "$what: a write through node 3 reaches every node");
	KmdTest::same_state(\@nodes);
}

# Node 3 down while the others set the rows to $v, compact partition 1's
# log past that and add constraint no_$old, which node 3's rows break
sub away_and_ddl
{
	my ($v, $old) = @_;
	$n3->stop('immediate');
	set_rows($n2, $v);
	ok(KmdTest::compact_past($n1, 1, last_index(1)), "node 1 compacted partition 1 past rows $v");
	is($n1->safe_psql('postgres',
		"SELECT kmd_ddl('ALTER TABLE public.kv ADD CONSTRAINT no_$old CHECK (v <> ''$old'')') > 0"),
		't', "the rows the cluster holds allow constraint no_$old");
}

# The statement from the system partition's log, while partition 1 waits
# for an image
away_and_ddl('y', 'x');
back_and_same('from the log', 'no_x', -s $n3->logfile,
	qr/ran on the other nodes and failed here: running it again without the rows of partitions/);

# The statement from an image of the system partition
away_and_ddl('z', 'y');
my $ddl_index = last_index(0);
ok(KmdTest::compact_system_past($n1, $ddl_index),
	'node 1 compacted the system partition past the statement');
my $offset = -s $n3->logfile;
back_and_same('from an image', 'no_y', $offset,
	qr/failed on this node's rows; running it without them/);
ok($n3->log_contains(qr/installed an image of partition 0 /, $offset),
	'node 3 took an image of the system partition');

# node 3's feed: each clear an image with deletes only, and the whole feed
# replayed gives its rows
my $target = $n3->safe_psql('postgres', 'SELECT pg_current_wal_insert_lsn()');
ok($n3->poll_query_until('postgres', "SELECT pg_current_wal_flush_lsn() >= '$target'"),
	"node 3's WAL is flushed");
my @feed = map { decode_json($_) } grep { $_ ne '' } split /\n/,
  $n3->safe_psql('postgres', "SELECT data FROM pg_logical_slot_get_changes('feed', NULL, NULL)");
my (%rows, @images, $image);
for my $o (@feed)
{
	next if $o->{partition} != 1;
	if ($o->{op} eq 'snapshot')
	{
		push @images, $image = { deletes => 0, inserts => 0 };
		next;
	}
	undef $image if !$o->{snapshot};
	$image->{"$o->{op}s"}++ if $image;
	delete $rows{ $o->{key}{k} } if $o->{op} eq 'delete';
	$rows{ $o->{key}{k} } = $o->{row}{v} if $o->{op} ne 'delete';
}
my @empty = grep { $_->{deletes} > 0 && $_->{inserts} == 0 } @images;
is(scalar(@empty), 2, "node 3's feed shows each clear as an image of partition 1 with deletes only");
is(scalar(grep { $_->{inserts} > 0 } @images), 2, 'and the two images that followed them');
is(join("\n", map { "$_=$rows{$_}" } sort keys %rows),
	$n3->safe_psql('postgres', q{SELECT string_agg(k || '=' || v, E'\n' ORDER BY k COLLATE "C") FROM kv}),
	"node 3's feed replayed gives its rows");
$n3->safe_psql('postgres', "SELECT pg_drop_replication_slot('feed')");

done_testing();
