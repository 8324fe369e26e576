#!/bin/sh
# soak.sh: runs soak.c (a mixed multi-threaded workload with thread churn and forks) under libswalloc.so for
# a long time, samples its resident set every 10 s, and checks that after warm-up it stays flat.
#
# Usage: Benchmarks/Soak/soak.sh [SECONDS]          (default 600; not part of CI)
# Environment:
#   SOAK_LIB       the allocator to preload (default: .build/release/libswalloc.so; "none": glibc's malloc)
#   SOAK_THREADS   worker threads (default 4)
#   SOAK_SLOTS     live blocks per worker (default 400)
#   SOAK_WARMUP    seconds of warm-up (default 120)
#   SOAK_INTERVAL  seconds between samples (default 10)
# PASS when the program checks out (every block's contents, every forked child), and after warm-up its RSS
# is flat: every 3-sample moving average is at most the largest one of the warm-up plus 10 % or 8 MiB
# (whichever is more), and the mean of the last third of the samples after warm-up is at most the mean of
# the first third plus as much. (Single samples swing by 30 % with the workload's live set, most of it in
# huge blocks: the moving average keeps one swing from failing the run, and a leak still shows.)
set -eu

root=$(cd "$(dirname "$0")/../.." && pwd)
seconds=${1:-600}
threads=${SOAK_THREADS:-4}
slots=${SOAK_SLOTS:-400}
warmup=${SOAK_WARMUP:-120}
interval=${SOAK_INTERVAL:-10}
lib=${SOAK_LIB:-$root/.build/release/libswalloc.so}

if [ "$lib" != none ] && [ ! -r "$lib" ]; then
  echo "soak: $lib not found (swift build -c release, or set SOAK_LIB)" >&2
  exit 2
fi
scratch=$(mktemp -d "${TMPDIR:-/tmp}/swalloc-soak.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
gcc -std=gnu11 -O2 -g -Wall -Wextra -pthread -o "$scratch/soak" "$root/Benchmarks/Soak/soak.c" -ldl

if [ "$lib" = none ]; then
  "$scratch/soak" "$seconds" "$threads" "$slots" > "$scratch/out" 2>&1 &
else
  LD_PRELOAD="$lib" "$scratch/soak" "$seconds" "$threads" "$slots" > "$scratch/out" 2>&1 &
fi
pid=$!

# Sample VmRSS (kB) every interval until the program exits: "seconds kB" per line.
start=$(date +%s)
: > "$scratch/samples"
while kill -0 "$pid" 2>/dev/null; do
  sleep "$interval"
  rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status" 2>/dev/null || true)
  [ -n "$rss" ] && echo "$(( $(date +%s) - start )) $rss" >> "$scratch/samples"
done
status=0
wait "$pid" || status=$?

cat "$scratch/out"
# The loader skips a preload it cannot load without a word: a Swalloc run must show it was active.
case "$lib" in
  *swalloc*) if ! grep -q "swalloc active" "$scratch/out"; then echo "soak: FAIL: $lib was not active" >&2; exit 1; fi ;;
esac

awk -v warmup="$warmup" -v status="$status" '
  { t[NR] = $1; kb[NR] = $2 }
  END {
    printf "RSS samples (s: MiB):"
    for (i = 1; i <= NR; i++) printf "%s %d: %.1f", (i - 1) % 6 == 0 ? "\n " : "  ", t[i], kb[i] / 1024
    printf "\n"
    for (i = 1; i <= NR; i++) {
      smooth = i < 3 ? kb[i] : (kb[i] + kb[i - 1] + kb[i - 2]) / 3
      if (t[i] <= warmup) { if (smooth > warm) warm = smooth; continue }
      after[++n] = kb[i]
      if (n == 1 || kb[i] < low) low = kb[i]
      if (kb[i] > high) high = kb[i]
      if (smooth > highSmooth) highSmooth = smooth
    }
    if (n < 3 || warm == 0) { print "soak: FAIL: too few samples after the warm-up (run longer than SOAK_WARMUP)"; exit 1 }
    third = int(n / 3)
    for (i = 1; i <= third; i++) { early += after[i]; late += after[n - third + i] }
    early /= third; late /= third
    slack = warm / 10 > 8192 ? warm / 10 : 8192
    printf "after warm-up (%d s): min %.1f, max %.1f, final %.1f MiB\n", warmup, low / 1024, high / 1024, kb[NR] / 1024
    printf "3-sample moving average: warm-up max %.1f MiB, after max %.1f MiB (limit %.1f MiB)\n", warm / 1024,
      highSmooth / 1024, (warm + slack) / 1024
    printf "trend: mean of the first third after warm-up %.1f MiB, of the last third %.1f MiB\n", early / 1024,
      late / 1024
    if (status != 0) { printf "soak: FAIL: the program exited with status %d\n", status; exit 1 }
    if (highSmooth > warm + slack) { print "soak: FAIL: RSS grew past the warm-up maximum"; exit 1 }
    if (late > early + slack) { print "soak: FAIL: RSS trends upward after the warm-up"; exit 1 }
    print "soak: PASS"
  }' "$scratch/samples"
