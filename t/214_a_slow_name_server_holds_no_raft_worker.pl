# 214_a_slow_name_server_holds_no_raft_worker.pl
#   node2 is named by a host name whose lookup takes node1 five seconds
#   (a slow name server: getaddrinfo() preloaded into node1 waits, see
#   test/tap/slow_getaddrinfo.c).  While node2 is down, node1 connects to
#   it again and again; none of those lookups may hold node1's Raft
#   workers, which would stop the heartbeats of every partition node1
#   leads: node3 must never start an election, and writes through node1
#   go on meanwhile.  The resolver waits for the name server instead,
#   and while it waits, the launcher still starts a Raft worker that
#   stopped.  The name stands for two addresses, the first of them with
#   no server; node3 is named by a list of two names, the first of which
#   does not resolve.
#
# Copyright (c) 2026, kommander developers
#
# t/214_a_slow_name_server_holds_no_raft_worker.pl

use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use KmdTest;

my $dir = PostgreSQL::Test::Utils::tempdir;
PostgreSQL::Test::Utils::system_or_bail('gcc', '-shared', '-fPIC', '-o', "$dir/slow_getaddrinfo.so",
	"$FindBin::RealBin/../test/tap/slow_getaddrinfo.c", '-ldl');
my $preload = join(' ', grep { $_ } ($ENV{LD_PRELOAD}, "$dir/slow_getaddrinfo.so"));

# every node maps the name; node1's lookups of it take five seconds, and
# wait for the file $gate while it is not there
my $gate = "$dir/dns_open";
PostgreSQL::Test::Utils::append_to_file($gate, '');
my $conf = "listen_addresses = '127.0.0.1'\nkommander.election_timeout = 2000\n"
  . "kommander.balance_interval = 0\n";
my @nodes;
for my $i (1 .. 3)
{
	local $ENV{LD_PRELOAD} = $preload;
	local $ENV{KMD_TEST_DNS_DELAY_MS} = $i == 1 ? 5000 : 0;
	local $ENV{KMD_TEST_DNS_GATE} = $i == 1 ? $gate : '';
	push @nodes, KmdTest::new_node("node$i", conf => $conf);
}
my ($n1, $n2, $n3) = @nodes;
my $n2_conninfo = 'host=kmd-peer.test port=' . $n2->port . ' dbname=postgres';
$n1->safe_psql('postgres', "SELECT kmd_bootstrap('node1', " . KmdTest::quote(KmdTest::conninfo($n1)) . ")");
KmdTest::wait_leaders($n1);
is($n2->safe_psql('postgres', "SELECT kmd_join('node2', " . KmdTest::quote($n2_conninfo) . ", "
	  . KmdTest::quote(KmdTest::conninfo($n1)) . ")"), '2', 'node2 joined under its host name');
my $n3_conninfo = 'host=kmd-missing.test,kmd-peer.test port=' . $n3->port . ' dbname=postgres';
is($n3->safe_psql('postgres', "SELECT kmd_join('node3', " . KmdTest::quote($n3_conninfo) . ", "
	  . KmdTest::quote(KmdTest::conninfo($n1)) . ")"), '3', 'node3 joined under a list of names');
KmdTest::wait_voters(\@nodes, 3);
KmdTest::create_kv($n1);
KmdTest::wait_converged(\@nodes) or die 'no convergence';

# node1 leads every partition
for my $p (split /\n/, $n1->safe_psql('postgres',
	"SELECT partition_id FROM kommander.partitions WHERE state = 'active' ORDER BY 1"))
{
	KmdTest::lead($n1, $p);
}

# node2 goes down: node1 connects to it again and again, each time by its
# name, for ten seconds of writes through node1
my $prevotes = "SELECT sum(value) FROM kommander.stats WHERE name IN ('prevotes_started', 'elections_started')";
my $before = $n3->safe_psql('postgres', $prevotes);
$n2->stop('immediate');
my $writes = $n1->safe_psql('postgres', q{
DO $$
DECLARE
  stop timestamptz := clock_timestamp() + interval '10 s';
  i int := 0;
BEGIN
  WHILE clock_timestamp() < stop LOOP
    i := i + 1;
    PERFORM kmd_propose('slow' || i, jsonb_build_object('op', 'upsert', 'table', 'kv',
      'row', jsonb_build_object('k', 'slow' || i, 'v', 'x')));
  END LOOP;
END $$;
SELECT count(*) FROM kv WHERE k LIKE 'slow%'});
ok($writes > 0, "writes went on through node1 ($writes)");
is($n3->safe_psql('postgres', $prevotes), $before, 'node3 never missed node1\'s heartbeats');
is($n1->safe_psql('postgres',
	"SELECT count(*) FROM kommander.partitions WHERE state = 'active' AND role <> 'leader'"),
	'0', 'node1 still leads every partition');

# node2 back (with its name mapped as before): it catches up, by its name
{
	local $ENV{LD_PRELOAD} = $preload;
	local $ENV{KMD_TEST_DNS_DELAY_MS} = 0;
	$n2->start;
}
ok(KmdTest::wait_converged(\@nodes), 'the nodes converge');

# a name server that does not answer: node1's resolver waits in its next
# lookup (every ten seconds) for as long as the gate is shut.  A Raft
# worker that stops meanwhile is started again all the same.
unlink($gate) or die "cannot remove $gate: $!";
my $deadline = time + $PostgreSQL::Test::Utils::timeout_default;
select(undef, undef, undef, 0.1) while !-e "$gate.waiting" && time < $deadline;
ok(-e "$gate.waiting", 'node1 looks node2\'s name up and waits');
my $workers = q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'kommander raft worker'};
my ($old, @others) = split /\n/, $n1->safe_psql('postgres', "$workers ORDER BY pid");
$n1->safe_psql('postgres', "SELECT pg_terminate_backend($old)");
ok($n1->poll_query_until('postgres',
	"SELECT count(*) = " . (1 + @others) . " AND bool_and(pid <> $old) FROM ($workers) w"),
	'a Raft worker that stopped is started again');
ok(-e "$gate.waiting", 'while the lookup still waits');
PostgreSQL::Test::Utils::append_to_file($gate, '');
ok(KmdTest::wait_converged(\@nodes), 'the nodes converge again');
KmdTest::same_state(\@nodes);

done_testing();
