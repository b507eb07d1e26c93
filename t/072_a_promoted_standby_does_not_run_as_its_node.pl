# 072_a_promoted_standby_does_not_run_as_its_node.pl
#   A node's data must never go back: its acknowledgements and votes are
#   what the cluster counted on.  A physical standby of a node, promoted
#   after the node is killed, lands on a new WAL timeline, and kommander
#   refuses to run there: no Raft worker starts, the log says why, and its
#   SQL functions fail with K0005.  (It once started as that node, with
#   what an asynchronous standby had received.)  The other two nodes go
#   on; noting the new timeline by hand lets the server run; a restart of
#   the killed node itself, on its own timeline, runs.
#
# Copyright (c) 2026, kommander developers
#
# t/072_a_promoted_standby_does_not_run_as_its_node.pl

use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use KmdTest;

my @nodes = KmdTest::new_cluster(3,
	conf => "wal_level = replica\nmax_wal_senders = 4\nkommander.balance_interval = 0\n");
my ($n1, $n2, $n3) = @nodes;
KmdTest::create_kv($n1);

is((KmdTest::try_upsert($n1, 'before'))[0], 0, 'a write before the standby');
$n3->backup('b');
my $standby = PostgreSQL::Test::Cluster->new('node3_standby');
$standby->init_from_backup($n3, 'b', has_streaming => 1);
$standby->start;
is((KmdTest::try_upsert($n2, 'while-standby'))[0], 0, 'a write while the standby streams');
$n3->wait_for_catchup($standby);
is($standby->safe_psql('postgres', q{SELECT count(*) FROM pg_stat_activity
	WHERE backend_type LIKE 'kommander%'}), '0', 'no kommander process on the standby');
my ($src, $sout, $serr) = KmdTest::try_upsert($standby, 'on-standby');
like($serr, qr/K0005: this server is a standby: kommander does not run here/,
	'a proposal on the standby fails at once with K0005');

$n3->stop('immediate');
my $offset = -s $standby->logfile;
$standby->promote;
$standby->wait_for_log(
	qr/WARNING:  this node is not a member of a kommander cluster: its data went back/, $offset);
like(slurp_file($standby->logfile, $offset),
	qr/DETAIL:  It took its identity on WAL timeline 1 and runs on timeline 2/,
	'the log names both timelines');

my ($rc, $out, $err) = KmdTest::try_upsert($standby, 'through-standby');
isnt($rc, 0, 'a proposal through the promoted standby fails');
like($err, qr/K0005: this node is not a member of a kommander cluster: its data went back/,
	'with K0005, saying why');
like($err, qr/HINT:  Remove it with kmd_remove_node\(\)/, 'and what to do');
($rc, $out, $err) = $standby->psql('postgres',
	qq{\\set VERBOSITY verbose\nSELECT kmd_join('again', 'host=localhost', 'host=localhost')});
like($err, qr/this node already belongs to a kommander cluster.*\n.*DETAIL:  Its data went back \(it took its identity on WAL timeline 1 and runs on timeline 2\)/,
	'kmd_join on it says that its data went back');
is($standby->safe_psql('postgres', q{SELECT count(*) FROM pg_stat_activity
	WHERE backend_type IN ('kommander raft worker', 'kommander apply')}),
	'0', 'no Raft worker or apply worker runs on it');

is((KmdTest::try_upsert($n1, 'two-left'))[0], 0, 'the two other nodes still commit');

# An operator who knows the promoted server holds all the node had (here
# it caught up before the kill) notes the new timeline: it runs again.
# Peers reach node3 at its own address, so it gets no message meanwhile.
$standby->safe_psql('postgres', 'CHECKPOINT');
$standby->safe_psql('postgres',
	'UPDATE kommander.local SET timeline = (SELECT timeline_id FROM pg_control_checkpoint())');
ok( $standby->poll_query_until('postgres', q{SELECT count(*) > 0 FROM pg_stat_activity
	WHERE backend_type = 'kommander raft worker'}),
	'with the new timeline noted, its Raft workers start');
is($standby->safe_psql('postgres', q{SELECT partition_id FROM kmd_route('k')}),
	'1', 'and its functions answer');
$standby->stop;

# the killed node itself comes back on its own timeline and runs
$n3->start;
KmdTest::wait_leaders($n3);
is((KmdTest::try_upsert($n3, 'node3-back'))[0], 0, 'node3 restarted on its timeline proposes');
ok(KmdTest::wait_converged([ $n1, $n2, $n3 ]), 'the three nodes converge');
is($n3->safe_psql('postgres', q{SELECT string_agg(k, ',' ORDER BY k) FROM kv}),
	'before,node3-back,two-left,while-standby', 'node3 has every write');

done_testing();
