# 203_leader_events_wait_for_no_notifier.pl
#   The Raft worker tells of the leader changes it sees with a NOTIFY, in
#   a transaction of its own, whose commit takes the NOTIFY queue's lock.
#   Any session of the server that notified holds that lock until its own
#   commit is done, a wait for a synchronous standby's apply included.
#   Here one waits for a standby whose replay is paused while node1 takes
#   the lead of a partition: node1's Raft worker must not wait with it
#   (it would hold every group of the worker, and the writes through
#   node1); the event is left out, with a warning.
#
# Copyright (c) 2026, kommander developers
#
# t/203_leader_events_wait_for_no_notifier.pl

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

# node1 gets a synchronous standby, and partition 1 a leader elsewhere
$n1->backup('b');
my $standby = PostgreSQL::Test::Cluster->new('node1_standby');
$standby->init_from_backup($n1, 'b', has_streaming => 1);
$standby->start;
$n1->append_conf('postgresql.conf', "synchronous_standby_names = 'node1_standby'");
$n1->reload;
$n1->poll_query_until('postgres',
	"SELECT sync_state = 'sync' FROM pg_stat_replication WHERE application_name = 'node1_standby'")
  or die 'the standby is not synchronous';
$n1->safe_psql('postgres', "SELECT kmd_transfer_leader(1, 'node2')");
is((KmdTest::try_upsert($n1, 'before'))[0], 0, 'a write through node1');

# a session of node1 notifies and waits for the standby's apply, paused
$standby->safe_psql('postgres', 'SELECT pg_wal_replay_pause()');
my $notifier = $n1->background_psql('postgres');
$notifier->query_safe('SET synchronous_commit = remote_apply');
my $notifier_pid = $notifier->query_safe('SELECT pg_backend_pid()');
$notifier->query_until(qr/notifying/,
	"\\echo notifying\nBEGIN; CREATE TEMP TABLE w (); NOTIFY other; COMMIT;\n");
$n1->poll_query_until('postgres',
	qq{SELECT wait_event = 'SyncRep' FROM pg_stat_activity WHERE pid = $notifier_pid})
  or die 'the notifying session never waited for its standby';

# node1 takes the lead of partition 1 meanwhile, and goes on
my $offset = -s $n1->logfile;
$n2->safe_psql('postgres', "SELECT kmd_transfer_leader(1, 'node1')");
ok($n1->wait_for_log(qr/could not send \d+ leader change events/, $offset),
	'node1 leaves out its leader event');
for my $i (1 .. 5)
{
	my ($rc, $out, $err) = KmdTest::try_upsert($n1, "while-$i");
	is($rc, 0, "write $i through node1 while the notifier waits") or diag($err);
}
is(KmdTest::leader_of($n2, 1), 'node1', 'node1 still leads partition 1');
ok($n1->poll_query_until('postgres',
	qq{SELECT wait_event = 'SyncRep' FROM pg_stat_activity WHERE pid = $notifier_pid}),
	'while the notifier still waits');

$standby->safe_psql('postgres', 'SELECT pg_wal_replay_resume()');
$notifier->quit;
KmdTest::wait_converged(\@nodes);
is($n3->safe_psql('postgres', "SELECT count(*) FROM kv WHERE k LIKE 'while-%'"), '5',
	'node3 has every write');
KmdTest::same_state(\@nodes);

done_testing();
