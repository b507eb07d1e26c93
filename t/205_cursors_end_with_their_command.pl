# 205_cursors_end_with_their_command.pl
#   A cursor an applier opens and does not close ends with its command.
#   Left open, it lived to the end of the apply transaction: a later
#   command fetched from it on a node that applied both in one transaction
#   (node3 here, which a session holds back until both are committed) and
#   failed on one that committed between them (node1), and the nodes'
#   rows differed.
#
# Copyright (c) 2026, kommander developers
#
# t/205_cursors_end_with_their_command.pl

use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use KmdTest;

my @nodes = KmdTest::new_cluster(3, conf => "kommander.balance_interval = 0\n");
my ($n1, $n2, $n3) = @nodes;
KmdTest::create_kv($n1);
$n1->safe_psql('postgres', q{
SELECT kmd_ddl($$
CREATE FUNCTION public.opener(args jsonb, ctx kommander.apply_context) RETURNS jsonb
LANGUAGE plpgsql AS 'DECLARE c refcursor := ''left_open'';
BEGIN OPEN c FOR SELECT k FROM public.kv ORDER BY k; RETURN NULL; END';
CREATE FUNCTION public.fetcher(args jsonb, ctx kommander.apply_context) RETURNS jsonb
LANGUAGE plpgsql AS 'DECLARE c refcursor := ''left_open''; x text;
BEGIN FETCH c INTO x; UPDATE public.kv SET v = ''fetched '' || x WHERE k = ctx.key; RETURN NULL; END'
$$);
SELECT kmd_register_applier('opener', 'public.opener(jsonb, kommander.apply_context)');
SELECT kmd_register_applier('fetcher', 'public.fetcher(jsonb, kommander.apply_context)');
});

# node3 holds partition 1 back while both commands commit
my ($locker, $held) = KmdTest::hold_back($n1, $n3, [1]);
my $key = KmdTest::key_in($n1, 1, 'c');
KmdTest::upsert_kv($n1, $key);
$n1->safe_psql('postgres', qq{SELECT kmd_propose('$key', '{"op":"call","applier":"opener"}')});
my ($rc, $out, $err) = $n1->psql('postgres',
	qq{SELECT kmd_propose('$key', '{"op":"call","applier":"fetcher"}')},
	extra_params => [ '-v', 'VERBOSITY=verbose' ]);
like($err, qr/34000: cursor "left_open" does not exist/, 'the fetch fails on node1');

$locker->query_safe('ROLLBACK');
$locker->quit;
ok(KmdTest::wait_converged(\@nodes), 'node3 applies both, in one transaction');
is($n3->safe_psql('postgres', "SELECT v FROM kv WHERE k = '$key'"), 'x',
	'where the fetch fails too');
KmdTest::same_state(\@nodes);

done_testing();
