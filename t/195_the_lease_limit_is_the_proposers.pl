# 195_the_lease_limit_is_the_proposers.pl
#   A node grants no lease past kommander's limit of 4096: the node that
#   proposes the grant refuses it (54000) before proposing it.  Applying a
#   grant never counts the leases: how many a node holds at an entry of
#   one partition depends on how far it applied the others, so a grant
#   refused on one node would be kept on another.  Here node3's apply of
#   grants is held back by a lock while 4096 leases are granted in
#   partition 1; a grant asked for in partition 2 is refused on node1, and
#   every node ends with the same leases.  A row attached to a lease of
#   another partition is refused for that (K0011) on every node, also on
#   node3, which has not applied the lease's grant yet.
#
# Copyright (c) 2026, kommander developers
#
# t/195_the_lease_limit_is_the_proposers.pl

use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use KmdTest;

my $LIMIT = 4096;
my @nodes = KmdTest::new_cluster(3);
my ($n1, $n2, $n3) = @nodes;
KmdTest::create_kv($n1);
KmdTest::split_in_two(\@nodes);
my $x = KmdTest::key_in($n1, 1, 'x');
my $y = KmdTest::key_in($n1, 2, 'y');

# node3 applies no grant while a session holds a lock on the leases
my $locker = $n3->background_psql('postgres');
$locker->query_safe('BEGIN');
$locker->query_safe('LOCK TABLE kommander.lease_state IN SHARE MODE');

# a row of partition 2 attached to a lease of partition 1: refused alike
# on node1 and on node3, which has not applied the grant (the outcome of
# a command with a request id is kept by every node)
my $lease = $n1->safe_psql('postgres', "SELECT kmd_lease_grant('1 h', '$x')");
my ($rc, $code, $msg) = KmdTest::error_of($n1,
	qq{SELECT kmd_propose('$y', '{"op":"insert","table":"kv","row":{"k":"$y","v":"a"},"lease":$lease,"request_id":"attach-1"}')});
is($code, 'K0011', "a lease of another partition is refused ($msg)");

$n1->safe_psql('postgres', qq{
DO \$\$
BEGIN
  FOR i IN 2..$LIMIT LOOP
    PERFORM kmd_lease_grant('1 h', '$x');
  END LOOP;
END \$\$});
is($n1->safe_psql('postgres', 'SELECT count(*) FROM kommander.lease_state'), $LIMIT,
	"node1 holds $LIMIT leases");
($rc, $code, $msg) = KmdTest::error_of($n1, "SELECT kmd_lease_grant('1 h', '$y')");
is($code, '54000', "one more is refused where it is asked for ($msg)");

$locker->query_safe('COMMIT');
$locker->quit;
ok(KmdTest::wait_converged(\@nodes), 'node3 applies the grants');
my $leases = q{SELECT count(*) || ':' || md5(string_agg(id::text, ',' ORDER BY id)) FROM kommander.lease_state};
my $want = $n1->safe_psql('postgres', $leases);
is($_->safe_psql('postgres', $leases), $want, $_->name . ' holds the same leases') for ($n2, $n3);
my $outcomes = q{SELECT string_agg(key || ':' || request_id || ':' || sqlstate, ',' ORDER BY key) FROM kommander.requests};
$want = $n1->safe_psql('postgres', $outcomes);
like($want, qr/:attach-1:K0011$/, 'node1 keeps the refusal');
is($_->safe_psql('postgres', $outcomes), $want, $_->name . ' keeps the same outcome') for ($n2, $n3);

done_testing();
