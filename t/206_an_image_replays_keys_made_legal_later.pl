# 206_an_image_replays_keys_made_legal_later.pl
#   An image of the system partition replays the kmd_ddl statements a
#   node missed, and registers the tables registered meanwhile only after
#   all of them.  A foreign key that passed where it ran (both tables
#   control tables by then) must pass on the replay too, where the table
#   it references is not registered yet: the replay checks no key, every
#   statement of the log having passed in its place.  Otherwise the image
#   fails for good and the node never catches up.
#
# Copyright (c) 2026, kommander developers
#
# t/206_an_image_replays_keys_made_legal_later.pl

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
KmdTest::wait_converged(\@nodes);

# node 3 away: a table registered, then a foreign key to it from kv
$n3->stop('immediate');
$n1->safe_psql('postgres', q{
SELECT kmd_ddl('CREATE TABLE public.owners (k text PRIMARY KEY)');
SELECT kmd_register_table('public.owners');
SELECT kmd_ddl('ALTER TABLE public.kv ADD CONSTRAINT kv_owner FOREIGN KEY (k) REFERENCES public.owners (k)');
});
my $ddl_index = $n1->safe_psql('postgres',
	'SELECT last_index FROM kommander.partitions WHERE partition_id = 0');
ok(KmdTest::compact_system_past($n1, $ddl_index),
	'node 1 compacted the system partition past the statements');

my $offset = -s $n3->logfile;
$n3->start;
ok(KmdTest::wait_converged(\@nodes), 'node 3 catches up');
ok($n3->log_contains(qr/installed an image of partition 0 /, $offset),
	'through an image of the system partition');
is($n3->safe_psql('postgres', "SELECT count(*) FROM pg_constraint WHERE conname = 'kv_owner'"),
	'1', 'node 3 has the foreign key');
is($n3->safe_psql('postgres', "SELECT count(*) FROM kommander.tables WHERE relid = 'public.owners'::regclass"),
	'1', 'and the table it references registered');
$n3->safe_psql('postgres', q{
SELECT kmd_propose('o1', '{"op":"insert","table":"owners","row":{"k":"o1"}}');
SELECT kmd_propose('o1', '{"op":"insert","table":"kv","row":{"k":"o1","v":"x"}}');
});
ok(KmdTest::wait_converged(\@nodes), 'writes through node 3 reach every node');
KmdTest::same_state(\@nodes);

done_testing();
