# 194_guard_sees_a_registration_made_meanwhile.pl
#   A session whose transaction read a table before the table was
#   registered (by another session, while that transaction stayed open)
#   is refused DDL on it with K0010 afterwards: the guard's check sees the
#   trigger the registration created, though the session's cache of the
#   table was built without it.  Such DDL would run on this node only.
#
# Copyright (c) 2026, kommander developers
#
# t/194_guard_sees_a_registration_made_meanwhile.pl

use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use KmdTest;

my ($node) = KmdTest::new_cluster(1);
$node->safe_psql('postgres',
	"SELECT kmd_ddl('CREATE TABLE public.jobs (id text PRIMARY KEY, state text)')");

my $session = $node->background_psql('postgres', on_error_stop => 0);
$session->query_safe('BEGIN');
$session->query_safe('SELECT count(*) FROM jobs');

$node->safe_psql('postgres', "SELECT kmd_register_table('public.jobs')");

my $column = "SELECT count(*) FROM pg_attribute WHERE attrelid = 'public.jobs'::regclass AND attname = 'local'";
$session->query('ALTER TABLE jobs ADD COLUMN local int');
like($session->{stderr}, qr/is changed through kmd_ddl/,
	'DDL on the table registered meanwhile is refused in the open transaction');
$session->query('ROLLBACK');
$session->quit;
is($node->safe_psql('postgres', $column), '0', 'the table has no column of its own on this node');

# the same in a new transaction, for comparison
my ($ret, $out, $err) = $node->psql('postgres', 'ALTER TABLE jobs ADD COLUMN local int');
isnt($ret, 0, 'DDL on it from a new transaction is refused');
like($err, qr/is changed through kmd_ddl/, 'with the same error');

done_testing();
