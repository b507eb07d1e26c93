# 169_change_feed_marks_images.pl
#   An image in the change feed.  node3 follows its own slot; it is down
#   while the others write, delete and update past a compacted log, and
#   catches up by an image of the partition.  Its feed shows the rows it
#   applied before as ordinary changes, then one {"op":"snapshot"} object
#   at the image's index, then the image's changes (the partition's rows
#   deleted, the image's inserted, all marked "snapshot": true) that give
#   exactly the partition's rows, then ordinary changes again, after the
#   image's index.  With include-system, the image is an event too.
#
# Copyright (c) 2026, kommander developers
#
# t/169_change_feed_marks_images.pl

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
kommander.snapshot_threshold = 100
kommander.balance_interval = 0
EOC
my @nodes = KmdTest::new_cluster(3, conf => $conf);
my ($n1, $n2, $n3) = @nodes;
KmdTest::allow_feed(\@nodes);
KmdTest::create_kv($n1);
$n1->safe_psql('postgres', "SELECT kmd_transfer_leader(p, 'node1') FROM generate_series(0, 1) p");
KmdTest::wait_converged(\@nodes);
$n3->safe_psql('postgres', "SELECT pg_create_logical_replication_slot('feed', 'kommander')");

# run $sql (a loop of proposals) on $node in one session
sub propose_loop
{
	my ($node, $from, $to, $command) = @_;
	$node->safe_psql('postgres', qq{
DO \$\$
BEGIN
  FOR i IN $from..$to LOOP
    PERFORM kmd_propose('k' || i, $command);
  END LOOP;
END \$\$});
}

my $upsert = q{jsonb_build_object('op', 'upsert', 'table', 'kv', 'row', jsonb_build_object('k', 'k' || i, 'v', 'a' || i))};
propose_loop($n1, 1, 50, $upsert);
KmdTest::wait_converged(\@nodes);

# node3 away: the others write on past what their logs keep
$n3->stop('fast');
propose_loop($n1, 51, 400, $upsert);
propose_loop($n2, 1, 10,
	q{jsonb_build_object('op', 'delete', 'table', 'kv', 'key', jsonb_build_object('k', 'k' || i))});
propose_loop($n2, 11, 20,
	q{jsonb_build_object('op', 'update', 'table', 'kv', 'key', jsonb_build_object('k', 'k' || i), 'set', jsonb_build_object('v', 'b' || i))});
ok($n1->poll_query_until('postgres',
	'SELECT snapshot_index > 60 FROM kommander.partitions WHERE partition_id = 1'),
	'node1 compacted the log node3 would need');

my $offset = -s $n3->logfile;
$n3->start;
ok($n3->wait_for_log(qr/installed an image of partition 1 from node/, $offset),
	'node3 installed an image of partition 1');
ok(KmdTest::wait_converged(\@nodes), 'node3 caught up');
my $image_rows = $n3->safe_psql('postgres', 'SELECT k || \'=\' || v FROM kv ORDER BY k');
# ordinary writes again after the image
propose_loop($n1, 401, 410, $upsert);
ok(KmdTest::wait_converged(\@nodes), 'and follows the log again');
my $target = $n3->safe_psql('postgres', 'SELECT pg_current_wal_insert_lsn()');
ok($n3->poll_query_until('postgres', "SELECT pg_current_wal_flush_lsn() >= '$target'"),
	"node3's WAL is flushed");

my @feed = map { decode_json($_) } grep { $_ ne '' } split /\n/,
  $n3->safe_psql('postgres',
	"SELECT data FROM pg_logical_slot_get_changes('feed', NULL, NULL, 'include-system', 'true')");
my @p1 = grep { $_->{op} ne 'event' && $_->{partition} == 1 } @feed;
my @marks = grep { $_->{op} eq 'snapshot' } @p1;
is(scalar(@marks), 1, 'one snapshot object for partition 1');
my $image_index = @marks ? $marks[0]{index} : -1;
my ($at) = grep { $p1[$_]{op} eq 'snapshot' } 0 .. $#p1;
$at //= scalar(@p1);
my @before = @p1[ 0 .. $at - 1 ];
my @rest = @p1[ $at + 1 .. $#p1 ];
my @image;
push @image, shift @rest while @rest && $rest[0]{snapshot};

# before: node3's own applies, ordinary
is(scalar(grep { $_->{op} eq 'insert' && !$_->{snapshot} && $_->{index} < $image_index } @before),
	50, 'before it: the 50 rows node3 applied from the log, ordinary, below the image');
is(scalar(grep { $_->{snapshot} || $_->{index} >= $image_index } @before),
	0, 'and nothing else of the partition\'s rows');

# the image: deletes of what node3 had, inserts of what the partition holds
ok(!grep({ $_->{index} != $image_index || $_->{table} ne 'public.kv' } @image),
	'the image\'s changes carry the image\'s index');
is(scalar(grep { $_->{op} eq 'delete' } @image), 50, 'the image deletes the 50 rows node3 had');
my %state;
for my $o (@image)
{
	delete $state{ $o->{key}{k} } if $o->{op} eq 'delete';
	$state{ $o->{key}{k} } = $o->{row}{v} if $o->{op} eq 'insert';
}
is(join("\n", map { "$_=$state{$_}" } sort keys %state), $image_rows,
	'its inserts are exactly the partition\'s rows as of the image');

# after: ordinary changes from the log again
my @after = @rest;
is(scalar(@after), 10, 'after it: the 10 later writes');
ok(!grep({ $_->{snapshot} || $_->{index} <= $image_index } @after),
	'ordinary, above the image\'s index');

my @events = grep { $_->{op} eq 'event' && $_->{event} eq 'image' && $_->{partition} == 1 } @feed;
is(scalar(@events), 1, 'include-system shows the image as an event');
is($events[0]{index}, $image_index, 'at its index') if @events;

$n3->safe_psql('postgres', "SELECT pg_drop_replication_slot('feed')");
done_testing();
