# 190_request_ids_apply_once_across_failover.pl
#   Idempotent proposals across a failover: three clients propose commands
#   that carry request ids, one through each node; the leader is killed
#   with proposals in flight; every proposal that got no answer is retried
#   with its id through another node until it answers, and so is every one
#   that was acknowledged.  Each command is applied exactly once, on every
#   node, and a retry answers with the first outcome's index; after a split
#   moved its key, with the partition whose log holds that index too.
#
# Copyright (c) 2026, kommander developers
#
# t/190_request_ids_apply_once_across_failover.pl

use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use KmdTest;

my @nodes = KmdTest::new_cluster(3);
my %by_name = map { $_->name => $_ } @nodes;

# bump(): one more on its key's row each time it is applied; a command
# applied twice leaves 2
$nodes[0]->safe_psql('postgres', q{
SELECT kmd_ddl('CREATE TABLE public.tally (k text PRIMARY KEY, n bigint NOT NULL)');
SELECT kmd_register_table('public.tally');
SELECT kmd_ddl($$CREATE FUNCTION public.bump(args jsonb, ctx kommander.apply_context) RETURNS jsonb
LANGUAGE sql AS 'INSERT INTO public.tally VALUES (ctx.key, 1)
  ON CONFLICT (k) DO UPDATE SET n = public.tally.n + 1;
SELECT to_jsonb(ctx.index)'$$);
SELECT kmd_register_applier('bump', 'public.bump(jsonb, kommander.apply_context)');
});
KmdTest::wait_converged(\@nodes);

my $command = '{"op":"call","applier":"bump","args":{},"request_id":"id-KEY"}';
sub command_for
{
	my ($key) = @_;
	(my $c = $command) =~ s/KEY/$key/g;
	return $c;
}

my $leader_name = KmdTest::leader_of($nodes[0], 1);
my $leader = $by_name{$leader_name};
my @others = grep { $_->name ne $leader_name } @nodes;
note "leader of partition 1 is $leader_name";

# the leader's client stops on its own file: once its node is down it
# would only count refused connections
my $dir = PostgreSQL::Test::Utils::tempdir();
my $ldir = PostgreSQL::Test::Utils::tempdir();
my %origin = (a => $others[0], b => $others[1], l => $leader);
my @clients = (KmdTest::start_load($others[0], $dir, 'a', $command),
	KmdTest::start_load($others[1], $dir, 'b', $command),
	KmdTest::start_load($leader, $ldir, 'l', $command));
sub dir_of { return $_[0] eq 'l' ? $ldir : $dir }

ok($others[0]->poll_query_until('postgres',
	q{SELECT count(*) FILTER (WHERE k LIKE 'a-%') >= 20 AND count(*) FILTER (WHERE k LIKE 'b-%') >= 20
	    AND count(*) FILTER (WHERE k LIKE 'l-%') >= 20 FROM tally}),
	'the three clients are making progress');

$leader->stop('immediate');
open(my $fh, '>', "$ldir/stop"); close $fh;
$others[0]->poll_query_until('postgres',
	"SELECT leader_name IS NOT NULL AND leader_name <> '$leader_name' FROM kommander.partitions WHERE partition_id = 1")
  or die 'no new leader';
my $before = scalar(KmdTest::acked_keys($dir, 'a'));
ok($others[0]->poll_query_until('postgres',
	"SELECT count(*) >= $before + 20 FROM tally WHERE k LIKE 'a-%'"),
	'proposals with ids succeed again after the failover');
open($fh, '>', "$dir/stop"); close $fh;
$_->finish for @clients;
is(join("\n", map { KmdTest::load_errors($dir, $_) } qw(a b)), '',
	'the followers\' clients met no error but timeouts and lost connections');

# What each client proposed: acknowledged, or without an answer (an error)
my (%acked, %unanswered);
for my $tag (qw(a b l))
{
	$acked{$_} = $tag for KmdTest::acked_keys(dir_of($tag), $tag);
	if (open(my $codes, '<', dir_of($tag) . "/$tag.codes"))
	{
		for (<$codes>)
		{
			my (undef, $key) = split;
			$unanswered{$key} = $tag;
		}
		close $codes;
	}
}
ok(scalar(keys %unanswered) > 0,
	scalar(keys %unanswered) . ' proposals got no answer, ' . scalar(keys %acked) . ' were acknowledged');

# Retry one through a live node other than the one first used, until it
# answers; returns the answer's index
sub retry
{
	my ($key, $tag) = @_;
	my @through = grep { $_ != $origin{$tag} } @others;
	my $sql = "SELECT kmd_propose_result(" . KmdTest::quote($key) . ", "
	  . KmdTest::quote(command_for($key)) . ")->>'index'";
	for my $try (1 .. 20)
	{
		my ($rc, $out, $err) = $through[$try % @through]->psql('postgres', $sql,
			extra_params => [ '-v', 'VERBOSITY=verbose' ]);
		return $out if $rc == 0;
		die "retry of $key failed: $err" if $err !~ /ERROR:\s+(K000[1-4]|08...|57P0.)/;
	}
	die "retry of $key got no answer";
}

for my $key (sort keys %unanswered)
{
	retry($key, $unanswered{$key});
}
pass('every proposal without an answer answered when retried with its id');

# A retry of an acknowledged proposal answers with the first entry's index,
# which bump() returned, through either live node (one statement each)
for my $through (@others)
{
	my $values = join(',', map { '(' . KmdTest::quote($_) . ', ' . KmdTest::quote(command_for($_)) . ')' }
		sort keys %acked);
	is($through->safe_psql('postgres', qq{
		SELECT count(*) FROM (VALUES $values) AS a(k, c)
		 WHERE kmd_propose_result(a.k, a.c::jsonb)->>'index' IS DISTINCT FROM
		       (SELECT result::jsonb->>'result' FROM kommander.requests r WHERE r.key = a.k)}),
		'0', 'retries of the ' . scalar(keys %acked) . ' acknowledged proposals through '
		  . $through->name . ' answer with their first index');
}

# every node, the old leader too once it is back, applied each exactly once
$leader->start;
KmdTest::wait_converged(\@nodes) or die 'no convergence';
my @all = (keys %acked, keys %unanswered);
for my $node (@nodes)
{
	is(KmdTest::missing_keys($node, 'tally', \@all), 0,
		$node->name . ' applied every proposal (' . scalar(@all) . ')');
	is($node->safe_psql('postgres', 'SELECT count(*) FROM tally WHERE n <> 1'), '0',
		$node->name . ' applied none twice');
	is($node->safe_psql('postgres', 'SELECT count(*) FROM tally'), scalar(@all),
		$node->name . ' applied nothing else');
}
KmdTest::same_state(\@nodes);
is(join('', map { $_->safe_psql('postgres',
	"SELECT md5(string_agg(key || request_id || idx || sqlstate, ',' ORDER BY key)) FROM kommander.requests") } @nodes),
	$nodes[0]->safe_psql('postgres',
	"SELECT md5(string_agg(key || request_id || idx || sqlstate, ',' ORDER BY key)) FROM kommander.requests") x 3,
	'every node remembers the same request ids and outcomes');

# a retry after a split moved the key to another partition answers the
# first outcome whole: its index, and the partition whose log holds it
my $p = $nodes[0]->safe_psql('postgres', 'SELECT min(partition_id) FROM kommander.partitions WHERE partition_id > 0');
my $cmd = q{jsonb_build_object('op', 'call', 'applier', 'bump', 'args', '{}'::jsonb, 'request_id', 'split-' || k)};
is($nodes[0]->safe_psql('postgres', qq{
CREATE TEMP TABLE firsts AS
SELECT k, kmd_propose_result(k, $cmd) AS first
  FROM (SELECT 'split' || i AS k FROM generate_series(1, 40) i) s
 WHERE (SELECT partition_id FROM kmd_route(s.k)) = $p;
SELECT kmd_split($p) > 0;
SELECT count(*) FILTER (WHERE (SELECT partition_id FROM kmd_route(k)) <> $p) > 0,
       count(*) FILTER (WHERE first->>'partition' <> '$p'),
       count(*) FILTER (WHERE retry <> first)
  FROM (SELECT k, first, kmd_propose_result(k, $cmd) AS retry FROM firsts) r;}),
	"t\nt|0|0", 'after a split, each retry answers its first outcome, partition included');

done_testing();
