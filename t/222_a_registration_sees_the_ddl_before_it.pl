# 222_a_registration_sees_the_ddl_before_it.pl
#   kmd_register_table checks the table where it is called: logged, no
#   inheritance, no row-level security...  The guard refuses changes that
#   would break those rules only once the table is registered.  A kmd_ddl
#   committed before the registration, but not yet applied on the node the
#   call runs on (held back there by a session's lock), must not slip past
#   the checks: here it made the table unlogged, and the registration must
#   be refused where it is applied, on every node, not make an unlogged
#   control table (a crash would empty it on one node only).
#
# Copyright (c) 2026, kommander developers
#
# t/222_a_registration_sees_the_ddl_before_it.pl

use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use KmdTest;

my @nodes = KmdTest::new_cluster(2);
my ($n1, $n2) = @nodes;
$n1->safe_psql('postgres', q{
SELECT kmd_ddl('CREATE TABLE public.t (k text PRIMARY KEY, v text)');
SELECT kmd_ddl('CREATE TABLE public.other (k text PRIMARY KEY)');
});
KmdTest::wait_converged(\@nodes) or die 'no convergence';

# node 2 cannot apply a statement on another table while this lock is
# held, nor, in the system partition's order, the one after it, which
# makes the table unlogged (and takes no lock the registration would
# wait for)
my $locker = $n2->background_psql('postgres');
$locker->query_safe('BEGIN');
$locker->query_safe('LOCK TABLE public.other IN ACCESS SHARE MODE');
$n1->safe_psql('postgres', q{SELECT kmd_ddl('ALTER TABLE public.other ADD COLUMN n int')});
$n1->safe_psql('postgres', q{SELECT kmd_ddl('ALTER TABLE public.t SET UNLOGGED')});
is($n2->safe_psql('postgres', "SELECT relpersistence FROM pg_class WHERE oid = 'public.t'::regclass"),
	'p', 'node 2 has not applied the statement yet');

my $register = $n2->background_psql('postgres', on_error_stop => 0);
$register->query_until(qr/registering/,
	"\\echo registering\nSELECT kmd_register_table('public.t');\n\\echo done\n");
$n2->poll_query_until('postgres', q{SELECT count(*) = 1 FROM pg_stat_activity
  WHERE query LIKE 'SELECT kmd_register_table%' AND state = 'active' AND wait_event IS NOT NULL})
  or die 'the registration never waited';
$locker->query_safe('COMMIT');
$locker->quit;
$register->query_until(qr/done/, '');
like($register->{stderr}, qr/table "t" is not logged/, 'the registration was refused');
$register->quit;

KmdTest::wait_converged(\@nodes) or die 'no convergence';
for my $node (@nodes)
{
	is($node->safe_psql('postgres', q{SELECT count(*) FROM kommander.tables WHERE relid = 'public.t'::regclass}),
		'0', $node->name . ' registered no unlogged table');
}

done_testing();
