# 150_refusals_with_their_sqlstates.pl
#   What the cluster refuses, each with its SQLSTATE, and nothing half
#   done: a lagging learner is not promoted (K0006); a leadership transfer
#   to a stalled node times out (K0002); a proposal into a frozen partition
#   fails (K0004); a batch whose strict condition fails or whose applier
#   raises changes nothing on any node; a peer batch for another node, or
#   of a newer wire version, is refused (08P01); a node whose database has
#   another encoding may not join (55000).
#
# Copyright (c) 2026, kommander developers
#
# t/150_refusals_with_their_sqlstates.pl

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
$n1->safe_psql('postgres', q{
SELECT kmd_ddl($$CREATE FUNCTION public.refuse(args jsonb, ctx kommander.apply_context)
RETURNS jsonb LANGUAGE plpgsql AS 'BEGIN RAISE EXCEPTION ''no'' USING ERRCODE = ''P0099''; END'$$);
SELECT kmd_register_applier('refuse', 'public.refuse(jsonb, kommander.apply_context)');
SELECT kmd_propose('b1', '{"op":"insert","table":"kv","row":{"k":"b1","v":"one"}}');
});
KmdTest::wait_converged(\@nodes);

# ---------------------------------------------------------------------------
# batches: all or nothing on every node
# ---------------------------------------------------------------------------
my ($rc, $code, $msg) = KmdTest::error_of($n2, q{SELECT kmd_propose('b1', '{"op":"batch","strict":true,"commands":[
	{"op":"update","table":"kv","key":{"k":"b1"},"set":{"v":"two"}},
	{"op":"update","table":"kv","key":{"k":"b1"},"set":{"v":"three"},"if":{"v":"nope"}}]}')});
is($code, 'K0012', "a batch whose strict condition fails: K0012 ($msg)");
($rc, $code, $msg) = KmdTest::error_of($n3, q{SELECT kmd_propose('b1', '{"op":"batch","commands":[
	{"op":"update","table":"kv","key":{"k":"b1"},"set":{"v":"four"}},
	{"op":"call","applier":"refuse","args":{}}]}')});
is($code, 'P0099', "a batch whose applier raises: the applier's SQLSTATE ($msg)");
KmdTest::wait_converged(\@nodes);
is($_->safe_psql('postgres', "SELECT v FROM kv WHERE k = 'b1'"), 'one',
	$_->name . ': neither batch changed anything') for @nodes;

# ---------------------------------------------------------------------------
# a learner that has not caught up is not promoted
# ---------------------------------------------------------------------------
# a node added to the roster that never starts: a learner of every group
# that never answered; however short the log (kommander.promote_max_lag is
# 1000 entries, the log far shorter), it is not caught up
$n1->safe_psql('postgres', "SELECT kmd_add_node('ghost', 'host=/nonexistent port=1 dbname=postgres')");
($rc, $code, $msg) = KmdTest::error_of($n2, "SELECT kmd_promote_node('ghost')");
is($code, 'K0006', "promoting a learner that never answered: K0006 ($msg)");
is($n1->safe_psql('postgres', "SELECT role FROM kommander.nodes WHERE node_name = 'ghost'"), 'learner',
	'it stays a learner');
$n1->safe_psql('postgres', "SELECT kmd_remove_node('ghost')");

# ---------------------------------------------------------------------------
# a leadership transfer to a node whose Raft workers are stopped
# ---------------------------------------------------------------------------
$n1->safe_psql('postgres', "SELECT kmd_transfer_leader(1, 'node1')");
my @stopped = split /\n/, $n3->safe_psql('postgres',
	"SELECT pid FROM pg_stat_activity WHERE backend_type = 'kommander raft worker'");
kill 'STOP', @stopped;
($rc, $code, $msg) = KmdTest::error_of($n1,
	"SET kommander.propose_timeout = '2s'; SELECT kmd_transfer_leader(1, 'node3')");
kill 'CONT', @stopped;
is($code, 'K0002', "a transfer to a stalled node times out: K0002 ($msg)");
$n1->poll_query_until('postgres',
	"SELECT leader_name IS NOT NULL FROM kommander.partitions WHERE partition_id = 1")
  or die 'partition 1 has no leader';

# ---------------------------------------------------------------------------
# a proposal into a frozen partition
# ---------------------------------------------------------------------------
is($n1->safe_psql('postgres', 'SELECT kmd_split(1)'), '2', 'partition 2 split off');
KmdTest::wait_converged(\@nodes);
my $right_key = KmdTest::key_in($n2, 2, 'f');
# node1's apply waits on the map: its kmd_merge gives up after the freeze,
# which the two others apply
my $locker = $n1->background_psql('postgres');
$locker->query_safe('BEGIN');
$locker->query_safe('LOCK TABLE kommander.partition_map IN SHARE MODE');
$n1->psql('postgres', "SET kommander.propose_timeout = '2s'; SELECT kmd_merge(1, 2)");
$n2->poll_query_until('postgres',
	"SELECT state = 'frozen' FROM kommander.partition_map WHERE partition_id = 2")
  or die 'partition 2 did not freeze';
($rc, $code, $msg) = KmdTest::error_of($n2,
	"SELECT kmd_propose('$right_key', '{\"op\":\"insert\",\"table\":\"kv\",\"row\":{\"k\":\"$right_key\",\"v\":\"x\"}}')");
is($code, 'K0004', "a proposal into a frozen partition: K0004 ($msg)");
$locker->query_safe('COMMIT');
$locker->quit;
ok($n1->poll_query_until('postgres',
	"SELECT state = 'gone' FROM kommander.partition_map WHERE partition_id = 2"),
	'the merge is finished by the cluster');
KmdTest::wait_converged(\@nodes);
is($_->safe_psql('postgres', "SELECT count(*) FROM kv WHERE k = '$right_key'"), '0',
	$_->name . ': the refused proposal left nothing') for @nodes;

# ---------------------------------------------------------------------------
# peer batches for another node or of a newer wire version
# ---------------------------------------------------------------------------
my $cluster = $n1->safe_psql('postgres', "SELECT replace(cluster_id::text, '-', '') FROM kommander.local");
sub batch
{
	my ($version, $from, $to) = @_;
	return sprintf("SELECT kommander.deliver('\\x08%02x1210%s18%02x20%02x'::bytea)",
		$version, $cluster, $from, $to);
}
($rc, $code, $msg) = KmdTest::error_of($n1, batch(1, 2, 3));
is($code, '08P01', "a batch addressed to another node is refused: 08P01 ($msg)");
($rc, $code, $msg) = KmdTest::error_of($n1, batch(2, 2, 1));
is($code, '08P01', "a batch of a newer wire version is refused: 08P01 ($msg)");
($rc, $code, $msg) = KmdTest::error_of($n1, batch(1, 2, 1));
is($rc, 0, 'the same batch, well addressed, is taken');

# ---------------------------------------------------------------------------
# a node whose database stores text otherwise may not join
# ---------------------------------------------------------------------------
my $encoding = $n1->safe_psql('postgres',
	q{SELECT pg_encoding_to_char(encoding) FROM pg_database WHERE datname = 'postgres'});
my $other = $encoding eq 'UTF8' ? 'LATIN1' : 'UTF8';
my $n4 = KmdTest::new_node('node4', conf => "kommander.database = 'other'\n");
$n4->safe_psql('postgres',
	"CREATE DATABASE other TEMPLATE template0 ENCODING '$other' LC_COLLATE 'C' LC_CTYPE 'C'");
$n4->safe_psql('other', 'CREATE EXTENSION kommander');
my ($out, $err);
($rc, $out, $err) = $n4->psql('other', "SELECT kmd_join('node4', "
	  . KmdTest::quote($n4->connstr('other')) . ', '
	  . KmdTest::quote(KmdTest::conninfo($n1)) . ')',
	extra_params => [ '-v', 'VERBOSITY=verbose' ]);
like($err, qr/55000: this node's database does not store text as the cluster's does/,
	'a node whose database has another encoding may not join: 55000');
like($err, qr/This node's database has encoding $other, .* the seed's has encoding $encoding,/,
	'the refusal names both encodings');
is($n1->safe_psql('postgres', q{SELECT count(*) FROM kommander.roster WHERE node_name = 'node4'}),
	'0', 'and the node is not in the roster');
$n4->stop;

ok(KmdTest::wait_converged(\@nodes), 'the cluster converges');
KmdTest::same_state(\@nodes);

done_testing();
