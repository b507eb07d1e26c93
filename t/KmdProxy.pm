# KmdProxy.pm
#   A small TCP proxy on loopback for the nemesis test: one listening port
#   per directed link between two nodes (node i reaches node j through the
#   port of link "i>j"), run in a process of its own and steered through a
#   pipe.  Each link is up, delayed, cut (its connections closed, new ones
#   refused) or a black hole (connections accepted and held, nothing passes
#   either way until the link is up again: what TCP does when packets are
#   lost, while the sender's retransmissions keep the stream whole).
#
# Copyright (c) 2026, kommander developers
#
# t/KmdProxy.pm

package KmdProxy;

use strict;
use warnings;
use IO::Select;
use IO::Socket::INET;
use POSIX ();
use Time::HiRes qw(time);

# Buffered bytes per direction past which a connection stops reading.
my $HIGH_WATER = 4 * 1024 * 1024;

# Start the proxy for %$links (name => [listen port, target port]); returns
# the handle that set() and stop() take.
sub start
{
	my ($links) = @_;
	my %listeners;
	for my $name (sort keys %$links)
	{
		my $l = IO::Socket::INET->new(
			LocalAddr => '127.0.0.1',
			LocalPort => $links->{$name}[0],
			Listen => 64,
			ReuseAddr => 1,
			Blocking => 0) or die "proxy: cannot listen on port $links->{$name}[0]: $!";
		$listeners{$name} = $l;
	}
	pipe(my $r, my $w) or die "pipe: $!";
	pipe(my $ack_r, my $ack_w) or die "pipe: $!";
	my $pid = fork();
	die "fork: $!" if !defined $pid;
	if ($pid == 0)
	{
		close $w;
		close $ack_r;
		$ack_w->autoflush(1);
		$SIG{PIPE} = 'IGNORE';
		eval { serve($r, $ack_w, \%listeners, $links) };
		print STDERR "proxy: $@" if $@;
		POSIX::_exit(0);
	}
	close $r;
	close $ack_w;
	$_->close for values %listeners;
	$w->autoflush(1);
	return { pid => $pid, ctl => $w, ack => $ack_r };
}

# Set a link's mode: 'up', 'cut', 'hole', or 'delay' with $ms; returns once
# the proxy has taken it.
sub set
{
	my ($proxy, $link, $mode, $ms) = @_;
	print { $proxy->{ctl} } "$link $mode " . ($ms // 0) . "\n";
	# returns once the proxy took it: what it reads from now on has the mode
	my $ack = readline($proxy->{ack});
	die "proxy: no answer to '$link $mode'" if !defined $ack;
}

sub stop
{
	my ($proxy) = @_;
	return if !$proxy->{pid};
	print { $proxy->{ctl} } "quit\n";
	close $proxy->{ctl};
	waitpid($proxy->{pid}, 0);
	$proxy->{pid} = undef;
}

# ---------------------------------------------------------------------------
# The proxy process
# ---------------------------------------------------------------------------

sub serve
{
	my ($ctl, $ack, $listeners, $links) = @_;
	my %mode = map { $_ => [ 'up', 0 ] } keys %$links;
	my %link_of = map { fileno($listeners->{$_}) => $_ } keys %$listeners;
	my @conns;		# { link, s => [client side, server side], out => [[], []] }
	my $ctl_buf = '';

	my $close = sub {
		my ($c) = @_;
		$_->close for @{ $c->{s} };
		$c->{closed} = 1;
	};

	for (;;)
	{
		@conns = grep { !$_->{closed} } @conns;
		my $rd = IO::Select->new($ctl, values %$listeners);
		my $wr = IO::Select->new;
		my $now = time;
		my $next = $now + 0.05;
		for my $c (@conns)
		{
			my $m = $mode{ $c->{link} }[0];
			for my $i (0, 1)
			{
				my $q = $c->{out}[ 1 - $i ];
				$rd->add($c->{s}[$i]) if $m ne 'hole' && $c->{queued}[ 1 - $i ] < $HIGH_WATER;
				next if !@$q || $m eq 'hole';
				if ($q->[0][0] <= $now) { $wr->add($c->{s}[ 1 - $i ]); }
				elsif ($q->[0][0] < $next) { $next = $q->[0][0]; }
			}
		}
		my ($can_read, $can_write) = IO::Select->select($rd, $wr, undef,
			$next > $now ? $next - $now : 0);
		$now = time;
		for my $fh (@{ $can_read // [] })
		{
			if ($fh == $ctl)
			{
				my $n = sysread($ctl, my $buf, 4096);
				return if !$n;
				$ctl_buf .= $buf;
				while ($ctl_buf =~ s/^([^\n]*)\n//)
				{
					my ($link, $m, $ms) = split / /, $1;
					return if $link eq 'quit';
					$mode{$link} = [ $m, $ms / 1000 ];
					$close->($_) for grep { $_->{link} eq $link && $m eq 'cut' } @conns;
					print {$ack} "ok\n";
				}
				next;
			}
			my $fd = fileno($fh);
			next if !defined $fd;	# closed earlier in this round
			if (defined $link_of{$fd})
			{
				my $link = $link_of{$fd};
				my $client = $fh->accept or next;
				if ($mode{$link}[0] eq 'cut')
				{
					$client->close;
					next;
				}
				my $server = IO::Socket::INET->new(
					PeerAddr => '127.0.0.1',
					PeerPort => $links->{$link}[1],
					Timeout => 2);
				if (!$server)
				{
					$client->close;
					next;
				}
				$_->blocking(0) for ($client, $server);
				push @conns, { link => $link, s => [ $client, $server ],
					out => [ [], [] ], queued => [ 0, 0 ] };
				next;
			}
			for my $c (@conns)
			{
				next if $c->{closed};
				for my $i (0, 1)
				{
					next if $c->{s}[$i] != $fh;
					my $n = sysread($fh, my $buf, 65536);
					if (!defined $n && ($! == POSIX::EAGAIN || $! == POSIX::EINTR))
					{
						next;
					}
					if (!$n)
					{
						$close->($c);
						next;
					}
					push @{ $c->{out}[ 1 - $i ] }, [ $now + $mode{ $c->{link} }[1], $buf ];
					$c->{queued}[ 1 - $i ] += $n;
				}
			}
		}
		for my $fh (@{ $can_write // [] })
		{
			for my $c (@conns)
			{
				next if $c->{closed};
				for my $i (0, 1)
				{
					next if $c->{s}[$i] != $fh;
					my $q = $c->{out}[$i];
					while (@$q && $q->[0][0] <= $now)
					{
						my $n = syswrite($fh, $q->[0][1]);
						if (!defined $n)
						{
							$close->($c) if $! != POSIX::EAGAIN && $! != POSIX::EINTR;
							last;
						}
						$c->{queued}[$i] -= $n;
						substr($q->[0][1], 0, $n) = '';
						last if length($q->[0][1]) > 0;
						shift @$q;
					}
				}
			}
		}
	}
}

1;
