# 110_compaction_and_images.pl
#   Bounded logs.  With kommander.snapshot_threshold = 100, thousands of
#   proposals over two partitions leave every node's log short; a node
#   that was down catches up by an image of each partition; a node that
#   joins after every log (the system partition's too) was compacted gets
#   the schema, the roster and the rows from images; a transfer whose
#   receiver or sender is killed in the middle starts over and converges.
#   A partition that waits for an image on a node gives no image there.
#
# Copyright (c) 2026, kommander developers
#
# t/110_compaction_and_images.pl

use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use KmdTest;

my $THRESHOLD = 100;
my $BATCH = 64;    # kommander.max_batch_entries, left at its default
my $conf = "kommander.snapshot_threshold = $THRESHOLD\nkommander.balance_interval = 0\n";
my @nodes = KmdTest::new_cluster(3, conf => $conf);
my ($n1, $n2, $n3) = @nodes;
# sessions on node1, which serves the images, and on node3, which takes
# them, talk LATIN1 unless told otherwise: images travel in the
# database's encoding all the same
for my $node ($n1, $n3)
{
	$node->append_conf('postgresql.conf', "client_encoding = 'LATIN1'");
	$node->reload;
}
# and node1's sessions may not idle in a transaction: an image's sender
# waits for its receiver
$n1->safe_psql('postgres', "ALTER DATABASE postgres SET idle_in_transaction_session_timeout = '1ms'");
KmdTest::create_kv($n1);
# DDL that writes another table, through an event trigger
$n1->safe_psql('postgres', q{
SELECT kmd_ddl($$CREATE TABLE public.ddl_audit (tag text)$$);
SELECT kmd_ddl($$CREATE FUNCTION public.audit_ddl() RETURNS event_trigger LANGUAGE plpgsql
  AS 'BEGIN INSERT INTO public.ddl_audit VALUES (tg_tag); END'$$);
SELECT kmd_ddl($$CREATE EVENT TRIGGER audit_ddl ON ddl_command_end EXECUTE FUNCTION public.audit_ddl()$$);
});
$n1->safe_psql('postgres', q{SELECT kmd_ddl('ALTER TABLE public.kv ADD COLUMN n int')});
# a reg* value reads differently by search_path: images check it alike
$n1->safe_psql('postgres', q{SELECT kmd_ddl('ALTER TABLE public.kv ADD COLUMN r regclass')});
is($n1->safe_psql('postgres', 'SELECT kmd_split(1)'), '2', 'two partitions');
# the leaders on node1, which later serves the images
$n1->safe_psql('postgres', "SELECT kmd_transfer_leader(p, 'node1') FROM generate_series(0, 2) p");
KmdTest::wait_converged(\@nodes);


my $rows = q{SELECT count(*) || ':' || md5(string_agg(k || '=' || v || '=' || n, ',' ORDER BY k)) FROM kv};

# the most log rows any partition keeps on $node
sub longest_log
{
	my ($node) = @_;
	return $node->safe_psql('postgres',
		'SELECT coalesce(max(c), 0) FROM (SELECT count(*) AS c FROM kommander.log GROUP BY partition_id) s');
}

sub logs_short
{
	my ($node) = @_;
	return $node->poll_query_until('postgres',
		"SELECT coalesce(max(c), 0) <= $THRESHOLD + $BATCH FROM "
		  . "(SELECT count(*) AS c FROM kommander.log GROUP BY partition_id) s");
}

# ---------------------------------------------------------------------------
# node3 is down while 5,000 writes go through the two others
# ---------------------------------------------------------------------------
$n3->stop('immediate');
KmdTest::write_rows($n1, 1, 2500);
KmdTest::write_rows($n2, 2501, 5000);
$n1->safe_psql('postgres', q{SELECT kmd_propose('k' || i, jsonb_build_object('op', 'update', 'table', 'kv',
	'key', jsonb_build_object('k', 'k' || i), 'set', '{"r": "kv"}'::jsonb)) FROM generate_series(1, 20) i});
# a value LATIN1 has no place for
$n1->safe_psql('postgres', q{SELECT kmd_propose('k1', jsonb_build_object('op', 'update', 'table', 'kv',
	'key', jsonb_build_object('k', 'k1'), 'set', jsonb_build_object('v', 'price ' || chr(8364) || ' ' || chr(233))))});
is($n1->safe_psql('postgres',
	q{SELECT count(DISTINCT r.partition_id) FROM kv, LATERAL kmd_route(kv.k) r}), '2',
	'the writes went to both partitions');
for my $node ($n1, $n2)
{
	ok(logs_short($node), $node->name . ": no partition keeps more than threshold + one batch of log");
	cmp_ok($node->safe_psql('postgres',
		'SELECT min(snapshot_index) FROM kommander.partitions WHERE partition_id > 0'), '>', 0,
		$node->name . ': the logs of both partitions were compacted');
}

# it comes back behind what the leaders still have: images
my $offset = -s $n3->logfile;
$n3->start;
ok(KmdTest::wait_converged(\@nodes), 'node3 catches up');
ok($n3->wait_for_log(qr/installed an image of partition 1 from node 1/, $offset),
	'node3 installed an image of partition 1');
ok($n3->wait_for_log(qr/installed an image of partition 2 from node 1/, $offset),
	'node3 installed an image of partition 2');
my $want = $n1->safe_psql('postgres', $rows);
is($want =~ /^(\d+):/ ? $1 : '', '5000', 'node1 has every row');
$n3->poll_query_until('postgres', "SELECT ($rows) = '$want'")
  or diag('node3 has ' . $n3->safe_psql('postgres', $rows));
is($_->safe_psql('postgres', $rows), $want, $_->name . ' holds the same rows') for ($n2, $n3);
ok(logs_short($n3), 'node3 keeps a short log too');

# ---------------------------------------------------------------------------
# a node that joins once the system partition's log was compacted too
# ---------------------------------------------------------------------------
$n1->safe_psql('postgres', q{SELECT kmd_ddl('COMMENT ON TABLE public.kv IS ''c' || i || '''') FROM generate_series(1, 200) i});
ok(logs_short($n1), 'node1 compacted the system partition');
cmp_ok($n1->safe_psql('postgres', 'SELECT snapshot_index FROM kommander.partitions WHERE partition_id = 0'),
	'>', 0, 'the system partition log starts after its first entries');

my $n4 = KmdTest::new_node('node4', conf => $conf);
$offset = -s $n4->logfile;
is($n4->safe_psql('postgres',
	"SELECT kmd_join('node4', " . KmdTest::quote(KmdTest::conninfo($n4)) . ', '
	  . KmdTest::quote(KmdTest::conninfo($n1)) . ')'), '4', 'node4 joins after compaction');
push @nodes, $n4;
ok(KmdTest::wait_converged(\@nodes), 'node4 catches up');
ok($n4->wait_for_log(qr/installed an image of partition 0 from node/, $offset),
	'node4 installed an image of the system partition');
$n4->poll_query_until('postgres', "SELECT ($rows) = '$want'");
is($n4->safe_psql('postgres', $rows), $want, 'node4 holds the same rows');
my $schema = q{SELECT string_agg(column_name || ':' || data_type, ',' ORDER BY ordinal_position)
	|| '/' || obj_description('public.kv'::regclass) FROM information_schema.columns WHERE table_name = 'kv'};
is($n4->safe_psql('postgres', $schema), $n1->safe_psql('postgres', $schema), 'node4 has the same schema');
is($n4->safe_psql('postgres', 'SELECT count(*) FROM kommander.nodes'), '4', 'node4 has the roster');
my $audit = q{SELECT tag || ' ' || count(*) FROM public.ddl_audit GROUP BY tag ORDER BY tag};
is($n4->safe_psql('postgres', $audit), $n1->safe_psql('postgres', $audit),
	'node4 ran the DDL as the others ran it, event triggers included');
my $map = q{SELECT string_agg(partition_id || ':' || lo || ':' || generation, ',' ORDER BY partition_id)
	FROM kommander.partitions WHERE partition_id > 0};
is($n4->safe_psql('postgres', $map), $n1->safe_psql('postgres', $map), 'node4 has the same partition map');
$n4->safe_psql('postgres',
	q{SELECT kmd_propose('from-4', '{"op":"upsert","table":"kv","row":{"k":"from-4","v":"x","n":0}}')});
$n1->safe_psql('postgres', "SELECT kmd_read_barrier('from-4')");
is($n1->safe_psql('postgres', "SELECT v FROM kv WHERE k = 'from-4'"), 'x', 'node4 proposes');

# ---------------------------------------------------------------------------
# transfers cut in the middle: the sender's manifest waits on a lock
# ---------------------------------------------------------------------------
# (held by a session idle in its transaction)
$n1->safe_psql('postgres', 'ALTER DATABASE postgres RESET idle_in_transaction_session_timeout');
sub blocked_transfer
{
	my ($tag, $first) = @_;
	my $applied = $n3->safe_psql('postgres',
		'SELECT max(applied_index) FROM kommander.partitions WHERE partition_id > 0');
	$n3->stop('immediate');
	KmdTest::write_rows($n2, $first, $first + 499);
	$n1->poll_query_until('postgres',
		"SELECT min(snapshot_index) > $applied FROM kommander.partitions WHERE partition_id > 0")
	  or die "node1 did not compact past node3 ($tag)";

	# node1 takes a lock that the image's row count waits for
	my $in = '';
	my $out = '';
	my $locker = IPC::Run::start(
		[ 'psql', '-X', '-q', '-d', KmdTest::conninfo($n1), '-f', '-' ],
		'<', \$in, '>', \$out, '2>', \$out);
	$in .= "BEGIN; LOCK TABLE public.kv IN ACCESS EXCLUSIVE MODE; SELECT 'locked';\n";
	$locker->pump until $out =~ /locked/;
	$n3->start;
	$n1->poll_query_until('postgres',
		q{SELECT count(*) > 0 FROM pg_stat_activity WHERE query LIKE '%image_manifest%' AND wait_event_type = 'Lock'})
	  or die "no image transfer started ($tag)";
	return ($locker, \$in);
}

# the receiver dies in the middle of a transfer
my ($locker, $in) = blocked_transfer('receiver', 10001);
$n3->stop('immediate');
$$in .= "COMMIT;\n\\q\n";
$locker->finish;
$n3->start;
ok(KmdTest::wait_converged(\@nodes), 'after the receiver died mid-transfer, every node converges');
$want = $n1->safe_psql('postgres', $rows);
$n3->poll_query_until('postgres', "SELECT ($rows) = '$want'");
is($n3->safe_psql('postgres', $rows), $want, 'node3 holds the same rows after its transfer was cut');

# the sender dies in the middle of a transfer
($locker, $in) = blocked_transfer('sender', 20001);
$offset = -s $n3->logfile;
$n1->stop('immediate');
$$in .= "\\q\n";
$locker->finish;
ok($n3->wait_for_log(qr/installed an image of partition/, $offset),
	'node3 installs an image from another node once its sender died');
$n1->start;
ok(KmdTest::wait_converged(\@nodes), 'after the sender died mid-transfer, every node converges');
$want = $n2->safe_psql('postgres', $rows);
for my $node ($n1, $n3, $n4)
{
	$node->poll_query_until('postgres', "SELECT ($rows) = '$want'");
	is($node->safe_psql('postgres', $rows), $want, $node->name . ' holds the same rows in the end');
}
is($want =~ /^(\d+):/ ? $1 : '', '6001', 'every acknowledged write is there');

# a partition that waits for an image on a node (a split's child learned
# of from an image, or a log a system image cut) is no image for others:
# its rows go with no applied index.  Shown in a transaction rolled back.
my $manifest = q{SELECT kommander.image_manifest(1, (SELECT cluster_id FROM kommander.local), 2) IS NOT NULL};
is($n1->safe_psql('postgres', "BEGIN ISOLATION LEVEL REPEATABLE READ; $manifest; COMMIT;"), 't',
	'node1 describes its image of partition 1');
my ($rc, $code, $msg) = KmdTest::error_of($n1, qq{BEGIN ISOLATION LEVEL REPEATABLE READ;
	UPDATE kommander.snapshot SET image_wanted = true WHERE partition_id = 1;
	$manifest; ROLLBACK;});
is($code, '55000', "a partition waiting for an image of its own gives none ($msg)");

done_testing();
