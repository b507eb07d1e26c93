# 220_a_node_failure_in_an_image_keeps_the_rows.pl
#   An image of the system partition replays the kmd_ddl statements its
#   receiver missed.  One that fails on the receiver's own rows runs again
#   without them (every user partition then takes an image): a failure of
#   the node itself (here a lock timeout, behind a lock a prepared
#   transaction holds) is no failure on the rows, and must not throw them
#   away.  The statement takes an advisory lock on its first run on a
#   node only (a sequence of each node counts the runs): node 3's first
#   replay waits for the lock past its timeout and the second would not.
#   The image fails and comes again, and node 3 replays the statement
#   with its rows.
#
# Copyright (c) 2026, kommander developers
#
# t/220_a_node_failure_in_an_image_keeps_the_rows.pl

use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use KmdTest;

my $conf = <<'EOC';
max_prepared_transactions = 2
kommander.snapshot_threshold = 10
kommander.balance_interval = 0
EOC
my @nodes = KmdTest::new_cluster(3, conf => $conf);
my ($n1, $n2, $n3) = @nodes;
KmdTest::create_kv($n1);
KmdTest::upsert_kv($n1, map { "k$_" } 1 .. 20);
$_->safe_psql('postgres', 'CREATE SEQUENCE public.runs') for @nodes;
$n1->safe_psql('postgres', q{SELECT kmd_ddl($ddl$CREATE FUNCTION public.first_run_waits() RETURNS void
LANGUAGE plpgsql AS $f$
BEGIN
  IF nextval('public.runs') = 1 THEN
    PERFORM pg_advisory_xact_lock(4242);
  END IF;
END $f$$ddl$)});
ok(KmdTest::wait_converged(\@nodes), 'every node holds the rows and the function');

# node 3 holds the lock in a prepared transaction, which outlives its stop
$n3->safe_psql('postgres', q{BEGIN; SELECT pg_advisory_xact_lock(4242); PREPARE TRANSACTION 'hold'});
$n3->stop('immediate');
my $index = $n1->safe_psql('postgres',
	q{SELECT kmd_ddl('DO $$ BEGIN PERFORM public.first_run_waits(); END $$')});
ok(KmdTest::compact_system_past($n1, $index), 'node 1 compacted the system partition past the statement');

my $offset = -s $n3->logfile;
$n3->start;
ok(KmdTest::wait_converged(\@nodes), 'node 3 applies every partition');
ok($n3->log_contains(qr/could not install an image of partition 0 .*\n.*lock timeout/, $offset),
	"node 3's first image of the system partition failed at the lock");
ok(!$n3->log_contains(qr/failed on this node's rows; running it without them/, $offset),
	'node 3 took the lock timeout for no failure on its rows');
ok($n3->log_contains(qr/installed an image of partition 0 /, $offset),
	'node 3 installed an image of the system partition after');
is($n3->safe_psql('postgres', 'SELECT count(*) FROM public.kv'), '20', 'node 3 holds the rows');
KmdTest::same_state(\@nodes);
$n3->safe_psql('postgres', "ROLLBACK PREPARED 'hold'");

done_testing();
