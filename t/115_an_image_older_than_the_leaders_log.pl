# 115_an_image_older_than_the_leaders_log.pl
#   The leader compacts its log further while an image it serves is being
#   copied, and tells the waiting node so again: its newer snapshot
#   message is kept while the node's group waits.  The image that arrives
#   is older than that message.  Once installed, the node asks for a newer
#   image; it does not take the leader's compaction point for its own,
#   which would leave a hole between its applied index and its log that
#   no entry fills.  Here node1's manifest for node3 waits on a lock on a
#   table the writes do not touch, while node1 applies and compacts on.
#   A malformed manifest fails a try of the receiver, never crashes it,
#   and one naming a table that is no control table, or leaving one out,
#   or with a configuration the group could not start from (it would go
#   offline for good), is refused before it changes anything.
#
# Copyright (c) 2026, kommander developers
#
# t/115_an_image_older_than_the_leaders_log.pl

use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use KmdTest;

my $THRESHOLD = 100;
my $conf = "kommander.snapshot_threshold = $THRESHOLD\nkommander.balance_interval = 0\n";
my @nodes = KmdTest::new_cluster(3, conf => $conf);
my ($n1, $n2, $n3) = @nodes;
KmdTest::create_kv($n1);
$n1->safe_psql('postgres', q{SELECT kmd_ddl('ALTER TABLE public.kv ADD COLUMN n int')});
$n1->safe_psql('postgres', q{SELECT kmd_ddl('CREATE TABLE public.other (k text PRIMARY KEY)')});
$n1->safe_psql('postgres', q{SELECT kmd_register_table('public.other')});
# the leaders on node1, which serves the image
$n1->safe_psql('postgres', "SELECT kmd_transfer_leader(p, 'node1') FROM generate_series(0, 1) p");
KmdTest::wait_converged(\@nodes);


my $marker = q{SELECT snapshot_index FROM kommander.partitions WHERE partition_id = 1};
my $rows = q{SELECT count(*) || ':' || md5(string_agg(k || '=' || v, ',' ORDER BY k)) FROM kv};

# node3 falls behind node1's compacted log
my $applied = $n3->safe_psql('postgres',
	'SELECT applied_index FROM kommander.partitions WHERE partition_id = 1');
# (stopped fast: its last apply transactions, committed asynchronously,
# are on disk, so the image need not wait for the system partition)
$n3->stop;
KmdTest::write_rows($n2, 1, 500);
$n1->poll_query_until('postgres', "SELECT ($marker) > $applied")
  or die 'node1 did not compact past node3';

# node1's manifest waits on a lock on `other'; its apply of kv goes on
my $in = '';
my $out = '';
my $locker = IPC::Run::start([ 'psql', '-X', '-q', '-d', KmdTest::conninfo($n1), '-f', '-' ],
	'<', \$in, '>', \$out, '2>', \$out);
$in .= "BEGIN; LOCK TABLE public.other IN ACCESS EXCLUSIVE MODE; SELECT 'locked';\n";
$locker->pump until $out =~ /locked/;
my $offset = -s $n3->logfile;
$n3->start;
$n1->poll_query_until('postgres',
	q{SELECT count(*) > 0 FROM pg_stat_activity WHERE query LIKE '%image_manifest%' AND wait_event_type = 'Lock'})
  or die 'no image transfer started';
my $in_flight = $n1->safe_psql('postgres', 'SELECT applied_index FROM kommander.partitions WHERE partition_id = 1');

# meanwhile node1 compacts past the image in flight, and its next
# snapshot message to node3 (with an append after two election timeouts
# without an answer) names the new compaction point, which node3 keeps:
# its kommander.partitions says so
KmdTest::write_rows($n2, 501, 1000);
$n1->poll_query_until('postgres', "SELECT ($marker) > $in_flight")
  or die 'node1 did not compact past the image in flight';
my $compacted = $n1->safe_psql('postgres', $marker);
my $asked = q{SELECT substring(stall_error FROM 'at index (\d+)')::bigint FROM kommander.partitions
	WHERE partition_id = 1};
my $written = 1000;
while ($n3->safe_psql('postgres', $asked) < $compacted)
{
	die 'node3 never heard of the newer compaction point' if $written >= 3000;
	$written++;
	KmdTest::write_rows($n2, $written, $written);
}
$in .= "COMMIT;\n\\q\n";
$locker->finish;

ok($n3->wait_for_log(qr/installed an image of partition 1 from node 1 at index \d+/, $offset),
	'node3 installs the image that was in flight');
my ($first) = slurp_file($n3->logfile, $offset) =~ /installed an image of partition 1 from node 1 at index (\d+)/;
cmp_ok($first, '<', $compacted, 'that image is older than the log node1 kept meanwhile');
ok(KmdTest::wait_converged(\@nodes), 'node3 catches up past it');
my $want = $n1->safe_psql('postgres', $rows);
is($want =~ /^(\d+):/ ? $1 : '', $written, 'node1 has every row');
ok($n3->poll_query_until('postgres', "SELECT ($rows) = '$want'"), 'node3 holds the same rows');
my $hole = q{SELECT count(*) FROM kommander.partitions
	WHERE partition_id = 1 AND applied_index < snapshot_index};
is($n3->safe_psql('postgres', $hole), '0', 'node3 applied as far as its log starts');

# node1 answers kommander.image_manifest with its own function again
sub sound_manifest_back
{
	$n1->safe_psql('postgres', q{
CREATE OR REPLACE FUNCTION kommander.image_manifest(partition_id int, cluster_id uuid, to_node int)
RETURNS jsonb AS '$libdir/kommander', 'kmd_image_manifest'
LANGUAGE C SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
DROP FUNCTION kommander.sound_manifest(int, uuid, int);
});
}

# a malformed manifest (here one without its tables) fails a try of
# node3's apply worker, which asks again; it never crashes it
$n1->safe_psql('postgres', q{
CREATE FUNCTION kommander.sound_manifest(partition_id int, cluster_id uuid, to_node int)
RETURNS jsonb AS '$libdir/kommander', 'kmd_image_manifest'
LANGUAGE C SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
CREATE OR REPLACE FUNCTION kommander.image_manifest(partition_id int, cluster_id uuid, to_node int)
RETURNS jsonb LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$ SELECT kommander.sound_manifest(partition_id, cluster_id, to_node) - 'tables' $$;
});
$applied = $n3->safe_psql('postgres', 'SELECT applied_index FROM kommander.partitions WHERE partition_id = 1');
$n3->stop;
KmdTest::write_rows($n2, $written + 1, $written + 500);
$n1->poll_query_until('postgres', "SELECT ($marker) > $applied")
  or die 'node1 did not compact past node3';
$offset = -s $n3->logfile;
$n3->start;
ok($n3->wait_for_log(qr/malformed image manifest: no object or array "tables"/, $offset),
	'node3 refuses a manifest without its tables');
sound_manifest_back();
ok(KmdTest::wait_converged(\@nodes), 'node3 catches up with the sound manifest');
$want = $n1->safe_psql('postgres', $rows);
ok($n3->poll_query_until('postgres', "SELECT ($rows) = '$want'"), 'node3 holds the same rows again');

# nor one naming a table of the receiver that is no control table, whose
# rows in the range it would replace by the peer's (here none, with the
# checksum of none), nor one that leaves a control table out, whose rows
# the receiver would keep
$n1->safe_psql('postgres', q{CREATE TABLE public.bystander (k text PRIMARY KEY)});
$n3->safe_psql('postgres', q{CREATE TABLE public.bystander (k text PRIMARY KEY);
INSERT INTO public.bystander VALUES ('mine')});
$n1->safe_psql('postgres', q{
CREATE FUNCTION kommander.sound_manifest(partition_id int, cluster_id uuid, to_node int)
RETURNS jsonb AS '$libdir/kommander', 'kmd_image_manifest'
LANGUAGE C SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
});
my @malformed = (
	[ q{jsonb_set(m, '{tables}', (m->'tables') || '[{"table": "public.bystander", "rows": 0, "sum": "0"}]')},
	  qr/malformed image manifest: it lists public.bystander which is no control table here/,
	  'a manifest naming a table that is no control table' ],
	[ q{jsonb_set(m, '{tables}', (SELECT jsonb_agg(e) FROM jsonb_array_elements(m->'tables') e
	                              WHERE e->>'table' <> 'public.other'))},
	  qr/malformed image manifest: it leaves public.other out/,
	  'a manifest that leaves a control table out' ],
	[ q{jsonb_set(m, '{conf}', '"0100000007000000"')},
	  qr/the image of partition 1 names member 1 with role 7/,
	  'a manifest whose configuration the group could not start from' ]);
for my $case (@malformed)
{
	my ($manifest, $refusal, $what) = @$case;
	$n1->safe_psql('postgres', qq{
CREATE OR REPLACE FUNCTION kommander.image_manifest(partition_id int, cluster_id uuid, to_node int)
RETURNS jsonb LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS \$\$ SELECT $manifest FROM kommander.sound_manifest(partition_id, cluster_id, to_node) m \$\$;
});
	$applied = $n3->safe_psql('postgres', 'SELECT applied_index FROM kommander.partitions WHERE partition_id = 1');
	$n3->stop;
	KmdTest::write_rows($n2, $written + 1, $written + 500);
	$written += 500;
	$n1->poll_query_until('postgres', "SELECT ($marker) > $applied")
	  or die 'node1 did not compact past node3';
	$offset = -s $n3->logfile;
	$n3->start;
	ok($n3->wait_for_log($refusal, $offset), "node3 refuses $what");
	ok(KmdTest::wait_converged(\@nodes), 'and catches up from another node');
	$want = $n1->safe_psql('postgres', $rows);
	ok($n3->poll_query_until('postgres', "SELECT ($rows) = '$want'"), 'node3 holds the same rows once more');
}
is($n3->safe_psql('postgres', 'SELECT string_agg(k, \',\') FROM public.bystander'), 'mine',
	"node3's own table kept its row");
sound_manifest_back();
unlike(slurp_file($n3->logfile, $offset), qr/terminated by signal/, 'no process of node3 crashed');

done_testing();
