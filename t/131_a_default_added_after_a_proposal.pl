# 131_a_default_added_after_a_proposal.pl
#   An insert prepared before a kmd_ddl added a column with a default that
#   is not immutable, whose entry comes after that DDL in its partition's
#   log, would take each node's own value of the default: it fails on
#   every node alike (40001), and proposed again, with the same request
#   id, it stores one value everywhere.  The proposer is held between deciding its defaults and
#   proposing by a default of its own that waits on an advisory lock.
#
# Copyright (c) 2026, kommander developers
#
# t/131_a_default_added_after_a_proposal.pl

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
$n1->safe_psql('postgres', q{
SELECT kmd_ddl($$CREATE FUNCTION public.held_now() RETURNS timestamptz LANGUAGE plpgsql AS
  'BEGIN PERFORM pg_advisory_lock(4242); PERFORM pg_advisory_unlock(4242); RETURN now(); END'$$);
SELECT kmd_ddl($$CREATE TABLE public.racy (k text PRIMARY KEY, a timestamptz DEFAULT public.held_now())$$);
SELECT kmd_register_table('public.racy');
});
KmdTest::wait_converged(\@nodes);

# node1's proposer of the insert of row $key ($fields: more of the
# command) decides its defaults, and waits on the advisory lock;
# meanwhile node2 runs $ddl, which gives column $col a default that is
# not immutable, and node3 applies it (node1's apply waits for the
# proposer's lock on racy).  The proposal then goes on, into the log after
# the DDL: it must fail on every node alike.  Counts as six tests.
my $lock = $n1->background_psql('postgres');
sub held_insert
{
	my ($key, $fields, $ddl, $col, $what) = @_;
	my ($in, $out, $err) = ('', '', '');
	$lock->query_safe('SELECT pg_advisory_lock(4242)');
	my $proposer = IPC::Run::start([ 'psql', '-X', '-At', '-d', KmdTest::conninfo($n1), '-c',
		qq{SELECT kmd_propose('$key', '{"op":"insert","table":"racy","row":{"k":"$key"}$fields}')} ],
		'<', \$in, '>', \$out, '2>', \$err);
	$n1->poll_query_until('postgres',
		qq{SELECT count(*) = 1 FROM pg_stat_activity WHERE query LIKE '%kmd_propose(''$key''%' AND wait_event = 'advisory'})
	  or die 'the proposer did not wait';
	$n2->safe_psql('postgres', $ddl);
	$n3->poll_query_until('postgres',
		qq{SELECT count(*) = 1 FROM pg_attribute WHERE attrelid = 'public.racy'::regclass AND attname = '$col'})
	  or die 'node3 did not apply the DDL';
	$lock->query_safe('SELECT pg_advisory_unlock(4242)');
	$proposer->finish;
	like($err, qr/column "$col" of public.racy has a default that the command's proposer did not decide/,
		"$what fails on its proposer");
	like($err, qr/HINT:  Propose the command again/, 'with the hint the apply worker raised it with');
	ok(KmdTest::wait_converged(\@nodes), 'every node applies it');
	is($_->safe_psql('postgres', "SELECT count(*) FROM racy WHERE k = '$key'"), '0',
		$_->name . ' stores no row of it') for @nodes;
	return;
}
held_insert('r1', ',"request_id":"req-r1"',
	q{SELECT kmd_ddl('ALTER TABLE public.racy ADD COLUMN b uuid DEFAULT gen_random_uuid()')}, 'b',
	'the insert');

# proposed again, with the same request id (a 40001 asks for a retry, so
# it is not remembered as the request's outcome), it is decided whole
$n1->safe_psql('postgres', q{SELECT kmd_propose('r1', '{"op":"insert","table":"racy","row":{"k":"r1"},"request_id":"req-r1"}')});
ok(KmdTest::wait_converged(\@nodes), 'every node applies the insert proposed again');
my $row = q{SELECT k || ' ' || extract(epoch FROM a) || ' ' || b FROM racy};
my $want = $n1->safe_psql('postgres', $row);
like($want, qr/^r1 \d+\.\d+ [0-9a-f-]{36}$/, 'with a and b');
is($_->safe_psql('postgres', $row), $want, $_->name . ' stores the same row') for ($n2, $n3);

# the same with a default that holds a time read when its DDL ran, in a
# composite value: each node read its own
$n1->safe_psql('postgres', q{SELECT kmd_ddl('CREATE TYPE public.moment AS (note text, at timestamptz)')});
KmdTest::wait_converged(\@nodes);
held_insert('r2', '',
	q{SELECT kmd_ddl($$ALTER TABLE public.racy ADD COLUMN c public.moment DEFAULT '(x,now)'$$)}, 'c',
	'an insert that left a composite default holding a time undecided');

$lock->quit;
done_testing();
