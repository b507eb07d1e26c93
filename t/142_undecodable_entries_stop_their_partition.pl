# 142_undecodable_entries_stop_their_partition.pl
#   An entry this node cannot decode (a command of an unknown version, as
#   during a rolling upgrade; a command kind it does not know; an entry
#   type it does not know; rules of applying it does not know) stops its
#   partition's apply on this node, with
#   an error naming the entry in kommander.partitions and in the log,
#   instead of being skipped; the other partitions go on.
#
# Copyright (c) 2026, kommander developers
#
# t/142_undecodable_entries_stop_their_partition.pl

use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use KmdTest;

my ($node) = KmdTest::new_cluster(1);
KmdTest::create_kv($node);
$node->safe_psql('postgres', 'SELECT count(*) FROM kmd_create_partitions(5)');
KmdTest::wait_leaders($node);
my @parts = split /\n/, $node->safe_psql('postgres',
	'SELECT partition_id FROM kommander.partitions WHERE partition_id > 0 ORDER BY partition_id');
is(scalar(@parts), 5, 'five user partitions');

# an entry of each of the first three partitions, rewritten in the log as
# a newer node could have written it
my %bad = (
	$parts[0] => [ q{data = '\x08021001'}, qr/command version 2 is unknown to this node/ ],
	$parts[1] => [ q{data = '\x08011063'}, qr/command kind 99 is unknown to this node/ ],
	$parts[2] => [ q{kind = 9}, qr/entry type 9 is unknown to this node/ ],
	$parts[3] => [ q{data = '\x080110017010'}, qr/asks for rules 0x10, unknown to this node/ ]);
my %index;
for my $p (@parts[ 0 .. 3 ])
{
	my $key = KmdTest::key_in($node, $p, 'u');
	$index{$p} = $node->safe_psql('postgres',
		"SELECT kmd_propose('$key', '{\"op\":\"insert\",\"table\":\"kv\",\"row\":{\"k\":\"$key\",\"v\":\"x\"}}')");
}
my $updates = join("\n", map {
	"UPDATE kommander.log SET $bad{$_}[0] WHERE partition_id = $_ AND idx = $index{$_};\n"
	  . "UPDATE kommander.applied SET applied_index = $index{$_} - 1 WHERE partition_id = $_;"
} @parts[ 0 .. 3 ]);
my $apply_pid = "SELECT pid FROM pg_stat_activity WHERE backend_type = 'kommander apply'";
my $pid = $node->safe_psql('postgres', $apply_pid);
$node->safe_psql('postgres', "BEGIN;\n$updates\nCOMMIT;\nSELECT pg_terminate_backend($pid);");
ok($node->poll_query_until('postgres', "SELECT count(*) = 1 FROM ($apply_pid) a WHERE pid <> $pid"),
	'the apply worker starts again, and reads the entries from the log');

for my $p (@parts[ 0 .. 3 ])
{
	ok($node->poll_query_until('postgres',
			"SELECT stalled = 'stopped' FROM kommander.partitions WHERE partition_id = $p"),
		"partition $p stops");
	my ($error, $applied) = split /\|/, $node->safe_psql('postgres',
		"SELECT stall_error, applied_index FROM kommander.partitions WHERE partition_id = $p");
	like($error, qr/^08P01: partition $p cannot apply entry $index{$p} \(term \d+\): /,
		"partition $p names the entry");
	like($error, $bad{$p}[1], "and what it cannot read in it");
	is($applied, $index{$p} - 1, "partition $p applied nothing past it");
}
ok($node->log_contains(qr/partition $parts[0] cannot apply entry $index{$parts[0]} .*command version 2/),
	'the log names the entry');

# the other partition applies, the stopped ones do not
my $other = KmdTest::key_in($node, $parts[4], 'v');
is($node->safe_psql('postgres',
		"SELECT kmd_propose('$other', '{\"op\":\"insert\",\"table\":\"kv\",\"row\":{\"k\":\"$other\",\"v\":\"y\"}}') > 0"),
	't', 'the fifth partition goes on');
my $stuck = KmdTest::key_in($node, $parts[0], 'w');
my ($rc, $out, $err) = $node->psql('postgres',
	"SET kommander.propose_timeout = 2000; SELECT kmd_propose('$stuck', "
	  . "'{\"op\":\"insert\",\"table\":\"kv\",\"row\":{\"k\":\"$stuck\",\"v\":\"z\"}}')",
	extra_params => [ '-v', 'VERBOSITY=verbose' ]);
like($err, qr/K0003/, 'a proposal to a stopped partition is not applied on this node');
is($node->safe_psql('postgres', "SELECT count(*) FROM kv WHERE k = '$stuck'"), '0',
	'and has no row here');

done_testing();
