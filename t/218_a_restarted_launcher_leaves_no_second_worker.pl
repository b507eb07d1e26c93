# 218_a_restarted_launcher_leaves_no_second_worker.pl
#   The launcher is terminated (an administrator's pg_terminate_backend,
#   or an error of its own); the postmaster starts it again five seconds
#   later.  The workers it had started went on running: the new launcher
#   must not start a second apply worker or a second Raft worker of the
#   same number beside them (two copies would apply a command twice, or
#   vote twice as one node).  It stops them and starts its own: once it
#   runs, there is one apply worker and one Raft worker per number, none
#   of them the old ones, and a write is applied once.
#
# Copyright (c) 2026, kommander developers
#
# t/218_a_restarted_launcher_leaves_no_second_worker.pl

use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use KmdTest;

my ($node) = KmdTest::new_cluster(1, conf => "log_min_messages = log\n");
$node->safe_psql('postgres', q{
SELECT kmd_ddl('CREATE TABLE public.counter (k text PRIMARY KEY, n int NOT NULL)');
SELECT kmd_register_table('public.counter');
SELECT kmd_propose('c', '{"op":"insert","table":"counter","row":{"k":"c","n":0}}');
});

my $workers = q{SELECT string_agg(pid::text, ',' ORDER BY pid) FROM pg_stat_activity
  WHERE backend_type IN ('kommander apply', 'kommander raft worker')};
my $old = $node->safe_psql('postgres', $workers);
my $launcher = $node->safe_psql('postgres',
	"SELECT pid FROM pg_stat_activity WHERE backend_type = 'kommander launcher'");
ok($launcher, 'the launcher runs');
is(scalar(split(/,/, $old)), 3, 'an apply worker and two Raft workers run');

my $log_offset = -s $node->logfile;
$node->safe_psql('postgres', "SELECT pg_terminate_backend($launcher)");
$node->poll_query_until('postgres', qq{SELECT count(*) = 1 FROM pg_stat_activity
  WHERE backend_type = 'kommander launcher' AND pid <> $launcher})
  or die 'no launcher started again';

# the old workers stopped; the new launcher's own run, one of each
my $old_list = join(', ', split(/,/, $old));
ok( $node->poll_query_until('postgres', qq{
SELECT count(*) FILTER (WHERE backend_type = 'kommander apply') = 1
   AND count(*) FILTER (WHERE backend_type = 'kommander raft worker') = 2
   AND count(*) FILTER (WHERE pid IN ($old_list)) = 0
  FROM pg_stat_activity
 WHERE backend_type IN ('kommander apply', 'kommander raft worker')}),
	'one apply worker and one Raft worker per number, none of them the old ones');
ok($node->log_contains('launcher stops 3 workers an earlier launcher left running', $log_offset),
	'the launcher says it stopped the workers it found');

# the node serves again, and applies a write once
KmdTest::wait_leaders($node);
$node->safe_psql('postgres',
	q{SELECT kmd_propose('c', '{"op":"update","table":"counter","key":{"k":"c"},"set":{"n":{"add":1}}}')});
is($node->safe_psql('postgres', 'SELECT n FROM public.counter'), '1', 'the write was applied once');
is($node->safe_psql('postgres', $workers) =~ tr/,//, 2, 'still one of each worker');

done_testing();
