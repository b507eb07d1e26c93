# 010_replication.pl
#   Three real nodes: bootstrap and join, proposals on every node,
#   read-your-writes, identical tables everywhere, compare-and-set, and
#   failing commands that fail alike everywhere and change nothing.
#
# Copyright (c) 2026, kommander developers
#
# t/010_replication.pl

use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use KmdTest;

my @nodes = KmdTest::new_cluster(3);
my ($n1, $n2, $n3) = @nodes;

is($n1->safe_psql('postgres', 'SELECT count(*) FROM kommander.nodes'), '3',
	'roster has three nodes');
is($n3->safe_psql('postgres', "SELECT string_agg(role, ',' ORDER BY node_id) FROM kommander.nodes"),
	'voter,voter,voter', 'all three are voters, as seen from node3');

# a control table, created on every node at one log position
$n2->safe_psql('postgres',
	"SELECT kmd_ddl('CREATE TABLE public.jobs (id text PRIMARY KEY, state text NOT NULL, owner text)')");
$n2->safe_psql('postgres', "SELECT kmd_register_table('public.jobs')");
KmdTest::wait_converged(\@nodes);
for my $node (@nodes)
{
	is($node->safe_psql('postgres', "SELECT count(*) FROM kommander.tables WHERE relid = 'public.jobs'::regclass"),
		'1', $node->name . ' has jobs registered');
}

# proposals on every node, each read back at once on the same node
for my $i (1 .. 30)
{
	my $node = $nodes[ $i % 3 ];
	my $got = $node->safe_psql('postgres',
		"SELECT kmd_propose('job-$i', '{\"op\":\"insert\",\"table\":\"jobs\",\"row\":{\"id\":\"job-$i\",\"state\":\"new\"}}');"
		  . "SELECT state FROM jobs WHERE id = 'job-$i'");
	like($got, qr/\d+\nnew$/, "job-$i proposed on " . $node->name . ' is visible there at once');
}

# compare-and-set: only the first of two competing owners wins
my $r1 = $n1->safe_psql('postgres',
	q{SELECT kmd_propose_result('job-1', '{"op":"update","table":"jobs","key":{"id":"job-1"},"set":{"state":"running","owner":"node1"},"if":{"state":"new"}}')->>'applied'});
my $r2 = $n3->safe_psql('postgres',
	q{SELECT kmd_propose_result('job-1', '{"op":"update","table":"jobs","key":{"id":"job-1"},"set":{"state":"running","owner":"node3"},"if":{"state":"new"}}')->>'applied'});
is($r1, 'true', 'first compare-and-set applies');
is($r2, 'false', 'second compare-and-set sees the condition fail');

# a failing command raises its own SQLSTATE on the proposer and changes nothing
my ($rc, $out, $err) = $n2->psql('postgres',
	q{SELECT kmd_propose('job-2', '{"op":"batch","commands":[{"op":"update","table":"jobs","key":{"id":"job-2"},"set":{"state":"gone"}},{"op":"insert","table":"jobs","row":{"id":"job-2","state":"dup"}}]}')},
	on_error_stop => 1);
isnt($rc, 0, 'a batch with a duplicate insert fails');
like($err, qr/duplicate key/, 'with the duplicate key error');

KmdTest::wait_converged(\@nodes);
my $q = "SELECT string_agg(id || '=' || state || '/' || coalesce(owner, ''), ',' ORDER BY id) FROM jobs";
my $expect = $n1->safe_psql('postgres', $q);
like($expect, qr/job-1=running\/node1/, 'job-1 owned by node1');
like($expect, qr/job-2=new\//, 'job-2 untouched by the failed batch');
for my $node ($n2, $n3)
{
	is($node->safe_psql('postgres', $q), $expect, $node->name . ' has the same table');
}

# the log itself is identical on every node
my $log = "SELECT md5(string_agg(partition_id || ':' || idx || ':' || term || ':' || md5(coalesce(data, '')), ',' ORDER BY partition_id, idx)) FROM kommander.log l WHERE idx <= (SELECT commit_index FROM kommander.partitions p WHERE p.partition_id = l.partition_id)";
my $log1 = $n1->safe_psql('postgres', $log);
is($n2->safe_psql('postgres', $log), $log1, 'node2 holds the same committed log');
is($n3->safe_psql('postgres', $log), $log1, 'node3 holds the same committed log');

# a commit index is written with a new term or vote, or else at the next
# tick: the stored one catches up with the known one
my $stored = "SELECT count(*) = 0 FROM kommander.partitions p JOIN kommander.hard_state h USING (partition_id) WHERE h.commit_index <> p.commit_index";
for my $node (@nodes)
{
	ok($node->poll_query_until('postgres', $stored),
		$node->name . ' stores the commit index it knows once writes stop');
}

# workers show up in pg_stat_activity with clear names
like($n1->safe_psql('postgres', "SELECT string_agg(DISTINCT backend_type, ',' ORDER BY backend_type) FROM pg_stat_activity WHERE backend_type LIKE 'kommander%'"),
	qr/kommander apply,kommander launcher,kommander raft worker/, 'workers are visible in pg_stat_activity');

# kommander.workers = 0 chooses one Raft worker per three cores, from one
# to four; SHOW tells the number chosen, and the node serves its partitions
# with that many workers after the restart
my $raft_workers = "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'kommander raft worker'";
is($n3->safe_psql('postgres', $raft_workers), '2', 'node3 runs the two Raft workers it was given');
my $cores = `getconf _NPROCESSORS_ONLN`;
chomp $cores;
my $chosen = int($cores / 3);
$chosen = 1 if $chosen < 1;
$chosen = 4 if $chosen > 4;
$n3->append_conf('postgresql.conf', 'kommander.workers = 0');
$n3->restart;
is($n3->safe_psql('postgres', 'SHOW kommander.workers'), $chosen,
	"kommander.workers = 0 on $cores cores shows $chosen");
KmdTest::wait_leaders($n3);
is($n3->safe_psql('postgres', $raft_workers), $chosen, "node3 runs $chosen Raft workers");
# the setting keeps the 0 written: a reload finds nothing to restart for
$n3->safe_psql('postgres', 'SELECT pg_reload_conf()');
$n3->poll_query_until('postgres',
	"SELECT count(*) = 0 FROM pg_file_settings WHERE name = 'kommander.workers' AND error IS NOT NULL")
  or die 'the reload did not read kommander.workers = 0 back';
is($n3->safe_psql('postgres', "SELECT pending_restart FROM pg_settings WHERE name = 'kommander.workers'"),
	'f', 'a reload does not ask for a restart for kommander.workers = 0');
$n3->safe_psql('postgres',
	q{SELECT kmd_propose('job-99', '{"op":"insert","table":"jobs","row":{"id":"job-99","state":"new"}}')});
KmdTest::wait_converged(\@nodes);
is($n1->safe_psql('postgres', "SELECT state FROM jobs WHERE id = 'job-99'"), 'new',
	'node3 proposes with the workers it chose');

done_testing();
