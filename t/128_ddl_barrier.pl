# 128_ddl_barrier.pl
#   A kmd_ddl is applied at the same point of every partition's log on
#   every node.  Node3 holds a lock on a row, so one partition lags there
#   behind the system partition; rows the other nodes applied before a
#   CHECK constraint came must not meet it on node3.  Then clients write
#   rows the constraint refuses, on every partition through every node,
#   while the constraint is added and dropped, and while partitions split
#   and merge: every node ends with the same rows and the same schema.
#
# Copyright (c) 2026, kommander developers
#
# t/128_ddl_barrier.pl

use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use KmdTest;

my @nodes = KmdTest::new_cluster(3);
my ($n1, $n2, $n3) = @nodes;
KmdTest::create_kv($n1);
$n1->safe_psql('postgres', 'SELECT count(*) FROM kmd_create_partitions(4)');
KmdTest::wait_converged(\@nodes);

my $add = q{SELECT kmd_ddl('ALTER TABLE public.kv ADD CONSTRAINT no_x CHECK (v <> ''x'') NOT VALID')};
my $drop = q{SELECT kmd_ddl('ALTER TABLE public.kv DROP CONSTRAINT no_x')};
my $rows = q{SELECT coalesce(string_agg(k || '=' || v, ',' ORDER BY k), '') FROM kv};
my $schema = q{SELECT count(*) FROM pg_constraint WHERE conrelid = 'public.kv'::regclass AND conname = 'no_x'};
my $part = $n1->safe_psql('postgres', 'SELECT min(partition_id) FROM kommander.partitions WHERE partition_id > 0');
my $hot = KmdTest::key_in($n1, $part, 'hot');
my @late = map { KmdTest::key_in($n1, $part, "late$_-") } (1 .. 3);
sub upsert
{
	my ($key, $v) = @_;
	return "SELECT kmd_propose('$key', '{\"op\":\"upsert\",\"table\":\"kv\",\"row\":{\"k\":\"$key\",\"v\":\"$v\"}}')";
}

# --- one partition lags on node3, behind a row lock ---
$n1->safe_psql('postgres', upsert($hot, 'a'));
ok(KmdTest::wait_converged(\@nodes), 'every node has the hot row');
my $locker = $n3->background_psql('postgres');
$locker->query_safe('BEGIN');
$locker->query_safe("SELECT * FROM kv WHERE k = '$hot' FOR UPDATE");
$n1->safe_psql('postgres', upsert($hot, 'b'));
ok($n3->poll_query_until('postgres',
		"SELECT stalled IS NOT NULL FROM kommander.partitions WHERE partition_id = $part"),
	"node3 cannot apply partition $part past the locked row");
$n1->safe_psql('postgres', upsert($_, 'x')) for @late;
like($n1->safe_psql('postgres', $add), qr/^\d+$/, 'the constraint comes after the x rows, through node1');
my (undef, $code) = KmdTest::error_of($n1, upsert($late[0] . 'z', 'x'));
is($code, '23514', 'a row proposed after the constraint is refused by it');
is($n3->safe_psql('postgres', $schema), '0',
	'node3 has not applied the constraint while the partition is held back');
$locker->query_safe('COMMIT');
$locker->quit;
ok(KmdTest::wait_converged(\@nodes), 'node3 applies everything once the lock is gone');
my $want = $n1->safe_psql('postgres', $rows);
like($want, qr/\Q$late[0]\E=x/, 'node1 kept the x rows written before the constraint');
for my $node ($n2, $n3)
{
	is($node->safe_psql('postgres', $rows), $want, $node->name . ' has the same rows');
	is($node->safe_psql('postgres', $schema), '1', $node->name . ' has the constraint');
}
like($n1->safe_psql('postgres', $drop), qr/^\d+$/, 'the constraint is dropped');

# --- writes the constraint refuses, on every partition, while it comes and goes ---
my $dir = PostgreSQL::Test::Utils::tempdir();
my @loads;
for my $i (0 .. 8)
{
	my $v = $i % 3 == 0 ? 'y' : 'x';
	push @loads, KmdTest::start_load($nodes[$i % 3], $dir, "c$i",
		qq({"op":"upsert","table":"kv","row":{"k":"KEY","v":"$v"}}));
}
$n1->poll_query_until('postgres', 'SELECT count(*) >= 60 FROM kv') or die 'no load';
my $done = 0;
for my $round (1 .. 4)
{
	for my $ddl ($add, $drop)
	{
		my $via = $nodes[ ($round + ($ddl eq $add ? 0 : 1)) % 3 ];
		my ($rc, $out, $err) = $via->psql('postgres', $ddl);
		$done++ if $rc == 0;
		diag($err) if $rc != 0;
	}
}
is($done, 8, 'every DDL completes while proposals go on');

# --- and while partitions split and merge: no partition waits for good ---
my $conninfo = KmdTest::conninfo($n1);
(my $add_sql = $add) =~ s/'/'"'"'/g;
(my $drop_sql = $drop) =~ s/'/'"'"'/g;
my $ddls = IPC::Run::start([ 'bash', '-c', <<"EOS" ]);
ok=0
for i in 1 2 3 4 5 6; do
  psql -X -q -t -A -d '$conninfo' -c '$add_sql' >/dev/null && ok=\$((ok + 1))
  psql -X -q -t -A -d '$conninfo' -c '$drop_sql' >/dev/null && ok=\$((ok + 1))
done
echo \$ok > '$dir/ddl.ok'
EOS
my $cycles = 0;
for my $cycle (1 .. 3)
{
	my $right = $n2->safe_psql('postgres', "SELECT kmd_split($part)");
	$cycles++ if $n2->safe_psql('postgres', "SELECT kmd_merge($part, $right)") eq $part;
}
$ddls->finish;
is($cycles, 3, 'three splits and merges complete while DDL comes and goes');
is(slurp_file("$dir/ddl.ok"), "12\n", 'every DDL completes while partitions split and merge');
open(my $fh, '>', "$dir/stop");
close $fh;
$_->finish for @loads;
my @bad = grep { !/^23514 / } map { KmdTest::load_errors($dir, "c$_") } (0 .. 8);
is(join("\n", @bad), '', 'clients met only the constraint and the errors a client may meet');
my $refused = grep { /^23514 / } map { -e "$dir/c$_.codes" ? split(/\n/, slurp_file("$dir/c$_.codes")) : () } (0 .. 8);
ok($refused > 0, "the constraint refused some rows ($refused)");

ok(KmdTest::wait_converged(\@nodes), 'every node applies everything');
is($_->safe_psql('postgres', $schema), '0', $_->name . ' has the same schema') for @nodes;
KmdTest::same_state(\@nodes);
ok($n1->safe_psql('postgres', q{SELECT count(*) FROM kv WHERE v = 'x'}) > 0,
	'x rows written while no constraint stood are kept');

done_testing();
