# KmdNemesis.pm
#   The nemesis test on real servers: a cluster whose nodes reach each other
#   through a proxy the test controls (KmdProxy.pm), clients that record a
#   history (test/nemesis/client.c), faults drawn from a seed (kill -9 and
#   restart, SIGSTOP and SIGCONT, cuts, one-way cuts, black holes, delays,
#   leader transfers, splits and merges, a node removed and its server
#   wiped and joined again as a new member), and the checks once everything is
#   healed: linearizability of every register (sim/kmd-lincheck) and every
#   acknowledged append present once, in one order, on every node.
#   t/180_nemesis.pl runs it for a minute, scripts/nemesis.sh for longer.
#
# Copyright (c) 2026, kommander developers
#
# t/KmdNemesis.pm

package KmdNemesis;

use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use File::Path ();
use IPC::Run;
use JSON::PP;
use Time::HiRes qw(sleep time clock_gettime CLOCK_MONOTONIC);
use KmdTest;
use KmdProxy;

our $ELECTION_TIMEOUT_MS = 500;
our $PROPOSE_TIMEOUT_MS = 5000;
my $N_KEYS = 6;
my $N_LISTS = 4;

# The nemesis's faults and how often each is drawn.
my @FAULTS = (
	[ kill => 3 ], [ pause => 3 ], [ isolate => 2 ], [ isolate_leader => 3 ],
	[ oneway => 2 ], [ hole => 2 ], [ delay => 1 ], [ transfer => 2 ],
	[ split => 2 ], [ merge => 2 ], [ replace => 1 ]);

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

# A fresh data directory for $node, with the settings of the test.
sub init_node
{
	my ($node) = @_;
	$node->init;
	$node->append_conf('postgresql.conf', <<"EOC");
listen_addresses = '127.0.0.1'
shared_preload_libraries = 'kommander'
kommander.database = 'postgres'
kommander.election_timeout = $ELECTION_TIMEOUT_MS
kommander.heartbeat_interval = 50
kommander.propose_timeout = $PROPOSE_TIMEOUT_MS
max_worker_processes = 16
max_connections = 60
log_min_messages = warning
log_statement = none
EOC
}

# A cluster of $n nodes, each reaching its peers through the proxy: the
# roster's conninfos name a service (service=nodeJ) that each node resolves
# through its own service file, to its own port of the proxy for link
# "I>J" (to itself directly).  Clients connect to the nodes directly.
sub new_cluster
{
	my ($n) = @_;
	my $t = { n => $n, dir => $PostgreSQL::Test::Utils::log_path, faults => {}, down => {},
		names => [ map { "node$_" } (1 .. $n) ] };
	my @nodes = map { PostgreSQL::Test::Cluster->new("node$_") } (1 .. $n);
	$t->{nodes} = \@nodes;
	init_node($_) for @nodes;
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
	my ($t, $kind, $hold, $a, $b, $c) = @_;
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
		sleep($hold);
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
	init_node($node);
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
# before the next.  Each step draws the same numbers whatever the cluster's
# state, so a seed replays the same schedule.
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
	while (time < $end)
	{
		my ($gap, $draw, $hold, $a, $b, $c) = map { rand() } (1 .. 6);
		sleep(0.5 + 2 * $gap);
		my $kind;
		my $x = $draw * $total;
		for my $f (@faults)
		{
			$kind = $f->[0];
			last if ($x -= $f->[1]) < 0;
		}
		my $t0 = time;
		my $what = inject($t, $kind, 1 + 3 * $hold, $a, $b, $c);
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
	my ($reg, $app) = ("$dir/nemesis-register.jsonl", "$dir/nemesis-append.jsonl");
	$stop_file = "$dir/nemesis-stop";
	unlink $reg, $app, $stop_file;
	my @conninfo = map { ('--conninfo', $_->connstr('postgres')) } @{ $t->{nodes} };
	# the clients go on until ten seconds after the last fault is healed
	my @cmd = ("$ENV{TESTDIR}/build/nemesis/kmd-nemesis-client", @conninfo,
		'--register', $reg, '--append', $app, '--clients', $o{clients} // 6,
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
	check_registers(\%s, $reg);
	check_appends(\%s, $t, $app);

	my @digests = map { KmdTest::state_digest($_) } @{ $t->{nodes} };
	for my $i (2 .. $t->{n})
	{
		push @{ $s{problems} }, "node$i holds other rows, counters, roster or map than node1"
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
		next if !/"process":\d/;	# the final reads are not the clients'
		$s->{ops}{$workload}{$type}++;
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
sub check_appends
{
	my ($s, $t, $file) = @_;
	my (%op, $line);
	open(my $fh, '<', $file) or die "$file: $!";
	while (<$fh>)
	{
		$line++;
		my $e = decode_json($_);
		my $o = $op{ $e->{value} } //= { key => $e->{key} };
		if ($e->{type} eq 'invoke') { $o->{invoke} = $e->{time}; $o->{line} = $line; }
		else { $o->{end} = $e->{type}; $o->{done} = $e->{time}; $o->{end_line} = $line; }
	}
	close $fh;
	my $describe = sub {
		my ($v) = @_;
		my $o = $op{$v} or return "$v (never invoked)";
		return "$v (append to $o->{key}, lines $o->{line}-" . ($o->{end_line} // 'open')
		  . ", " . ($o->{end} // 'open') . ")";
	};
	my %lists;
	for my $i (1 .. $t->{n})
	{
		my $out = try_sql($t, $i, "SELECT k || ' ' || v::text FROM nem_list ORDER BY k") // '';
		for (split /\n/, $out)
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
	# the same flaw seen on every node is reported once per node: keep 20
	splice(@problems, 20) if @problems > 20;
	push @{ $s->{problems} }, @problems;
}

# What a run did, for the log and the README.
sub summary_lines
{
	my ($s) = @_;
	my @l;
	for my $w ('register', 'append')
	{
		my $o = $s->{ops}{$w} // {};
		push @l, sprintf("%-8s operations: %d (ok %d, fail %d, info %d)", $w,
			$o->{invoke} // 0, $o->{ok} // 0, $o->{fail} // 0, $o->{info} // 0);
	}
	my $f = $s->{faults};
	my $total = 0;
	$total += $_ for values %$f;
	push @l, "faults injected: $total ("
	  . join(', ', map { "$_ $f->{$_}" } sort keys %$f) . ")";
	push @l, "anomalies: $s->{anomalies}";
	return @l;
}

1;
