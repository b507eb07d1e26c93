# 086_a_lost_read_index_is_asked_again.pl
#   A read barrier through a follower asks the leader for a read index in
#   a Raft message.  When the answer is lost on the way (here a network
#   link that held it and then broke), the follower asks again after an
#   election timeout, and the barrier returns once the link is back,
#   instead of waiting out kommander.propose_timeout.  One that gets no
#   answer in time fails with K0002: a read changes nothing.
#
# Copyright (c) 2026, kommander developers
#
# t/086_a_lost_read_index_is_asked_again.pl

use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use KmdTest;
use KmdNemesis;
use KmdProxy;

# the balancer stays off: a leader it moved from node1 answers node2's
# read over a link that is up
my $t = KmdNemesis::new_cluster(3, conf => "kommander.balance_interval = 0\n");
my ($n1, $n2, $n3) = @{ $t->{nodes} };
my $p = $n1->safe_psql('postgres', "SELECT partition_id FROM kmd_route('k')");
note("key k goes to partition $p");
$n1->safe_psql('postgres', "SELECT kmd_transfer_leader(p, 'node1') FROM unnest(ARRAY[0, $p]) p");
for my $node ($n1, $n2, $n3)
{
	$node->poll_query_until('postgres',
		"SELECT bool_and(leader_name = 'node1') FROM kommander.partitions WHERE partition_id IN (0, $p)")
	  or die 'the partitions are not led from node1 on ' . $node->name;
}

# What node1 sends node2 is held from now on: the answer to node2's read too.
KmdProxy::set($t->{proxy}, '1>2', 'hole');
my ($stdout, $stderr) = ('', '');
my $barrier = IPC::Run::start(
	[
		'psql', '-X', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-v', 'VERBOSITY=verbose',
		'-d', $n2->connstr('postgres'),
		'-c', 'SET kommander.propose_timeout = 120000',
		'-c', "SELECT 'returned: ' || (kmd_read_barrier('k') > 0)"
	],
	'>', \$stdout, '2>', \$stderr);

# node2 stops hearing from node1 (the answer went into the hole long before)
ok($n2->poll_query_until('postgres',
		"SELECT NOT reachable FROM kommander.nodes WHERE node_name = 'node1'"),
	'node2 has not heard from node1 for a while');
ok($barrier->pumpable, 'the read barrier through node2 still waits');

# the held bytes are lost with the connection, and the link comes back
KmdProxy::set($t->{proxy}, '1>2', 'cut');
KmdProxy::set($t->{proxy}, '1>2', 'up');
$barrier->finish;
like($stdout, qr/returned: true/, 'the read barrier returns once node2 hears node1 again')
  or diag("stderr: $stderr");

# an answer that cannot come in time: a read changed nothing, so the
# barrier says that no leader answered (K0002), not that its outcome is
# unknown (K0003), whether its question went out or not
KmdProxy::set($t->{proxy}, '1>2', 'hole');
# (the proxy has taken the hole when set() returns: node2 also sees it)
ok($n2->poll_query_until('postgres',
		"SELECT NOT reachable FROM kommander.nodes WHERE node_name = 'node1'"),
	'node2 no longer hears node1');
my ($rc, $out, $err) = $n2->psql('postgres',
	"SET kommander.propose_timeout = 200; SELECT kmd_read_barrier('k')",
	extra_params => [ '-v', 'VERBOSITY=verbose' ]);
like($err, qr/K0002: no leader of partition \d+ answered the read barrier/,
	'a read barrier that gets no answer in time fails with K0002')
  or diag("out: $out; leaders: "
	  . $n2->safe_psql('postgres', 'SELECT string_agg(partition_id || leader_name, \',\') FROM kommander.partitions'));
KmdProxy::set($t->{proxy}, '1>2', 'cut');
KmdProxy::set($t->{proxy}, '1>2', 'up');

KmdProxy::stop($t->{proxy});
done_testing();
