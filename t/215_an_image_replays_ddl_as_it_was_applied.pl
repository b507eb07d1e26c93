# 215_an_image_replays_ddl_as_it_was_applied.pl
#   A node that catches up through an image of the system partition
#   replays the statements of kmd_ddl it missed under the checks they
#   were applied with.  A statement that tried to leave a temporary
#   domain named regclass in the apply worker (refused, the refusal
#   caught by its own exception block) must not leave one on the node
#   that replays it: the install's own statements, run as superuser,
#   would find that type before pg_catalog's and call the function of
#   its check, here one that makes its author a superuser.
#
# Copyright (c) 2026, kommander developers
#
# t/215_an_image_replays_ddl_as_it_was_applied.pl

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

$n3->stop('immediate');
my $sys = $n1->safe_psql('postgres', 'SELECT last_index FROM kommander.partitions WHERE partition_id = 0');
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
});
ok(KmdTest::compact_system_past($n1, $sys + 2), 'node1 compacted the system partition past node3');

my $offset = -s $n3->logfile;
$n3->start;
ok(KmdTest::wait_converged(\@nodes), 'node3 catches up');
ok($n3->log_contains(qr/installed an image of partition 0 /, $offset),
	'through an image of the system partition');
for my $node (@nodes)
{
	is($node->safe_psql('postgres', q{SELECT rolsuper FROM pg_roles WHERE rolname = 'mallory'}),
		'f', $node->name . ': the statement\'s author is no superuser');
}
ok(!$n3->log_contains(qr/holds temporary objects/, $offset),
	'the replay left no temporary object in node3\'s apply worker');
KmdTest::upsert_kv($n3, 'after');
ok(KmdTest::wait_converged(\@nodes), 'a write through node3 reaches every node');
KmdTest::same_state(\@nodes);
done_testing();
