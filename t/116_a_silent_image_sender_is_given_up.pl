# 116_a_silent_image_sender_is_given_up.pl
#   A node that needs an image waits for its sender at most
#   kommander.image_timeout, then asks the next node: a sender that went
#   silent (paused, cut off, or, here, its manifest waiting on a lock)
#   does not hold the node's apply, every partition's, for ever.
#
# Copyright (c) 2026, kommander developers
#
# t/116_a_silent_image_sender_is_given_up.pl

use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use KmdTest;

my $conf = "kommander.snapshot_threshold = 100\nkommander.balance_interval = 0\n";
my @nodes = KmdTest::new_cluster(3, conf => $conf);
my ($n1, $n2, $n3) = @nodes;
KmdTest::create_kv($n1);
$n1->safe_psql('postgres', q{SELECT kmd_ddl('ALTER TABLE public.kv ADD COLUMN n int')});
$n1->safe_psql('postgres', q{SELECT kmd_ddl('CREATE TABLE public.other (k text PRIMARY KEY)')});
$n1->safe_psql('postgres', q{SELECT kmd_register_table('public.other')});
# node1 leads, so it sends the snapshot message and is asked first
$n1->safe_psql('postgres', "SELECT kmd_transfer_leader(p, 'node1') FROM generate_series(0, 1) p");
KmdTest::wait_converged(\@nodes);

my $marker = q{SELECT snapshot_index FROM kommander.partitions WHERE partition_id = 1};
my $rows = q{SELECT count(*) || ':' || md5(string_agg(k || '=' || v, ',' ORDER BY k)) FROM kv};

# node3 falls behind node1's compacted log
my $applied = $n3->safe_psql('postgres',
	'SELECT applied_index FROM kommander.partitions WHERE partition_id = 1');
$n3->stop;
$n3->append_conf('postgresql.conf', "kommander.image_timeout = '3s'\n");
KmdTest::write_rows($n2, 1, 500);
$n1->poll_query_until('postgres', "SELECT ($marker) > $applied")
  or die 'node1 did not compact past node3';

# node1's manifest waits on a lock on `other' for as long as the test runs
my $in = '';
my $out = '';
my $locker = IPC::Run::start([ 'psql', '-X', '-q', '-d', KmdTest::conninfo($n1), '-f', '-' ],
	'<', \$in, '>', \$out, '2>', \$out);
$in .= "BEGIN; LOCK TABLE public.other IN ACCESS EXCLUSIVE MODE; SELECT 'locked';\n";
$locker->pump until $out =~ /locked/;
my $offset = -s $n3->logfile;
$n3->start;

ok($n3->wait_for_log(qr/the remote node did not answer for 3000 ms/, $offset),
	'node3 gives node1 up after kommander.image_timeout');
like(slurp_file($n3->logfile, $offset), qr/could not install an image of partition 1 from node 1/,
	'as a failed try of the image from node1');
ok($n3->wait_for_log(qr/installed an image of partition 1 from node 2 at index \d+/, $offset),
	'node3 takes the image from node2 instead');
is($n1->safe_psql('postgres',
	q{SELECT count(*) > 0 FROM pg_locks WHERE relation = 'public.other'::regclass AND mode = 'AccessExclusiveLock' AND granted}),
	't', 'while node1 still holds the lock');
ok(KmdTest::wait_converged(\@nodes), 'node3 catches up');
my $want = $n1->safe_psql('postgres', $rows);
ok($n3->poll_query_until('postgres', "SELECT ($rows) = '$want'"), 'node3 holds the same rows');

$in .= "COMMIT;\n\\q\n";
$locker->finish;
done_testing();
