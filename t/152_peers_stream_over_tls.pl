# 152_peers_stream_over_tls.pl
#   Peers reached over TCP with TLS (sslmode=require in every conninfo; the
#   nodes refuse TCP without it): the cluster forms, the Raft workers'
#   streams run encrypted, and rows written through two nodes, some of
#   them larger than a TLS record, arrive alike on all three.
#
# Copyright (c) 2026, kommander developers
#
# t/152_peers_stream_over_tls.pl

use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use KmdTest;

# a self-signed certificate for 127.0.0.1, shared by the three nodes
my $dir = PostgreSQL::Test::Utils::tempdir();
system_or_bail('openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1',
	'-subj', '/CN=127.0.0.1', '-keyout', "$dir/server.key", '-out', "$dir/server.crt");
chmod 0600, "$dir/server.key";

my @nodes = map {
	KmdTest::new_node("node$_", conf => <<"EOC")
listen_addresses = '127.0.0.1'
ssl = on
ssl_cert_file = '$dir/server.crt'
ssl_key_file = '$dir/server.key'
EOC
} 1 .. 3;
for my $node (@nodes)
{
	# TCP only with TLS; the test's own sessions use the Unix socket
	$node->append_conf('pg_hba.conf',
		"hostssl all all 127.0.0.1/32 trust\nhost all all 127.0.0.1/32 reject\n");
	$node->reload;
}
my ($n1, $n2, $n3) = @nodes;
sub tls { my ($node) = @_; return 'host=127.0.0.1 port=' . $node->port . ' dbname=postgres sslmode=require'; }

$n1->safe_psql('postgres', "SELECT kmd_bootstrap('node1', " . KmdTest::quote(tls($n1)) . ")");
KmdTest::wait_leaders($n1);
for my $i (2, 3)
{
	is($nodes[$i - 1]->safe_psql('postgres',
			"SELECT kmd_join('node$i', " . KmdTest::quote(tls($nodes[$i - 1])) . ", "
			  . KmdTest::quote(tls($n1)) . ")"),
		$i, "node$i joined over TLS");
}
KmdTest::wait_voters(\@nodes, 3);

for my $node (@nodes)
{
	ok($node->poll_query_until('postgres', q{
		SELECT count(*) = 2 * (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'kommander raft worker')
		   AND bool_and(s.ssl)
		  FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)
		 WHERE a.query = 'CALL kommander.peer_stream()'}),
		$node->name . ' takes every peer worker\'s stream, each over TLS');
}

KmdTest::create_kv($n1);
for my $i (1 .. 20)
{
	my $node = $i % 2 ? $n1 : $n2;
	$node->safe_psql('postgres', qq{
		SELECT kmd_propose('t$i', jsonb_build_object('op', 'upsert', 'table', 'kv',
			'row', jsonb_build_object('k', 't$i', 'v', repeat(md5('$i'), $i * 80))))});
}
KmdTest::wait_converged(\@nodes);
my $want = $n1->safe_psql('postgres', "SELECT count(*) || ' ' || sum(length(v)) || ' ' || md5(string_agg(v, '' ORDER BY k)) FROM kv");
like($want, qr/^20 /, 'twenty rows, up to 50 kB each, written through node1 and node2');
for my $node ($n2, $n3)
{
	is($node->safe_psql('postgres', "SELECT count(*) || ' ' || sum(length(v)) || ' ' || md5(string_agg(v, '' ORDER BY k)) FROM kv"),
		$want, $node->name . ' holds the same rows');
}

done_testing();
