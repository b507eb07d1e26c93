# 168_change_feed.pl
#   The change feed under load.  Clients insert through all three nodes
#   while pg_recvlogical follows node1's slot (include-system), stops and
#   starts again; node2's and node3's feeds are read through SQL; a split
#   and a merge happen in between.  On every node the feed shows each row
#   inserted exactly once, each partition's entries in log order, with the
#   same partition, index and term for a row on every node; node1's shows
#   the split and the merge as events.  A backlog of batches applied in
#   few transactions keeps each batch's rows with its entry.  A logical
#   message with kommander's prefix from any other session is left out.
#   A partitioned control table is named as registered, a json value stays
#   on one line, and an update tells an old key only when it changed.
#
# Copyright (c) 2026, kommander developers
#
# t/168_change_feed.pl

use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use JSON::PP;
use KmdTest;

my $conf = <<'EOC';
wal_level = logical
max_wal_senders = 4
max_replication_slots = 6
kommander.balance_interval = 0
EOC
my @nodes = KmdTest::new_cluster(3, conf => $conf);
my ($n1, $n2, $n3) = @nodes;
KmdTest::allow_feed(\@nodes);
KmdTest::create_kv($n1);
KmdTest::wait_converged(\@nodes);
$_->safe_psql('postgres', "SELECT pg_create_logical_replication_slot('feed', 'kommander')") for @nodes;

my $dir = PostgreSQL::Test::Utils::tempdir();
my $file = "$dir/node1.feed";

# pg_recvlogical following node1's slot, appending to $file
sub recvlogical
{
	my (@extra) = @_;
	my @cmd = ('pg_recvlogical', '-d', KmdTest::conninfo($n1), '-S', 'feed', '--start',
		'-o', 'include-system=true', '-F', '1', '-f', $file, @extra);
	return IPC::Run::start(\@cmd, '>', "$dir/recv.out", '2>>', "$dir/recv.err");
}

sub file_size
{
	return -e $file ? -s $file : 0;
}

# The objects of $file from byte $from to byte $to
sub read_feed
{
	my ($from, $to) = @_;
	open(my $fh, '<', $file) or return [];
	seek($fh, $from, 0);
	my $text = '';
	read($fh, $text, $to - $from);
	close $fh;
	return [ map { decode_json($_) } grep { $_ ne '' } split /\n/, $text ];
}

# All that $node's slot has, through SQL (one consumer session each time)
sub sql_feed
{
	my ($node) = @_;
	my $out = $node->safe_psql('postgres', "SELECT data FROM pg_logical_slot_get_changes('feed', NULL, NULL)");
	return [ map { decode_json($_) } grep { $_ ne '' } split /\n/, $out ];
}

sub lsn_value
{
	my ($lsn) = @_;
	my ($hi, $lo) = split m{/}, $lsn;
	return hex($hi) * 2**32 + hex($lo);
}

# What a consumer keeps of its segments (each what one connection got):
# a reconnect may send again the transactions from the last one it had on,
# whole; objects below the last lsn kept are skipped, and the last
# transaction kept is replaced by its new copy.
sub consume
{
	my (@segments) = @_;
	my @kept;
	my $ordered = 1;
	for my $seg (@segments)
	{
		my $last = @kept ? lsn_value($kept[-1]{lsn}) : undef;
		my $replacing = 0;
		for my $o (@$seg)
		{
			my $lsn = lsn_value($o->{lsn});
			if (defined $last && !$replacing)
			{
				next if $lsn < $last;
				if ($lsn == $last)
				{
					pop @kept while @kept && lsn_value($kept[-1]{lsn}) == $last;
				}
				$replacing = 1;
			}
			$ordered = 0 if @kept && $lsn < lsn_value($kept[-1]{lsn});
			push @kept, $o;
		}
	}
	return (\@kept, $ordered);
}

sub acked_count
{
	my $n = 0;
	$n += scalar(KmdTest::acked_keys($dir, $_)) for qw(c1 c2 c3);
	return $n;
}

sub wait_acked
{
	my ($n) = @_;
	for (1 .. 1200)
	{
		return 1 if acked_count() >= $n;
		select(undef, undef, undef, 0.1);
	}
	return 0;
}

# ---------------------------------------------------------------------------
# load through every node; the consumer stops and starts; a split, a merge
# ---------------------------------------------------------------------------
my $recv = recvlogical();
my $insert = '{"op":"insert","table":"kv","row":{"k":"KEY","v":"v"}}';
my @load = (
	KmdTest::start_load($n1, $dir, 'c1', $insert),
	KmdTest::start_load($n2, $dir, 'c2', $insert),
	KmdTest::start_load($n3, $dir, 'c3', $insert));

ok(wait_acked(40), 'writes go through');
my $new = $n1->safe_psql('postgres', 'SELECT kmd_split(1)');
ok($new > 1, "partition 1 split, new partition $new");
ok(wait_acked(80), 'writes go on');

$recv->signal('INT');
$recv->finish;
my $first_end = file_size();
cmp_ok($first_end, '>', 0, 'the consumer got something before it stopped');
my @n2_segments = (sql_feed($n2));
ok(wait_acked(110), 'writes go on while the consumer is away');
$recv = recvlogical();

$n1->safe_psql('postgres', "SELECT kmd_merge(1, $new)");
push @n2_segments, sql_feed($n2);
ok(wait_acked(160), 'writes go on after the merge');

open(my $stop, '>', "$dir/stop") or die;
close $stop;
$_->finish for @load;
ok(KmdTest::wait_converged(\@nodes), 'converged');
# the apply workers commit without waiting for the WAL flush, and decoding
# reads only flushed WAL: wait until each node's WAL writer has flushed it
for my $node (@nodes)
{
	my $target = $node->safe_psql('postgres', 'SELECT pg_current_wal_insert_lsn()');
	ok($node->poll_query_until('postgres', "SELECT pg_current_wal_flush_lsn() >= '$target'"),
		$node->name . ': its WAL is flushed');
}

# node1's consumer has everything once the rows of kv are in its file
my $rows = $n1->safe_psql('postgres', 'SELECT count(*) FROM kv');
my $caught_up = 0;
for (1 .. 600)
{
	my ($kept) = consume(read_feed(0, $first_end), read_feed($first_end, file_size()));
	if (scalar(grep { ($_->{op} // '') eq 'insert' } @$kept) >= $rows)
	{
		$caught_up = 1;
		last;
	}
	select(undef, undef, undef, 0.1);
}
ok($caught_up, 'the restarted consumer caught up');
$recv->signal('INT');
$recv->finish;
my $second_end = file_size();
# and a third run, to the end of the WAL now: nothing new, nothing twice
my $endpos = $n1->safe_psql('postgres', 'SELECT pg_current_wal_lsn()');
$recv = recvlogical('--endpos', $endpos);
$recv->finish;

my %feeds;
my $ordered;
($feeds{node1}, $ordered) = consume(read_feed(0, $first_end), read_feed($first_end, $second_end),
	read_feed($second_end, file_size()));
ok($ordered, 'node1: commit lsns grow through the feed');
($feeds{node2}, $ordered) = consume(@n2_segments, sql_feed($n2));
ok($ordered, 'node2: commit lsns grow through the feed');
($feeds{node3}, $ordered) = consume(sql_feed($n3));
ok($ordered, 'node3: commit lsns grow through the feed');

# ---------------------------------------------------------------------------
# each node's feed: every row once, each partition in log order
# ---------------------------------------------------------------------------
my %where;    # node => key => "partition/index/term"
for my $node (@nodes)
{
	my $name = $node->name;
	my @data = grep { defined $_->{table} } @{ $feeds{$name} };
	my %count;
	my %last_index;
	my $in_order = 1;
	my $shape = 1;
	for my $o (@data)
	{
		$shape = 0
		  unless $o->{op} eq 'insert' && $o->{table} eq 'public.kv' && $o->{key}{k} eq $o->{row}{k}
		  && $o->{row}{v} eq 'v' && $o->{term} > 0;
		$count{ $o->{key}{k} }++;
		$where{$name}{ $o->{key}{k} } = "$o->{partition}/$o->{index}/$o->{term}";
		if (defined $last_index{ $o->{partition} } && $o->{index} <= $last_index{ $o->{partition} })
		{
			diag("$name: partition $o->{partition} index $o->{index} after $last_index{ $o->{partition} } (key $o->{key}{k}, lsn $o->{lsn})")
			  if $in_order;
			$in_order = 0;
		}
		$last_index{ $o->{partition} } = $o->{index};
	}
	my @keys = split /\n/, $node->safe_psql('postgres', 'SELECT k FROM kv ORDER BY k');
	ok($shape, "$name: every object is an insert of public.kv with its key and row");
	is(scalar(grep { ($count{$_} // 0) != 1 } @keys), 0, "$name: every row of kv is in the feed once");
	is(scalar(keys %count), scalar(@keys), "$name: and nothing else");
	ok($in_order, "$name: each partition's entries in log order");
	is(scalar(grep { $_->{op} eq 'snapshot' } @{ $feeds{$name} }), 0, "$name: no image was installed");
	cmp_ok(scalar(keys %last_index), '>=', 2, "$name: the feed saw several partitions");
}
is(KmdTest::missing_keys($n1, 'kv', [ map { KmdTest::acked_keys($dir, $_) } qw(c1 c2 c3) ]), 0,
	'every acknowledged write is in kv');
my $same = 1;
for my $k (keys %{ $where{node1} })
{
	next if ($where{node2}{$k} // '') eq $where{node1}{$k}
	  && ($where{node3}{$k} // '') eq $where{node1}{$k};
	diag("$k: node1 $where{node1}{$k}, node2 " . ($where{node2}{$k} // '-') . ", node3 " . ($where{node3}{$k} // '-'))
	  if $same;
	$same = 0;
}
ok($same, 'a row has the same partition, index and term in every node\'s feed');

# node1's consumer asked for the system events: the split, then the merge
my @events = grep { ($_->{op} // '') eq 'event' } @{ $feeds{node1} };
my @split = grep { $_->{event} eq 'split' && $_->{partition} == 1 && $_->{new_partition} == $new } @events;
my @merge = grep { $_->{event} eq 'merge' && $_->{partition} == 1 && $_->{merged} == $new } @events;
is(scalar(@split), 1, 'node1: the split is an event of the feed');
is(scalar(@merge), 1, 'node1: so is the merge');
ok(@split && @merge && lsn_value($split[0]{lsn}) < lsn_value($merge[0]{lsn}), 'split before merge');
is(scalar(grep { ($_->{op} // '') eq 'event' } @{ $feeds{node2} }), 0,
	'node2: no events without include-system');

# ---------------------------------------------------------------------------
# a backlog applied in few transactions: a batch's rows, written in
# subtransactions below their entry's, carry that entry
# ---------------------------------------------------------------------------
sql_feed($n2);
my ($locker) = KmdTest::hold_back($n1, $n2, [1]);
KmdTest::propose_routed($n1, 1, 'nested', 20, q{jsonb_build_object('op', 'batch', 'commands', jsonb_build_array(
	jsonb_build_object('op', 'insert', 'table', 'kv', 'row', jsonb_build_object('k', k, 'v', 'v')),
	jsonb_build_object('op', 'update', 'table', 'kv', 'key', jsonb_build_object('k', k),
	  'set', jsonb_build_object('v', 'w'))))});
$locker->query_safe('COMMIT');
$locker->quit;
ok(KmdTest::wait_converged(\@nodes), 'node2 applies the backlog');
my $target = $n2->safe_psql('postgres', 'SELECT pg_current_wal_insert_lsn()');
ok($n2->poll_query_until('postgres', "SELECT pg_current_wal_flush_lsn() >= '$target'"), 'and flushes it');
my @nested = grep { defined $_->{table} && $_->{key}{k} =~ /^nested/ } @{ sql_feed($n2) };
my %index_of;
my $apart = 0;
for my $o (@nested)
{
	my $k = $o->{key}{k};
	if (defined $index_of{$k} && $index_of{$k} != $o->{index})
	{
		diag("$k: $o->{op} at index $o->{index}, the one before at $index_of{$k}") unless $apart;
		$apart++;
	}
	$index_of{$k} = $o->{index};
}
is(scalar(@nested), 40, "node2's feed has each batch's insert and update");
is($apart, 0, "each batch's two changes carry the batch's entry");
is(scalar(keys %{ { map { $_ => 1 } values %index_of } }), 20, 'twenty entries, one per batch');

# ---------------------------------------------------------------------------
# the objects' shape: a partitioned control table is named as registered,
# a json value stays on one line, and under REPLICA IDENTITY FULL an update
# that leaves the key alone tells no old key
# ---------------------------------------------------------------------------
$n1->safe_psql('postgres', q{
SELECT kmd_ddl($$CREATE TABLE public.parted (k text PRIMARY KEY, j json, n int) PARTITION BY HASH (k)$$);
SELECT kmd_ddl($$CREATE TABLE public.parted_0 PARTITION OF public.parted FOR VALUES WITH (MODULUS 2, REMAINDER 0)$$);
SELECT kmd_ddl($$CREATE TABLE public.parted_1 PARTITION OF public.parted FOR VALUES WITH (MODULUS 2, REMAINDER 1)$$);
SELECT kmd_ddl('ALTER TABLE public.parted_0 REPLICA IDENTITY FULL');
SELECT kmd_ddl('ALTER TABLE public.parted_1 REPLICA IDENTITY FULL');
SELECT kmd_register_table('public.parted');
SELECT kmd_ddl($$CREATE FUNCTION public.parted_put(args jsonb, ctx kommander.apply_context) RETURNS jsonb
LANGUAGE sql AS 'INSERT INTO public.parted VALUES (ctx.key, E''{\n  "a": 1\n}''::json, 1) RETURNING NULL::jsonb'$$);
SELECT kmd_register_applier('parted_put', 'public.parted_put(jsonb, kommander.apply_context)');
});
ok(KmdTest::wait_converged(\@nodes), 'every node has the partitioned table');
sql_feed($n2);
# the workers' commits carry their own commit time, as test_decoding shows it
$n2->safe_psql('postgres', "SELECT pg_create_logical_replication_slot('stamps', 'test_decoding')");
my $t0 = $n2->safe_psql('postgres', 'SELECT now()');
$n2->safe_psql('postgres', q{
SELECT kmd_propose('p1', '{"op":"call","applier":"parted_put"}');
SELECT kmd_propose('p1', '{"op":"update","table":"parted","key":{"k":"p1"},"set":{"n":2}}');
SELECT kmd_propose('p2', '{"op":"call","applier":"parted_put"}');
SELECT kmd_propose('p2', '{"op":"upsert","table":"parted","row":{"k":"p2","n":3}}');
});
$target = $n2->safe_psql('postgres', 'SELECT pg_current_wal_insert_lsn()');
$n2->poll_query_until('postgres', "SELECT pg_current_wal_flush_lsn() >= '$target'") or die 'no flush';
my @parted = grep { defined $_->{table} } @{ sql_feed($n2) };
is(join(' ', map { "$_->{table}:$_->{op}" } @parted),
	'public.parted:insert public.parted:update public.parted:insert public.parted:update',
	'the changes of a partitioned control table name it');
is(join(' ', map { $_->{row}{j}{a} // '-' } @parted), '1 1 1 1', 'a json value with line breaks, on one line');
ok(!exists $parted[1]{old_key} && !exists $parted[3]{old_key},
	'an update that leaves the key alone tells no old key');
is($n2->safe_psql('postgres', qq{
	SELECT count(*) > 0 AND count(*) FILTER (WHERE at < '$t0') = 0 FROM (
	  SELECT substring(data FROM '\\(at (.*)\\)\$')::timestamptz AS at
	    FROM pg_logical_slot_peek_changes('stamps', NULL, NULL, 'include-timestamp', 'on')
	   WHERE data LIKE 'COMMIT%') c}), 't',
	'the commits carry their own time');
$n2->safe_psql('postgres', "SELECT pg_drop_replication_slot('stamps')");

# a key stored out of line, which an update that leaves it alone does not
# log again, is no changed key either
my $long = join('', map { sprintf('%08x', int(rand(2**32))) } 1 .. 320);
$n2->safe_psql('postgres', qq{
SELECT kmd_propose('$long', '{"op":"insert","table":"parted","row":{"k":"$long","n":1}}');
SELECT kmd_propose('$long', '{"op":"update","table":"parted","key":{"k":"$long"},"set":{"n":2}}');
});
$target = $n2->safe_psql('postgres', 'SELECT pg_current_wal_insert_lsn()');
$n2->poll_query_until('postgres', "SELECT pg_current_wal_flush_lsn() >= '$target'") or die 'no flush';
@parted = grep { defined $_->{table} } @{ sql_feed($n2) };
is(join(' ', map { $_->{op} } @parted), 'insert update', 'a row with a key of 2,560 bytes');
ok(!exists $parted[1]{old_key}, 'its update tells no old key');
is($parted[1]{key}{k}, $long, 'its update names the key, from the old row the WAL holds');
is($parted[1]{row}{k}, $long, 'and so does its row');

# ---------------------------------------------------------------------------
# anyone may write a logical message: the feed believes the workers' only
# ---------------------------------------------------------------------------
$n2->safe_psql('postgres', 'CREATE ROLE mallory LOGIN');
$n2->safe_psql('postgres', q{
SELECT pg_logical_emit_message(true, 'kommander', 'I1 99999 3');
SELECT pg_logical_emit_message(true, 'kommander', 'V{"event":"forged"}');
}, extra_params => [ '-U', 'mallory' ]);
# a leader change that node2's Raft worker sees, as an event of its own
$n1->safe_psql('postgres', "SELECT kmd_transfer_leader(1, 'node3')");
$n1->safe_psql('postgres', "SELECT kmd_transfer_leader(1, 'node1')");
my $system = q{SELECT data FROM pg_logical_slot_peek_changes('feed', NULL, NULL, 'include-system', 'true')};
ok($n2->poll_query_until('postgres', qq{SELECT count(*) > 0 FROM ($system) f WHERE data LIKE '%"event":"leader"%'}),
	"node2's feed has the leader change its Raft worker saw");
my @system = map { decode_json($_) } grep { $_ ne '' } split /\n/, $n2->safe_psql('postgres', $system);
is(scalar(grep { ($_->{op} // '') eq 'snapshot' } @system), 0, 'but not the image mark of a role\'s own');
is(scalar(grep { ($_->{event} // '') eq 'forged' } @system), 0, 'nor its event');

# a kmd_ddl statement that ran is an event of its own: what such a
# statement changes in rows by the catalog alone (a partition detached) is
# in no row change
my $ddl_index = $n1->safe_psql('postgres',
	q{SELECT kmd_ddl('COMMENT ON TABLE public.parted IS ''rows by key''')});
$n1->psql('postgres', q{SELECT kmd_ddl('COMMENT ON TABLE public.nothing_here IS NULL')});
my $system_applied = $n1->safe_psql('postgres',
	'SELECT applied_index FROM kommander.partitions WHERE partition_id = 0');
$n2->poll_query_until('postgres',
	"SELECT applied_index >= $system_applied FROM kommander.partitions WHERE partition_id = 0")
  or die 'node2 did not apply the statements';
$target = $n2->safe_psql('postgres', 'SELECT pg_current_wal_insert_lsn()');
$n2->poll_query_until('postgres', "SELECT pg_current_wal_flush_lsn() >= '$target'") or die 'no flush';
ok($n2->poll_query_until('postgres',
	qq{SELECT count(*) > 0 FROM ($system) f WHERE data LIKE '%"event":"ddl","index":$ddl_index%'}),
	"node2's feed has the kmd_ddl statement's event");
@system = map { decode_json($_) } grep { $_ ne '' } split /\n/, $n2->safe_psql('postgres', $system);
is(scalar(grep { ($_->{event} // '') eq 'ddl' && $_->{index} >= $ddl_index } @system), 1,
	'once, and none for a statement that failed');

$_->safe_psql('postgres', "SELECT pg_drop_replication_slot('feed')") for @nodes;
done_testing();
