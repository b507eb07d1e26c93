# 125_ddl_under_load.pl
#   kmd_ddl on a table that clients keep proposing into: the DDL and the
#   proposals all complete.  A proposer once kept a lock on the table while
#   it waited for its entry to be applied, and the apply worker's ALTER
#   TABLE waited for that lock: the DDL and every proposal in flight ended
#   with K0003 once kommander.propose_timeout passed.
#
# Copyright (c) 2026, kommander developers
#
# t/125_ddl_under_load.pl

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

my $dir = PostgreSQL::Test::Utils::tempdir();
my @loads;
for my $i (0 .. 15)
{
	push @loads, KmdTest::start_load($nodes[$i % 3], $dir, "c$i",
		'{"op":"upsert","table":"kv","row":{"k":"KEY","v":"y"}}');
}
$n1->poll_query_until('postgres', 'SELECT count(*) >= 60 FROM kv') or die 'no load';

my $done = 0;
for my $round (1 .. 3)
{
	for my $ddl (q{ALTER TABLE public.kv ADD CONSTRAINT no_x CHECK (v <> ''x'')},
		q{ALTER TABLE public.kv DROP CONSTRAINT no_x})
	{
		my ($rc, $out, $err) = $n1->psql('postgres', "SELECT kmd_ddl('$ddl')");
		$done++ if $rc == 0;
		diag($err) if $rc != 0;
	}
}
is($done, 6, 'every DDL completes while proposals go on');

open(my $fh, '>', "$dir/stop");
close $fh;
$_->finish for @loads;

my @failed = map { -e "$dir/c$_.codes" ? split(/\n/, slurp_file("$dir/c$_.codes")) : () } (0 .. 15);
is(join("\n", @failed), '', 'no proposal failed or timed out while the DDL ran');

ok(KmdTest::wait_converged(\@nodes), 'every node applies everything');
my $schema = q{SELECT count(*) FROM pg_constraint WHERE conrelid = 'public.kv'::regclass AND conname = 'no_x'};
is($_->safe_psql('postgres', $schema), '0', $_->name . ' has the same schema') for @nodes;
my $rows = q{SELECT md5(string_agg(k || '=' || v, ',' ORDER BY k)) FROM kv};
my $want = $n1->safe_psql('postgres', $rows);
is($_->safe_psql('postgres', $rows), $want, $_->name . ' has the same rows') for ($n2, $n3);

done_testing();
