# 146_peers_are_held_to_their_identity.pl
#   Each node may have a login role of its own for its peer connections
#   (kmd_bootstrap, kmd_join, kmd_add_node: peer_role).  Its Raft workers
#   connect as that role, and kommander.deliver takes batches from that
#   node only from a session of that role, and from a session of that role
#   for no other node.  Whatever the role, a batch's Raft messages must be
#   the sender's, and a forwarded request must be one the sender could have
#   made through SQL.  A refused batch does not make the node it names
#   heard from; no two nodes may have the same peer role; a snapshot
#   message no leader could have sent parks no group.  An image's manifest
#   goes only to the role of the node it is for.
#
# Copyright (c) 2026, kommander developers
#
# t/146_peers_are_held_to_their_identity.pl

use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use KmdTest;

my @nodes = map { KmdTest::new_node("node$_", conf => "kommander.balance_interval = 0\n") } (1 .. 3);
my ($n1, $n2, $n3) = @nodes;
for my $node (@nodes)
{
	$node->safe_psql('postgres', q{
CREATE ROLE peer_node1 LOGIN IN ROLE kommander_peer;
CREATE ROLE peer_node2 LOGIN IN ROLE kommander_peer;
CREATE ROLE peer_node3 LOGIN IN ROLE kommander_peer;
CREATE ROLE other_peer LOGIN IN ROLE kommander_peer;
});
}
$n1->safe_psql('postgres', "SELECT kmd_bootstrap('node1', "
	  . KmdTest::quote(KmdTest::conninfo($n1)) . ", 'peer_node1')");
KmdTest::wait_leaders($n1);
for my $i (2, 3)
{
	$nodes[ $i - 1 ]->safe_psql('postgres', "SELECT kmd_join('node$i', "
		  . KmdTest::quote(KmdTest::conninfo($nodes[ $i - 1 ])) . ', '
		  . KmdTest::quote(KmdTest::conninfo($n1)) . ", peer_role => 'peer_node$i')");
}
KmdTest::wait_voters(\@nodes, 3);
is($n3->safe_psql('postgres', 'SELECT string_agg(node_name || \'=\' || peer_role, \',\' ORDER BY node_id) FROM kommander.roster'),
	'node1=peer_node1,node2=peer_node2,node3=peer_node3', 'the roster names each node\'s peer role');
ok($n1->poll_query_until('postgres', q{
	SELECT count(DISTINCT usename) = 2 AND bool_and(usename IN ('peer_node2', 'peer_node3'))
	  FROM pg_stat_activity WHERE application_name LIKE 'kommander worker%'}),
	'the other nodes connect to node1 as their own roles');
KmdTest::create_kv($n1);
# node2 checks the command against its own registered tables
KmdTest::wait_converged(\@nodes);
is($n2->safe_psql('postgres',
		q{SELECT kmd_propose('k1', '{"op":"insert","table":"kv","row":{"k":"k1","v":"x"}}') > 0}),
	't', 'the cluster works');

# --- hand-made batches, delivered to node1 ---
my $cluster = pack('H*', $n1->safe_psql('postgres', "SELECT replace(cluster_id::text, '-', '') FROM kommander.local"));

sub varint
{
	my ($n) = @_;
	my $s = '';
	while ($n >= 0x80) { $s .= chr(($n & 0x7f) | 0x80); $n >>= 7; }
	return $s . chr($n);
}
sub vfield { my ($f, $v) = @_; return varint($f << 3) . varint($v); }
sub bfield { my ($f, $b) = @_; return varint(($f << 3) | 2) . varint(length $b) . $b; }

# protobuf Batch from $from to node1 with Raft messages and forwards
sub batch
{
	my ($from, %items) = @_;
	return vfield(1, 1) . bfield(2, $cluster) . vfield(3, $from) . vfield(4, 1)
	  . join('', map { bfield(5, $_) } @{ $items{messages} || [] })
	  . join('', map { bfield(6, $_) } @{ $items{forwards} || [] })
	  . join('', map { vfield(8, $_) } @{ $items{offline} || [] });
}
# a GroupMessage of partition 1: a Raft message from $from to $to
sub message
{
	my ($from, $to) = @_;
	return vfield(1, 1) . bfield(2, vfield(1, 1) . vfield(2, $from) . vfield(3, $to) . vfield(4, 1));
}
# a Forward of a proposal to $partition; the command's fields as given
sub forward
{
	my ($partition, %c) = @_;
	my $command = vfield(1, $c{version} // 1) . vfield(2, $c{kind}) . vfield(3, $c{origin} // 2)
	  . vfield(4, 7) . vfield(5, 9) . bfield(8, $c{key} // 'k') . bfield(9, $c{payload} // '{}')
	  . join('', map { bfield(10, $_) } @{ $c{args} || [] });
	return vfield(1, $partition) . vfield(2, 1) . vfield(3, 7) . vfield(4, 9)
	  . ($c{says} ? vfield(5, $c{says}) : '') . bfield(6, $c{empty} ? '' : $command);
}

# Deliver $batch to node1 as $role; 'ok' or the error message.
sub deliver
{
	my ($role, $batch) = @_;
	my ($rc, $out, $err) = $n1->psql('postgres',
		"SELECT kommander.deliver('\\x" . unpack('H*', $batch) . "'::bytea)",
		extra_params => [ '-U', $role, '-v', 'VERBOSITY=verbose' ]);
	return 'ok' if $rc == 0;
	$err =~ s/\n\s*(LOCATION|CONTEXT):.*//s;
	return $err;
}

is(deliver('peer_node2', batch(2)), 'ok', 'node2\'s role delivers a batch from node2');
like(deliver('peer_node2', batch(3)), qr/28000: role "peer_node2" may not deliver batches from node 3/,
	'but not one from node3');
like(deliver('other_peer', batch(2)), qr/28000: role "other_peer" may not deliver batches from node 2.*"peer_node2"/s,
	'another kommander_peer role delivers nothing for node2');
like(deliver('peer_node2', batch(2, messages => [ message(3, 1) ])),
	qr/08P01: batch from node 2 refused.*message of partition 1 in it is from node 3 to node 1/s,
	'a Raft message of another node inside node2\'s batch is refused');
like(deliver('peer_node2', batch(2, messages => [ message(2, 3) ])),
	qr/from node 2 to node 3/, 'and so is one for another node');

# forwards that no SQL function of node2 makes
like(deliver('peer_node2', batch(2, forwards => [ forward(0, kind => 1) ])),
	qr/08P01: batch from node 2 refused.*command of kind 1 is for a user partition, not partition 0/s,
	'a row command forwarded to the system partition');
like(deliver('peer_node2', batch(2, forwards => [ forward(1, kind => 2, payload => 'DROP TABLE kv', args => ['postgres']) ])),
	qr/command of kind 2 is for the system partition, not partition 1/, 'kmd_ddl forwarded to a user partition');
like(deliver('peer_node2', batch(2, forwards => [ forward(0, kind => 2, payload => 'DROP TABLE kv') ])),
	qr/command of kind 2 has 0 arguments/, 'kmd_ddl without the role that calls it');
like(deliver('peer_node2', batch(2, forwards => [ forward(1, kind => 1, origin => 3) ])),
	qr/comes from slot 7 of node 3, not from a slot of node 2/, 'a proposal in another node\'s name');
like(deliver('peer_node2', batch(2, forwards => [ forward(1, kind => 1, version => 2) ])),
	qr/command does not decode: its command version 2 is unknown/, 'a command of an unknown version');
like(deliver('peer_node2', batch(2, forwards => [ forward(1, kind => 1, empty => 1) ])),
	qr/proposal has a command of 0 bytes/, 'an empty command');
like(deliver('peer_node2', batch(2, forwards => [ forward(1, kind => 1, key => '') ])),
	qr/row command has no key/, 'a row command without a key');
like(deliver('peer_node2', batch(2, forwards => [ forward(1, kind => 1, says => 12) ])),
	qr/says its command is of kind 12, but it is of kind 1/, 'a proposal whose kind is misstated');
is(deliver('peer_node2', batch(2, offline => [ 998, 999 ])), 'ok', 'a list of partitions offline on node2 (none of them here)');
my $max = $n1->safe_psql('postgres', 'SHOW kommander.max_partitions');
like(deliver('peer_node2', batch(2, offline => [ (1) x ($max + 1) ])),
	qr/08P01: batch from node 2 refused.*lists @{[ $max + 1 ]} partitions offline on that node; a node has at most $max/s,
	'a list longer than a node can have');

is($n1->safe_psql('postgres', 'SELECT count(*) FROM kv'), '1', 'nothing of it was applied');

# a refused batch does not count as word from the node it names: node3,
# stopped, is not heard from because node2's role sends in its name
$n3->stop;
my $heard = q{SELECT last_contact FROM kommander.nodes WHERE node_name = 'node3'};
# what node3 sent before it stopped is taken in by now
$n1->poll_query_until('postgres', "SELECT now() - ($heard) > interval '300 ms'")
  or die 'node3 is still heard from';
my $before = $n1->safe_psql('postgres', $heard);
like(deliver('peer_node2', batch(3)), qr/28000/, 'node2\'s role may not send for node3');
like(deliver('peer_node2', batch(3, messages => [ message(3, 1) ])), qr/28000/, 'nor with a message of node3');
is($n1->safe_psql('postgres', $heard), $before, 'node3 is not heard from for it');
$n3->start;

# one role speaks for one node: a node added with another's role is refused
my ($rc, $out, $err) = $n1->psql('postgres', q{SELECT kmd_add_node('node4', 'host=nowhere', peer_role => 'peer_node2')},
	extra_params => [ '-v', 'VERBOSITY=verbose' ]);
like($err, qr/42710: role "peer_node2" is already the peer role of node "node2"/,
	'a node may not take another node\'s peer role');
is($n1->safe_psql('postgres', q{SELECT count(*) FROM kommander.roster WHERE node_name = 'node4'}), '0',
	'it is not in the roster');
is(deliver('peer_node2', batch(2)), 'ok', 'and node2\'s batches are still taken');

# a snapshot message in a leader's own term, which no leader takes, parks
# nothing: node1 leads partition 1, node2's role sends one of that term
# for an index no node has
$n1->safe_psql('postgres', "SELECT kmd_transfer_leader(1, 'node1')");
my $term = $n1->safe_psql('postgres', 'SELECT term FROM kommander.partitions WHERE partition_id = 1');
my $snapshot = vfield(1, 1) . bfield(2, vfield(1, 9) . vfield(2, 2) . vfield(3, 1) . vfield(4, $term)
	  . bfield(12, vfield(1, 2**40) . vfield(2, $term) . bfield(3, '')));
is(deliver('peer_node2', batch(2, messages => [$snapshot])), 'ok', 'node2 sends partition 1 a snapshot message');
my $key = KmdTest::key_in($n1, 1, 'snap-');
is($n1->safe_psql('postgres',
		qq{SELECT kmd_propose('$key', '{"op":"insert","table":"kv","row":{"k":"$key","v":"x"}}') > 0}),
	't', 'its leader goes on');
unlike(slurp_file($n1->logfile), qr/partition 1 needs an image/, 'and asks for no image');

# nor one in a follower's term from a node that is not the leader it
# follows: node3 leads partition 1 now, node2's role sends node1 one
$n1->safe_psql('postgres', "SELECT kmd_transfer_leader(1, 'node3')");
$term = $n1->safe_psql('postgres', 'SELECT term FROM kommander.partitions WHERE partition_id = 1');
$snapshot = vfield(1, 1) . bfield(2, vfield(1, 9) . vfield(2, 2) . vfield(3, 1) . vfield(4, $term)
	  . bfield(12, vfield(1, 2**40) . vfield(2, $term) . bfield(3, '')));
is(deliver('peer_node2', batch(2, messages => [$snapshot])), 'ok', 'node2 sends node1 a snapshot message');
my $key2 = KmdTest::key_in($n3, 1, 'snap2-');
$n3->safe_psql('postgres', qq{SELECT kmd_propose('$key2', '{"op":"insert","table":"kv","row":{"k":"$key2","v":"x"}}')});
ok($n1->poll_query_until('postgres', "SELECT count(*) = 1 FROM kv WHERE k = '$key2'"),
	'node1 still applies what its leader commits');
is($n1->safe_psql('postgres', 'SELECT snapshot_index < 1000 FROM kommander.partitions WHERE partition_id = 1'),
	't', 'its log was not reset to the message\'s index');

# an image's manifest (the roster, conninfo and all) goes to the role of
# the node that asks for it only
my $cid = $n1->safe_psql('postgres', 'SELECT cluster_id FROM kommander.local');

# the manifest of partition 1 for node $to, asked for by $role: 'ok' or
# the error message
sub manifest
{
	my ($role, $to) = @_;
	my ($rc, $out, $err) = $n1->psql('postgres',
		"BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM kommander.image_manifest(1, '$cid', $to); COMMIT",
		extra_params => [ '-U', $role, '-v', 'VERBOSITY=verbose', '-v', 'ON_ERROR_STOP=1' ]);
	return 'ok' if $rc == 0;
	$err =~ s/\n\s*(LOCATION|CONTEXT):.*//s;
	return $err;
}
is(manifest('peer_node3', 3), 'ok', "node3's role gets the manifest for node3");
like(manifest('peer_node2', 3), qr/28000: role "peer_node2" may not copy an image for node 3/,
	'not node2\'s');
like(manifest('other_peer', 3), qr/28000: role "other_peer" may not copy an image for node 3.*"peer_node3"/s,
	'nor another kommander_peer role');

is($n3->safe_psql('postgres',
		q{SELECT kmd_propose('k2', '{"op":"insert","table":"kv","row":{"k":"k2","v":"x"}}') > 0}),
	't', 'the cluster still works');

done_testing();
