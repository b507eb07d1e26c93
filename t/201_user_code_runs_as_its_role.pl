# 201_user_code_runs_as_its_role.pl
#   The apply worker runs as a superuser, and runs user code as the role it
#   belongs to: a row command as the table's owner, a kmd_ddl statement as
#   its caller.  What that code leaves behind must not run as the
#   superuser: the deferred triggers it queued fire as that role (alone in
#   an entry, and in a batch), and a search_path it set does not reach the
#   worker's own statements.  A trigger enabled ALWAYS, which would run
#   where an image is copied in, is refused; a cast of the table's rows
#   that the image's checksum uses runs as the owner, on both sides.
#   Nor does a caller's search_path reach the
#   statements a backend runs as the superuser to read the catalog.  Each
#   piece of user code here tells who runs it by raising an error.
#
# Copyright (c) 2026, kommander developers
#
# t/201_user_code_runs_as_its_role.pl

use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use KmdTest;

# a short log: a node that joins takes partition 1 from an image
my ($n1) = KmdTest::new_cluster(1, conf => "kommander.snapshot_threshold = 100\n");
$n1->safe_psql('postgres', q{
CREATE ROLE alice;
GRANT EXECUTE ON FUNCTION kmd_ddl(text), kmd_register_table(regclass) TO alice;
SELECT kmd_ddl('CREATE SCHEMA app AUTHORIZATION alice');
SET ROLE alice;
SELECT kmd_ddl($$CREATE TABLE app.t (k text PRIMARY KEY, v text)$$);
SELECT kmd_register_table('app.t');
SELECT kmd_ddl($$CREATE FUNCTION app.who() RETURNS trigger LANGUAGE plpgsql
  AS 'BEGIN RAISE EXCEPTION ''run as %'', current_user; END'$$);
SELECT kmd_ddl($$CREATE CONSTRAINT TRIGGER who AFTER INSERT ON app.t
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN (NEW.v = 'who') EXECUTE FUNCTION app.who()$$);
});

# the message of what $sql, run as alice, fails with
sub fails_as_alice
{
	my ($sql) = @_;
	my ($rc, $code, $msg) = KmdTest::error_of($n1, "SET ROLE alice; $sql");
	return $rc == 0 ? 'no error' : $msg;
}

is(fails_as_alice(q{SELECT kmd_propose('a', '{"op": "insert", "table": "app.t", "row": {"k": "a", "v": "who"}}')}),
	'run as alice', "a row command's deferred trigger fires as the table's owner");
is(fails_as_alice(q{SELECT kmd_propose('b', '{"op": "batch", "commands": [
	{"op": "insert", "table": "app.t", "row": {"k": "b", "v": "who"}},
	{"op": "upsert", "table": "app.t", "row": {"k": "b", "v": "x"}}]}')}),
	'run as alice', "so does a batch's, at its end");
is(fails_as_alice(q{SELECT kmd_ddl($$CREATE TABLE app.x (i int);
	CREATE CONSTRAINT TRIGGER who AFTER INSERT ON app.x DEFERRABLE INITIALLY DEFERRED
	  FOR EACH ROW EXECUTE FUNCTION app.who();
	INSERT INTO app.x VALUES (1)$$)}),
	'run as alice', "a kmd_ddl statement's deferred trigger fires as its caller");

# an operator of alice's ahead of pg_catalog's, on the types of the
# worker's own statements after a kmd_ddl
is(fails_as_alice(q{SELECT kmd_ddl($$CREATE FUNCTION app.eq("char", "char") RETURNS boolean LANGUAGE plpgsql
	  AS 'BEGIN RAISE EXCEPTION ''run as %'', current_user; END';
	CREATE OPERATOR app.= (LEFTARG = "char", RIGHTARG = "char", FUNCTION = app.eq);
	SET search_path = app, pg_catalog$$)}),
	'no error', "a kmd_ddl statement's search_path stays its own");
is($n1->safe_psql('postgres', q{SELECT count(*) FROM pg_operator o JOIN pg_namespace n ON n.oid = o.oprnamespace
	WHERE n.nspname = 'app'}), '1', 'and the statement ran');
is(fails_as_alice(q{SELECT kmd_propose('c', '{"op": "insert", "table": "app.t", "row": {"k": "c", "v": "x"}}')}),
	'no error', 'a row command after it runs');

# A trigger enabled ALWAYS or REPLICA would run where an image's rows are
# copied in (as a replica): refused on a control table, so that user code
# there is only a cast of the table's rows, which the images' checksums
# use on both sides.  A node joining takes partition 1 from an image.
my ($rc_always, $code_always, $msg_always) = KmdTest::error_of($n1, q{
SET ROLE alice;
SELECT kmd_ddl($$CREATE FUNCTION app.copied() RETURNS trigger LANGUAGE plpgsql AS
  'BEGIN RETURN NULL; END'$$);
SELECT kmd_ddl($$CREATE TRIGGER copied AFTER INSERT ON app.t FOR EACH ROW EXECUTE FUNCTION app.copied();
  ALTER TABLE app.t ENABLE ALWAYS TRIGGER copied$$);
});
is($code_always, '0A000', 'a trigger of a control table enabled ALWAYS is refused');
KmdTest::create_kv($n1);
ok(KmdTest::compact_past($n1, 1, 0), 'node1 compacted the log of partition 1');
my $n3 = KmdTest::new_node('node3');
$n3->safe_psql('postgres', 'CREATE ROLE alice');
my ($jout, $jerr) = ('', '');
my $join = IPC::Run::start(
	[ 'psql', '-X', '-A', '-t', '-d', $n3->connstr('postgres'), '-c',
	  "SELECT kmd_join('node3', " . KmdTest::quote(KmdTest::conninfo($n3)) . ', '
		. KmdTest::quote(KmdTest::conninfo($n1)) . ')' ],
	'>', \$jout, '2>', \$jerr);

my $offset1 = -s $n1->logfile;
my $offset = -s $n3->logfile;
$n1->safe_psql('postgres', q{
SET ROLE alice;
SELECT kmd_ddl($$CREATE FUNCTION app.t_text(app.t) RETURNS text LANGUAGE plpgsql AS
  'BEGIN RAISE EXCEPTION ''run as % (cast)'', current_user; END'$$);
SELECT kmd_ddl($$CREATE CAST (app.t AS text) WITH FUNCTION app.t_text(app.t)$$);
});
ok($n3->wait_for_log(qr/run as \w+ \(cast\)/, $offset), "the next try's checksum ran the cast");
my @who = (slurp_file($n1->logfile, $offset1) . slurp_file($n3->logfile, $offset)) =~ /run as (\w+) \(cast\)/g;
is(join(',', grep { $_ ne 'alice' } @who), '', "the cast runs as the table's owner on the sender and the receiver");
$join->kill_kill;

# A node that is no member but holds a catalog (one removed, or refused
# after its timeline changed; here a node given a map by hand) reads it
# again for any caller, as the superuser: with an operator of the
# caller's on its join
my $n2 = KmdTest::new_node('node2');
$n2->safe_psql('postgres', q{
INSERT INTO kommander.partition_map VALUES (0, NULL, NULL, 1, 'active'), (1, NULL, NULL, 1, 'active');
INSERT INTO kommander.applied VALUES (0, 5, 1), (1, 7, 1);
CREATE ROLE alice;
CREATE SCHEMA app AUTHORIZATION alice;
SET ROLE alice;
CREATE FUNCTION app.ieq(int, int) RETURNS boolean LANGUAGE plpgsql
  AS 'BEGIN RAISE EXCEPTION ''run as %'', current_user; END';
CREATE OPERATOR app.= (LEFTARG = int, RIGHTARG = int, FUNCTION = app.ieq);
});
my ($rc, $code, $msg) = KmdTest::error_of($n2,
	"SET ROLE alice; SET search_path = app, pg_catalog, public; SELECT kmd_route('x')");
is($msg, 'this node is not a member of a kommander cluster',
	"the catalog is read with pg_catalog's operators, not the caller's");

done_testing();
