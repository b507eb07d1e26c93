# 230_a_transfer_given_up_is_asked_again.pl
#   kmd_transfer_leader asks the leader to hand a partition over and waits
#   until this node sees the new leader.  The leader gives a transfer up
#   after an election timeout when its target cannot be told to campaign
#   (not connected: here a link that is cut, as after the target's
#   restart): the call asks again until kommander.propose_timeout, and
#   the lead moves once the link is back, instead of failing with K0002
#   at the deadline.
#
# Copyright (c) 2026, kommander developers
#
# t/230_a_transfer_given_up_is_asked_again.pl

use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use KmdTest;
use KmdNemesis;
use KmdProxy;

my $t = KmdNemesis::new_cluster(3, conf => "kommander.balance_interval = 0\n");
my ($n1, $n2, $n3) = @{ $t->{nodes} };
KmdTest::lead($n1, 1);

# nothing node1 sends reaches node3 now: not the call to campaign either
KmdProxy::set($t->{proxy}, '1>3', 'cut');
my ($stdout, $stderr) = ('', '');
my $transfer = IPC::Run::start(
	[ 'psql', '-X', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-v', 'VERBOSITY=verbose',
	  '-d', $n1->connstr('postgres'),
	  '-c', "SET kommander.propose_timeout = '20s'",
	  '-c', "SELECT kmd_transfer_leader(1, 'node3')",
	  '-c', "SELECT 'moved: true'" ],
	'>', \$stdout, '2>', \$stderr);
# several election timeouts, each try given up meanwhile: node3, which
# hears no leader, starts a pre-vote round once each (not more often)
$n1->poll_query_until('postgres', q{SELECT count(*) = 1 FROM pg_stat_activity
  WHERE query = 'SELECT kmd_transfer_leader(1, ''node3'')' AND wait_event IS NOT NULL})
  or die 'the transfer did not start';
my $prevotes = q{SELECT coalesce(sum(value), 0) FROM kommander.stats
  WHERE name = 'prevotes_started' AND partition_id = 1};
my $before = $n3->safe_psql('postgres', $prevotes);
ok($n3->poll_query_until('postgres', "SELECT ($prevotes) >= $before + 3"),
	'node3 hears no leader for three election timeouts');
ok($transfer->pumpable, 'the transfer waits while node3 cannot be reached');
is(KmdTest::leader_of($n1, 1), 'node1', 'node1 still leads partition 1');
KmdProxy::set($t->{proxy}, '1>3', 'up');
$transfer->finish;
like($stdout, qr/moved: true/, 'the lead moves once the link is back') or diag("stderr: $stderr");
ok($n2->poll_query_until('postgres',
	"SELECT leader_name = 'node3' FROM kommander.partitions WHERE partition_id = 1"),
	'node2 sees node3 lead partition 1');

KmdProxy::stop($t->{proxy});
done_testing();
