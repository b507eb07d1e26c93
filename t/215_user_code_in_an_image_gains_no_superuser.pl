# 215_user_code_in_an_image_gains_no_superuser.pl
#   A node that catches up through images runs its users' code as they
#   ran it, and nothing of it outlives that code in the apply worker,
#   whose own statements run as superuser.
#   - The system partition's image replays the statements of kmd_ddl
#     under the checks they were applied with: a statement that tried to
#     leave a temporary domain named regclass (refused, the refusal
#     caught by its own exception block) must not leave one on the node
#     that replays it: the install's own statements would find that type
#     before pg_catalog's and call the function of its check, here one
#     that makes its author a superuser.
#   - It refuses what their entries' rules refused where they were
#     applied: a statement that caught the refusal of a try of an advisory
#     lock takes the same branch on the node that replays it.
#   - A user partition's image copies rows into a control table whose
#     check runs its owner's function: as the owner, restricted as
#     Postgres restricts an owner's code in maintenance, so it can make
#     no temporary object (nor a cursor WITH HOLD) for the worker's own
#     statements to run into.
#
# Copyright (c) 2026, kommander developers
#
# t/215_user_code_in_an_image_gains_no_superuser.pl

use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use KmdTest;

my @nodes = KmdTest::new_cluster(3,
	conf => "kommander.snapshot_threshold = 10\nkommander.balance_interval = 0\n");
my ($n1, $n2, $n3) = @nodes;
KmdTest::create_kv($n1);
for my $node (@nodes)
{
	$node->safe_psql('postgres', q{
CREATE ROLE mallory LOGIN;
GRANT CREATE ON SCHEMA public TO mallory;
GRANT EXECUTE ON FUNCTION kmd_ddl(text) TO mallory;
});
}

# a control table whose check tries, while an image copies its rows
# (session_replication_role replica), to leave a temporary type behind
# (a temporary table's row type, named text), and notes how that went in
# a table of each node's own
$n1->safe_psql('postgres', q{
SELECT kmd_ddl($ddl$CREATE TABLE public.branch (what text)$ddl$);
SELECT kmd_ddl($ddl$CREATE TABLE public.probe (what text);
GRANT INSERT ON public.probe TO mallory$ddl$);
SET ROLE mallory;
SELECT kmd_ddl($ddl$CREATE FUNCTION public.plant(k text) RETURNS boolean
  LANGUAGE plpgsql AS $f$
BEGIN
  IF current_setting('session_replication_role') = 'replica' THEN
    BEGIN
      CREATE TEMP TABLE text (x int);
      INSERT INTO public.probe VALUES ('planted');
    EXCEPTION WHEN others THEN
      INSERT INTO public.probe VALUES (SQLERRM);
    END;
  END IF;
  RETURN true;
END $f$;
CREATE TABLE public.checked (k text PRIMARY KEY CHECK (public.plant(k)))$ddl$);
RESET ROLE;
SELECT kmd_register_table('public.checked');
SELECT kmd_propose('c1', '{"op":"insert","table":"checked","row":{"k":"c1"}}');
});
ok(KmdTest::wait_converged(\@nodes), 'the checked table and its row reach every node');

$n3->stop('immediate');
my $sys = $n1->safe_psql('postgres', 'SELECT last_index FROM kommander.partitions WHERE partition_id = 0');
my $user = $n1->safe_psql('postgres', 'SELECT last_index FROM kommander.partitions WHERE partition_id = 1');
$n1->safe_psql('postgres', q{
SET ROLE mallory;
SELECT kmd_ddl($ddl$CREATE FUNCTION public.evil(v regclass) RETURNS boolean
  LANGUAGE plpgsql AS $f$
BEGIN
  IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
    EXECUTE 'ALTER ROLE mallory SUPERUSER';
  END IF;
  RETURN true;
END $f$$ddl$);
SELECT kmd_ddl($ddl$DO $d$
BEGIN
  CREATE DOMAIN pg_temp.regclass AS pg_catalog.regclass CHECK (public.evil(VALUE));
EXCEPTION WHEN others THEN NULL;
END $d$$ddl$);
RESET ROLE;
SELECT kmd_ddl($ddl$DO $d$
BEGIN
  PERFORM pg_try_advisory_xact_lock(1);
  INSERT INTO public.branch VALUES ('locked');
EXCEPTION WHEN others THEN
  INSERT INTO public.branch VALUES ('refused');
END $d$$ddl$);
});
ok(KmdTest::compact_system_past($n1, $sys + 2), 'node1 compacted the system partition past node3');
ok(KmdTest::compact_past($n1, 1, $user), 'and partition 1');

my $offset = -s $n3->logfile;
$n3->start;
ok(KmdTest::wait_converged(\@nodes), 'node3 catches up');
ok($n3->log_contains(qr/installed an image of partition 0 /, $offset),
	'through an image of the system partition');
ok($n3->log_contains(qr/installed an image of partition 1 /, $offset),
	'and one of partition 1');
like($n3->safe_psql('postgres', 'SELECT string_agg(what, \',\') FROM probe'),
	qr/^cannot create temporary table within security-restricted operation$/,
	'the check could not plant a temporary type while the image copied its row');
for my $node (@nodes)
{
	is($node->safe_psql('postgres', q{SELECT rolsuper FROM pg_roles WHERE rolname = 'mallory'}),
		'f', $node->name . ': the statement\'s author is no superuser');
}
for my $node (@nodes)
{
	is($node->safe_psql('postgres', 'SELECT string_agg(what, \',\') FROM branch'), 'refused',
		$node->name . ': the statement that tried an advisory lock was refused it');
}
ok(!$n3->log_contains(qr/holds temporary objects/, $offset),
	'the replay left no temporary object in node3\'s apply worker');
KmdTest::upsert_kv($n3, 'after');
ok(KmdTest::wait_converged(\@nodes), 'a write through node3 reaches every node');
KmdTest::same_state(\@nodes);
done_testing();
