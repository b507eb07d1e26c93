# 191_leases_across_failover.pl
#   Leases on a three-node cluster: a lease kept alive through a follower
#   survives the crash of its partition's leader, with its row; once it is
#   no longer kept alive, the new leader expires it and a committed entry
#   deletes its row on every node, the crashed one too once back.  A lease
#   never kept alive takes its rows with it everywhere; a lease revoked
#   through a follower is gone everywhere at once, and so are its rows
#   that a split put in another partition.
#
# Copyright (c) 2026, kommander developers
#
# t/191_leases_across_failover.pl

use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use KmdTest;

my @nodes = KmdTest::new_cluster(3);
my %by_name = map { $_->name => $_ } @nodes;

$nodes[0]->safe_psql('postgres', q{
SELECT kmd_ddl('CREATE TABLE public.claims (job text PRIMARY KEY, owner text)');
SELECT kmd_register_table('public.claims');
});
KmdTest::wait_converged(\@nodes);

# A lease for the partition of $key, granted through $node, and the rows
# @jobs (keys of that partition) attached to it
sub lease_with_rows
{
	my ($node, $ttl, @jobs) = @_;
	my $id = $node->safe_psql('postgres', "SELECT kmd_lease_grant('$ttl', '$jobs[0]')");
	for my $job (@jobs)
	{
		$node->safe_psql('postgres', qq{SELECT kmd_propose('$job',
			'{"op":"insert","table":"claims","row":{"job":"$job","owner":"w"},"lease":$id}')});
	}
	return $id;
}

sub rows_on
{
	my ($node, $like) = @_;
	return $node->safe_psql('postgres', "SELECT count(*) FROM claims WHERE job LIKE '$like'");
}

# --- kept alive across the crash of the leader ---
my $kept = lease_with_rows($nodes[0], '8 s', 'kept-1');
my $partition = $nodes[0]->safe_psql('postgres', "SELECT partition_id FROM kommander.leases WHERE id = $kept");
my $leader_name = KmdTest::leader_of($nodes[0], $partition);
my $leader = $by_name{$leader_name};
my @others = grep { $_->name ne $leader_name } @nodes;
note "lease $kept lives in partition $partition, led by $leader_name";

# the client keeps it alive through a follower, every 300 ms
my $dir = PostgreSQL::Test::Utils::tempdir();
my $conninfo = KmdTest::conninfo($others[0]);
my $client = IPC::Run::start([ 'bash', '-c', <<"EOS" ]);
while [ ! -e '$dir/stop' ]; do
  if psql -X -q -t -A -d '$conninfo' -c "SET kommander.propose_timeout = 2000" -c "SELECT kmd_lease_keepalive($kept)" >/dev/null 2>>'$dir/errors'; then
    echo ok >> '$dir/kept'
  fi
  sleep 0.3
done
EOS
sub keepalives
{
	open(my $fh, '<', "$dir/kept") or return 0;
	my @lines = <$fh>;
	close $fh;
	return scalar(@lines);
}
$others[0]->poll_query_until('postgres',
	"SELECT count(*) >= 5 FROM regexp_split_to_table(pg_read_file('$dir/kept'), E'\\n') l WHERE l = 'ok'")
  or die 'no keepalive succeeded';

$leader->stop('immediate');
my $at_crash = keepalives();
$others[0]->poll_query_until('postgres',
	"SELECT leader_name IS NOT NULL AND leader_name <> '$leader_name' FROM kommander.partitions WHERE partition_id = $partition")
  or die 'no new leader';
# twice the TTL of keepalives (300 ms apart at least) after the crash
ok($others[0]->poll_query_until('postgres',
	"SELECT count(*) >= $at_crash + 50 FROM regexp_split_to_table(pg_read_file('$dir/kept'), E'\\n') l WHERE l = 'ok'"),
	'the lease is kept alive through the new leader');
for my $node (@others)
{
	is($node->safe_psql('postgres', "SELECT count(*) FROM kommander.leases WHERE id = $kept"), '1',
		$node->name . ' still has the lease kept alive across the crash');
	is(rows_on($node, 'kept-%'), '1', $node->name . ' still has its row');
}

# no longer kept alive: the new leader expires it, and its row goes
open(my $fh, '>', "$dir/stop"); close $fh;
$client->finish;
for my $node (@others)
{
	ok($node->poll_query_until('postgres',
		"SELECT count(*) = 0 FROM claims WHERE job LIKE 'kept-%'"),
		$node->name . ': the lease no longer kept alive expired and took its row');
	is($node->safe_psql('postgres', "SELECT count(*) FROM kommander.leases WHERE id = $kept"), '0',
		$node->name . ' has no lease left');
}
$leader->start;
KmdTest::wait_converged(\@nodes) or die 'no convergence';
is(rows_on($leader, 'kept-%'), '0', "$leader_name, back, applied the expiry too");
is($others[0]->safe_psql('postgres', "SELECT count(*) FROM kommander.lease_rows"), '0',
	'no attachment is left');

# --- never kept alive: its rows go on every node ---
my $lapsed = lease_with_rows($nodes[1], '3 s', 'lapsed-1', 'lapsed-2', 'lapsed-3');
pass('three rows attached to a lease of 3 s, never kept alive');
for my $node (@nodes)
{
	ok($node->poll_query_until('postgres', "SELECT count(*) = 0 FROM claims WHERE job LIKE 'lapsed-%'"),
		$node->name . ': the lease expired and its rows are gone');
}
my ($rc, $code) = KmdTest::error_of($nodes[2], "SELECT kmd_lease_keepalive($lapsed)");
is($code, 'K0013', 'a keepalive of the expired lease fails with K0013');

# --- revoked through a follower: gone everywhere ---
my $revoked = lease_with_rows($nodes[0], '10 min', 'revoked-1', 'revoked-2');
$partition = $nodes[0]->safe_psql('postgres', "SELECT partition_id FROM kommander.leases WHERE id = $revoked");
$leader_name = KmdTest::leader_of($nodes[0], $partition);
my $follower = (grep { $_->name ne $leader_name } @nodes)[0];
$follower->safe_psql('postgres', "SELECT kmd_lease_revoke($revoked)");
is(rows_on($follower, 'revoked-%'), '0', $follower->name . ' (a follower) revoked it and its rows at once');
KmdTest::wait_converged(\@nodes) or die 'no convergence';
for my $node (@nodes)
{
	is($node->safe_psql('postgres', "SELECT count(*) FROM kommander.leases WHERE id = $revoked")
		  . rows_on($node, 'revoked-%'), '00', $node->name . ' has neither the lease nor its rows');
}

# --- a split parts a lease from some of its rows: they go all the same ---
my @split_jobs = map { "split-$_" } (1 .. 20);
my $parted = lease_with_rows($nodes[0], '10 min', @split_jobs);
is($nodes[0]->safe_psql('postgres', 'SELECT kmd_split(1)'), '2', 'partition 1 split in two');
KmdTest::wait_leaders($_) for @nodes;
is($nodes[0]->safe_psql('postgres',
	q{SELECT count(DISTINCT r.partition_id) FROM claims c, LATERAL kmd_route(c.job) r WHERE c.job LIKE 'split-%'}),
	'2', 'the rows of the lease now lie in two partitions');
$nodes[2]->safe_psql('postgres', "SELECT kmd_lease_revoke($parted)");
for my $node (@nodes)
{
	ok($node->poll_query_until('postgres', "SELECT count(*) = 0 FROM claims WHERE job LIKE 'split-%'"),
		$node->name . ': every row of the revoked lease is gone, in both partitions');
	ok($node->poll_query_until('postgres', "SELECT count(*) = 0 FROM kommander.lease_rows"),
		$node->name . ': and so are its attachments');
}
KmdTest::wait_converged(\@nodes) or die 'no convergence';
KmdTest::same_state(\@nodes);

done_testing();
