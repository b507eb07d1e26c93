# KmdNemesis.pm
#   The nemesis test on real servers: a cluster whose nodes reach each other
#   through a proxy the test controls (KmdProxy.pm), clients that record a
#   history (test/nemesis/client.c), faults drawn from a seed (kill -9 and
#   restart, SIGSTOP and SIGCONT, cuts, one-way cuts, black holes, delays,
#   leader transfers, splits and merges, a node removed and its server
#   wiped and joined again as a new member), and the checks once everything is
#   healed: linearizability of every register (sim/kmd-lincheck), every
#   acknowledged append present once, in one order, on every node, and no
#   lease ended before its time, none come back, every lapsed one gone.
#   t/180_nemesis.pl runs it for a minute, scripts/nemesis.sh for longer.
#
# Copyright (c) 2026, kommander developers
#
# t/KmdNemesis.pm

package KmdNemesis;

use strict;
use warnings;
use File::Basename ();
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use File::Path ();
use IPC::Run;
use JSON::PP;
use List::Util ();
use Digest::MD5;
use Time::HiRes qw(sleep time clock_gettime CLOCK_MONOTONIC);
use KmdTest;
use KmdProxy;

our $ELECTION_TIMEOUT_MS = 500;
our $PROPOSE_TIMEOUT_MS = 5000;
my $N_KEYS = 6;
my $N_LISTS = 4;
# the longest TTL the lease clients grant (test/nemesis/client.c), in ms
my $MAX_LEASE_TTL_MS = 4000;
# The slack of the lease checks, in us.  The servers decide expiry with
# their clock (gettimeofday), the clients note times with the monotonic
# clock, on the same machine: both count microseconds and are slewed
# alike, except by a step of the wall clock, which NTP makes only when it
# is far off.  10 ms covers the rounding of either and a slew of 0.05% (the
# most adjtime makes) over the 4 s of a lease twice over.
my $LEASE_MARGIN_US = 10_000;

# The nemesis's faults and how often each is drawn.
my @FAULTS = (
	[ kill => 3 ], [ pause => 3 ], [ isolate => 2 ], [ isolate_leader => 3 ],
	[ oneway => 2 ], [ hole => 2 ], [ delay => 1 ], [ transfer => 2 ],
	[ split => 2 ], [ merge => 2 ], [ replace => 1 ], [ behind => 1 ]);

# Nodes paused by SIGSTOP, woken at exit whatever happens, so that the
# servers can be stopped.
my %paused;
# The clients stop when this file appears, at the latest when the test ends.
my $stop_file;
END
{
	kill 'CONT', @$_ for values %paused;
	if ($stop_file && open(my $fh, '>', $stop_file)) { close $fh; }
}

# ---------------------------------------------------------------------------
# The cluster
# ---------------------------------------------------------------------------

# A fresh data directory for $node, with the settings of the test and
# $conf (lines of postgresql.conf) after them.
sub init_node
{
	my ($node, $conf) = @_;
	KmdTest::init_node($node);
	$node->append_conf('postgresql.conf', <<"EOC");
listen_addresses = '127.0.0.1'
shared_preload_libraries = 'kommander'
kommander.database = 'postgres'
kommander.election_timeout = $ELECTION_TIMEOUT_MS
kommander.heartbeat_interval = 50
kommander.propose_timeout = $PROPOSE_TIMEOUT_MS
kommander.workers = 2
max_worker_processes = 16
max_connections = 60
log_min_messages = warning
log_statement = none
EOC
	$node->append_conf('postgresql.conf', $conf) if defined $conf;
}

# A cluster of $n nodes, each reaching its peers through the proxy: the
# roster's conninfos name a service (service=nodeJ) that each node resolves
# through its own service file, to its own port of the proxy for link
# "I>J" (to itself directly).  Clients connect to the nodes directly.
# %opts: conf => lines of postgresql.conf for every node.
sub new_cluster
{
	my ($n, %opts) = @_;
	# a directory of this test's own: test files run side by side, and a
	# service file another one wrote would lead a node to its cluster
	my $dir = "$PostgreSQL::Test::Utils::log_path/" . File::Basename::basename($0, '.pl');
	File::Path::make_path($dir);
	my $t = { n => $n, dir => $dir, faults => {}, down => {},
		names => [ map { "node$_" } (1 .. $n) ], conf => $opts{conf} };
	my @nodes = map { PostgreSQL::Test::Cluster->new("node$_") } (1 .. $n);
	$t->{nodes} = \@nodes;
	init_node($_, $t->{conf}) for @nodes;
	my %links;
	for my $i (1 .. $n)
	{
		for my $j (1 .. $n)
		{
			next if $i == $j;
			$links{"$i>$j"} = [ PostgreSQL::Test::Cluster::get_free_port(), $nodes[ $j - 1 ]->port ];
		}
	}
	$t->{links} = \%links;
	for my $i (1 .. $n)
	{
		my $file = "$t->{dir}/services.node$i";
		open(my $fh, '>', $file) or die "$file: $!";
		for my $j (1 .. $n)
		{
			my $port = $i == $j ? $nodes[ $i - 1 ]->port : $links{"$i>$j"}[0];
			print $fh "[node$j]\nhost=127.0.0.1\nport=$port\ndbname=postgres\n\n";
		}
		close $fh;
	}
	$t->{proxy} = KmdProxy::start(\%links);
	start_node($t, $_) for (1 .. $n);
	$_->safe_psql('postgres', 'CREATE EXTENSION kommander') for @nodes;
	$nodes[0]->safe_psql('postgres', "SELECT kmd_bootstrap('node1', 'service=node1')");
	KmdTest::wait_leaders($nodes[0]);
	for my $i (2 .. $n)
	{
		$nodes[ $i - 1 ]->safe_psql('postgres',
			"SELECT kmd_join('node$i', 'service=node$i', 'service=node1')");
	}
	KmdTest::wait_voters(\@nodes, $n);
	$nodes[0]->safe_psql('postgres', q{
SELECT kmd_ddl('CREATE TABLE public.nem_reg (k text PRIMARY KEY, v bigint)');
SELECT kmd_register_table('public.nem_reg');
SELECT kmd_ddl('CREATE TABLE public.nem_list (k text PRIMARY KEY, v jsonb NOT NULL)');
SELECT kmd_register_table('public.nem_list');
SELECT kmd_ddl($ddl$
CREATE FUNCTION public.nem_append(args jsonb, ctx kommander.apply_context) RETURNS jsonb
LANGUAGE plpgsql AS $f$
BEGIN
  INSERT INTO public.nem_list AS l (k, v) VALUES (ctx.key, jsonb_build_array(args->'e'))
    ON CONFLICT (k) DO UPDATE SET v = l.v || excluded.v;
  RETURN NULL;
END $f$
$ddl$);
SELECT kmd_register_applier('nem_append', 'public.nem_append(jsonb, kommander.apply_context)');
SELECT kmd_ddl('CREATE TABLE public.nem_lease (k text PRIMARY KEY, v bigint)');
SELECT kmd_register_table('public.nem_lease');
SELECT count(*) FROM kmd_create_partitions(4);
});
	KmdTest::wait_leaders($_) for @nodes;
	return $t;
}

sub node { my ($t, $i) = @_; return $t->{nodes}[ $i - 1 ]; }

# Start node $i with its service file.
sub start_node
{
	my ($t, $i) = @_;
	local $ENV{PGSERVICEFILE} = "$t->{dir}/services.node$i";
	node($t, $i)->start;
}

# The node's processes: the postmaster first, then its children.
sub pids_of
{
	my ($t, $i) = @_;
	my $pm = node($t, $i)->{_pid} or return ();
	my @kids;
	opendir(my $d, '/proc') or die "/proc: $!";
	for my $p (grep { /^\d+$/ } readdir $d)
	{
		open(my $fh, '<', "/proc/$p/stat") or next;
		my $stat = <$fh> // '';
		close $fh;
		push @kids, $p if $stat =~ /^\d+ \(.*\) \S (\d+)/ && $1 == $pm;
	}
	closedir $d;
	return ($pm, @kids);
}

# kill -9 of the whole node, as a machine that loses power: the postmaster
# first, so that it cannot report its children's deaths.
sub kill_node
{
	my ($t, $i) = @_;
	my @pids = pids_of($t, $i);
	kill 'KILL', @pids;
	for my $p (@pids)
	{
		my $deadline = time + 30;
		sleep(0.02) while kill(0, $p) && time < $deadline;
	}
	node($t, $i)->{_pid} = undef;
	$t->{down}{$i} = 1;
}

sub restart_node
{
	my ($t, $i) = @_;
	start_node($t, $i);
	delete $t->{down}{$i};
}

sub pause_node
{
	my ($t, $i) = @_;
	$paused{$i} = [ pids_of($t, $i) ];
	kill 'STOP', @{ $paused{$i} };
}

sub resume_node
{
	my ($t, $i) = @_;
	kill 'CONT', @{ delete $paused{$i} };
}

# Set every link from and/or to node $i.
sub set_links
{
	my ($t, $i, $out, $in, $mode, $ms) = @_;
	for my $j (1 .. $t->{n})
	{
		next if $j == $i;
		KmdProxy::set($t->{proxy}, "$i>$j", $mode, $ms) if $out;
		KmdProxy::set($t->{proxy}, "$j>$i", $mode, $ms) if $in;
	}
}

sub heal_links
{
	my ($t) = @_;
	KmdProxy::set($t->{proxy}, $_, 'up') for keys %{ $t->{links} };
}

# $sql on node $i, not waiting longer than $timeout s (default 20); its
# output, or undef.
sub try_sql
{
	my ($t, $i, $sql, $timeout) = @_;
	my ($out, $err, $timed_out);
	my $rc = node($t, $i)->psql('postgres', $sql, stdout => \$out, stderr => \$err,
		timeout => $timeout // 20, timed_out => \$timed_out);
	return (defined $rc && $rc == 0) ? $out : undef;
}

# The active user partitions in key order, as node $i sees them.
sub partitions
{
	my ($t, $i) = @_;
	my $out = try_sql($t, $i,
		"SELECT partition_id FROM kommander.partitions WHERE partition_id > 0 AND state = 'active' ORDER BY lo")
	  // '';
	return split /\n/, $out;
}

# ---------------------------------------------------------------------------
# The nemesis
# ---------------------------------------------------------------------------

# One fault, held for $hold seconds and healed.  $a, $b and $c are draws
# in [0, 1) that choose the node, the partition, the delay.
sub inject
{
	my ($t, $kind, $hold, $a, $b, $c, $with) = @_;
	my $n = $t->{n};
	my $i = 1 + int($a * $n);
	my $j = 1 + ($i + int($b * ($n - 1))) % $n;
	my $what;
	if ($kind eq 'isolate_leader')
	{
		my @parts = partitions($t, $j);
		return undef if !@parts;
		my $p = $parts[ int($b * @parts) ];
		my $leader = try_sql($t, $j, "SELECT leader_name FROM kommander.partitions WHERE partition_id = $p") // '';
		($i) = grep { $t->{names}[ $_ - 1 ] eq $leader } (1 .. $n);
		return undef if !$i;
		$kind = 'isolate';
		$what = "node$i, leader of partition $p";
	}
	$what //= $t->{names}[ $i - 1 ];
	if ($kind eq 'kill')
	{
		kill_node($t, $i);
		sleep($hold);
		restart_node($t, $i);
	}
	elsif ($kind eq 'pause')
	{
		pause_node($t, $i);
		sleep($hold);
		resume_node($t, $i);
	}
	elsif ($kind eq 'isolate' || $kind eq 'oneway' || $kind eq 'hole' || $kind eq 'delay')
	{
		my $ms = $kind eq 'delay' ? 50 + int($c * 400) : 0;
		my $mode = $kind eq 'oneway' ? 'cut' : $kind eq 'isolate' ? 'cut' : $kind;
		# one way: the node hears its peers but cannot reach them
		set_links($t, $i, 1, $kind ne 'oneway', $mode, $ms);
		$what .= " ${ms}ms" if $ms;
		my $t0 = time;
		if ($with)
		{
			# a second fault while the links are down, on a node drawn anew
			my $w = inject($t, $with, 1, $b, $c, $a);
			$what .= defined $w ? ", meanwhile $with $w" : ", meanwhile $with (not possible now)";
			$t->{faults}{$with}++ if defined $w;
		}
		sleep(List::Util::max(0, $hold - (time - $t0)));
		heal_links($t);
	}
	elsif ($kind eq 'transfer')
	{
		my @parts = partitions($t, $i);
		return undef if !@parts;
		my $p = $parts[ int($c * @parts) ];
		my $to = $t->{names}[ $j - 1 ];
		$what = "partition $p to $to";
		try_sql($t, $i, "SELECT kmd_transfer_leader($p, '$to')") // return undef;
	}
	elsif ($kind eq 'split')
	{
		my @parts = partitions($t, $i);
		return undef if @parts >= 8 || !@parts;
		my $p = $parts[ int($c * @parts) ];
		$what = "partition $p";
		try_sql($t, $i, "SELECT kmd_split($p)") // return undef;
	}
	elsif ($kind eq 'merge')
	{
		my @parts = partitions($t, $i);
		return undef if @parts <= 2;
		my $k = int($c * (@parts - 1));
		$what = "partition $parts[$k + 1] into $parts[$k]";
		try_sql($t, $i, "SELECT kmd_merge($parts[$k], $parts[$k + 1])") // return undef;
	}
	elsif ($kind eq 'behind')
	{
		# node $i misses a kmd_ddl and a merge, in either order
		my @parts = partitions($t, $j);
		my @steps = ("SELECT kmd_ddl('COMMENT ON TABLE public.nem_reg IS ''missed''')");
		if (@parts > 2)
		{
			my $k = int($c * (@parts - 1));
			my $merge = "SELECT kmd_merge($parts[$k], $parts[$k + 1])";
			if ($b < 0.5) { push @steps, $merge; } else { unshift @steps, $merge; }
			$what .= " misses partition $parts[$k + 1] merged into $parts[$k] and a DDL";
		}
		else
		{
			$what .= " misses a DDL";
		}
		kill_node($t, $i);
		try_sql($t, $j, $_) for @steps;
		sleep($hold);
		restart_node($t, $i);
	}
	elsif ($kind eq 'replace')
	{
		replace_node($t, $i, $j) or return undef;
		$what .= " replaced by " . $t->{names}[ $i - 1 ];
	}
	return $what;
}

# Node $i leaves the cluster (kmd_remove_node run on node $j), its server
# is wiped, and it joins again as a new member with a new name and id, at
# the same address.  The clients leave it alone meanwhile.
sub replace_node
{
	my ($t, $i, $j) = @_;
	my $old = $t->{names}[ $i - 1 ];
	my ($base, $gen) = $old =~ /^(node\d+)(?:-(\d+))?$/;
	my $new = "$base-" . (($gen // 1) + 1);
	my $skip = "$t->{dir}/skip-node$i";
	open(my $fh, '>', $skip) or die "$skip: $!";
	close $fh;
	# an operator's patience: a minute for each step, not propose_timeout
	if (!defined try_sql($t, $j,
			"SET kommander.propose_timeout = 60000; SELECT kmd_remove_node('$old')", 120))
	{
		unlink $skip;
		return 0;
	}
	my $node = node($t, $i);
	$node->stop('immediate');
	File::Path::rmtree($node->data_dir);
	init_node($node, $t->{conf});
	start_node($t, $i);
	$node->safe_psql('postgres', 'CREATE EXTENSION kommander');
	$node->safe_psql('postgres',
		"SET kommander.propose_timeout = 60000; SELECT kmd_join('$new', 'service=node$i', 'service=node$j')",
		timeout => 300);
	$t->{names}[ $i - 1 ] = $new;
	unlink $skip;
	return 1;
}

# Faults drawn from $seed until $seconds have passed; every fault is healed
# before the next.  One link fault in four has a second fault happen while
# it lasts (a kill, pause, transfer, split or merge, if drawn from).  Each
# step draws the same numbers whatever the cluster's state, so a seed
# replays the same schedule.
sub run_nemesis
{
	my ($t, $seed, $seconds, $only) = @_;
	srand($seed);
	my @faults = @FAULTS;
	if ($only)
	{
		my %want = map { $_ => 1 } split /,/, $only;
		@faults = grep { $want{ $_->[0] } } @FAULTS;
		die "no such fault in $only" if !@faults;
	}
	my $total = 0;
	$total += $_->[1] for @faults;
	my $end = time + $seconds;
	# what may happen while a node's links are down, one time in four
	my @meanwhile = grep { my $k = $_; grep { $_->[0] eq $k } @faults }
	  ('kill', 'pause', 'transfer', 'split', 'merge');
	while (time < $end)
	{
		my ($gap, $draw, $hold, $a, $b, $c, $also, $other) = map { rand() } (1 .. 8);
		sleep(0.5 + 2 * $gap);
		my $kind;
		my $x = $draw * $total;
		for my $f (@faults)
		{
			$kind = $f->[0];
			last if ($x -= $f->[1]) < 0;
		}
		my $with = $kind =~ /^(isolate|isolate_leader|oneway|hole|delay)$/ && @meanwhile && $also < 0.25
		  ? $meanwhile[ int($other * @meanwhile) ] : undef;
		my $t0 = time;
		my $what = inject($t, $kind, 1 + 3 * $hold, $a, $b, $c, $with);
		my $note = sprintf("%7.1f s %-14s %s", $t0 - $t->{t_start}, $kind,
			defined $what ? $what : '(not possible now)');
		push @{ $t->{schedule} }, $note;
		note("nemesis: $note");
		$t->{faults}{$kind}++ if defined $what;
	}
}

# ---------------------------------------------------------------------------
# A run
# ---------------------------------------------------------------------------

sub now_us { return int(clock_gettime(CLOCK_MONOTONIC) * 1e6); }

# Run the clients for $seconds under the nemesis, heal, converge and check.
# Returns a summary: ops, faults, anomalies and the lines that explain them.
sub run
{
	my ($t, %o) = @_;
	my $dir = $t->{dir};
	my ($reg, $app, $lease) =
	  ("$dir/nemesis-register.jsonl", "$dir/nemesis-append.jsonl", "$dir/nemesis-lease.jsonl");
	$stop_file = "$dir/nemesis-stop";
	unlink $reg, $app, $lease, $stop_file;
	my $anchor = grant_anchor($t, $lease);
	my @conninfo = map { ('--conninfo', $_->connstr('postgres')) } @{ $t->{nodes} };
	# the clients go on until ten seconds after the last fault is healed
	my @cmd = ("$ENV{TESTDIR}/build/nemesis/kmd-nemesis-client", @conninfo,
		'--register', $reg, '--append', $app, '--lease', $lease, '--anchor', $anchor,
		'--clients', $o{clients} // 6,
		'--seconds', 3 * $o{seconds} + 3600, '--seed', $o{seed},
		'--keys', $N_KEYS, '--lists', $N_LISTS, '--deadline-ms', 2 * $PROPOSE_TIMEOUT_MS,
		'--skip-dir', $dir, '--stop-file', $stop_file);
	my ($cout, $cerr) = ('', '');
	$t->{t_start} = time;
	my $clients = IPC::Run::start(\@cmd, '>', \$cout, '2>', \$cerr);
	eval { run_nemesis($t, $o{seed}, $o{seconds}, $o{faults}); };
	if ($@)
	{
		$clients->kill_kill;
		die $@;
	}
	heal_links($t);
	resume_node($t, $_) for keys %paused;
	restart_node($t, $_) for keys %{ $t->{down} };
	sleep(10);
	open(my $stop, '>', $stop_file) or die "$stop_file: $!";
	close $stop;
	my $client_rc = $clients->finish ? 0 : ($clients->result // 2);
	my %s = (seed => $o{seed}, faults => $t->{faults}, problems => [], client_rc => $client_rc,
		client_err => $cerr);

	# every lease but the anchor lapses once the clients stop: before the
	# states are compared, as its expiry entries would race the comparison
	my $leases = read_lease_history($lease);
	wait_leases_gone(\%s, $t, $leases, $anchor);

	# convergence: every partition led, every node applied what any committed
	my $converged = 1;
	for my $node (@{ $t->{nodes} })
	{
		$converged &&= $node->poll_query_until('postgres',
			"SELECT count(*) > 0 AND bool_and(leader_name IS NOT NULL) FROM kommander.partitions WHERE state = 'active'");
	}
	$converged &&= KmdTest::wait_converged($t->{nodes});
	push @{ $s{problems} }, 'the cluster did not converge after the faults were healed'
	  if !$converged;

	# final reads, a barrier then a SELECT on every node, join the history
	open(my $fh, '>>', $reg) or die "$reg: $!";
	for my $i (1 .. $t->{n})
	{
		for my $k (0 .. $N_KEYS - 1)
		{
			my $t0 = now_us();
			my $out = try_sql($t, $i, "SELECT kmd_read_barrier('r$k');"
				  . " SELECT coalesce((SELECT v::text FROM nem_reg WHERE k = 'r$k'), 'null')");
			next if !defined $out;
			my $v = (split /\n/, $out)[-1];
			print $fh qq({"process":"final-node$i","type":"invoke","f":"read","key":"r$k","value":null,"time":$t0}\n);
			print $fh qq({"process":"final-node$i","type":"ok","f":"read","key":"r$k","value":$v,"time":@{[now_us()]}}\n);
		}
	}
	close $fh;

	count_ops(\%s, $reg, 'register');
	count_ops(\%s, $app, 'append');
	count_ops(\%s, $lease, 'lease');
	check_registers(\%s, $reg);
	check_appends(\%s, $t, $app);
	check_leases(\%s, $leases);
	check_lease_tables(\%s, $t, $leases, $anchor);

	my @digests = map { KmdTest::state_digest($_) } @{ $t->{nodes} };
	for my $i (2 .. $t->{n})
	{
		push @{ $s{problems} }, "node$i holds other rows, counters, roster, map or requests than node1"
		  if $digests[ $i - 1 ] ne $digests[0];
	}
	$s{anomalies} = scalar @{ $s{problems} };
	$s{schedule} = $t->{schedule};
	return \%s;
}

sub count_ops
{
	my ($s, $file, $workload) = @_;
	open(my $fh, '<', $file) or return;
	while (<$fh>)
	{
		my ($type) = /"type":"(\w+)"/;
		my ($f) = /"f":"(\w+)"/;
		next if !/"process":\d/;	# the final reads are not the clients'
		# the append clients' reads of the lists are counted apart
		$s->{ops}{ $workload eq 'append' && ($f // '') eq 'read' ? 'list read' : $workload }{$type}++;
		$s->{ops_by_f}{$workload}{$f}{$type}++ if defined $f;
		$s->{cas_swapped}++ if $f && $f eq 'cas' && /"swapped":true/;
	}
	close $fh;
}

# Linearizability of every register, by sim/kmd-lincheck.
sub check_registers
{
	my ($s, $file) = @_;
	my ($out, $err) = ('', '');
	IPC::Run::run([ "$ENV{TESTDIR}/sim/kmd-lincheck", $file ], '>', \$out, '2>', \$err);
	my $rc = $? >> 8;
	$s->{lincheck} = "$out$err";
	return if $rc == 0;
	push @{ $s->{problems} }, $rc == 1 ? "registers not linearizable:\n$out"
	  : $rc == 3 ? "linearizability inconclusive (search out of budget):\n$out"
	  : "kmd-lincheck could not read the history (exit $rc):\n$out$err";
}

# Each acknowledged append present exactly once on every node, the lists
# the same on every node, nothing present that was refused or never tried,
# and an append that completed before another began ordered before it.
# Every list a client read is a prefix of the list's final value, holds
# every append acknowledged before the read began and none invoked after
# it ended.
sub check_appends
{
	my ($s, $t, $file) = @_;
	my (%op, %reading, @reads, $line);
	open(my $fh, '<', $file) or die "$file: $!";
	while (<$fh>)
	{
		$line++;
		my $e = decode_json($_);
		if ($e->{f} eq 'read')
		{
			if ($e->{type} eq 'invoke')
			{
				$reading{ $e->{process} } = { key => $e->{key}, invoke => $e->{time}, line => $line };
			}
			elsif (my $r = delete $reading{ $e->{process} })
			{
				push @reads, { %$r, length => $e->{length}, md5 => $e->{md5}, done => $e->{time},
					end_line => $line }
				  if $e->{type} eq 'ok';
			}
			next;
		}
		# the tries of one append (retries after an unknown outcome, with
		# its request id) are one operation: from the first invoke to the
		# last end, ok if one was, failed only if every try failed
		my $o = $op{ $e->{value} } //= { key => $e->{key} };
		if ($e->{type} eq 'invoke')
		{
			($o->{invoke}, $o->{line}) = ($e->{time}, $line) if !defined $o->{invoke};
			$o->{tries}++;
		}
		elsif (($o->{end} // '') ne 'ok')
		{
			$o->{end} = $e->{type} eq 'fail' && ($o->{end} // 'fail') ne 'fail' ? $o->{end} : $e->{type};
			$o->{done} = $e->{time};
			$o->{end_line} = $line;
		}
	}
	close $fh;
	my $describe = sub {
		my ($v) = @_;
		my $o = $op{$v} or return "$v (never invoked)";
		return "$v (append to $o->{key}, lines $o->{line}-" . ($o->{end_line} // 'open')
		  . ", " . ($o->{end} // 'open') . ($o->{tries} > 1 ? " after $o->{tries} tries" : '') . ")";
	};
	my (%lists, $answered);
	for my $i (1 .. $t->{n})
	{
		my $out = try_sql($t, $i, "SELECT k || ' ' || v::text FROM nem_list ORDER BY k");
		$answered //= $i if defined $out;
		for (split /\n/, $out // '')
		{
			my ($k, $v) = split / /, $_, 2;
			$lists{$k}[ $i - 1 ] = decode_json($v);
		}
	}
	my @problems;
	for my $k (sort keys %lists)
	{
		my $first = JSON::PP->new->canonical->encode($lists{$k}[0] // []);
		for my $i (2 .. $t->{n})
		{
			push @problems, "list $k differs between node1 and node$i"
			  if JSON::PP->new->canonical->encode($lists{$k}[ $i - 1 ] // []) ne $first;
		}
	}
	for my $i (1 .. $t->{n})
	{
		my %pos;
		for my $k (sort keys %lists)
		{
			my $list = $lists{$k}[ $i - 1 ] // [];
			for my $p (0 .. $#$list)
			{
				my $v = $list->[$p];
				push @problems, "node$i: " . $describe->($v) . " appears twice in $k" if exists $pos{$v};
				$pos{$v} = $p;
				my $o = $op{$v};
				push @problems, "node$i: " . $describe->($v) . " is in $k"
				  if !$o || ($o->{end} // '') eq 'fail' || $o->{key} ne $k;
			}
		}
		for my $v (sort keys %op)
		{
			push @problems, "node$i: acknowledged " . $describe->($v) . " is missing"
			  if ($op{$v}{end} // '') eq 'ok' && !exists $pos{$v};
		}
		# real time: scan invocations in time order against the latest
		# position of an append of the same list that had completed
		my @events;
		for my $v (grep { exists $pos{$_} } keys %op)
		{
			my $o = $op{$v};
			push @events, [ $o->{invoke}, 1, $v ];
			push @events, [ $o->{done}, 0, $v ] if ($o->{end} // '') eq 'ok';
		}
		my (%latest, %latest_v);
		for my $ev (sort { $a->[0] <=> $b->[0] || $a->[1] <=> $b->[1] } @events)
		{
			my ($time, $is_invoke, $v) = @$ev;
			my $k = $op{$v}{key};
			if (!$is_invoke)
			{
				if (!defined $latest{$k} || $pos{$v} > $latest{$k})
				{
					$latest{$k} = $pos{$v};
					$latest_v{$k} = $v;
				}
			}
			elsif (defined $latest{$k} && $pos{$v} < $latest{$k})
			{
				push @problems, "node$i: " . $describe->($v) . " is ordered before "
				  . $describe->($latest_v{$k}) . ", which completed before it was invoked";
			}
		}
	}
	my @retried = grep { $_->{tries} > 1 } values %op;
	$s->{appends_retried} = [ scalar(@retried), scalar(grep { ($_->{end} // '') eq 'ok' } @retried) ];
	push @problems, check_list_reads(\%op, \@reads,
		{ map { $_ => $lists{$_}[ ($answered // 1) - 1 ] // [] } keys %lists }, $describe);
	# the same flaw seen on every node is reported once per node: keep 20
	splice(@problems, 20) if @problems > 20;
	push @{ $s->{problems} }, @problems;
}

# The reads of the lists against their final values ($final, those of
# the first node that answered, which the other nodes' equal or are
# reported): a read that is no prefix (its length and md5 against the
# final list's first elements) saw another order or an element never
# kept; one missing an append acknowledged before it began, or holding
# one invoked after it ended, was served from a node that had not
# applied what the barrier promised (or from the future).  Linear in the
# lists' lengths and the reads, for soaks of thousands of each.
sub check_list_reads
{
	my ($op, $reads, $final, $describe) = @_;
	my (@problems, %reads_of, %acked);
	push @{ $reads_of{ $_->{key} } }, $_ for @$reads;
	for my $v (keys %$op)
	{
		my $o = $op->{$v};
		push @{ $acked{ $o->{key} } }, [ $o->{done}, $v ] if ($o->{end} // '') eq 'ok';
	}
	for my $k (sort keys %reads_of)
	{
		my $f = $final->{$k} // [];
		my %pos;
		$pos{ $f->[$_] } = $_ for 0 .. $#$f;
		my $what = sub {
			my ($r) = @_;
			return "the read of $k at lines $r->{line}-$r->{end_line} ($r->{length} elements)";
		};

		# prefixes: the final list's digest taken at each length read
		my @ok;
		my $md5 = Digest::MD5->new;
		my $p = 0;
		$md5->add('[');
		for my $r (sort { $a->{length} <=> $b->{length} } @{ $reads_of{$k} })
		{
			if ($r->{length} > @$f)
			{
				push @problems, $what->($r) . " is longer than the final $k (" . scalar(@$f) . ' elements)';
				next;
			}
			for (; $p < $r->{length}; $p++)
			{
				$md5->add(($p ? ', ' : '') . $f->[$p]);
			}
			my $want = $r->{length} == 0 ? '' : $md5->clone->add(']')->hexdigest;
			if ($r->{md5} ne $want)
			{
				push @problems, $what->($r) . " is no prefix of the final $k";
				next;
			}
			push @ok, $r;
		}

		# the appends acknowledged by each time: the furthest one's position
		my @by_done = sort { $a->[0] <=> $b->[0] } @{ $acked{$k} // [] };
		my (@furthest, $far);
		for my $ack (@by_done)
		{
			my $q = $pos{ $ack->[1] };	# one missing is reported as such
			$far = [ $q, $ack->[1] ] if defined $q && (!$far || $q > $far->[0]);
			push @furthest, $far;
		}
		# the latest invoke among the first p + 1 elements of the final list
		my (@latest, $late);
		for my $q (0 .. $#$f)
		{
			my $o = $op->{ $f->[$q] };
			$late = [ $o->{invoke}, $f->[$q] ] if $o && defined $o->{invoke} && (!$late || $o->{invoke} > $late->[0]);
			push @latest, $late;
		}
		for my $r (@ok)
		{
			# how many were acknowledged before the read began
			my ($lo, $hi) = (0, scalar @by_done);
			while ($lo < $hi)
			{
				my $mid = int(($lo + $hi) / 2);
				if ($by_done[$mid][0] < $r->{invoke}) { $lo = $mid + 1; } else { $hi = $mid; }
			}
			my $need = $lo > 0 ? $furthest[ $lo - 1 ] : undef;
			push @problems, $what->($r) . ' lacks ' . $describe->($need->[1]) . ', acknowledged before it began'
			  if $need && $need->[0] >= $r->{length};
			my $seen = $r->{length} > 0 ? $latest[ $r->{length} - 1 ] : undef;
			push @problems, $what->($r) . ' holds ' . $describe->($seen->[1]) . ', invoked after it ended'
			  if $seen && $seen->[0] > $r->{done};
		}
	}
	return @problems;
}

# ---------------------------------------------------------------------------
# Leases
# ---------------------------------------------------------------------------

# The anchor: a lease of ten minutes, granted through node1 before the
# clients start, with a row attached, which the lease clients keep alive
# and read now and then; it must be alive everywhere at the end.  Its grant
# and attach join the history (process "setup").  Returns its id.
sub grant_anchor
{
	my ($t, $file) = @_;
	my $node = node($t, 1);
	open(my $fh, '>>', $file) or die "$file: $!";
	my $t0 = now_us();
	my $id = $node->safe_psql('postgres', "SELECT kmd_lease_grant('10 min', 'anchor')");
	print $fh qq({"process":"setup","type":"invoke","f":"grant","key":"anchor","ttl":600000,"time":$t0}\n);
	print $fh qq({"process":"setup","type":"ok","f":"grant","key":"anchor","ttl":600000,"lease":$id,"time":@{[now_us()]}}\n);
	$t0 = now_us();
	$node->safe_psql('postgres',
		qq{SELECT kmd_propose('$id', '{"op":"upsert","table":"nem_lease","row":{"k":"$id","v":0},"lease":$id}')});
	print $fh qq({"process":"setup","type":"invoke","f":"attach","lease":$id,"value":0,"time":$t0}\n);
	print $fh qq({"process":"setup","type":"ok","f":"attach","lease":$id,"value":0,"time":@{[now_us()]}}\n);
	close $fh;
	return $id;
}

# The lease history, as operations (an invoke and its end, matched by
# process) grouped by lease: { id => [ { f, invoke, done, type, error, ms,
# value, lines } ] }, ms being the time to live a grant or keepalive
# answered.  A grant whose outcome is unknown names no lease and is left
# out.
sub read_lease_history
{
	my ($file) = @_;
	my (%open, %by_lease, $line);
	open(my $fh, '<', $file) or return {};
	while (<$fh>)
	{
		$line++;
		my $e = decode_json($_);
		if ($e->{type} eq 'invoke')
		{
			$open{ $e->{process} } = { f => $e->{f}, invoke => $e->{time}, line => $line,
				lease => $e->{lease}, text => $_ };
			next;
		}
		my $o = delete $open{ $e->{process} } or next;
		$o->{lease} //= $e->{lease};
		next if !defined $o->{lease};
		$o->{done} = $e->{time};
		$o->{end_line} = $line;
		$o->{end_text} = $_;
		$o->{type} = $e->{type};
		$o->{error} = $e->{error} // '';
		$o->{value} = $e->{value};
		$o->{ms} = $o->{f} eq 'grant' ? $e->{ttl} : $e->{left};
		push @{ $by_lease{ $o->{lease} } }, $o;
	}
	close $fh;
	# an operation still open when the clients stopped: outcome unknown
	for my $o (values %open)
	{
		next if !defined $o->{lease};
		@$o{qw(done type error end_line end_text)} = (9e18, 'info', 'open', undef, '');
		push @{ $by_lease{ $o->{lease} } }, $o;
	}
	return \%by_lease;
}

# The lines of a lease's history from operation $from to operation $to,
# for a report: both, and at most 30 lines between (the last ones).
sub lease_window
{
	my ($ops, $from, $to) = @_;
	my @lines;
	my $line_of = sub {
		my ($o) = @_;
		my @l = ("    $o->{line}: $o->{text}");
		push @l, "    $o->{end_line}: $o->{end_text}" if defined $o->{end_line};
		chomp @l;
		return @l;
	};
	for my $o (sort { $a->{line} <=> $b->{line} } @$ops)
	{
		next if $o == $from || $o == $to || $o->{done} < $from->{invoke} || $o->{invoke} > $to->{done};
		push @lines, $line_of->($o);
	}
	splice(@lines, 0, @lines - 30, '    ...') if @lines > 30;
	return join("\n", $line_of->($from), @lines, $from == $to ? () : $line_of->($to));
}

# A lease is never ended early, and never comes back:
#   - a grant or keepalive invoked at t0 and answered ok with time left r
#     keeps the lease until t0 + r at least (the leader starts counting
#     when it applies it, after t0; a new leader or a restarted node counts
#     from its own applying, later still): a read that completed before
#     then, invoked after an attach completed, sees the row, and no
#     operation that completed before then answers K0013, unless a revoke
#     (not refused) was invoked before it completed; "before then" less
#     the margin, $LEASE_MARGIN_US;
#   - once a revoke was acknowledged, or an operation answered K0013, no
#     read invoked after it sees the row and no keepalive, attach or
#     revoke invoked after it succeeds.
# The row's key is the lease's id: it is in the lease's partition whatever
# the splits, so the entry that ends the lease deletes it (a row a split
# parted from its lease goes later, by another entry: docs/API.md).
sub check_leases
{
	my ($s, $leases) = @_;
	my @problems;
	for my $id (sort keys %$leases)
	{
		my $ops = $leases->{$id};
		my @renewals = grep { $_->{type} eq 'ok' && ($_->{f} eq 'grant' || $_->{f} eq 'keepalive') } @$ops;
		# a revoke that failed was not applied: it ended nothing
		my @revokes = grep { $_->{f} eq 'revoke' && $_->{type} ne 'fail' } @$ops;
		my ($attached) = sort { $a <=> $b } map { $_->{done} } grep { $_->{f} eq 'attach' && $_->{type} eq 'ok' } @$ops;
		my ($ended) = sort { $a->{done} <=> $b->{done} }
		  grep { ($_->{f} eq 'revoke' && $_->{type} eq 'ok') || $_->{error} eq 'K0013' } @$ops;
		# the renewal promising the latest time beyond $tc, if any
		my $promise = sub {
			my ($tc) = @_;
			my ($best, $until);
			for my $r (@renewals)
			{
				my $u = $r->{invoke} + 1000 * $r->{ms} - $LEASE_MARGIN_US;
				($best, $until) = ($r, $u) if $u > $tc && (!defined $until || $u > $until);
			}
			return $best;
		};
		my $revoked_before = sub {
			my ($o) = @_;
			return grep { $_ != $o && $_->{invoke} < $o->{done} } @revokes;
		};
		my %found;		# kind => [ the first report, how many ]
		for my $o (sort { $a->{line} <=> $b->{line} } @$ops)
		{
			my $what;
			my $r;
			if ($o->{f} eq 'read' && $o->{type} eq 'ok' && defined $attached && $attached < $o->{invoke}
				&& ($r = $promise->($o->{done})) && !$revoked_before->($o))
			{
				$s->{lease_checks}{promised}++;
				$what = "a read (line $o->{line}) saw no row" if !defined $o->{value};
			}
			if (!$what && $o->{error} eq 'K0013' && ($r = $promise->($o->{done})) && !$revoked_before->($o))
			{
				$what = "a $o->{f} (line $o->{line}) answered K0013";
			}
			if ($what)
			{
				# a renewal invoked later found the lease alive: alive then
				my $later = $r->{invoke} > $o->{done};
				next if $found{early} && ++$found{early}[1];
				$found{early} = [ sprintf("lease %s ended early: %s %.3f s %s the %s of line %d"
					  . " (answered ok, %d ms left) and no revoke was invoked before;"
					  . " its history around then:\n%s",
					$id, $what, abs($o->{done} - $r->{invoke}) / 1e6, $later ? 'before' : 'after',
					$r->{f}, $r->{line}, $r->{ms},
					$later ? lease_window($ops, $o, $r) : lease_window($ops, $r, $o)), 1 ];
				next;
			}
			next if !$ended || $o->{invoke} <= $ended->{done};
			$s->{lease_checks}{after_end}++;
			if ($o->{type} eq 'ok' && ($o->{f} eq 'read' ? defined $o->{value} : 1))
			{
				next if $found{back} && ++$found{back}[1];
				$found{back} = [ sprintf("lease %s came back: the %s of line %d %s after the %s of line %d"
					  . " (%s) had ended it; its history around then:\n%s",
					$id, $o->{f}, $o->{line}, $o->{f} eq 'read' ? "saw its row $o->{value}" : 'succeeded',
					$ended->{f}, $ended->{line}, $ended->{type} eq 'ok' ? 'acknowledged' : 'K0013',
					lease_window($ops, $ended, $o)), 1 ];
			}
		}
		for my $kind ('early', 'back')
		{
			my $f = $found{$kind} or next;
			push @problems, $f->[0]
			  . ($f->[1] > 1 ? "\n    (and " . ($f->[1] - 1) . " later operations of this lease likewise)" : '');
		}
	}
	splice(@problems, 20) if @problems > 20;
	push @{ $s->{problems} }, @problems;
}

# Once the clients stopped, every lease but the anchor lapses: gone, with
# its rows, from every node, within twice the longest TTL (a node that
# restarted or installed an image counts it again from the start) plus 20 s
# for an election and a proposal.  Polls every node until then.
sub wait_leases_gone
{
	my ($s, $t, $leases, $anchor) = @_;
	my $sql = "SELECT id FROM kommander.lease_state WHERE id <> $anchor"
	  . " UNION SELECT lease FROM kommander.lease_rows WHERE lease <> $anchor"
	  . " UNION SELECT k::bigint FROM nem_lease WHERE k <> '$anchor' ORDER BY 1";
	my $start = time;
	my $deadline = $start + 2 * $MAX_LEASE_TTL_MS / 1000 + 20;
	my %left;
	for my $i (1 .. $t->{n})
	{
		my $out;
		while (1)
		{
			$out = try_sql($t, $i, $sql);
			last if defined $out && $out eq '';
			last if time > $deadline;
			sleep(0.2);
		}
		push @{ $left{$_} }, "node$i" for split /\n/, $out // '';
	}
	$s->{leases_gone_s} = time - $start;
	for my $id (sort keys %left)
	{
		my $ops = $leases->{$id} // [];
		my ($last) = sort { $b->{invoke} <=> $a->{invoke} } grep { $_->{f} ne 'read' } @$ops;
		my $ended = grep { ($_->{f} eq 'revoke' && $_->{type} eq 'ok') || $_->{error} eq 'K0013' } @$ops;
		push @{ $s->{problems} }, sprintf("lease %s (or its row) is still on %s %s; its history's end:\n%s",
			$id, join(', ', @{ $left{$id} }),
			$ended ? 'although it was acknowledged ended'
			: "twice its TTL and 20 s after the clients stopped",
			$last ? lease_window($ops, $last, $last) : '    (no operation names it)');
	}
}

# After convergence: the leases, their rows and the table nem_lease the
# same on every node, and the anchor alive there with its row, if a
# renewal promised it until after now.
sub check_lease_tables
{
	my ($s, $t, $leases, $anchor) = @_;
	my $sql = q{SELECT 'lease ' || id || ' ' || ttl_ms || ' ' || granted_at || ' ' || renewed_at || ' ' || renewed_idx
	  FROM kommander.lease_state
	  UNION ALL SELECT 'row ' || key || ' ' || tbl || ' ' || pk::text || ' ' || lease FROM kommander.lease_rows
	  UNION ALL SELECT 'nem_lease ' || k || ' ' || v FROM nem_lease ORDER BY 1};
	my @dumps = map { try_sql($t, $_, $sql) // '(no answer)' } (1 .. $t->{n});
	for my $i (2 .. $t->{n})
	{
		push @{ $s->{problems} }, "node$i holds other leases or lease rows than node1:\n"
		  . "  node1: $dumps[0]\n  node$i: $dumps[$i - 1]"
		  if $dumps[ $i - 1 ] ne $dumps[0];
	}
	my $now = now_us();
	my $promised = grep { $_->{type} eq 'ok' && ($_->{f} eq 'grant' || $_->{f} eq 'keepalive')
		  && $_->{invoke} + 1000 * $_->{ms} - $LEASE_MARGIN_US > $now } @{ $leases->{$anchor} // [] };
	return if !$promised;
	for my $i (1 .. $t->{n})
	{
		push @{ $s->{problems} }, "node$i lacks the anchor lease $anchor or its row, still promised alive"
		  if $dumps[ $i - 1 ] !~ /^lease $anchor /m || $dumps[ $i - 1 ] !~ /^nem_lease $anchor /m
		  || $dumps[ $i - 1 ] !~ /^row $anchor .* $anchor$/m;
	}
}

# What a run did, for the log and the README.
sub summary_lines
{
	my ($s) = @_;
	my @l;
	for my $w ('register', 'append', 'list read', 'lease')
	{
		my $o = $s->{ops}{$w} // {};
		push @l, sprintf("%-9s operations: %d (ok %d, fail %d, info %d)", $w,
			$o->{invoke} // 0, $o->{ok} // 0, $o->{fail} // 0, $o->{info} // 0);
	}
	my $r = $s->{appends_retried} // [ 0, 0 ];
	push @l, "appends tried again after an unknown outcome: $r->[0] ($r->[1] of them acknowledged then)";
	my $c = $s->{lease_checks} // {};
	push @l, sprintf("lease checks: %d reads within a time promised, %d operations after an end;"
		  . " the lapsed leases gone from every node %.1f s after the clients stopped",
		$c->{promised} // 0, $c->{after_end} // 0, $s->{leases_gone_s} // -1);
	my $f = $s->{faults};
	my $total = 0;
	$total += $_ for values %$f;
	push @l, "faults injected: $total ("
	  . join(', ', map { "$_ $f->{$_}" } sort keys %$f) . ")";
	push @l, "anomalies: $s->{anomalies}";
	return @l;
}

1;
