# 147_apply_keeps_subtransactions_cached.pl
#   The apply worker runs each command in a subtransaction of its
#   transaction; past 64 subtransactions with an xid, a transaction
#   overflows its cache of them in the server's process array, and every
#   snapshot taken meanwhile, by any session of the server, must then look
#   up pg_subtrans for recent xids.  So an apply transaction holds at most
#   64 subtransactions, also when a node catches up a backlog: node2's apply of
#   partition 1 is held back by a row lock while 200 commands commit, then
#   let go (half of them batches, which take two subtransactions each);
#   no commit record node2 writes from then on lists more than 64
#   subtransactions, and all 200 commands are applied in some.  Nor does
#   the end of a lease with 100 rows attached, which deletes them all, or
#   all but one that refuses to go.
#
# Copyright (c) 2026, kommander developers
#
# t/147_apply_keeps_subtransactions_cached.pl

use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use KmdTest;

my $N = 200;
my @nodes = KmdTest::new_cluster(3, conf => "kommander.balance_interval = 0\n");
my ($n1, $n2, $n3) = @nodes;
KmdTest::create_kv($n1);
KmdTest::wait_converged(\@nodes);

my ($locker) = KmdTest::hold_back($n1, $n2, [1]);
# half of them batches: a batch's commands run in a subtransaction of the
# batch's own, two with an xid
KmdTest::propose_routed($n1, 1, 'backlog', $N / 2,
	q{jsonb_build_object('op', 'upsert', 'table', 'kv', 'row', jsonb_build_object('k', k, 'v', 'b'))});
KmdTest::propose_routed($n1, 1, 'backlog-batch', $N / 2,
	q{jsonb_build_object('op', 'batch', 'commands', jsonb_build_array(
	    jsonb_build_object('op', 'upsert', 'table', 'kv', 'row', jsonb_build_object('k', k, 'v', 'b')))) });
is($n2->safe_psql('postgres', "SELECT count(*) FROM kv WHERE k LIKE 'backlog%'"),
	'0', 'node2 has applied none of the backlog');

my $start = $n2->safe_psql('postgres', 'SELECT pg_current_wal_insert_lsn()');
$locker->query_safe('COMMIT');
$locker->quit;
ok(KmdTest::wait_converged(\@nodes), 'every node converges');
is($n2->safe_psql('postgres', "SELECT count(*) FROM kv WHERE k LIKE 'backlog%'"),
	$N, 'node2 applied the backlog');
my $end = $n2->safe_psql('postgres', 'SELECT pg_current_wal_insert_lsn()');
$n2->safe_psql('postgres', 'SELECT pg_switch_wal()');

# the subtransactions listed by each commit record node2 wrote from $start
# to $end: the largest list, and their sum
sub subxacts
{
	my ($start, $end) = @_;
	my $bindir = $n2->config_data('--bindir');
	my ($out, $err);
	IPC::Run::run([ "$bindir/pg_waldump", '-p', $n2->data_dir . '/pg_wal', '-s', $start,
			'-e', $end, '-r', 'Transaction' ], '>', \$out, '2>', \$err)
	  or die "pg_waldump failed: $err";
	my ($most, $total) = (0, 0);
	for (map { scalar(() = /\s\d+/g) } $out =~ /desc: COMMIT [^\n]*?; subxacts:([\d ]+)/g)
	{
		$most = $_ if $_ > $most;
		$total += $_;
	}
	return ($most, $total);
}

my ($most, $total) = subxacts($start, $end);
cmp_ok($total, '>=', $N * 3 / 2, "node2's commit records list the backlog's subtransactions ($total)");
cmp_ok($most, '<=', 64, "no commit record lists more than 64 subtransactions ($most)");

# a lease's end deletes its rows: 100 rows in one subtransaction, not one
# each
my $lease = $n1->safe_psql('postgres',
	"SELECT kmd_lease_grant('1 hour', " . KmdTest::quote(KmdTest::key_in($n1, 1, 'leasekey')) . ')');
KmdTest::propose_routed($n1, 1, 'leased', 100,
	qq{jsonb_build_object('op', 'upsert', 'table', 'kv', 'row', jsonb_build_object('k', k, 'v', 'l'), 'lease', $lease)});
ok(KmdTest::wait_converged(\@nodes), 'every node converges');
is($n2->safe_psql('postgres', "SELECT count(*) FROM kv WHERE k LIKE 'leased%'"), '100',
	'node2 holds the leased rows');
$start = $n2->safe_psql('postgres', 'SELECT pg_current_wal_insert_lsn()');
$n1->safe_psql('postgres', "SELECT kmd_lease_revoke($lease)");
ok(KmdTest::wait_converged(\@nodes), 'every node converges');
is($n2->safe_psql('postgres', "SELECT count(*) FROM kv WHERE k LIKE 'leased%'"), '0',
	'node2 deleted them with their lease');
$end = $n2->safe_psql('postgres', 'SELECT pg_current_wal_insert_lsn()');
$n2->safe_psql('postgres', 'SELECT pg_switch_wal()');
($most, $total) = subxacts($start, $end);
cmp_ok($most, '<=', 64, "the lease's end lists no more than 64 subtransactions ($most)");

# one of them refuses to go: it stays, no longer attached, and the others
# still go in few subtransactions
$n1->safe_psql('postgres', q{
SELECT kmd_ddl($$CREATE FUNCTION public.kv_stays() RETURNS trigger LANGUAGE plpgsql AS
  'BEGIN RAISE EXCEPTION ''% stays'', OLD.k; END'$$);
SELECT kmd_ddl($$CREATE TRIGGER kv_stays BEFORE DELETE ON public.kv
  FOR EACH ROW WHEN (OLD.v = 'stay') EXECUTE FUNCTION public.kv_stays()$$);});
$lease = $n1->safe_psql('postgres',
	"SELECT kmd_lease_grant('1 hour', " . KmdTest::quote(KmdTest::key_in($n1, 1, 'leasekey')) . ')');
KmdTest::propose_routed($n1, 1, 'again', 100,
	qq{jsonb_build_object('op', 'upsert', 'table', 'kv', 'row', jsonb_build_object('k', k, 'v', 'l'), 'lease', $lease)});
my $stays = $n1->safe_psql('postgres', "SELECT k FROM kv WHERE k LIKE 'again%' ORDER BY k LIMIT 1 OFFSET 50");
$n1->safe_psql('postgres', "SELECT kmd_propose('$stays', jsonb_build_object('op', 'upsert', 'table', 'kv', "
	  . "'row', jsonb_build_object('k', '$stays', 'v', 'stay'), 'lease', $lease))");
ok(KmdTest::wait_converged(\@nodes), 'every node converges');
$start = $n2->safe_psql('postgres', 'SELECT pg_current_wal_insert_lsn()');
$n1->safe_psql('postgres', "SELECT kmd_lease_revoke($lease)");
ok(KmdTest::wait_converged(\@nodes), 'every node converges');
is($n2->safe_psql('postgres', "SELECT string_agg(k, ',') FROM kv WHERE k LIKE 'again%'"), $stays,
	'node2 deleted all but the row that refused');
$end = $n2->safe_psql('postgres', 'SELECT pg_current_wal_insert_lsn()');
$n2->safe_psql('postgres', 'SELECT pg_switch_wal()');
($most, $total) = subxacts($start, $end);
cmp_ok($most, '<=', 64, "so did that lease's end in no more than 64 subtransactions ($most)");

done_testing();
