# 165_admission_control.pl
#   Proposals wait in bounded queues.  With kommander.max_queued_proposals
#   = 4 and a partition whose apply is held up on node1 (its command waits
#   for a row a session of the test holds locked), a flood of 24
#   proposals through node1 gets K0007 for all but four while those four
#   still wait: a refusal does not wait for the queue to move.  Meanwhile
#   node1 answers queries and another partition takes proposals; the
#   refusals are counted; the queue shows its depth and peak; once the
#   lock goes, the four succeed and the queue drains.  A larger bound (a
#   reload) takes a flood of eight whole.
#
# Copyright (c) 2026, kommander developers
#
# t/165_admission_control.pl

use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use KmdTest;

my $BOUND = 4;
my $FLOOD = 24;
# the waiting proposals must not time out while the test holds them up
my @nodes = KmdTest::new_cluster(3,
	conf => "kommander.max_queued_proposals = $BOUND\nkommander.balance_interval = 0\n"
	  . "kommander.propose_timeout = 600000\n");
my ($n1, $n2, $n3) = @nodes;
KmdTest::create_kv($n1);
# a command that updates its key's row of kv while it is applied
$n1->safe_psql('postgres', q{
SELECT kmd_ddl($$CREATE FUNCTION public.held(args jsonb, ctx kommander.apply_context)
  RETURNS jsonb LANGUAGE sql AS 'UPDATE public.kv SET v = v WHERE k = ($2).key; SELECT NULL::jsonb'$$);
SELECT kmd_register_applier('held', 'public.held(jsonb, kommander.apply_context)');
});
my $other = $n1->safe_psql('postgres', 'SELECT kmd_split(1)');
KmdTest::wait_converged(\@nodes);
my $key = KmdTest::key_in($n1, 1, 'held');
my $fast = KmdTest::key_in($n1, $other, 'fast');
KmdTest::upsert_kv($n1, $key);
KmdTest::wait_converged(\@nodes);

sub counter
{
	my ($node, $name, $partition) = @_;
	my $where = defined $partition ? "partition_id = $partition" : 'partition_id IS NULL';
	return $node->safe_psql('postgres',
		"SELECT value FROM kommander.stats WHERE name = '$name' AND $where");
}

# Start $n concurrent proposals of the held command through $node; each
# writes its SQLSTATE (00000 when it succeeded) to "$dir/out.$i" when done.
sub flood
{
	my ($node, $n) = @_;
	my $dir = PostgreSQL::Test::Utils::tempdir();
	my $conninfo = KmdTest::conninfo($node);
	my @runs;
	for my $i (1 .. $n)
	{
		my $script = <<"EOS";
if psql -X -q -t -A -v VERBOSITY=verbose -d '$conninfo' \\
     -c "SELECT kmd_propose('$key', '{\\"op\\":\\"call\\",\\"applier\\":\\"held\\"}')" >/dev/null 2>'$dir/err.$i'; then
  state=00000
else
  state=\$(grep -o -m1 'ERROR:  [0-9A-Z]\\{5\\}' '$dir/err.$i' | cut -c9-13)
fi
echo "\${state:-none}" > '$dir/out.$i.tmp' && mv '$dir/out.$i.tmp' '$dir/out.$i'
EOS
		push @runs, IPC::Run::start([ 'bash', '-c', $script ]);
	}
	return { dir => $dir, n => $n, runs => \@runs };
}

# The results the flood has so far: SQLSTATE => how many
sub results
{
	my ($f) = @_;
	my %r;
	for my $i (1 .. $f->{n})
	{
		open(my $fh, '<', "$f->{dir}/out.$i") or next;
		my $line = <$fh>;
		close $fh;
		chomp $line;
		$r{$line}++;
	}
	return \%r;
}

sub done_count
{
	my ($r) = @_;
	my $n = 0;
	$n += $_ for values %$r;
	return $n;
}

# Wait until $n proposals of the flood have their answer.
sub wait_done
{
	my ($f, $n) = @_;
	my $deadline = time() + $PostgreSQL::Test::Utils::timeout_default;
	while (time() < $deadline)
	{
		return 1 if done_count(results($f)) >= $n;
		select(undef, undef, undef, 0.1);
	}
	my $r = results($f);
	diag('results so far: ' . join(', ', map { "$_: $r->{$_}" } sort keys %$r));
	return 0;
}

# The test holds the row locked on node1: node1 applies none of the
# commands (it tries again and again; node2 and node3 apply them).
my $holder = $n1->background_psql('postgres');
$holder->query_safe('BEGIN');
$holder->query_safe("SELECT 1 FROM kv WHERE k = '$key' FOR UPDATE");

my $rejected = counter($n1, 'proposals_rejected_overloaded');
my $rejected_p1 = counter($n1, 'proposals_rejected_overloaded', 1);
my $f = flood($n1, $FLOOD);
ok(wait_done($f, $FLOOD - $BOUND), 'all but the bound got an answer while the queue did not move');
my $r = results($f);
is($r->{K0007} // 0, $FLOOD - $BOUND, 'each of them K0007 (overloaded)');
ok($n1->poll_query_until('postgres',
	"SELECT value = $BOUND FROM kommander.stats WHERE name = 'queue_depth' AND partition_id = 1"),
	'the others wait in the queue of the partition, full');
is(counter($n1, 'queue_peak', 1), $BOUND, 'which never held more');
cmp_ok(counter($n1, 'queue_depth'), '>=', $BOUND, 'the node counts them too');
is(counter($n1, 'proposals_rejected_overloaded') - $rejected, $FLOOD - $BOUND, 'every refusal is counted');
is(counter($n1, 'proposals_rejected_overloaded', 1) - $rejected_p1, $FLOOD - $BOUND, 'on the partition too');

# the node is not stuck: it answers, and another partition takes proposals
is($n1->safe_psql('postgres', 'SELECT count(*) > 0 FROM kommander.partitions'), 't',
	'the node answers queries while the queue is full');
$n1->safe_psql('postgres',
	qq{SELECT kmd_propose('$fast', '{"op":"insert","table":"kv","row":{"k":"$fast","v":"1"}}')});
is($n1->safe_psql('postgres', "SELECT v FROM kv WHERE k = '$fast'"), '1',
	'another partition takes proposals meanwhile');

# the lock goes: the four go through, the queue drains
$holder->query_safe('COMMIT');
ok(wait_done($f, $FLOOD), 'the queued proposals are answered once the partition moves');
$_->finish for @{ $f->{runs} };
$r = results($f);
is($r->{'00000'} // 0, $BOUND, 'and they succeeded');
ok($n1->poll_query_until('postgres',
	"SELECT value = 0 FROM kommander.stats WHERE name = 'queue_depth' AND partition_id IS NULL"),
	'the queue drained');

# a larger bound, by reload, takes a flood of eight whole
$n1->append_conf('postgresql.conf', "kommander.max_queued_proposals = 64\n");
$n1->reload;
ok($n1->poll_query_until('postgres', "SELECT current_setting('kommander.max_queued_proposals') = '64'"),
	'the bound is a reloadable setting');
$holder->query_safe('BEGIN');
$holder->query_safe("SELECT 1 FROM kv WHERE k = '$key' FOR UPDATE");
$rejected = counter($n1, 'proposals_rejected_overloaded');
$f = flood($n1, 8);
ok($n1->poll_query_until('postgres',
	"SELECT value = 8 FROM kommander.stats WHERE name = 'queue_depth' AND partition_id = 1"),
	'below the bound all eight wait');
$holder->query_safe('COMMIT');
ok(wait_done($f, 8), 'and are answered');
$_->finish for @{ $f->{runs} };
is(results($f)->{'00000'} // 0, 8, 'all eight succeeded');
is(counter($n1, 'proposals_rejected_overloaded') - $rejected, 0, 'nothing was refused');
$holder->quit;

done_testing();
