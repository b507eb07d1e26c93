# KmdStream.pm
#   Just enough of a client of the peer stream (CALL kommander.peer_stream()
#   in COPY BOTH mode) to speak it byte by byte over a node's Unix socket,
#   and protobuf batches built by hand: for tests that check what the
#   stream takes and answers, or that fill a worker's inbox exactly.
#
# Copyright (c) 2026, kommander developers
#
# t/KmdStream.pm

package KmdStream;

use strict;
use warnings;
use IO::Select;
use IO::Socket::UNIX;
use PostgreSQL::Test::Utils;

# one protocol message of $type
sub send_msg
{
	my ($s, $type, $body) = @_;
	print $s $type . pack('N', 4 + length $body) . $body;
	return;
}

sub read_exactly
{
	my ($s, $n) = @_;
	my $buf = '';
	my $sel = IO::Select->new($s);
	while (length $buf < $n)
	{
		return undef unless $sel->can_read($PostgreSQL::Test::Utils::timeout_default);
		my $got = sysread($s, $buf, $n - length $buf, length $buf);
		return undef unless $got;
	}
	return $buf;
}

# the next message: [type, body], or () when the server closed the socket
sub read_msg
{
	my ($s) = @_;
	my $head = read_exactly($s, 5);
	return () unless defined $head;
	my ($type, $len) = unpack('a N', $head);
	my $body = $len > 4 ? read_exactly($s, $len - 4) : '';
	return ($type, $body);
}

# an ErrorResponse's fields: {C => sqlstate, M => message, S => severity}
sub error_fields
{
	my ($body) = @_;
	my %f;
	for my $field (split /\0/, $body)
	{
		$f{ substr($field, 0, 1) } = substr($field, 1) if length $field;
	}
	return \%f;
}

# connect to $node as $user and CALL the stream (or send $query), with
# $batch in the same write when given; returns the socket and the first
# message that answers
sub open_stream
{
	my ($node, $user, $query, $batch) = @_;
	my $s = IO::Socket::UNIX->new(
		Type => SOCK_STREAM(),
		Peer => $node->host . '/.s.PGSQL.' . $node->port) or die "connect: $!";
	my $params = "user\0$user\0database\0postgres\0\0";
	print $s pack('NN', 8 + length $params, 196608) . $params;
	while (1)
	{
		my ($type, $body) = read_msg($s);
		die "no ReadyForQuery" unless defined $type;
		die "login failed" if $type eq 'E';
		last if $type eq 'Z';
	}
	$query //= 'CALL kommander.peer_stream()';
	my $q = "$query\0";
	my $out = 'Q' . pack('N', 4 + length $q) . $q;
	$out .= 'd' . pack('N', 4 + length $batch) . $batch if defined $batch;
	print $s $out;
	my ($type, $body) = read_msg($s);
	return ($s, $type, $body);
}

sub varint
{
	my ($n) = @_;
	my $out = '';
	while ($n >= 0x80)
	{
		$out .= chr(($n & 0x7f) | 0x80);
		$n >>= 7;
	}
	return $out . chr($n);
}

# A packed Batch from node $from to node $to of the cluster whose id is
# $cid (32 hex digits) that lists partition $offline as offline at the
# sender (so that it goes to the inbox of the worker that serves that
# partition) and holds nothing else but padding (a field unknown to the
# receiver) up to $size bytes, or as near below as the padding's length
# word allows.
sub padded_batch
{
	my ($cid, $from, $to, $offline, $size) = @_;
	my $head = pack('H*', "08011210$cid") . "\x18" . varint($from) . "\x20" . varint($to)
	  . "\x40" . varint($offline);
	my $room = $size - length($head) - 1;	# the padding's tag: field 15, bytes
	my $len = $room - length(varint($room));
	$len-- while $len > 0 && $len + length(varint($len)) > $room;
	return $head . "\x7a" . varint($len) . ('x' x $len);
}

1;
