# 085_read_barrier_follows_the_map.pl
#   kmd_read_barrier(key) on a node that has not applied a split yet: the
#   key first routes to the old partition, but a write made through the new
#   partition before the call must still be visible after the barrier.
#   Node 3's apply is held twice with table locks: at the split (on the
#   partition map), then at the write (on the user table).
#
# Copyright (c) 2026, kommander developers
#
# t/085_read_barrier_follows_the_map.pl

use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use KmdTest;

my @nodes = KmdTest::new_cluster(3);
my ($n1, $n2, $n3) = @nodes;
KmdTest::create_kv($n1);
KmdTest::wait_converged(\@nodes);

# node 3 will apply neither the split nor the write until told
my $map_lock = $n3->background_psql('postgres');
$map_lock->query_safe('BEGIN');
$map_lock->query_safe('LOCK TABLE kommander.partition_map IN SHARE MODE');
my $kv_lock = $n3->background_psql('postgres');
$kv_lock->query_safe('BEGIN');
$kv_lock->query_safe('LOCK TABLE public.kv IN SHARE MODE');

is($n1->safe_psql('postgres', 'SELECT kmd_split(1)'), '2', 'partition 1 split into 1 and 2');
my $key = KmdTest::key_in($n1, 2, 'k');
is($n3->safe_psql('postgres', "SELECT partition_id FROM kmd_route('$key')"), '1',
	'node 3 still routes it to partition 1');
$n1->safe_psql('postgres',
	"SELECT kmd_propose('$key', '{\"op\":\"insert\",\"table\":\"kv\",\"row\":{\"k\":\"$key\",\"v\":\"written\"}}')");

# the reader on node 3 starts while its map is old
my $reader = $n3->background_psql('postgres');
# (two statements: a statement's snapshot is taken before its barrier waits)
$reader->query_until(qr/started/,
	"\\echo started\nSELECT kmd_read_barrier('$key') > 0;\n"
	  . "SELECT coalesce((SELECT v FROM kv WHERE k = '$key'), 'missing');\n\\echo done\n");

# node 3 applies the split, then its apply waits for the lock on kv
$map_lock->query_safe('COMMIT');
$map_lock->quit;
ok($n3->poll_query_until('postgres', q{
	SELECT count(*) > 0 FROM pg_locks
	 WHERE relation = 'public.kv'::regclass AND NOT granted}),
	'node 3 applied the split and waits to apply the write');
is($n3->safe_psql('postgres', "SELECT partition_id FROM kmd_route('$key')"), '2',
	'node 3 now routes the key to partition 2');

$kv_lock->query_safe('COMMIT');
$kv_lock->quit;
my $out = $reader->query_until(qr/done/, '');
$reader->quit;
is(join(',', grep { $_ ne '' && $_ ne 'done' } split /\n/, $out), 't,written',
	'the read after the barrier sees the write');

# right after partitions are made, their leaders still being elected, a
# barrier on every partition waits for them rather than failing
my ($rc, $code, $msg) = KmdTest::error_of($n1,
	'SELECT count(*) FROM kmd_create_partitions(8); SELECT kmd_read_barrier() > 0');
is($rc, 0, "a barrier on every partition right after kmd_create_partitions returns ($code $msg)");

done_testing();
