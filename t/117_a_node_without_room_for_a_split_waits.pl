# 117_a_node_without_room_for_a_split_waits.pl
#   A split that a node has no room for (kommander.max_partitions set
#   lower there) stops the split partition at the split on that node,
#   retried, and no kmd_ddl is applied there meanwhile: a partition the
#   node does not host has not reached the DDL's point in its log.
#   Restarted with room, the node applies the split, the DDL and the rows
#   in the same order as the others.  A node with less room than the
#   cluster's partitions may not join.
#
# Copyright (c) 2026, kommander developers
#
# t/117_a_node_without_room_for_a_split_waits.pl

use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use KmdTest;

my @nodes = KmdTest::new_cluster(3, conf => "kommander.balance_interval = 0\n");
my ($n1, $n2, $n3) = @nodes;
KmdTest::create_kv($n1);
$n1->safe_psql('postgres', q{SELECT kmd_ddl('ALTER TABLE public.kv ADD COLUMN n int')});
KmdTest::write_rows($n1, 1, 50);

# node3 hosts three partitions: the system partition and two user ones
$n3->append_conf('postgresql.conf', "kommander.max_partitions = 3\n");
$n3->restart;
KmdTest::wait_converged(\@nodes);
KmdTest::split_in_two(\@nodes);

# a third user partition does not fit on node3
my $offset = -s $n3->logfile;
my $third = $n1->safe_psql('postgres', 'SELECT kmd_split(1)');
my $stalled = q{SELECT stalled || ': ' || coalesce(stall_error, '') FROM kommander.partitions WHERE partition_id = 1};
ok($n3->poll_query_until('postgres', "SELECT ($stalled) LIKE 'retrying: 53400: no room for partition $third on this node%'"),
	'node3 stops partition 1 at the split it has no room for')
  or diag($n3->safe_psql('postgres', $stalled));
is($n3->safe_psql('postgres', "SELECT count(*) FROM kommander.partition_map WHERE partition_id = $third"),
	'0', 'and does not apply it');

# a DDL waits on node3 for the partition it does not host
$n1->safe_psql('postgres', q{SELECT kmd_ddl('ALTER TABLE public.kv ADD COLUMN extra int')});
KmdTest::write_rows($n1, 51, 100);
$n2->poll_query_until('postgres',
	q{SELECT count(*) = 1 FROM pg_attribute WHERE attrelid = 'public.kv'::regclass AND attname = 'extra'})
  or die 'node2 did not apply the DDL';
my $applied_sys = $n1->safe_psql('postgres',
	'SELECT applied_index FROM kommander.partitions WHERE partition_id = 0');
# node3 took the DDL's entry in (its Raft log holds it) and waits at it
$n3->poll_query_until('postgres',
	"SELECT last_index >= $applied_sys FROM kommander.partitions WHERE partition_id = 0")
  or die 'node3 never received the DDL';
is($n3->safe_psql('postgres',
	q{SELECT count(*) FROM pg_attribute WHERE attrelid = 'public.kv'::regclass AND attname = 'extra'}),
	'0', 'node3 does not apply the DDL meanwhile');

# with room, node3 applies the split, the DDL and the rows
$n3->append_conf('postgresql.conf', "kommander.max_partitions = 8\n");
$n3->restart;
ok(KmdTest::wait_converged(\@nodes), 'node3 catches up once restarted with room');
my $rows = q{SELECT count(*) || ':' || md5(string_agg(k || '=' || v, ',' ORDER BY k)) FROM kv};
my $want = $n1->safe_psql('postgres', $rows);
ok($n3->poll_query_until('postgres', "SELECT ($rows) = '$want'"), 'node3 holds the same rows');
is($n3->safe_psql('postgres', "SELECT count(*) FROM kommander.partition_map WHERE partition_id = $third"),
	'1', 'node3 hosts the third partition');
unlike(slurp_file($n3->logfile, $offset), qr/do(es)? not fit in kommander.max_partitions/,
	'node3 never left a partition out');

# node4, with room for three of the four partitions, may not join
my $n4 = KmdTest::new_node('node4', conf => "kommander.max_partitions = 3\nkommander.balance_interval = 0\n");
my $join = "SELECT kmd_join('node4', " . KmdTest::quote(KmdTest::conninfo($n4)) . ', '
  . KmdTest::quote(KmdTest::conninfo($n1)) . ')';
my ($rc, $out, $err) = $n4->psql('postgres', $join);
like($err, qr/the cluster has 4 partitions, this node has room for 3/, 'node4 may not join without room');
is($n1->safe_psql('postgres', q{SELECT count(*) FROM kommander.roster WHERE node_name = 'node4'}),
	'0', 'and is not in the roster');
$n4->append_conf('postgresql.conf', "kommander.max_partitions = 8\n");
$n4->restart;
is($n4->safe_psql('postgres', $join), '4', 'with room it joins');
push @nodes, $n4;
ok(KmdTest::wait_converged(\@nodes), 'and catches up');
$want = $n1->safe_psql('postgres', $rows);
ok($n4->poll_query_until('postgres', "SELECT ($rows) = '$want'"), 'node4 holds the same rows');
done_testing();
