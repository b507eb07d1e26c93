# 040_timeouts_leave_nothing_behind.pl
#   Without a quorum a proposal fails with K0002 after propose_timeout; a
#   cancelled proposal gives its shared-memory slot back (more cancellations
#   than there are slots, then proposals still work), and so does one whose
#   backend is terminated while it waits; a Raft worker that dies
#   is started again and the node carries on.  kmd_join waiting on a seed
#   that never answers is ended by statement_timeout.
#
# Copyright (c) 2026, kommander developers
#
# t/040_timeouts_leave_nothing_behind.pl

use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IO::Socket::INET;
use KmdTest;

my @nodes = KmdTest::new_cluster(3);
my ($n1, $n2, $n3) = @nodes;
KmdTest::create_kv($n1);
KmdTest::wait_converged(\@nodes);

# a Raft worker killed on node1 is started again by the launcher
my $pid = $n1->safe_psql('postgres',
	"SELECT pid FROM pg_stat_activity WHERE backend_type = 'kommander raft worker' LIMIT 1");
$n1->safe_psql('postgres', "SELECT pg_terminate_backend($pid)");
$n1->poll_query_until('postgres',
	"SELECT count(*) = 2 FROM pg_stat_activity WHERE backend_type = 'kommander raft worker' AND pid <> $pid")
  or die 'the worker was not started again';
pass('a terminated Raft worker is started again');
$n1->safe_psql('postgres',
	q{SELECT kmd_propose('after-restart', '{"op":"insert","table":"kv","row":{"k":"after-restart","v":"x"}}')});
is($n1->safe_psql('postgres', "SELECT v FROM kv WHERE k = 'after-restart'"), 'x',
	'the node proposes and applies after the worker restart');

# node1 alone: no quorum
$n2->stop('immediate');
$n3->stop('immediate');
my ($rc, $code, $msg) = KmdTest::error_of($n1,
	q{SET kommander.propose_timeout = 1500;
	  SELECT kmd_propose('lonely', '{"op":"insert","table":"kv","row":{"k":"lonely","v":"x"}}')});
isnt($rc, 0, 'a proposal without a quorum fails');
like($code, qr/^K000[23]$/, "with K0002 or K0003 after propose_timeout ($code: $msg)");

# cancel many more proposals than there are slots (256)
my $sql = "SET statement_timeout = '20ms';\n";
$sql .= "SELECT kmd_propose('c$_', '{\"op\":\"insert\",\"table\":\"kv\",\"row\":{\"k\":\"c$_\",\"v\":\"x\"}}');\n"
  for 1 .. 300;
my ($out, $err);
($rc, $out, $err) = $n1->psql('postgres', $sql, on_error_stop => 0);
# each is the cancel itself, or K0003 for one the worker had taken
my $cancelled = () = $err =~
  /ERROR:  (canceling statement due to statement timeout|proposal outcome unknown: the wait for partition \d+ was cancelled)/g;
is($cancelled, 300, 'all 300 proposals were cancelled');

# proposers whose backends are terminated while they wait give their
# slots and their places in the partition's queue back: a FATAL error
# unwinds nothing
my $connstr = KmdTest::conninfo($n1);
my @waiting = map {
	my ($o, $e);
	IPC::Run::start(
		[
			'psql', '-X', '-q', '-d', $connstr, '-c',
			"SET kommander.propose_timeout = 120000; "
			  . "SELECT kmd_propose('t$_', '{\"op\":\"insert\",\"table\":\"kv\",\"row\":{\"k\":\"t$_\",\"v\":\"x\"}}')"
		],
		'>', \$o, '2>', \$e)
} 1 .. 3;
my $depth = q{SELECT value FROM kommander.stats WHERE name = 'queue_depth' AND partition_id IS NULL};
$n1->poll_query_until('postgres', "SELECT ($depth) = 3")
  or die 'the three proposals do not wait';
$n1->safe_psql('postgres',
	q{SELECT pg_terminate_backend(pid) FROM pg_stat_activity
	   WHERE query LIKE '%kmd_propose(''t%' AND pid <> pg_backend_pid()});
$_->finish for @waiting;
ok($n1->poll_query_until('postgres', "SELECT ($depth) = 0"),
	'terminated proposers leave the queue');

# quorum back: proposals work again, so no slot was left behind
$n2->start;
$n3->start;
KmdTest::wait_leaders($_) for @nodes;
for my $i (1 .. 20)
{
	$n1->safe_psql('postgres',
		"SELECT kmd_propose('after-$i', '{\"op\":\"insert\",\"table\":\"kv\",\"row\":{\"k\":\"after-$i\",\"v\":\"y\"}}')");
}
is($n1->safe_psql('postgres', "SELECT count(*) FROM kv WHERE k LIKE 'after-%' AND v = 'y'"), '20',
	'proposals succeed after the cancellations');

# kmd_join against a seed that accepts the connection and never answers
# is ended by statement_timeout, not stuck in libpq
my $silent = IO::Socket::INET->new(Listen => 1, LocalAddr => '127.0.0.1', LocalPort => 0,
	Proto => 'tcp') or die "no listener: $!";
my $port = $silent->sockport;
my $joiner = KmdTest::new_node('joiner');
($rc, $out, $err) = $joiner->psql('postgres',
	"SET statement_timeout = '1s'; SELECT kmd_join('joiner', "
	  . KmdTest::quote(KmdTest::conninfo($joiner))
	  . ", 'host=127.0.0.1 port=$port dbname=postgres')");
like($err, qr/canceling statement due to statement timeout/,
	'kmd_join waiting on a silent seed is cancelled by statement_timeout');
is($joiner->safe_psql('postgres', 'SELECT count(*) FROM kommander.nodes'), '0',
	'the node did not join anything');
close $silent;

done_testing();
