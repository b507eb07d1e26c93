# 120_memory_stays_flat.pl
#   Under steady writes the Raft workers, the apply worker and the backends
#   of the peer streams of every node keep the memory they had: after a warm-up, three times as many writes
#   again grow none of them by more than a tenth (the loops once kept what
#   they allocated after each commit, about 500 bytes an entry for good).
#   What is compared is the memory in use: a context may take one more
#   block from the system for a peak (a Raft worker's log before it is
#   compacted) and keep it free, which is no growth.
#
# Copyright (c) 2026, kommander developers
#
# t/120_memory_stays_flat.pl

use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use KmdTest;

my @nodes = KmdTest::new_cluster(3,
	conf => "kommander.snapshot_threshold = 100\nkommander.balance_interval = 0\n");
my ($n1, $n2, $n3) = @nodes;
KmdTest::create_kv($n1);
$n1->safe_psql('postgres', 'SELECT kmd_split(1)');
KmdTest::wait_converged(\@nodes);

# upserts of keys k1..k1000, $rounds times over, through $node
sub write_rounds
{
	my ($node, $rounds) = @_;
	$node->safe_psql('postgres', qq{
DO \$\$
BEGIN
  FOR r IN 1..$rounds LOOP
    FOR i IN 1..1000 LOOP
      PERFORM kmd_propose('k' || i, jsonb_build_object('op', 'upsert', 'table', 'kv',
        'row', jsonb_build_object('k', 'k' || i, 'v', r::text)));
    END LOOP;
  END LOOP;
END \$\$});
}

# Every kommander worker's memory in use on every node, and that of the
# backends streaming peers' batches: "node:type:n" => bytes.
sub worker_memory
{
	my %total;
	for my $node (@nodes)
	{
		my @workers = split /\n/, $node->safe_psql('postgres', q{
			SELECT pid || ' ' || CASE WHEN backend_type = 'client backend' THEN 'peer_stream'
			                          ELSE replace(backend_type, ' ', '_') END
			  FROM pg_stat_activity
			 WHERE backend_type IN ('kommander raft worker', 'kommander apply')
			    OR query = 'CALL kommander.peer_stream()'
			 ORDER BY backend_type, pid});
		my $n = 0;
		for my $w (@workers)
		{
			my ($pid, $type) = split / /, $w;
			my $offset = -s $node->logfile;
			$node->safe_psql('postgres', "SELECT pg_log_backend_memory_contexts($pid)");
			$node->wait_for_log(qr/\[$pid\][^\n]*Grand total: \d+ bytes/, $offset);
			my $log = slurp_file($node->logfile, $offset);
			$log =~ /\[$pid\][^\n]*Grand total: \d+ bytes[^\n]*; (\d+) used/ or die "no total for $pid";
			$total{$node->name . ":$type:" . $n++} = $1;
		}
	}
	return \%total;
}

write_rounds($n2, 3);
KmdTest::wait_converged(\@nodes);
my $before = worker_memory();
write_rounds($n2, 9);
KmdTest::wait_converged(\@nodes);
my $after = worker_memory();

is(scalar(keys %$after), 21,
	'two Raft workers, an apply worker and four peer streams measured on each node')
  or diag(explain($after));
for my $w (sort keys %$before)
{
	diag("$w: $before->{$w} bytes in use after 3,000 writes, $after->{$w} after 12,000");
	cmp_ok($after->{$w}, '<=', $before->{$w} * 1.10, "$w: memory within 10% under steady load");
}

done_testing();
