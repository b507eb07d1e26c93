# 226_a_lease_key_checked_again_where_applied.pl
#   An insert that attaches its row to a lease must name every primary
#   key column (K0011 otherwise): the lease notes the row under that key.
#   The proposer checks it against the table as it is there; a kmd_ddl
#   that widens the key (a column whose default fills the row) may come
#   first in the log all the same.  Applied after it, the insert must
#   fail as it would have if proposed then, on every node alike: before,
#   it wrote the row and a note with a NULL for the column, which the
#   lease's end never found, and the row outlived its lease.  Here the
#   node's apply is held up by a row a session locks while the kmd_ddl
#   and the insert commit behind it.
#
# Copyright (c) 2026, kommander developers
#
# t/226_a_lease_key_checked_again_where_applied.pl

use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use KmdTest;

my ($n1) = KmdTest::new_cluster(1, conf => "kommander.propose_timeout = 600000\n");
KmdTest::create_kv($n1);
$n1->safe_psql('postgres', q{
SELECT kmd_ddl('CREATE TABLE public.claims (id text PRIMARY KEY)');
SELECT kmd_register_table('public.claims');
});
KmdTest::upsert_kv($n1, 'gate');
my $lease = $n1->safe_psql('postgres', "SELECT kmd_lease_grant('10 min', 'job')");

sub last_index
{
	return $n1->safe_psql('postgres',
		"SELECT last_index FROM kommander.partitions WHERE partition_id = "
		  . "(SELECT partition_id FROM kmd_route('job'))");
}

# the apply of the partition waits at a change of the gate's row
my $locker = $n1->background_psql('postgres');
$locker->query_safe('BEGIN');
$locker->query_safe(q{SELECT * FROM kv WHERE k = 'gate' FOR UPDATE});
my $before = last_index();
my ($held, $held_err) = KmdTest::start_sql($n1,
	q{SELECT kmd_propose('gate', '{"op":"upsert","table":"kv","row":{"k":"gate","v":"2"}}')});
ok($n1->poll_query_until('postgres',
	"SELECT last_index > $before FROM kommander.partitions WHERE partition_id = "
	  . "(SELECT partition_id FROM kmd_route('job'))"), 'a held change is in the log');

# the key widened: its barrier goes into the partition's log behind it
$before = last_index();
my ($ddl, $ddl_err) = KmdTest::start_sql($n1,
	q{SELECT kmd_ddl('ALTER TABLE public.claims ADD COLUMN n int NOT NULL DEFAULT 0, DROP CONSTRAINT claims_pkey, ADD PRIMARY KEY (id, n)')});
ok($n1->poll_query_until('postgres',
	"SELECT last_index > $before FROM kommander.partitions WHERE partition_id = "
	  . "(SELECT partition_id FROM kmd_route('job'))"), "the kmd_ddl's barrier is in the log");
is($n1->safe_psql('postgres',
	q{SELECT count(*) FROM pg_attribute WHERE attrelid = 'public.claims'::regclass AND attname = 'n'}),
	'0', 'and the statement is not applied yet');

# proposed against the key as it still is here, committed after the barrier
$before = last_index();
my ($insert, $insert_err) = KmdTest::start_sql($n1,
	qq{SELECT kmd_propose('job', '{"op":"insert","table":"claims","row":{"id":"job"},"lease":$lease}')});
ok($n1->poll_query_until('postgres',
	"SELECT last_index > $before FROM kommander.partitions WHERE partition_id = "
	  . "(SELECT partition_id FROM kmd_route('job'))"), 'the insert is in the log behind it');

$locker->query_safe('COMMIT');
$locker->quit;
$held->finish;
is($$held_err, '', 'the held change went through');
$ddl->finish;
is($$ddl_err, '', 'the kmd_ddl went through');
$insert->finish;
like($$insert_err, qr/K0011.*lacks primary key column "n".*\n.*DETAIL:\s+The table's primary key changed after the command was proposed/,
	'the insert fails where it is applied: the key it names is no longer whole');
is($n1->safe_psql('postgres', 'SELECT count(*) FROM public.claims'), '0', 'it wrote no row');
is($n1->safe_psql('postgres', 'SELECT count(*) FROM kommander.lease_rows'), '0', 'and no note');

# named whole, it attaches, and the lease's end takes the row
$n1->safe_psql('postgres',
	qq{SELECT kmd_propose('job', '{"op":"insert","table":"claims","row":{"id":"job","n":0},"lease":$lease}')});
$n1->safe_psql('postgres', "SELECT kmd_lease_revoke($lease)");
is($n1->safe_psql('postgres', 'SELECT count(*) FROM public.claims'), '0',
	'a row attached under the whole key goes with its lease');

done_testing();
