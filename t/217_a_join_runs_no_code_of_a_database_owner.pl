# 217_a_join_runs_no_code_of_a_database_owner.pl
#   kmd_join runs statements on the seed and on the joining node itself,
#   through conninfos whose role is a superuser, under those sessions'
#   default search_path ("$user", public).  A database's owner, who may
#   create schemas and objects in public, must not choose what they run:
#   not with a schema named for that role holding functions of
#   kommander's names (on the seed), nor with an operator in public that
#   matches an argument pg_catalog's operator would cast (on the joining
#   node), nor with a search_path of the database that puts public before
#   pg_catalog and an operator there of pg_catalog's name and arguments
#   (on the seed).  Each of them here makes its author a superuser.
#
# Copyright (c) 2026, kommander developers
#
# t/217_a_join_runs_no_code_of_a_database_owner.pl

use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use KmdTest;

my $n1 = KmdTest::new_node('node1');
my $n2 = KmdTest::new_node('node2');
$n1->safe_psql('postgres', "SELECT kmd_bootstrap('node1', " . KmdTest::quote(KmdTest::conninfo($n1)) . ")");
KmdTest::wait_leaders($n1);
my $superuser = $n1->safe_psql('postgres', 'SELECT current_user');
for my $node ($n1, $n2)
{
	$node->safe_psql('postgres', q{
CREATE ROLE dbowner LOGIN;
ALTER DATABASE postgres OWNER TO dbowner;
});
}

my $escalate = q{
  IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
    EXECUTE 'ALTER ROLE dbowner SUPERUSER';
  END IF;};
$n1->safe_psql('postgres', qq{
SET ROLE dbowner;
CREATE SCHEMA "$superuser";
CREATE FUNCTION "$superuser".kmd_add_node(node_name text, conninfo text, peer_role text, join_token uuid)
  RETURNS int LANGUAGE plpgsql AS \$\$
BEGIN $escalate
  RETURN public.kmd_add_node(node_name, conninfo, peer_role, join_token);
END \$\$;
CREATE FUNCTION "$superuser".kmd_promote_node(node_name text) RETURNS void LANGUAGE plpgsql AS \$\$
BEGIN $escalate
  PERFORM public.kmd_promote_node(node_name);
END \$\$;
});
$n1->safe_psql('postgres', qq{
SET ROLE dbowner;
CREATE FUNCTION public.owners_eq(integer, integer) RETURNS boolean LANGUAGE plpgsql AS \$\$
BEGIN $escalate
  RETURN \$1 OPERATOR(pg_catalog.=) \$2;
END \$\$;
CREATE OPERATOR public.= (LEFTARG = integer, RIGHTARG = integer, FUNCTION = public.owners_eq);
ALTER DATABASE postgres SET search_path = public, pg_catalog;
});
# (this test's own sessions keep pg_catalog first: they are not what is
# tested, and any superuser's would run the operator there)
$ENV{PGOPTIONS} = '-c search_path=pg_catalog,public';
$n2->safe_psql('postgres', qq{
SET ROLE dbowner;
CREATE FUNCTION public.owners_times(numeric, integer) RETURNS numeric LANGUAGE plpgsql AS \$\$
BEGIN $escalate
  RETURN \$1 OPERATOR(pg_catalog.*) \$2;
END \$\$;
CREATE OPERATOR public.* (LEFTARG = numeric, RIGHTARG = integer, FUNCTION = public.owners_times);
});

is($n2->safe_psql('postgres', "SELECT kmd_join('node2', " . KmdTest::quote(KmdTest::conninfo($n2)) . ", "
	  . KmdTest::quote(KmdTest::conninfo($n1)) . ")"), '2', 'node2 joins');
KmdTest::wait_voters([ $n1, $n2 ], 2);
for my $node ($n1, $n2)
{
	is($node->safe_psql('postgres', q{SELECT rolsuper FROM pg_roles WHERE rolname = 'dbowner'}),
		'f', $node->name . ': the database\'s owner is no superuser');
}
done_testing();
