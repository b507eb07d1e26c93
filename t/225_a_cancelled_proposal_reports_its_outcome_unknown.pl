# 225_a_cancelled_proposal_reports_its_outcome_unknown.pl
#   A proposal whose wait is cancelled (statement_timeout) after the Raft
#   worker took it may be committed and applied on every node all the
#   same: the caller gets K0003, outcome unknown, as after
#   kommander.propose_timeout, and not the plain cancel (57014), which
#   says that nothing happened.  Here node1's apply of the key's row waits
#   for a lock a session holds, so the proposal commits but is not applied
#   on node1 when its statement_timeout fires; node2 applies it.  A
#   proposal cancelled before any worker took it stays a plain cancel
#   (t/040).
#
# Copyright (c) 2026, kommander developers
#
# t/225_a_cancelled_proposal_reports_its_outcome_unknown.pl

use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use KmdTest;

my @nodes = KmdTest::new_cluster(3);
my ($n1, $n2) = @nodes;
KmdTest::create_kv($n1);
KmdTest::wait_converged(\@nodes);
KmdTest::upsert_kv($n1, 'k1');
KmdTest::wait_converged(\@nodes);

# node1 cannot apply a change of k1 while this session locks the row
my $locker = $n1->background_psql('postgres');
$locker->query_safe('BEGIN');
$locker->query_safe(q{SELECT * FROM kv WHERE k = 'k1' FOR UPDATE});

my ($rc, $code, $msg) = KmdTest::error_of($n1,
	q{SET statement_timeout = '300ms';
	  SELECT kmd_propose('k1', '{"op":"upsert","table":"kv","row":{"k":"k1","v":"1"}}')});
is($code, 'K0003', "the cancelled proposal's outcome is unknown ($code: $msg)");
like($msg, qr/was cancelled/, 'the error says the wait was cancelled');
ok($n2->poll_query_until('postgres', q{SELECT v = '1' FROM kv WHERE k = 'k1'}),
	'and node2 applied it all the same');

$locker->query_safe('COMMIT');
$locker->quit;
KmdTest::wait_converged(\@nodes) or die 'no convergence';
is($n1->safe_psql('postgres', q{SELECT v FROM kv WHERE k = 'k1'}), '1',
	'node1 applies it once the lock goes');

done_testing();
