# Perl workload for the preload tests: a large hash, regex captures and substitutions over generated text,
# numeric and string sorts. Each part checks itself and prints one line of results that the test compares with
# known values; the last line is `perl workload ok`. Deterministic: its own generator, sorted hash keys only.
use strict;
use warnings;

my $state = 987654321;
sub next_number {
    # A 31-bit LCG (glibc's rand constants), computed without overflow in Perl's doubles or integers.
    $state = ($state * 1103515245 + 12345) % 2147483648;
    return $state;
}

sub fail { die "perl workload: FAIL: $_[0]\n" }

# 1. A hash of 300k entries, half deleted, values rebuilt.
my %table;
for my $i (0 .. 299_999) {
    $table{"key-$i"} = next_number() % 100_000;
}
my $total = 0;
$total += $_ for values %table;
delete $table{"key-$_"} for grep { $_ % 2 == 0 } 0 .. 299_999;
fail("hash size " . scalar(keys %table)) unless keys %table == 150_000;
my %inverted;
push @{ $inverted{ $table{$_} } }, $_ for keys %table;
my $groups = keys %inverted;
print "hash $total ", scalar(keys %table), " $groups\n";

# 2. Regexes: build records, parse them back with captures, rewrite with substitutions.
my @records = map { my $n = next_number(); "id=$_ name=item$n score=" . ($n % 1000) . ";" } 0 .. 199_999;
my $text = join "\n", @records;
my ($count, $scoreSum) = (0, 0);
while ($text =~ /^id=(\d+) name=item(\d+) score=(\d+);$/mg) {
    $count++;
    $scoreSum += $3;
    fail("score mismatch at $1") unless $2 % 1000 == $3;
}
fail("parsed $count records") unless $count == 200_000;
(my $rewritten = $text) =~ s/name=item(\d+)/"n=" . length($1)/ge;
my $shorter = length($text) - length($rewritten);
my @fields = split /[\n;= ]+/, $rewritten;
print "regex $count $scoreSum $shorter ", scalar(@fields), "\n";

# 3. Sorts: numbers, strings, and a Schwartzian transform.
my @numbers = map { next_number() } 1 .. 300_000;
my @ascending = sort { $a <=> $b } @numbers;
for my $i (1 .. $#ascending) { fail("not sorted at $i") if $ascending[$i - 1] > $ascending[$i] }
my @words = sort map { sprintf "%x", $_ } @numbers[0 .. 99_999];
my @byLength = map { $_->[1] } sort { $a->[0] <=> $b->[0] or $a->[1] cmp $b->[1] } map { [length, $_] } @words;
my $sample = 0;
$sample = ($sample * 31 + $ascending[$_ * 1000]) % 1_000_000_007 for 0 .. 299;
print "sort $ascending[0] $ascending[-1] $sample $words[0] $words[-1] $byLength[0] $byLength[-1]\n";

print "perl workload ok\n";
