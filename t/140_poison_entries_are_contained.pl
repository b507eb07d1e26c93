# 140_poison_entries_are_contained.pl
#   An error raised by user code is the command's outcome, whatever its
#   SQLSTATE: an applier raising serialization_failure, deadlock_detected,
#   disk_full, query_canceled ... fails the command alike on every node,
#   and no apply worker stops.  So does a deferred constraint.  A failure
#   of one node (a session holding a row lock there) stalls only that
#   row's partition on that node, shown in kommander.partitions, even when
#   the applier traps the error; the other partitions go on, and the entry
#   is applied once the lock goes.
#
# Copyright (c) 2026, kommander developers
#
# t/140_poison_entries_are_contained.pl

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
KmdTest::split_in_two(\@nodes);
my $x = KmdTest::key_in($n1, 1, 'x');
my $y = KmdTest::key_in($n1, 2, 'y');

$n1->safe_psql('postgres', qq{
SELECT kmd_ddl(\$\$CREATE FUNCTION public.poison(args jsonb, ctx kommander.apply_context) RETURNS jsonb
LANGUAGE plpgsql AS 'BEGIN RAISE EXCEPTION USING ERRCODE = args->>''code'', MESSAGE = ''poison '' || (args->>''code''); END'\$\$);
SELECT kmd_register_applier('poison', 'public.poison(jsonb, kommander.apply_context)');
SELECT kmd_ddl(\$d\$CREATE FUNCTION public.set_trapped(args jsonb, ctx kommander.apply_context) RETURNS jsonb
LANGUAGE plpgsql AS \$f\$
BEGIN
  BEGIN
    UPDATE public.kv SET v = args->>'v' WHERE k = ctx.key;
  EXCEPTION WHEN OTHERS THEN
    RETURN '"trapped"';
  END;
  RETURN '"updated"';
END \$f\$ \$d\$);
SELECT kmd_register_applier('set_trapped', 'public.set_trapped(jsonb, kommander.apply_context)');
SELECT kmd_ddl('CREATE TABLE public.slots (k text PRIMARY KEY, n int NOT NULL)');
SELECT kmd_ddl(\$\$CREATE FUNCTION public.slots_check() RETURNS trigger LANGUAGE plpgsql AS
'BEGIN IF NEW.n < 0 THEN RAISE EXCEPTION ''negative slot count'' USING ERRCODE = ''check_violation''; END IF; RETURN NULL; END'\$\$);
SELECT kmd_ddl('CREATE CONSTRAINT TRIGGER slots_check AFTER INSERT OR UPDATE ON public.slots
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION public.slots_check()');
SELECT kmd_register_table('public.slots');
SELECT kmd_propose('$x', '{"op":"insert","table":"kv","row":{"k":"$x","v":"x0"}}');
SELECT kmd_propose('$y', '{"op":"insert","table":"kv","row":{"k":"$y","v":"y0"}}');
});
KmdTest::wait_converged(\@nodes) or die 'no convergence';

# The SQLSTATE a statement fails with on $node, or 'ok'.
sub sqlstate_of
{
	my ($node, $sql) = @_;
	my ($rc, $out, $err) = $node->psql('postgres', $sql,
		extra_params => [ '-v', 'VERBOSITY=verbose' ]);
	return 'ok' if $rc == 0;
	return $err =~ /ERROR:\s+([0-9A-Z]{5}):/ ? $1 : "no SQLSTATE in: $err";
}

my $apply_pid = "SELECT pid FROM pg_stat_activity WHERE backend_type = 'kommander apply'";
my %pids = map { $_->name => $_->safe_psql('postgres', $apply_pid) } @nodes;

# --- user code raises SQLSTATEs Postgres uses for failures of a server ---
for my $code (qw(40001 40P01 53100 53200 55P03 57014 58030 XX001))
{
	is(sqlstate_of($n1, "SET kommander.propose_timeout = 5000; SELECT kmd_propose('$x', "
			  . "'{\"op\":\"call\",\"applier\":\"poison\",\"args\":{\"code\":\"$code\"}}')"),
		$code, "an applier raising $code fails the command with $code");
}
ok(KmdTest::wait_converged(\@nodes), 'every node applied the failing commands');
for my $node (@nodes)
{
	is($node->safe_psql('postgres', $apply_pid), $pids{ $node->name },
		'the apply worker of ' . $node->name . ' did not stop');
	is($node->safe_psql('postgres', 'SELECT count(*) FROM kommander.partitions WHERE stalled IS NOT NULL'),
		'0', 'no partition of ' . $node->name . ' is stalled');
}
is(sqlstate_of($n2, "SET kommander.propose_timeout = 5000; "
		  . "SELECT kmd_propose('$y', '{\"op\":\"upsert\",\"table\":\"kv\",\"row\":{\"k\":\"$y\",\"v\":\"y1\"}}')"),
	'ok', 'an unrelated write through another node goes through');

# --- a deferred constraint is checked when its command ends ---
is(sqlstate_of($n1, "SET kommander.propose_timeout = 5000; "
		  . "SELECT kmd_propose('$x', '{\"op\":\"insert\",\"table\":\"slots\",\"row\":{\"k\":\"$x\",\"n\":-1}}')"),
	'23514', 'a deferred constraint trigger fails its command');
is(sqlstate_of($n3, "SELECT kmd_propose('$x', '{\"op\":\"insert\",\"table\":\"slots\",\"row\":{\"k\":\"$x\",\"n\":1}}')"),
	'ok', 'a command that keeps the constraint is applied');
ok(KmdTest::wait_converged(\@nodes), 'every node applied both');
for my $node (@nodes)
{
	is($node->safe_psql('postgres', 'SELECT string_agg(k || n, \',\') FROM slots'), "${x}1",
		$node->name . ' has the row that kept the constraint only');
	is($node->safe_psql('postgres', $apply_pid), $pids{ $node->name },
		'the apply worker of ' . $node->name . ' did not stop for it');
}

# --- a session on node2 holds a row lock on x: only x's partition waits ---
my $locker = $n2->background_psql('postgres');
$locker->query_safe('BEGIN');
$locker->query_safe("SELECT * FROM kv WHERE k = '$x' FOR UPDATE");
is($n1->safe_psql('postgres',
		"SELECT kmd_propose_result('$x', '{\"op\":\"call\",\"applier\":\"set_trapped\",\"args\":{\"v\":\"x1\"}}')->>'result'"),
	'updated', 'node1, where nobody holds the row, applies the update');
ok($n2->poll_query_until('postgres',
		"SELECT stalled = 'retrying' AND stall_error LIKE '55P03: %' AND stalled_since IS NOT NULL "
		  . "FROM kommander.partitions WHERE partition_id = 1"),
	'node2 shows x\'s partition retrying on a lock it could not get');
is(sqlstate_of($n2, "SET kommander.propose_timeout = 5000; "
		  . "SELECT kmd_propose('$y', '{\"op\":\"upsert\",\"table\":\"kv\",\"row\":{\"k\":\"$y\",\"v\":\"y2\"}}')"),
	'ok', 'node2 applies the other partition meanwhile');
is($n2->safe_psql('postgres', "SELECT v FROM kv WHERE k = '$x'"), 'x0',
	'node2 has not applied the update of x, nor what the applier does when it traps the lock error');
is($n2->safe_psql('postgres', 'SELECT count(*) FROM kommander.partitions WHERE partition_id = 2 AND stalled IS NOT NULL'),
	'0', 'the other partition is not stalled');
$locker->query_safe('COMMIT');
$locker->quit;
ok(KmdTest::wait_converged(\@nodes), 'node2 applies x once the lock is gone');
is($n2->safe_psql('postgres', 'SELECT count(*) FROM kommander.partitions WHERE stalled IS NOT NULL'),
	'0', 'and no partition of node2 is stalled any more');
my $rows = q{SELECT string_agg(k || '=' || v, ',' ORDER BY k) FROM kv};
for my $node (@nodes)
{
	is($node->safe_psql('postgres', $rows), "$x=x1,$y=y2", $node->name . ' has the same rows');
	is($node->safe_psql('postgres', $apply_pid), $pids{ $node->name },
		'the apply worker of ' . $node->name . ' never stopped');
}
ok($n2->log_contains(qr/partition 1 waits at entry \d+ for a failure of this node to pass/),
	'node2 logged the wait');

done_testing();
