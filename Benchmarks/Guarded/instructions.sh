#!/bin/bash
# Guarded sampling's cost in user-space instructions (callgrind), which a loaded machine does not change:
# each allocation-heavy workload of swalloc-bench at scale 0.02 under libswalloc.so, once per configuration,
# printed as ratios to the first configuration.
#
#   bash Benchmarks/Guarded/instructions.sh LIB CACHE 'SWALLOC_GUARDED_SAMPLE=0' 'SWALLOC_GUARDED_SAMPLE=50000' \
#        'SWALLOC_SECURE=1 SWALLOC_GUARDED_SAMPLE=0' 'SWALLOC_SECURE=1'
#
# LIB: a libswalloc.so (valgrind may refuse one with libgcc_eh's debug information: objcopy --strip-debug a
# copy). CACHE: the workload binaries swalloc-bench compiled (its swalloc-bench-cache/bin after any run).
set -euo pipefail
lib=$1
cache=$2
shift 2
workloads=(
  "churn-lifo churn 0.02 lifo" "churn-fifo churn 0.02 fifo" "churn-random churn 0.02 random"
  "sizesweep sizesweep 0.02" "realloc realloc 0.02" "xmalloc-2 xmalloc 0.02 2" "larson larson 0.02 4"
  "cache-scratch cache-scratch 0.02 4"
)
printf '%-14s' workload
for configuration in "$@"; do printf ' | %s' "$configuration"; done
echo
for line in "${workloads[@]}"; do
  read -r name program arguments <<<"$line"
  binary=$(ls "$cache"/"$program"-* | head -1)
  printf '%-14s' "$name"
  first=0
  for configuration in "$@"; do
    # shellcheck disable=SC2086
    count=$(env LD_PRELOAD="$lib" $configuration valgrind --tool=callgrind --callgrind-out-file=/dev/null \
      "$binary" $arguments 2>&1 >/dev/null | sed -n 's/.*Collected : \([0-9]*\).*/\1/p')
    if [ "$first" = 0 ]; then first=$count; printf ' | %d' "$count"; else
      printf ' | %s' "$(awk -v a="$count" -v b="$first" 'BEGIN { printf "%.3f", a / b }')"; fi
  done
  echo
done
