# 148_the_peer_stream_checks_every_batch.pl
#   The peer channel as a stream: CALL kommander.peer_stream() turns a
#   connection to COPY BOTH mode and takes batches as CopyData messages.
#   Spoken to here byte by byte over the node's socket, it answers the
#   timed batch and no other, holds no snapshot while it runs (so vacuum
#   is not held back) and outlives a statement_timeout; it checks every
#   batch as kommander.deliver checks one (a role or EXECUTE on the
#   procedure revoked meanwhile, another cluster, a node outside the
#   roster, garbage, however long), refuses a message that is not a batch,
#   a message too long to be one and a call inside a transaction block,
#   reads a batch sent along with the CALL and many in one write, ends
#   quietly when its client goes in the middle of a message; and the node
#   serves on after all of it.
#
# Copyright (c) 2026, kommander developers
#
# t/148_the_peer_stream_checks_every_batch.pl

use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use KmdTest;
use KmdStream;

my ($node) = KmdTest::new_cluster(1);
$node->safe_psql('postgres', q{
	CREATE ROLE mallory LOGIN;
	CREATE ROLE peer LOGIN IN ROLE kommander_peer;
	ALTER ROLE peer SET statement_timeout = '1s';
});

my $cluster = $node->safe_psql('postgres', "SELECT replace(cluster_id::text, '-', '') FROM kommander.local");

# protobuf Batch: version=1, cluster_id=<16 bytes>, from_node, to_node=1
sub batch
{
	my ($cid, $from) = @_;
	return pack('H*', sprintf('08011210%s18%02x2001', $cid, $from));
}

# the protocol client of KmdStream, on this node
sub stream_open { return KmdStream::open_stream($node, @_) }
sub send_msg { return KmdStream::send_msg(@_) }
sub read_msg { return KmdStream::read_msg(@_) }
sub error_fields { return KmdStream::error_fields(@_) }

sub stream_pid
{
	my ($user) = @_;
	return $node->safe_psql('postgres',
		"SELECT pid FROM pg_stat_activity WHERE usename = '$user' AND query LIKE 'CALL kommander.peer_stream%'"
		  . " ORDER BY backend_start DESC LIMIT 1");
}

# --- the stream takes batches, and answers the timed one --------------------

my ($rc, $out, $err) = $node->psql('postgres', 'CALL kommander.peer_stream()',
	extra_params => [ '-U', 'mallory' ]);
like($err, qr/permission denied for procedure peer_stream/, 'a role without kommander_peer cannot open a stream');

($rc, $out, $err) = $node->psql('postgres', 'BEGIN; CALL kommander.peer_stream(); COMMIT;',
	extra_params => [ '-U', 'peer' ]);
like($err, qr/cannot run inside a transaction block/, 'nor can a call inside a transaction block');

# several statements in one query are a transaction block too
my ($s, $type, $body) = stream_open('peer', "CALL kommander.peer_stream(); SELECT 1");
is("$type " . (error_fields($body // '')->{C} // ''), 'E 25001',
	'a call among other statements of one query is refused');
close $s;

# a batch sent with the CALL, before its answer, is read at once
($s, $type, $body) = stream_open('peer', undef, 'T' . batch($cluster, 1));
is($type, 'W', 'a granted role gets a CopyBothResponse');
($type, $body) = read_msg($s);
is(unpack('H*', $body // ''), '6101', 'and a batch sent along with the CALL is answered');
close $s;

($s, $type, $body) = stream_open('peer');
is($type, 'W', 'a stream opens again');

my $batches_before = $node->safe_psql('postgres',
	"SELECT value FROM kommander.stats WHERE name = 'batches_received'");
send_msg($s, 'd', 'B' . batch($cluster, 1));
send_msg($s, 'd', 'B' . batch($cluster, 1));
send_msg($s, 'd', 'T' . batch($cluster, 1));
($type, $body) = read_msg($s);
is($type, 'd', 'the timed batch is answered');
is(unpack('H*', $body), '6101', 'by one answer, flagged as the timed one, not refused');
is($node->safe_psql('postgres', "SELECT value FROM kommander.stats WHERE name = 'batches_received'") - $batches_before,
	3, 'and all three batches were delivered');

# many batches in one write: the stream reads them in rounds, and the last
# of them, already in the backend's buffer, is not left waiting for more
$batches_before = $node->safe_psql('postgres',
	"SELECT value FROM kommander.stats WHERE name = 'batches_received'");
my $many = '';
$many .= 'd' . pack('N', 5 + length batch($cluster, 1)) . 'B' . batch($cluster, 1) for 1 .. 150;
$many .= 'd' . pack('N', 5 + length batch($cluster, 1)) . 'T' . batch($cluster, 1);
print $s $many;
($type, $body) = read_msg($s);
is(unpack('H*', $body // ''), '6101', 'the timed batch after 150 others in one write is answered');
is($node->safe_psql('postgres', "SELECT value FROM kommander.stats WHERE name = 'batches_received'") - $batches_before,
	151, 'and all of them were delivered');

my $pid = stream_pid('peer');
ok($pid, 'the stream shows in pg_stat_activity');
is($node->safe_psql('postgres', "SELECT backend_xmin IS NULL FROM pg_stat_activity WHERE pid = $pid"),
	't', 'it holds no snapshot: vacuum is not held back');

# a grant throws the caches away: the next batch's checks read the catalog
# again, with a catalog snapshot the stream must not keep
$node->safe_psql('postgres', 'CREATE ROLE bystander; GRANT bystander TO mallory');
send_msg($s, 'd', 'T' . batch($cluster, 1));
($type, $body) = read_msg($s);
is(unpack('H*', $body // ''), '6101', 'a batch after a grant is answered');
is($node->safe_psql('postgres', "SELECT backend_xmin IS NULL FROM pg_stat_activity WHERE pid = $pid"),
	't', 'and the catalog snapshot its checks took is not kept');

ok($node->poll_query_until('postgres',
	"SELECT now() - query_start > interval '2 s' FROM pg_stat_activity WHERE pid = $pid"),
	'the stream runs past the role\'s statement_timeout');
send_msg($s, 'd', 'T' . batch($cluster, 1));
($type, $body) = read_msg($s);
is(unpack('H*', $body // ''), '6101', 'and still answers');

# --- every batch is checked ------------------------------------------------

$node->safe_psql('postgres', 'REVOKE kommander_peer FROM peer');
send_msg($s, 'd', 'T' . batch($cluster, 1));
($type, $body) = read_msg($s);
is($type, 'E', 'a batch after the role lost kommander_peer ends the stream with an error');
like(error_fields($body)->{M}, qr/permission denied to deliver/, 'permission denied');
($type, $body) = read_msg($s);
is($type, 'Z', 'and the session is ready for queries again');
close $s;
$node->safe_psql('postgres', 'GRANT kommander_peer TO peer');

# so does one after the privilege on the procedure was revoked
($s, $type) = stream_open('peer');
$node->safe_psql('postgres', 'REVOKE EXECUTE ON PROCEDURE kommander.peer_stream() FROM kommander_peer');
send_msg($s, 'd', 'T' . batch($cluster, 1));
($type, $body) = read_msg($s);
is("$type " . (error_fields($body // '')->{C} // ''), 'E 42501',
	'a batch after EXECUTE on the procedure was revoked ends the stream with 42501');
close $s;
$node->safe_psql('postgres', 'GRANT EXECUTE ON PROCEDURE kommander.peer_stream() TO kommander_peer');

my @refused = (
	[ 'garbage', 'T' . "\xde\xad\xbe\xef", '08P01', qr/malformed kommander batch/ ],
	[ 'a message without a batch\'s kind', 'x' . batch($cluster, 1), '08P01', qr/malformed kommander batch/ ],
	[ 'an empty message', '', '08P01', qr/malformed kommander batch/ ],
	[ 'a batch of another cluster', 'B' . batch('aa' x 16, 1), '08P01', qr/another cluster/ ],
	[ 'a batch from a node outside the roster', 'B' . batch($cluster, 77), '28000', qr/not a member/ ]);
for my $case (@refused)
{
	my ($what, $msg, $state, $re) = @$case;
	($s, $type) = stream_open('peer');
	send_msg($s, 'd', $msg);
	($type, $body) = read_msg($s);
	my $f = error_fields($body // '');
	is("$type $f->{C}", "E $state", "$what ends the stream with $state");
	like($f->{M}, $re, "$what: the error says why");
	close $s;
}

# a message as long as the largest batch a node takes is read whole, and
# its bytes checked (8 MiB less the inbox's length word: wire.h)
($s, $type) = stream_open('peer');
send_msg($s, 'd', 'T' . ("\0" x (8 * 1024 * 1024 - 4)));
($type, $body) = read_msg($s);
is("$type " . error_fields($body // '')->{S} . ' ' . error_fields($body // '')->{C}, 'E ERROR 08P01',
	'the largest message a batch may make is read, and refused as no batch');
close $s;

# a message that is not CopyData, and one too long to be a batch, end the
# session: the framing can no longer be trusted
($s, $type) = stream_open('peer');
send_msg($s, 'Q', "SELECT 1\0");
($type, $body) = read_msg($s);
is("$type " . error_fields($body)->{S}, 'E FATAL', 'a query inside the stream ends the session');
close $s;

($s, $type) = stream_open('peer');
print $s 'd' . pack('N', 16 * 1024 * 1024);
($type, $body) = read_msg($s);
is("$type " . error_fields($body)->{S}, 'E FATAL', 'so does a message longer than any batch');
like(error_fields($body)->{M}, qr/lost its framing/, 'said as such');
close $s;

# a message cut off by the peer closing its connection (a worker that
# stops) ends the session quietly, as a client that goes away does
($s, $type) = stream_open('peer');
my $cut = stream_pid('peer');
my $log_offset = -s $node->logfile;
print $s 'd' . pack('N', 104) . ('x' x 10);
close $s;
ok($node->poll_query_until('postgres', "SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = $cut"),
	'a message cut off by a closed connection ends the stream');
unlike(slurp_file($node->logfile, $log_offset), qr/\[$cut\][^\n]*(FATAL|ERROR)/, 'and logs no error');

# CopyDone ends the stream and the call
($s, $type) = stream_open('peer');
send_msg($s, 'c', '');
($type, $body) = read_msg($s);
is($type, 'c', 'CopyDone is answered with CopyDone');
($type, $body) = read_msg($s);
is("$type $body", "C CALL\0", 'and the call completes');
close $s;

ok($node->poll_query_until('postgres', q{
	SELECT count(*) = 0 FROM pg_stat_activity WHERE query LIKE 'CALL kommander.peer_stream%'}),
	'no stream is left running');
is($node->safe_psql('postgres', 'SELECT kmd_read_barrier() > 0'), 't', 'the node still serves reads');

done_testing();
