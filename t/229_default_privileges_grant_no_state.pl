# 229_default_privileges_grant_no_state.pl
#   CREATE EXTENSION kommander revokes its tables from PUBLIC and grants
#   back what any role may read (the map, the registrations, the applied
#   indexes, the counters and the views of the workers' state).  The role
#   that installs it may have default privileges that grant every new
#   table to PUBLIC: they must not give PUBLIC the tables made after that
#   revoke (the leases' state and rows: a lease's id is what ends it), nor
#   more than SELECT on the views.
#
# Copyright (c) 2026, kommander developers
#
# t/229_default_privileges_grant_no_state.pl

use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use KmdTest;

my $node = PostgreSQL::Test::Cluster->new('node1');
KmdTest::init_node($node);
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'kommander'\n"
	  . "kommander.database = 'postgres'\n");
$node->start;
$node->safe_psql('postgres', q{
ALTER DEFAULT PRIVILEGES GRANT ALL ON TABLES TO PUBLIC;
CREATE EXTENSION kommander;
});

is($node->safe_psql('postgres', q{
SELECT string_agg(c.relname || ' ' || p, ', ' ORDER BY c.relname, p)
  FROM pg_class c,
       unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES', 'TRIGGER']) p
 WHERE c.relnamespace = 'kommander'::regnamespace AND c.relkind IN ('r', 'v', 'p')
   AND has_table_privilege('public', c.oid, p)}),
	'applied SELECT, appliers SELECT, counters SELECT, latency SELECT, nodes SELECT, '
	  . 'partition_map SELECT, partitions SELECT, peers SELECT, stats SELECT, tables SELECT',
	'PUBLIC reads what the script grants, and nothing else');

done_testing();
