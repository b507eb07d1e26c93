# 020_failover_under_load.pl
#   Crash the leader with pg_ctl -m immediate while the other nodes keep
#   proposing: a new leader takes over, no acknowledged write is lost, no
#   write is applied twice, and the crashed node catches up when it returns.
#   Then the same for a follower, and a restart of the whole cluster.
#
# Copyright (c) 2026, kommander developers
#
# t/020_failover_under_load.pl

use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);
use KmdTest;

my @nodes = KmdTest::new_cluster(3);
my %by_name = map { $_->name => $_ } @nodes;

# record(): every applied entry adds one event row for its key, or counts
# one more on it; an entry applied twice would leave a count of 2.  The
# events are a control table: an applier writes nothing else.
$nodes[0]->safe_psql('postgres', q{
SELECT kmd_ddl('CREATE TABLE public.events (id text PRIMARY KEY, n bigint NOT NULL)');
SELECT kmd_register_table('public.events');
SELECT kmd_ddl($$CREATE FUNCTION public.record(args jsonb, ctx kommander.apply_context) RETURNS jsonb
LANGUAGE sql AS 'INSERT INTO public.events VALUES (ctx.key, 1)
  ON CONFLICT (id) DO UPDATE SET n = public.events.n + 1;
SELECT ''null''::jsonb'$$);
SELECT kmd_register_applier('record', 'public.record(jsonb, kommander.apply_context)');
});
KmdTest::wait_converged(\@nodes);

my $dir = PostgreSQL::Test::Utils::tempdir();
my $stop = "$dir/stop";

sub start_load
{
	my ($node, $tag) = @_;
	return KmdTest::start_load($node, $dir, $tag, '{"op":"call","applier":"record","args":{}}');
}

sub acked
{
	my ($tag) = @_;
	return KmdTest::acked_keys($dir, $tag);
}

# Wait until $node has applied at least $n writes of client $tag.
sub wait_applied
{
	my ($node, $tag, $n) = @_;
	return $node->poll_query_until('postgres',
		"SELECT count(*) >= $n FROM events WHERE id LIKE '$tag-%'");
}

sub check_no_loss
{
	my ($label, @check_nodes) = @_;
	KmdTest::wait_converged(\@check_nodes) or die "no convergence";
	my @keys = (acked('a'), acked('b'));
	my $list = join(',', map { "('$_')" } @keys);
	my $first;
	for my $node (@check_nodes)
	{
		my $missing = $node->safe_psql('postgres',
			"SELECT count(*) FROM (VALUES $list) AS k(id) WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.id = k.id)");
		is($missing, '0', "$label: " . $node->name . ' has every acknowledged write (' . scalar(@keys) . ')');
		my $twice = $node->safe_psql('postgres', 'SELECT count(*) FROM events WHERE n <> 1');
		is($twice, '0', "$label: " . $node->name . ' applied no entry twice');
		my $digest = $node->safe_psql('postgres', 'SELECT md5(string_agg(id, \',\' ORDER BY id)) FROM events');
		$first //= $digest;
		is($digest, $first, "$label: " . $node->name . ' has the same events');
	}
}

# --- the leader of partition 1 crashes under load from the two others ---
my $leader_name = KmdTest::leader_of($nodes[0], 1);
my $leader = $by_name{$leader_name};
my @others = grep { $_->name ne $leader_name } @nodes;
note "leader of partition 1 is $leader_name";

my $la = start_load($others[0], 'a');
my $lb = start_load($others[1], 'b');
ok(wait_applied($others[0], 'a', 30) && wait_applied($others[0], 'b', 30),
	'both clients are making progress');

my $t0 = time;
$leader->stop('immediate');
$others[0]->poll_query_until('postgres',
	"SELECT leader_name IS NOT NULL AND leader_name <> '$leader_name' FROM kommander.partitions WHERE partition_id = 1")
  or die 'no new leader';
note sprintf('new leader of partition 1 after %.2f s (election timeout %d ms)',
	time - $t0, $KmdTest::ELECTION_TIMEOUT_MS);
my $before = scalar(acked('a'));
ok(wait_applied($others[0], 'a', $before + 30), 'proposals succeed again after the failover');

# the old leader returns and catches up
$leader->start;
ok(wait_applied($others[0], 'b', scalar(acked('b')) + 20), 'load goes on while the old leader returns');
open(my $fh, '>', $stop); close $fh;
$la->finish;
$lb->finish;
check_no_loss('leader crash', @nodes);

# --- a follower crashes and returns ---
unlink $stop;
my $follower = (grep { $_->name ne KmdTest::leader_of($nodes[0], 1) } @nodes)[0];
my @live = grep { $_ != $follower } @nodes;
$la = start_load($live[0], 'a2');
ok(wait_applied($live[0], 'a2', 20), 'load before the follower crash');
$follower->stop('immediate');
ok(wait_applied($live[0], 'a2', scalar(acked('a2')) + 20), 'load goes on with one follower down');
$follower->start;
open($fh, '>', $stop); close $fh;
$la->finish;
{
	my @extra = acked('a2');
	my $list = join(',', map { "('$_')" } @extra);
	KmdTest::wait_converged(\@nodes);
	for my $node (@nodes)
	{
		is($node->safe_psql('postgres',
			"SELECT count(*) FROM (VALUES $list) AS k(id) WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.id = k.id)"),
			'0', 'follower crash: ' . $node->name . ' has every acknowledged write');
	}
}

# --- the whole cluster restarts and keeps everything ---
my $count = $nodes[0]->safe_psql('postgres', 'SELECT count(*) FROM events');
$_->stop('immediate') for @nodes;
$_->start for @nodes;
KmdTest::wait_leaders($_) for @nodes;
for my $node (@nodes)
{
	is($node->safe_psql('postgres', 'SELECT count(*) FROM events'), $count,
		'after a cluster restart ' . $node->name . ' keeps every event');
}
$nodes[2]->safe_psql('postgres',
	q{SELECT kmd_propose('after-restart', '{"op":"call","applier":"record","args":{}}')});
KmdTest::wait_converged(\@nodes);
for my $node (@nodes)
{
	is($node->safe_psql('postgres', "SELECT count(*) FROM events WHERE id = 'after-restart'"), '1',
		$node->name . ' applies new writes after the restart');
}

is(join("\n", map { KmdTest::load_errors($dir, $_) } qw(a b a2)), '',
	'the clients met no error but timeouts and lost connections');

done_testing();
