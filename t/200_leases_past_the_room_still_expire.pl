# 200_leases_past_the_room_still_expire.pl
#   A node counts down twice kommander.max_leases leases in shared memory;
#   the limit itself is checked by the node that proposes a grant, so
#   grants proposed at once may pass it, and then a node can hold more
#   leases than it has room to count down.  Those wait for room, and get
#   it when a counted lease ends: every lease expires, none is kept
#   forever.  Here (max_leases 2: room for 4) eight grants are proposed
#   while the node's apply of them is held back by a lock, so each
#   proposer sees no lease held; the node counts down four, also once
#   restarted, and the others one by one as leases end.
#
# Copyright (c) 2026, kommander developers
#
# t/200_leases_past_the_room_still_expire.pl

use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use KmdTest;

my ($n1) = KmdTest::new_cluster(1, conf => "kommander.max_leases = 2\n");
is($n1->safe_psql('postgres', 'SHOW kommander.max_leases'), '2', 'the limit is 2 leases');

# $n grants of $ttl proposed at once: the node applies none of them until
# all wait for their outcome (a session holds a lock on the leases), so
# each proposer counts the leases held before them.  Returns how many
# were granted.
sub grant_at_once
{
	my ($n, $ttl) = @_;
	my $locker = $n1->background_psql('postgres');
	$locker->query_safe('BEGIN');
	$locker->query_safe('LOCK TABLE kommander.lease_state IN SHARE MODE');
	my @grants;
	for my $i (1 .. $n)
	{
		my ($out, $err) = ('', '');
		push @grants, [ IPC::Run::start(
			[ 'psql', '-X', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-d', $n1->connstr('postgres'),
			  '-c', "SELECT kmd_lease_grant('$ttl')" ],
			'>', \$out, '2>', \$err, IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default)),
		  \$out, \$err ];
	}
	ok($n1->poll_query_until('postgres',
		"SELECT count(*) = $n FROM pg_stat_activity WHERE query LIKE 'SELECT kmd_lease_grant(%' "
		  . "AND wait_event_type = 'Extension'"),
		"$n grants wait for their outcome");
	$locker->query_safe('COMMIT');
	$locker->quit;
	my $granted = 0;
	for my $g (@grants)
	{
		my ($h, $out, $err) = @$g;
		if ($h->finish) { $granted++ }
		else { diag("a grant: $$err") }
	}
	return $granted;
}

my $counted_sql = q{SELECT count(*) || ' held, ' || count(countdown_ends) || ' counted' FROM kommander.leases};

is(grant_at_once(8, '1 h'), 8, 'eight grants of an hour are applied');
is($n1->safe_psql('postgres', $counted_sql), '8 held, 4 counted', 'the node counts down four of them');
my ($rc, $code, $msg) = KmdTest::error_of($n1, "SELECT kmd_lease_grant('1 h')");
is($code, '54000', "one more is refused ($msg)");

# a restarted node counts down those it has room for, and no others
$n1->restart;
KmdTest::wait_leaders($n1);
ok($n1->poll_query_until('postgres', $counted_sql, '8 held, 4 counted'), 'so does the node restarted');

# a counted lease ends: one left out takes its room
my @counted = split /\n/, $n1->safe_psql('postgres',
	'SELECT id FROM kommander.leases WHERE countdown_ends IS NOT NULL ORDER BY id');
$n1->safe_psql('postgres', "SELECT kmd_lease_revoke($counted[0])");
is($n1->safe_psql('postgres', $counted_sql), '7 held, 4 counted', 'a lease left out is counted once one ends');
$n1->safe_psql('postgres', "SELECT kmd_lease_revoke($_)") for @counted[ 1 .. 3 ];
is($n1->safe_psql('postgres', $counted_sql), '4 held, 4 counted', 'and the others, as the rest end');
$n1->safe_psql('postgres', "SELECT kmd_lease_revoke($_)")
  for split /\n/, $n1->safe_psql('postgres', 'SELECT id FROM kommander.lease_state');

# short leases past the room all expire
is(grant_at_once(6, '1 s'), 6, 'six grants of a second are applied');
ok($n1->poll_query_until('postgres', 'SELECT count(*) = 0 FROM kommander.lease_state'),
	'every lease expires');

# A server that does not preload kommander counts nothing down: a session
# that loaded it as the output plugin of a logical slot (which needs no
# preloading) reads the leases view without a countdown.
$n1->safe_psql('postgres', "SELECT kmd_lease_grant('1 h')");
$n1->append_conf('postgresql.conf', "shared_preload_libraries = ''\nwal_level = logical\n");
$n1->restart;
KmdTest::allow_feed([$n1]);
is($n1->safe_psql('postgres', "SELECT 'slot' FROM pg_create_logical_replication_slot('feed', 'kommander'); $counted_sql"),
	"slot\n1 held, 0 counted", 'a session that loaded kommander as a plugin sees no countdown');

done_testing();
