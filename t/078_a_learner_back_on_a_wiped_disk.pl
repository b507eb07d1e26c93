# 078_a_learner_back_on_a_wiped_disk.pl
#   A learner's server, wiped and started again at the same address, must
#   not get the learner's id back from kmd_join: the leaders count what
#   the learner acknowledged as held, and promoting it on that would make
#   a voter with none of the log.  The join is refused; once the node is
#   removed, the server joins under a new id.  A join tried again from
#   the same data directory, after it stopped between being added and
#   writing its identity, still goes on under the id it was given.
#
# Copyright (c) 2026, kommander developers
#
# t/078_a_learner_back_on_a_wiped_disk.pl

use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use KmdTest;

my ($n1, $n2) = KmdTest::new_cluster(2);
KmdTest::create_kv($n1);
$n1->safe_psql('postgres', q{SELECT kmd_ddl('ALTER TABLE public.kv ADD COLUMN n int')});
my $n3 = KmdTest::new_node('node3');
my $join3 = sub {
	my ($promote) = @_;
	return "SELECT kmd_join('node3', " . KmdTest::quote(KmdTest::conninfo($n3)) . ', '
	  . KmdTest::quote(KmdTest::conninfo($n1)) . ", $promote)";
};

# the first try stops after node 3 was added, before it wrote its
# identity: a session of its own holds kommander.local, and the write
# (through node 3's own conninfo) is cancelled while it waits
my $holder = $n3->background_psql('postgres');
$holder->query_safe('BEGIN');
$holder->query_safe('LOCK TABLE kommander.local IN SHARE MODE');
my ($out, $err) = ('', '');
my $join = IPC::Run::start([ 'psql', '-XAtq', '-d', $n3->connstr('postgres'), '-c', $join3->('false') ],
	'>', \$out, '2>', \$err);
ok($n1->poll_query_until('postgres', "SELECT count(*) = 1 FROM kommander.roster WHERE node_name = 'node3'"),
	'node 3 is in the roster');
ok($n3->poll_query_until('postgres',
	"SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE query LIKE '%kommander.join_local(%' AND pid <> pg_backend_pid()"),
	'the write of its identity is cancelled');
$join->finish;
like($err, qr/canceling statement/, 'the first try failed');
$holder->query_safe('COMMIT');
$holder->quit;
is($n3->safe_psql('postgres', 'SELECT count(*) FROM kommander.local'), '0', 'node 3 has no identity');
is($n3->safe_psql('postgres', $join3->('false')), '3', 'the join tried again goes on as node 3');

# node 3 acknowledges as a learner
KmdTest::write_rows($n1, 1, 20);
ok($n1->poll_query_until('postgres', q{
	SELECT count(*) > 0 FROM kommander.peers p JOIN kommander.partitions l USING (partition_id)
	 WHERE p.node_name = 'node3' AND p.match_index > 0 AND l.role = 'leader'}),
	'a leader counts what node 3 acknowledged');

# its disk is wiped; at the same address it asks for node 3's id again
KmdTest::wipe_node($n3);
my ($rc, $code, $msg) = KmdTest::error_of($n3, $join3->('false'));
is($code, '42710', 'the wiped server does not get node 3\'s id');
($rc, $out, $err) = $n3->psql('postgres', $join3->('false'));
like($err, qr/ERROR:  learner "node3" was added for another server/, 'naming the learner');
like($err, qr/DETAIL:  Node 3 may have acknowledged entries/, 'with the seed\'s detail');
is($n1->safe_psql('postgres', "SELECT node_id || ':' || role FROM kommander.roster WHERE node_name = 'node3'"),
	'3:learner', 'node 3 is still the learner it was');
is($n3->safe_psql('postgres', 'SELECT count(*) FROM kommander.local'), '0', 'the wiped server has no identity');

# removed, the name is free: the server joins under a new id and is promoted
$n1->safe_psql('postgres', "SELECT kmd_remove_node('node3')");
is($n3->safe_psql('postgres', $join3->('true')), '4', 'the wiped server joins as node 4');
KmdTest::wait_voters([ $n1, $n2, $n3 ], 3);
KmdTest::write_rows($n3, 21, 30);
KmdTest::wait_converged([ $n1, $n2, $n3 ]);
is($n3->safe_psql('postgres', "SELECT count(*) FROM kv WHERE k LIKE 'k%'"), '30', 'node 4 holds every row');
KmdTest::same_state([ $n1, $n2, $n3 ]);

done_testing();
