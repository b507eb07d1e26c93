# 219_a_failed_catalog_read_loses_no_answer.pl
#   After committing an entry that changes the catalog (a split here), the
#   apply worker reads the catalog into shared memory in a transaction of
#   its own, and answers the proposers after.  A session's lock on
#   kommander.local holds that read past the worker's lock timeout: the
#   worker rolls back and tries again.  The split is committed all the
#   same, and its proposer must be answered once the read succeeds, not
#   left to wait for kommander.propose_timeout and K0003 ("outcome
#   unknown") for a split that was made.
#
# Copyright (c) 2026, kommander developers
#
# t/219_a_failed_catalog_read_loses_no_answer.pl

use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use KmdTest;

my ($node) = KmdTest::new_cluster(1, conf => "log_min_messages = log\n");

my $offset = -s $node->logfile;
my $locker = $node->background_psql('postgres');
$locker->query_safe('BEGIN');
$locker->query_safe('LOCK TABLE kommander.local IN ACCESS EXCLUSIVE MODE');

my $splitter = $node->background_psql('postgres', on_error_stop => 0);
$splitter->query_until(qr/splitting/, "\\echo splitting\nSELECT kmd_split(1) IS NOT NULL AS split;\n\\echo done\n");
ok($node->wait_for_log(qr/the apply worker rolled back its transaction.*\n.*Try 1 failed with SQLSTATE 55P03/, $offset),
	'the apply worker rolls back at its lock timeout');

$locker->query_safe('COMMIT');
$locker->quit;
my $answer = $splitter->query_until(qr/done/, '');
like($answer, qr/^t$/m, 'the split is answered as made');
unlike($splitter->{stderr}, qr/K0003|outcome/, 'not as of unknown outcome');
$splitter->quit;
is($node->safe_psql('postgres', "SELECT count(*) FROM kommander.partitions WHERE partition_id > 0 AND state = 'active'"),
	'2', 'the partition is split');

done_testing();
