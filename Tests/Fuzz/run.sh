#!/usr/bin/env bash
# Builds the libFuzzer target Tests/Fuzz/swalloc_fuzz.c and runs it on libswalloc.so (LD_PRELOAD) for a
# bounded time. Usage: Tests/Fuzz/run.sh [seconds (default 60)] [extra libFuzzer flags...]
# A crash input is written to Tests/Fuzz/regressions/; reproduce it with
#   LD_PRELOAD=.build/release/libswalloc.so .build-fuzz/swalloc_fuzz Tests/Fuzz/regressions/crash-...
set -euo pipefail

root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
seconds="${1:-60}"
shift || true

# The clang that ships the fuzzer runtime: the toolchain's own, else clang-14 with libclang-rt-14-dev.
clang="${CLANG:-}"
if [[ -z "$clang" ]]; then
  for candidate in /opt/swift/usr/bin/clang clang-14 clang; do
    command -v "$candidate" >/dev/null || continue
    resource="$("$candidate" -print-resource-dir)"
    if compgen -G "$resource/lib/linux/libclang_rt.fuzzer*-x86_64.a" >/dev/null \
      || compgen -G "$resource/lib/x86_64-unknown-linux-gnu/libclang_rt.fuzzer*.a" >/dev/null; then
      clang="$candidate"
      break
    fi
  done
fi
if [[ -z "$clang" ]]; then
  echo "run.sh: no clang with the libFuzzer runtime (apt-get install -y clang-14 libclang-rt-14-dev)" >&2
  exit 1
fi

library=.build/release/libswalloc.so
if [[ ! -f "$library" ]]; then
  swift build -c release --product swalloc
fi

# Only the harness is instrumented (coverage and comparisons); the allocator is exercised as shipped.
# -fno-builtin keeps clang from folding malloc/free pairs or calloc+memset away.
mkdir -p .build-fuzz/corpus Tests/Fuzz/regressions
"$clang" -g -O1 -fno-builtin -fsanitize=fuzzer -Wall -Wextra \
  -o .build-fuzz/swalloc_fuzz Tests/Fuzz/swalloc_fuzz.c -lpthread -ldl

# Every input that once crashed runs first (under the same options as the fuzzing run): a regression fails here.
for input in Tests/Fuzz/regressions/crash-*; do
  [[ -f "$input" ]] || continue
  LD_PRELOAD="$root/$library" .build-fuzz/swalloc_fuzz "$input"
done

# -rss_limit_mb: 64 slots of up to 4 MiB plus swalloc's caches stay well below it.
LD_PRELOAD="$root/$library" .build-fuzz/swalloc_fuzz \
  -max_total_time="$seconds" -max_len=4096 -rss_limit_mb=4096 -timeout=30 -print_final_stats=1 \
  -artifact_prefix=Tests/Fuzz/regressions/ "$@" .build-fuzz/corpus
