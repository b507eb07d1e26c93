# 042_an_entry_from_before_a_restart_answers_nobody.pl
#   A proposal that timed out on node2 is committed but not applied there (a
#   prepared transaction holds a lock on the table, also across a crash);
#   node2 crashes and starts again, and the first proposal of its new run
#   waits in the same request slot.  When node2 finally applies the old
#   entry, that answers nobody: the new proposal returns its own index, and
#   its next SELECT sees its own row.
#
# Copyright (c) 2026, kommander developers
#
# t/042_an_entry_from_before_a_restart_answers_nobody.pl

use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use KmdTest;

my @nodes = KmdTest::new_cluster(3, conf => "max_prepared_transactions = 2\n");
my ($n1, $n2, $n3) = @nodes;
KmdTest::create_kv($n1);
KmdTest::wait_converged(\@nodes);

sub insert
{
	my ($k) = @_;
	return "SELECT kmd_propose('$k', '{\"op\":\"insert\",\"table\":\"kv\",\"row\":{\"k\":\"$k\",\"v\":\"x\"}}')";
}

# a fresh run of node2: its request slots start afresh
$n2->restart;
KmdTest::wait_leaders($_) for @nodes;

# node2 cannot apply while the prepared transaction holds the lock
$n2->safe_psql('postgres', q{
BEGIN;
LOCK TABLE kv IN SHARE MODE;
PREPARE TRANSACTION 'hold';
});

# the first proposal of this run times out
my ($rc, $code, $msg) = KmdTest::error_of($n2,
	"SET kommander.propose_timeout = '2s'; " . insert('before-restart'));
isnt($rc, 0, 'the proposal on node2 times out while node2 cannot apply');
is($code, 'K0003', "its outcome is unknown: K0003 ($msg)");
ok($n1->poll_query_until('postgres', "SELECT count(*) = 1 FROM kv WHERE k = 'before-restart'"),
	'its entry committed and node1 applied it');

# node2 crashes; the first proposal of its next run waits behind the old entry
$n2->stop('immediate');
$n2->start;
my ($pout, $perr) = ('', '');
my $h = IPC::Run::start(
	[ 'psql', '-X', '-q', '-t', '-A', '-d', KmdTest::conninfo($n2),
	  '-c', "SET kommander.propose_timeout = '120s'",
	  '-c', insert('after-restart'),
	  '-c', "SELECT count(*) FROM kv WHERE k = 'after-restart'" ],
	'>', \$pout, '2>', \$perr);
ok($n1->poll_query_until('postgres', "SELECT count(*) = 1 FROM kv WHERE k = 'after-restart'"),
	'the new proposal committed');
is($n2->safe_psql('postgres', "SELECT count(*) FROM kv WHERE k LIKE '%-restart'"), '0',
	'node2 has applied neither entry');
$n2->safe_psql('postgres', "COMMIT PREPARED 'hold'");
$h->finish;
my ($idx, $seen) = split /\n/, $pout;
ok(defined $seen, 'the proposal of the new run succeeds') or diag($perr);
is($seen, '1', 'its next SELECT sees its own row');
my $part = $n1->safe_psql('postgres', "SELECT partition_id FROM kmd_route('after-restart')");
is($n1->safe_psql('postgres',
	"SELECT position(convert_to('after-restart', 'UTF8') in data) > 0 FROM kommander.log "
	  . "WHERE partition_id = $part AND idx = " . ($idx // 0)),
	't', 'the index it returned is its own entry\'s');
is($n2->safe_psql('postgres', "SELECT string_agg(k, ',' ORDER BY k) FROM kv"),
	'after-restart,before-restart', 'node2 applied both entries');

done_testing();
