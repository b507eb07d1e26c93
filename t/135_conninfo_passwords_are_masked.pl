# 135_conninfo_passwords_are_masked.pl
#   A password in a node's conninfo is shown to superusers only:
#   kommander.nodes masks it for any other role, which cannot read the
#   roster's conninfo column, on the bootstrapped node and on a node that
#   joined (and copied the roster from its seed).  Joining and replication
#   work as before.
#
# Copyright (c) 2026, kommander developers
#
# t/135_conninfo_passwords_are_masked.pl

use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use KmdTest;

# the nodes trust local connections, so libpq leaves the password unused
sub conninfo { return KmdTest::conninfo($_[0]) . ' password=s3cret' }

my @nodes = map { KmdTest::new_node("node$_") } (1, 2);
$nodes[0]->safe_psql('postgres',
	"SELECT kmd_bootstrap('node1', " . KmdTest::quote(conninfo($nodes[0])) . ")");
KmdTest::wait_leaders($nodes[0]);
is($nodes[1]->safe_psql('postgres',
		"SELECT kmd_join('node2', " . KmdTest::quote(conninfo($nodes[1])) . ', '
		  . KmdTest::quote(conninfo($nodes[0])) . ')'),
	'2', 'node2 joins through a seed conninfo that holds a password');
KmdTest::wait_voters(\@nodes, 2);

for my $node (@nodes)
{
	my $name = $node->name;
	$node->safe_psql('postgres', 'CREATE ROLE alice LOGIN');

	is($node->safe_psql('postgres',
			q{SELECT count(*) FROM kommander.nodes WHERE conninfo LIKE '%password=s3cret%'}),
		'2', "$name: a superuser sees the passwords");

	my ($rc, $out, $err) = $node->psql('postgres',
		q{SELECT string_agg(conninfo, ' | ' ORDER BY node_id) FROM kommander.nodes},
		extra_params => [ '-U', 'alice' ]);
	is($rc, 0, "$name: another role reads kommander.nodes");
	unlike($out, qr/s3cret/, "$name: and sees no password there");
	is(scalar(() = $out =~ /password=\*{8}/g), 2, "$name: but a mask for each node");

	($rc, $out, $err) = $node->psql('postgres', 'SELECT conninfo FROM kommander.roster',
		extra_params => [ '-U', 'alice', '-v', 'VERBOSITY=verbose' ]);
	isnt($rc, 0, "$name: it cannot read the roster's conninfo");
	like($err, qr/42501/, "$name: permission denied (42501)");
	unlike($out, qr/s3cret/, "$name: nor see the password that way");

	($rc, $out, $err) = $node->psql('postgres',
		q{SELECT string_agg(node_name || ':' || role, ',' ORDER BY node_id) FROM kommander.roster},
		extra_params => [ '-U', 'alice' ]);
	is($out, 'node1:voter,node2:voter', "$name: it reads the roster's other columns");
}

# the cluster works as before
KmdTest::create_kv($nodes[0]);
# node2 checks the command against its own registered tables
KmdTest::wait_converged(\@nodes);
$nodes[1]->safe_psql('postgres',
	q{SELECT kmd_propose('after', '{"op":"insert","table":"kv","row":{"k":"after","v":"x"}}')});
ok(KmdTest::wait_converged(\@nodes), 'both nodes apply');
is($nodes[0]->safe_psql('postgres', q{SELECT v FROM kv WHERE k = 'after'}), 'x',
	'a write through node2 reaches node1');

done_testing();
