# 209_a_node_back_to_a_key_change_its_old_leases_refuse.pl
#   A kmd_ddl that changes a table's primary key and drops a column of the
#   old one is refused while leases hold rows noted under the old key.  A
#   node down while the others ended the lease holding such rows,
#   compacted the log past it and ran that statement comes back still
#   noting the rows under the old key: its partition waits for an image,
#   so the statement must run there as it did on the others, without the
#   notes the image replaces, or the node alone would keep the column.
#
# Copyright (c) 2026, kommander developers
#
# t/209_a_node_back_to_a_key_change_its_old_leases_refuse.pl

use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use KmdTest;

my $conf = <<'EOC';
kommander.snapshot_threshold = 10
kommander.balance_interval = 0
EOC
my @nodes = KmdTest::new_cluster(3, conf => $conf);
my ($n1, $n2, $n3) = @nodes;
KmdTest::create_kv($n1);
$n1->safe_psql('postgres', q{
SELECT kmd_ddl('CREATE TABLE public.lt (k text, n int, PRIMARY KEY (k, n))');
SELECT kmd_register_table('public.lt');
});
my $partition = $n1->safe_psql('postgres', "SELECT partition_id FROM kmd_route('a')");
my $lease = $n1->safe_psql('postgres', "SELECT kmd_lease_grant('10 min', 'a')");
$n1->safe_psql('postgres',
	qq{SELECT kmd_propose('a', '{"op":"insert","table":"lt","row":{"k":"a","n":1},"lease":$lease}')});
ok(KmdTest::wait_converged(\@nodes), 'every node holds the leased row');
is($n3->safe_psql('postgres', 'SELECT pk FROM kommander.lease_rows'),
	'{"k": "a", "n": 1}', 'node 3 notes it under the key (k, n)');

# the apply worker commits without waiting for the WAL flush: the note is
# flushed before the crash, or node 3 could come back without it
$n3->safe_psql('postgres', 'CHECKPOINT');
$n3->stop('immediate');
$n1->safe_psql('postgres', "SELECT kmd_lease_revoke($lease)");
my $last = $n1->safe_psql('postgres',
	"SELECT last_index FROM kommander.partitions WHERE partition_id = $partition");
ok(KmdTest::compact_past($n1, $partition, $last), "node 1 compacted the lease's partition past its end");
is($n1->safe_psql('postgres',
	q{SELECT kmd_ddl('ALTER TABLE public.lt DROP CONSTRAINT lt_pkey, ADD PRIMARY KEY (k), DROP COLUMN n') > 0}),
	't', 'with no lease holding rows of it, the key changes and its column goes');

my $offset = -s $n3->logfile;
$n3->start;
ok(KmdTest::wait_converged(\@nodes), 'node 3 applies every partition');
for my $node (@nodes)
{
	is($node->safe_psql('postgres',
		q{SELECT string_agg(attname, ',' ORDER BY attnum) FROM pg_attribute
		   WHERE attrelid = 'public.lt'::regclass AND attnum > 0 AND NOT attisdropped}),
		'k', $node->name . ' dropped the column');
}
ok($n3->log_contains(qr/ran on the other nodes and failed here: running it again without the rows of partitions/, $offset),
	'node 3 ran the statement again without what the image replaces');
ok(!$n3->log_contains(qr/this node's outcome differs/, $offset), 'no outcome of its own');
is($n3->safe_psql('postgres', 'SELECT count(*) FROM kommander.lease_rows'), '0',
	'node 3 notes no row of the ended lease');
$n3->safe_psql('postgres',
	q{SELECT kmd_propose('b', '{"op":"insert","table":"lt","row":{"k":"b"}}')});
ok(KmdTest::wait_converged(\@nodes), 'a write through node 3 reaches every node');
KmdTest::same_state(\@nodes);

done_testing();
