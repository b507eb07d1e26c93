# 046_the_apply_worker_outlives_its_own_errors.pl
#   An error of the apply worker outside any command (here its insert of a
#   request id's outcome, held back by a lock on kommander.requests past
#   its lock_timeout, and a cancel while it waits there) rolls back its
#   transaction and is tried again after a backoff in the same process:
#   the worker does not stop, and once the lock goes every command is
#   applied once.  Its commit waits for the NOTIFY queue's lock, which is
#   no failure of its own.
#
# Copyright (c) 2026, kommander developers
#
# t/046_the_apply_worker_outlives_its_own_errors.pl

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
$n1->safe_psql('postgres', q{
SELECT kmd_ddl('CREATE TABLE public.counters (k text PRIMARY KEY, n int NOT NULL)');
SELECT kmd_register_table('public.counters');
SELECT kmd_propose('ctr', '{"op":"insert","table":"counters","row":{"k":"ctr","n":0}}');
});
KmdTest::wait_converged(\@nodes);
my $apply_pid = q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'kommander apply'};
my $pid = $n3->safe_psql('postgres', $apply_pid);
isnt($pid, '', "node3's apply worker runs");

# node3's apply worker cannot remember request ids: a session holds a lock
# that lets it read kommander.requests but not write it
my $offset = -s $n3->logfile;
my $locker = $n3->background_psql('postgres');
$locker->query_safe('BEGIN');
$locker->query_safe('LOCK TABLE kommander.requests IN SHARE MODE');
my $inc = sub {
	qq{SELECT kmd_propose('ctr', '{"op":"update","table":"counters","key":{"k":"ctr"},"set":{"n":{"add":1}},"request_id":"inc-$_[0]"}')};
};
$n1->safe_psql('postgres', $inc->($_)) for (1 .. 5);
ok($n3->wait_for_log(qr/the apply worker rolled back its transaction; it tries again in \d+ ms/, $offset),
	'node3 rolls back and tries again');
like(slurp_file($n3->logfile, $offset), qr/Try 1 failed with SQLSTATE 55P03/,
	'after its lock timeout on kommander.requests');

# a cancel of the worker while it waits for that lock
$n3->poll_query_until('postgres',
	q{SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'kommander apply' AND wait_event_type = 'Lock'})
  or die "node3's apply worker never waited for the lock";
$n3->safe_psql('postgres', "SELECT pg_cancel_backend($pid)");
ok($n3->poll_query_until('postgres', 'SELECT 1', '1'), 'node3 answers');
is($n3->safe_psql('postgres', "SELECT n FROM counters WHERE k = 'ctr'"), '0',
	'node3 has applied none of the increments meanwhile');

$locker->query_safe('COMMIT');
$locker->quit;
KmdTest::wait_converged(\@nodes) or die 'no convergence';
is($n3->safe_psql('postgres', "SELECT n FROM counters WHERE k = 'ctr'"), '5',
	'node3 applied every increment once');
is($n3->safe_psql('postgres', $apply_pid), $pid, 'with the same apply worker');
unlike(slurp_file($n3->logfile, $offset), qr/apply worker stopped/, 'which never stopped');
is($n3->safe_psql('postgres', q{SELECT count(*) FROM kommander.requests WHERE request_id LIKE 'inc-%'}),
	'5', 'and remembers every request id');

# a retry through node3 answers with the first outcome
$n3->safe_psql('postgres', $inc->(3));
KmdTest::wait_converged(\@nodes);
is($n1->safe_psql('postgres', "SELECT n FROM counters WHERE k = 'ctr'"), '5', 'a retry applies nothing');

# The commit of an apply that notified takes the NOTIFY queue's lock, which
# another session's commit holds while it waits for a synchronous standby:
# the apply waits for it like any commit, it does not fail at its
# lock_timeout and start again.  ring() notifies and counts 100.
$n1->safe_psql('postgres', q{
SELECT kmd_ddl($$CREATE FUNCTION public.ring(args jsonb, ctx kommander.apply_context) RETURNS jsonb
LANGUAGE sql AS 'SELECT pg_notify(''bell'', ctx.key);
UPDATE public.counters SET n = n + 100 WHERE k = ctx.key;
SELECT ''null''::jsonb'$$);
SELECT kmd_register_applier('ring', 'public.ring(jsonb, kommander.apply_context)');
});
KmdTest::wait_converged(\@nodes);

# (commits wait for a standby only where one could stream)
$n3->append_conf('postgresql.conf', "wal_level = replica\nmax_wal_senders = 2");
$n3->restart;

# node3 holds the call back (as above) until the notifying session commits
$offset = -s $n3->logfile;
$locker = $n3->background_psql('postgres');
$locker->query_safe('BEGIN');
$locker->query_safe('LOCK TABLE kommander.requests IN SHARE MODE');
$n1->safe_psql('postgres',
	q{SELECT kmd_propose('ctr', '{"op":"call","applier":"ring","args":{},"request_id":"ring-1"}')});
ok($n3->wait_for_log(qr/the apply worker rolled back its transaction/, $offset),
	'node3 has the call and holds it back');
$n3->append_conf('postgresql.conf', "synchronous_standby_names = 'nobody'");
$n3->reload;
my $notifier = $n3->background_psql('postgres');
$notifier->query_safe('SET synchronous_commit = on');
my $notifier_pid = $notifier->query_safe('SELECT pg_backend_pid()');
# (with a write: a commit that wrote nothing waits for no standby)
$notifier->query_until(qr/notifying/,
	"\\echo notifying\nBEGIN; CREATE TEMP TABLE w (); NOTIFY other; COMMIT;\n");
$n3->poll_query_until('postgres',
	qq{SELECT wait_event = 'SyncRep' FROM pg_stat_activity WHERE pid = $notifier_pid})
  or die 'the notifying session never waited for its standby';
$locker->query_safe('ROLLBACK');
$locker->quit;
# Its transaction's start tells one long wait from new waits after
# failures (which the log reports only at every tenth in a row): the
# apply waits there in a transaction begun over a second before, ten
# times its lock_timeout, which no try that fails at that timeout reaches.
ok($n3->poll_query_until('postgres', q{SELECT count(*) = 1 FROM pg_stat_activity
 WHERE backend_type = 'kommander apply' AND wait_event_type = 'Lock' AND wait_event = 'object'
   AND xact_start < now() - interval '1 s'}),
	"node3's apply waits for the NOTIFY queue's lock, in one transaction");
$n3->safe_psql('postgres', "SELECT pg_cancel_backend($notifier_pid)");
$n3->append_conf('postgresql.conf', "synchronous_standby_names = ''");
$n3->reload;
$notifier->quit;
KmdTest::wait_converged(\@nodes) or die 'no convergence';
is($n3->safe_psql('postgres', "SELECT n FROM counters WHERE k = 'ctr'"), '105',
	'node3 applied the call once');
KmdTest::same_state(\@nodes);
done_testing();
