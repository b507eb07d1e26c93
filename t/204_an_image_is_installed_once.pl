# 204_an_image_is_installed_once.pl
#   Once an image is committed, its group is told only after the map is
#   read again, which can fail (here a session holds kommander.local,
#   which that reads, past the apply worker's lock_timeout).  The image
#   must not be installed again meanwhile (its rows would come twice in
#   the change feed, with a second image event): the apply worker tries
#   to tell the group again until it can, and the node catches up once
#   the lock goes.
#
# Copyright (c) 2026, kommander developers
#
# t/204_an_image_is_installed_once.pl

use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use KmdTest;

my @nodes = KmdTest::new_cluster(3,
	conf => "kommander.snapshot_threshold = 100\nkommander.balance_interval = 0\n");
my ($n1, $n2, $n3) = @nodes;
KmdTest::create_kv($n1);
$n1->safe_psql('postgres', q{SELECT kmd_ddl('ALTER TABLE public.kv ADD COLUMN n int')});
$n1->safe_psql('postgres', "SELECT kmd_transfer_leader(p, 'node1') FROM generate_series(0, 1) p");
KmdTest::write_rows($n1, 1, 20);
KmdTest::wait_converged(\@nodes);

# node3 away while the others write past what their logs keep
$n3->stop('fast');
KmdTest::write_rows($n1, 21, 300);
ok($n1->poll_query_until('postgres',
	'SELECT snapshot_index > 60 FROM kommander.partitions WHERE partition_id = 1'),
	'node1 compacted the log node3 would need');

# the senders' copies of kv wait, so that node3 cannot install before it
# holds kommander.local
my @senders = map {
	my $s = $_->background_psql('postgres');
	$s->query_safe('BEGIN');
	$s->query_safe('LOCK TABLE kv IN ACCESS EXCLUSIVE MODE');
	$s
} ($n1, $n2);
my $offset = -s $n3->logfile;
$n3->start;
my $local = $n3->background_psql('postgres');
$local->query_safe('BEGIN');
$local->query_safe('LOCK TABLE kommander.local IN ACCESS EXCLUSIVE MODE');
$_->query_safe('COMMIT') for @senders;
$_->quit for @senders;

ok($n3->wait_for_log(qr/Try 11 failed with SQLSTATE 55P03/, $offset),
	'node3 could not read the map, ten times and more');
is($n3->safe_psql('postgres',
	"SELECT value FROM kommander.stats WHERE name = 'images_installed' AND partition_id = 1"),
	'1', 'it installed the image of partition 1 once');
like(slurp_file($n3->logfile, $offset), qr/installed an image of partition 1 from node/,
	'and logged it');

$local->query_safe('COMMIT');
$local->quit;
ok(KmdTest::wait_converged(\@nodes), 'node3 caught up once the lock went');
KmdTest::write_rows($n1, 301, 310);
ok(KmdTest::wait_converged(\@nodes), 'and follows the log again');
is($n3->safe_psql('postgres',
	"SELECT value FROM kommander.stats WHERE name = 'images_installed' AND partition_id = 1"),
	'1', 'still one image');
KmdTest::same_state(\@nodes);

done_testing();
