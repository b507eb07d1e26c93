# 030_peer_security.pl
#   The peer channel: kommander.deliver() refuses a role that was not
#   granted kommander_peer, a batch from another cluster, a batch from a node
#   outside the roster, and garbage; a granted role gets through.
#
# Copyright (c) 2026, kommander developers
#
# t/030_peer_security.pl

use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use KmdTest;

my ($node) = KmdTest::new_cluster(1);
$node->safe_psql('postgres', 'CREATE ROLE mallory LOGIN; CREATE ROLE peer LOGIN IN ROLE kommander_peer;');

my $cluster = $node->safe_psql('postgres', "SELECT replace(cluster_id::text, '-', '') FROM kommander.local");
my $other = 'aa' x 16;

# protobuf Batch: version=1, cluster_id=<16 bytes>, from_node, to_node=1
sub batch
{
	my ($cid, $from) = @_;
	return sprintf("'\\x08011210%s18%02x2001'::bytea", $cid, $from);
}

my ($rc, $out, $err) = $node->psql('postgres', 'SELECT kommander.deliver(' . batch($cluster, 1) . ')',
	extra_params => [ '-U', 'mallory' ]);
isnt($rc, 0, 'a role without kommander_peer cannot deliver');
like($err, qr/permission denied/, 'and is told permission is denied');

($rc, $out, $err) = $node->psql('postgres', 'SELECT kommander.deliver(' . batch($other, 1) . ')',
	extra_params => [ '-U', 'peer' ]);
isnt($rc, 0, 'a batch from another cluster is refused');
like($err, qr/another cluster/, 'with a message naming the reason');

($rc, $out, $err) = $node->psql('postgres', 'SELECT kommander.deliver(' . batch($cluster, 77) . ')',
	extra_params => [ '-U', 'peer' ]);
isnt($rc, 0, 'a batch from a node outside the roster is refused');
like($err, qr/not a member/, 'with a message naming the reason');

($rc, $out, $err) = $node->psql('postgres', q{SELECT kommander.deliver('\xdeadbeef')},
	extra_params => [ '-U', 'peer' ]);
isnt($rc, 0, 'garbage is refused');
like($err, qr/malformed/, 'as malformed');

# a well-formed batch from a member (here: the node itself) is accepted
($rc, $out, $err) = $node->psql('postgres', 'SELECT kommander.deliver(' . batch($cluster, 1) . ')',
	extra_params => [ '-U', 'peer' ]);
is($rc, 0, 'a granted role delivers a batch from a member');
is($out, 't', 'which lands in the inboxes');

# the node still works after all that
is($node->safe_psql('postgres', 'SELECT kmd_read_barrier() > 0'), 't', 'the node still serves reads');

done_testing();
