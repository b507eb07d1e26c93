# 130_apply_ignores_local_value_settings.pl
#   Every node stores the same value for the same command, whatever its own
#   settings say: two nodes with different timezone and DateStyle store the
#   same timestamptz for a text timestamp without zone, and the same date
#   for a date written day and month in digits.  An applier's time
#   (kommander.apply_context.at) is the one its proposer decided, the same
#   on every node.  Column defaults that are not immutable (a uuid, now(),
#   a sequence, random()) are decided by the proposer, and a table name
#   means the table the proposer's search_path finds.  Nor do settings
#   that change how the text of a statement reads (string escapes, "=
#   NULL", NULL in an array, time zone abbreviations, xml) or what a
#   function answers (text search, identifier quoting) or whether a
#   PL/pgSQL function runs.
#
# Copyright (c) 2026, kommander developers
#
# t/130_apply_ignores_local_value_settings.pl

use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use KmdTest;

my @nodes = (KmdTest::new_node('node1', conf => "timezone = 'UTC'\ndatestyle = 'ISO, MDY'"),
	KmdTest::new_node('node2', conf => "timezone = 'America/New_York'\ndatestyle = 'ISO, DMY'\n"
		  . "array_nulls = off\ntransform_null_equals = on\nstandard_conforming_strings = off\n"
		  . "default_text_search_config = 'pg_catalog.english'\nquote_all_identifiers = on\n"
		  . "timezone_abbreviations = 'Australia'\nxmloption = document\n"
		  . "plpgsql.variable_conflict = use_column\n"));
$nodes[0]->safe_psql('postgres',
	"SELECT kmd_bootstrap('node1', " . KmdTest::quote(KmdTest::conninfo($nodes[0])) . ")");
KmdTest::wait_leaders($nodes[0]);
$nodes[1]->safe_psql('postgres',
	"SELECT kmd_join('node2', " . KmdTest::quote(KmdTest::conninfo($nodes[1])) . ', '
	  . KmdTest::quote(KmdTest::conninfo($nodes[0])) . ')');
KmdTest::wait_voters(\@nodes, 2);
is($nodes[1]->safe_psql('postgres', 'SHOW timezone'), 'America/New_York', 'node2 has a timezone of its own');

$nodes[0]->safe_psql('postgres', q{
SELECT kmd_ddl('CREATE TABLE public.events (k text PRIMARY KEY, at timestamptz, d date)');
SELECT kmd_register_table('public.events');
});
# proposed through each node, whose sessions have their own settings too
$nodes[1]->safe_psql('postgres',
	q{SELECT kmd_propose('e1', '{"op":"insert","table":"events","row":{"k":"e1","at":"2026-01-01 10:00","d":"01/02/2026"}}')});
$nodes[0]->safe_psql('postgres',
	q{SELECT kmd_propose('e2', '{"op":"insert","table":"events","row":{"k":"e2","at":"2026-07-01 10:00","d":"03/04/2026"}}')});
ok(KmdTest::wait_converged(\@nodes), 'both nodes apply');

# read back in UTC and ISO on both nodes, whatever their defaults
my $read = q{SET timezone = 'UTC'; SET datestyle = 'ISO, MDY';
	SELECT string_agg(k || ' ' || at::text || ' ' || d::text, ', ' ORDER BY k) FROM events};
for my $node (@nodes)
{
	is($node->safe_psql('postgres', $read),
		'e1 2026-01-01 10:00:00+00 2026-01-02, e2 2026-07-01 10:00:00+00 2026-03-04',
		$node->name . ' stores the values as read in UTC, month first');
}

# an applier stores the time of its entry, not its node's clock
$nodes[0]->safe_psql('postgres', q{
SELECT kmd_ddl($$CREATE FUNCTION public.stamp(args jsonb, ctx kommander.apply_context) RETURNS jsonb
LANGUAGE sql AS 'INSERT INTO public.events (k, at) VALUES (ctx.key, ctx.at); SELECT to_jsonb(ctx.at)'$$);
SELECT kmd_register_applier('stamp', 'public.stamp(jsonb, kommander.apply_context)');
});
my $before = $nodes[1]->safe_psql('postgres', 'SELECT clock_timestamp()');
my $answer = $nodes[1]->safe_psql('postgres',
	q{SELECT kmd_propose_result('s1', '{"op":"call","applier":"stamp"}')->>'result'});
ok(KmdTest::wait_converged(\@nodes), 'both nodes apply the call');
my $stamp = q{SELECT extract(epoch FROM at) FROM events WHERE k = 's1'};
is($nodes[0]->safe_psql('postgres', $stamp), $nodes[1]->safe_psql('postgres', $stamp),
	'both nodes store the same time');
is($nodes[1]->safe_psql('postgres',
	"SELECT at = '$answer'::timestamptz AND at >= '$before'::timestamptz FROM events WHERE k = 's1'"),
	't', 'the time the proposer decided when it proposed');

# defaults that are not immutable are decided by the proposer, once
$nodes[0]->safe_psql('postgres', q{
SELECT kmd_ddl($$CREATE SEQUENCE public.ticket_no$$);
SELECT kmd_ddl($$CREATE TABLE public.tickets (k text PRIMARY KEY,
	id uuid DEFAULT gen_random_uuid(), created_at timestamptz DEFAULT now(),
	n bigint DEFAULT nextval('public.ticket_no'), r float8 DEFAULT random(),
	due date DEFAULT current_date + 7, state text DEFAULT 'new')$$);
SELECT kmd_register_table('public.tickets');
});
$nodes[1]->safe_psql('postgres', q{SET datestyle = 'SQL, DMY'; SET extra_float_digits = -10;
	SELECT kmd_propose('t1', '{"op":"insert","table":"tickets","row":{"k":"t1"}}')});
$nodes[0]->safe_psql('postgres', q{SELECT kmd_propose('t2', '{"op":"upsert","table":"tickets","row":{"k":"t2","state":"old"}}')});
ok(KmdTest::wait_converged(\@nodes), 'both nodes apply the tickets');
my $tickets = q{SELECT string_agg(concat_ws(' ', k, id, extract(epoch FROM created_at), n, r::text, due, state), ', ' ORDER BY k) FROM tickets};
my $got = $nodes[0]->safe_psql('postgres', $tickets);
is($nodes[1]->safe_psql('postgres', $tickets), $got,
	'both nodes store the same uuid, time, sequence number, random number and date');
is($nodes[0]->safe_psql('postgres', q{SELECT count(*) FROM tickets WHERE id IS NOT NULL AND n IS NOT NULL AND r IS NOT NULL AND state IN ('new', 'old')}),
	'2', 'every default was filled in, the given values kept');

# an upsert of a row that exists updates the columns it names only: the
# defaults its proposer decided are for a row it inserts
my $t2 = q{SELECT id || ' ' || extract(epoch FROM created_at) || ' ' || n || ' ' || state FROM tickets WHERE k = 't2'};
my $before_upsert = $nodes[0]->safe_psql('postgres', $t2);
$nodes[1]->safe_psql('postgres', q{SELECT kmd_propose('t2', '{"op":"upsert","table":"tickets","row":{"k":"t2","state":"again"}}')});
ok(KmdTest::wait_converged(\@nodes), 'both nodes apply the upsert');
(my $want_t2 = $before_upsert) =~ s/ old$/ again/;
is($_->safe_psql('postgres', $t2), $want_t2, $_->name . ' keeps the id, time and number t2 was inserted with')
  for @nodes;

# node2 crashes right after applying, before its asynchronous commit is
# surely on disk: it applies the entry again, to the same values
$nodes[0]->safe_psql('postgres', q{SELECT kmd_propose('t3', '{"op":"insert","table":"tickets","row":{"k":"t3"}}')});
$nodes[1]->stop('immediate');
$nodes[1]->start;
ok(KmdTest::wait_converged(\@nodes), 'node2 applies everything again after its crash');
is($nodes[1]->safe_psql('postgres', $tickets), $nodes[0]->safe_psql('postgres', $tickets),
	'and stores the values node1 stores');

# a table name is resolved by the proposer's search_path, on every node alike
$nodes[0]->safe_psql('postgres', q{
SELECT kmd_ddl($$CREATE SCHEMA alice$$);
SELECT kmd_ddl($$CREATE TABLE alice.events (k text PRIMARY KEY, at timestamptz, d date)$$);
SELECT kmd_register_table('alice.events');
});
$nodes[1]->safe_psql('postgres', q{SET search_path = alice, public;
	SELECT kmd_propose('a1', '{"op":"insert","table":"events","row":{"k":"a1"}}')});
ok(KmdTest::wait_converged(\@nodes), 'both nodes apply the write to alice.events');
for my $node (@nodes)
{
	is($node->safe_psql('postgres', q{SELECT (SELECT count(*) FROM alice.events WHERE k = 'a1') || ' ' || (SELECT count(*) FROM public.events WHERE k = 'a1')}),
		'1 0', $node->name . ' wrote alice.events, which the proposer named, not public.events');
}

# what the text of an applier means, and what its functions answer, is the
# same on both nodes whatever node2's settings say
$nodes[0]->safe_psql('postgres', q{
SELECT kmd_ddl($q$CREATE TABLE public.seen (k text PRIMARY KEY, v jsonb, w text DEFAULT 'a\tb')$q$);
SELECT kmd_register_table('public.seen');
SELECT kmd_ddl($q$CREATE FUNCTION public.seen(args jsonb, ctx kommander.apply_context) RETURNS jsonb
LANGUAGE sql AS $$
  INSERT INTO public.seen (k, v) SELECT ctx.key, jsonb_build_object(
    'array', '{a,NULL}'::text[], 'null_equals', (ctx.key = NULL), 'escape', 'a\tb',
    'tsvector', to_tsvector('The cats')::text, 'ident', quote_ident('a'),
    'est', extract(epoch FROM '2026-01-01 10:00 EST'::timestamptz),
    'xml', xmlserialize(content 'a<b/>'::xml AS text))
  RETURNING v
$$$q$);
SELECT kmd_register_applier('seen', 'public.seen(jsonb, kommander.apply_context)');
SELECT kmd_ddl($q$CREATE FUNCTION public.ambiguous(args jsonb, ctx kommander.apply_context) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE k text := 'variable';
BEGIN
  INSERT INTO public.seen (k, v) VALUES (ctx.key, '{}');
  RETURN (SELECT to_jsonb(k) FROM public.seen WHERE seen.k = ctx.key);
END
$$$q$);
SELECT kmd_register_applier('ambiguous', 'public.ambiguous(jsonb, kommander.apply_context)');
});
ok(KmdTest::wait_converged(\@nodes), 'both nodes create the table and the appliers');
$nodes[1]->safe_psql('postgres', q{SELECT kmd_propose('v1', '{"op":"call","applier":"seen"}')});
$nodes[0]->safe_psql('postgres', q{SELECT kmd_propose('v2', '{"op":"call","applier":"seen"}')});
my $ambiguous = $nodes[0]->psql('postgres', q{SELECT kmd_propose('v3', '{"op":"call","applier":"ambiguous"}')});
ok(KmdTest::wait_converged(\@nodes), 'both nodes apply the calls');
my $seen = q{SELECT string_agg(k || ' ' || coalesce(v::text, '') || ' ' || encode(convert_to(w, 'UTF8'), 'hex'), E'\n' ORDER BY k) FROM seen};
my $want_seen = $nodes[0]->safe_psql('postgres', $seen);
is($nodes[1]->safe_psql('postgres', $seen), $want_seen, 'both nodes store the same values');
is($nodes[1]->safe_psql('postgres', q{SELECT concat_ws(' | ', v->'array', v->'null_equals', v->>'escape',
	v->>'tsvector', v->>'ident', v->>'est', v->>'xml', encode(convert_to(w, 'UTF8'), 'hex')) FROM seen WHERE k = 'v1'}),
	q{["a", null] | null | a\tb | 'cats':2 'the':1 | a | 1767279600.000000 | a<b/> | 615c7462},
	'as read with the settings the apply worker pins');
isnt($ambiguous, 0, 'an ambiguous PL/pgSQL name fails the command');
is($nodes[1]->safe_psql('postgres', q{SELECT count(*) FROM seen WHERE k = 'v3'}), '0', 'on node2 too');

done_testing();
