# 180_nemesis.pl
#   A nemesis test on real servers: six clients on nodes drawn at random
#   read, write, compare-and-set, append, and grant, keep alive, revoke and
#   read leases and their rows on a three-node cluster while
#   faults drawn from a seed come and go (kill -9 and restart, pauses longer
#   than the election timeout, cut, one-way cut, black-holed and delayed
#   links, the isolated leader of a partition, leader transfers, splits and
#   merges).  Once healed, the cluster must converge, every register's
#   history must be linearizable, every acknowledged append present once,
#   in the same order, on every node, every list read a prefix of the
#   final list holding the appends acknowledged before it, no lease ended
#   before the time its last keepalive promised or seen again once ended,
#   and every lease left to lapse gone from every node.  KmdNemesis.pm has
#   the machinery.
#
#   KMD_NEMESIS_SEED (default: drawn, and printed), KMD_NEMESIS_SECONDS
#   (default 60), KMD_NEMESIS_FAULTS (a comma-separated list of the faults
#   to draw from, default all); KMD_NEMESIS_EXPECT=anomalies turns the test around for a
#   deliberately broken build (scripts/nemesis.sh --broken, which names its
#   defect in KMD_NEMESIS_DEFECT): it passes only if the checks find
#   something.
#
# Copyright (c) 2026, kommander developers
#
# t/180_nemesis.pl

use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use KmdNemesis;

my $seed = $ENV{KMD_NEMESIS_SEED} // (time() % 1000000);
my $seconds = $ENV{KMD_NEMESIS_SECONDS} // 60;
my $faults = $ENV{KMD_NEMESIS_FAULTS} || undef;
my $expect_anomalies = ($ENV{KMD_NEMESIS_EXPECT} // '') eq 'anomalies';
my $replay = "scripts/nemesis.sh --seed $seed --seconds $seconds"
  . ($faults ? " --faults $faults" : '')
  . ($expect_anomalies ? ' --broken ' . ($ENV{KMD_NEMESIS_DEFECT} || 'commit') : '');
note("nemesis seed $seed, $seconds s; replay: $replay");

my $t = KmdNemesis::new_cluster(3);
my $s = KmdNemesis::run($t, seed => $seed, seconds => $seconds, faults => $faults);
my @summary = KmdNemesis::summary_lines($s);
note($_) for @summary, 'schedule:', map { "  $_" } @{ $s->{schedule} };
open(my $fh, '>', "$PostgreSQL::Test::Utils::log_path/nemesis-summary.txt") or die $!;
print $fh "seed: $seed\nseconds: $seconds\n", map { "$_\n" } @summary, @{ $s->{problems} };
close $fh;

my $ok_reg = $s->{ops}{register}{ok} // 0;
my $ok_app = $s->{ops}{append}{ok} // 0;
my $ok_lease = $s->{ops}{lease}{ok} // 0;
my $injected = 0;
$injected += $_ for values %{ $s->{faults} };
ok($ok_reg > 0 && $ok_app > 0 && $ok_lease > 0,
	"operations completed ($ok_reg registers, $ok_app appends, $ok_lease lease operations)");
ok($injected > 0, "faults were injected ($injected)");

if ($expect_anomalies)
{
	ok($s->{anomalies} > 0, "the broken build is caught ($s->{anomalies} anomalies)");
	diag($_) for @{ $s->{problems} };
}
else
{
	is($s->{client_rc}, 0, 'the clients met no SQLSTATE outside the expected set')
	  or diag($s->{client_err});
	is($s->{anomalies}, 0,
		'no anomaly: linearizable registers, appends once and alike everywhere, leases kept their time')
	  or diag(join("\n", "seed: $seed", @{ $s->{problems} }, "replay: $replay"));

	# the checks had something to check: a run whose every read failed,
	# or whose compare-and-sets never swapped, would pass them vacuously
	my $by_f = $s->{ops_by_f}{register} // {};
	my $reads = $by_f->{read}{ok} // 0;
	my $writes = ($by_f->{write}{ok} // 0) + ($by_f->{cas}{ok} // 0);
	ok($reads > 0 && $writes > 0 && ($s->{cas_swapped} // 0) > 0,
		"the registers were read ($reads) and written ($writes, "
		  . ($s->{cas_swapped} // 0) . ' compare-and-sets swapped) during the run');
	my $list_reads = $s->{ops}{'list read'}{ok} // 0;
	ok($list_reads > 0, "the lists were read ($list_reads) during the run");
	ok(($s->{lease_checks}{promised} // 0) > 0,
		'reads of leased rows fell within a time a lease promised ('
		  . ($s->{lease_checks}{promised} // 0) . ')');
}

KmdProxy::stop($t->{proxy});
done_testing();
