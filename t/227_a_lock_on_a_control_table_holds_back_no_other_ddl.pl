# 227_a_lock_on_a_control_table_holds_back_no_other_ddl.pl
#   After each kmd_ddl statement the apply checks that every control table
#   kept a primary key and a replica identity that lasts.  A session may
#   hold a strong lock on a control table (VACUUM FULL, LOCK TABLE, a local
#   SET TABLESPACE): the check reads the catalogs, so a kmd_ddl that does
#   not touch that table is applied meanwhile, and one that would leave a
#   control table without its key is still refused.
#
# Copyright (c) 2026, kommander developers
#
# t/227_a_lock_on_a_control_table_holds_back_no_other_ddl.pl

use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use KmdTest;

my $n1 = KmdTest::new_node('node1');
$n1->safe_psql('postgres', "SELECT kmd_bootstrap('node1', " . KmdTest::quote(KmdTest::conninfo($n1)) . ")");
KmdTest::wait_leaders($n1);
$n1->safe_psql('postgres', q{
SELECT kmd_ddl('CREATE TABLE public.busy (k text PRIMARY KEY, v text)');
SELECT kmd_register_table('public.busy');
SELECT kmd_ddl('CREATE TABLE public.calm (k text PRIMARY KEY, v text)');
SELECT kmd_register_table('public.calm');
});

my $locker = $n1->background_psql('postgres');
$locker->query_safe('BEGIN');
$locker->query_safe('LOCK TABLE public.busy IN ACCESS EXCLUSIVE MODE');

my ($rc, $out, $err) = $n1->psql('postgres',
	q{SET kommander.propose_timeout = '20s'; SELECT kmd_ddl('ALTER TABLE public.calm ADD COLUMN n int') > 0},
	extra_params => [ '-v', 'VERBOSITY=verbose' ]);
is($out, 't', 'a statement on another table is applied while a session locks one')
  or diag("stderr: $err");
($rc, $out, $err) = $n1->psql('postgres',
	q{SET kommander.propose_timeout = '20s'; SELECT kmd_ddl('ALTER TABLE public.calm REPLICA IDENTITY NOTHING')},
	extra_params => [ '-v', 'VERBOSITY=verbose' ]);
like($err, qr/0A000: control table public\.calm cannot have REPLICA IDENTITY NOTHING/,
	'one that takes a control table its lasting key is still refused');
$locker->query_safe('COMMIT');
$locker->quit;

is($n1->safe_psql('postgres', q{SELECT string_agg(attname, ',' ORDER BY attnum) FROM pg_attribute
  WHERE attrelid = 'public.calm'::regclass AND attnum > 0 AND NOT attisdropped}),
	'k,v,n', 'the column was added');
is($n1->safe_psql('postgres', q{SELECT relreplident FROM pg_class WHERE oid = 'public.calm'::regclass}),
	'd', 'the replica identity is kept');

done_testing();
