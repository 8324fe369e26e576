#!/usr/bin/env bash
# Usage: probes.sh [LIB] [TABLE.md]
#   Builds the heap-misuse probes (probes.c, probes_cxx.cpp: GrapheneOS hardened_malloc's test probes, rewritten)
#   with gcc/g++ -O0 -g, runs every probe under every allocator configuration below, one process at a time, in a
#   child under `timeout 10`, and prints a Markdown table (also written to TABLE.md when given).
#   LIB: libswalloc.so to test (default: this checkout's .build/release/libswalloc.so). Env: PROBES=name1,name2 to
#   run only some probes; CONFIGS=glibc,swalloc-full to run only some configurations; PEERS=DIR where the
#   mimalloc v3 and snmalloc builds are (default: the shared/peers folder beside the checkout; configurations
#   whose library is missing are skipped).
# A cell is "caught" (killed by a signal, or exit status >= 128: the allocator stopped the program; the signal is
# given), "ran" (exit 0; for a value probe, with the exact output hardened_malloc's suite requires), "out" (exit 0
# but another output), "n/a" (exit 77: the allocator lacks free_sized/free_aligned_sized) or "exit N" / "timeout".
# Right: a caught probe caught, a valid probe ran, a value probe ran with its output. False positive: a valid or
# value probe that the allocator stopped. "info" probes are shown but not counted.
set -u
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
lib="${1:-$here/../../.build/release/libswalloc.so}"
out_file="${2:-}"
[ -f "$lib" ] || { echo "probes.sh: no $lib" >&2; exit 2; }
lib="$(realpath "$lib")"  # the probes run in a scratch directory

build="$(mktemp -d "${TMPDIR:-/tmp}/swalloc-probes.XXXXXX")"
trap 'rm -rf "$build"' EXIT
gcc -O0 -g -w -o "$build/probes" "$here/probes.c" -ldl -lpthread || exit 2
g++ -std=c++17 -fsized-deallocation -O0 -g -w -o "$build/probes_cxx" "$here/probes_cxx.cpp" || exit 2

peers="${PEERS:-$here/../../../shared/peers}"
sys=/usr/lib/x86_64-linux-gnu
# name|preload|environment
all_configs=(
  "glibc||"
  "swalloc|$lib|"
  "swalloc-secure|$lib|SWALLOC_SECURE=1"
  "swalloc-full|$lib|SWALLOC_SECURE=full"
  "jemalloc|$sys/libjemalloc.so.2|"
  "mimalloc|$sys/libmimalloc.so.2|"
  "mimalloc3-secure|$peers/libmimalloc-v3-secure.so|"
  "snmalloc-checks|$peers/libsnmalloc-checks.so|"
)
configs=()
for c in "${all_configs[@]}"; do
  name="${c%%|*}"
  if [ -n "${CONFIGS:-}" ] && [[ ",$CONFIGS," != *",$name,"* ]]; then continue; fi
  pre="$(echo "$c" | cut -d'|' -f2)"
  if [ -n "$pre" ] && [ ! -f "$pre" ]; then echo "probes.sh: skipping $name: no $pre" >&2; continue; fi
  # prove the preload is really loaded into the probes' processes
  if [ -n "$pre" ] && ! LD_PRELOAD="$pre" grep -qF "$(basename "$pre")" /proc/self/maps; then
    echo "probes.sh: skipping $name: $pre does not load" >&2; continue
  fi
  configs+=("$c")
done

# probe list: "binary name expected source"
list=()
while read -r n e s; do list+=("probes $n $e $s"); done < <("$build/probes" --list)
while read -r n e s; do list+=("probes_cxx $n $e $s"); done < <("$build/probes_cxx" --list)

ulimit -c 0
# run_one BIN NAME PRELOAD ENV -> prints the cell
run_one() {
  local bin="$1" name="$2" pre="$3" env="$4" rc sig
  local stdout="$build/stdout"
  (
    cd "$build" || exit 2
    if [ -n "$pre" ]; then export LD_PRELOAD="$pre"; fi
    if [ -n "$env" ]; then export "$env"; fi
    exec timeout -k 2 10 "$build/$bin" "$name" >"$stdout" 2>"$build/stderr"
  )
  rc=$?
  if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then echo "timeout"; return; fi
  if [ "$rc" -ge 128 ]; then
    sig="$(kill -l $((rc - 128)) 2>/dev/null || echo $((rc - 128)))"
    echo "caught ($sig)"; return
  fi
  if [ "$rc" -eq 77 ]; then echo "n/a"; return; fi
  if [ "$rc" -ne 0 ]; then echo "exit $rc"; return; fi
  if [ -n "$("$build/$bin" --expect "$name")" ]; then
    if cmp -s "$stdout" <("$build/$bin" --expect "$name"); then echo "ran"; else echo "out"; fi
  else
    echo "ran"
  fi
}

table="$build/table.md"
{
  header="| probe | expected |"; rule="|---|---|"
  for c in "${configs[@]}"; do header="$header ${c%%|*} |"; rule="$rule---|"; done
  echo "$header"; echo "$rule"
} >"$table"
declare -A right fp na
for c in "${configs[@]}"; do n="${c%%|*}"; right[$n]=0; fp[$n]=0; na[$n]=0; done
total=0; valid_total=0
for entry in "${list[@]}"; do
  read -r bin name expected source <<<"$entry"
  if [ -n "${PROBES:-}" ] && [[ ",$PROBES," != *",$name,"* ]]; then continue; fi
  shown="$expected"; [ "$source" = inferred ] && shown="$expected*"
  row="| $name | $shown |"
  [ "$expected" != info ] && total=$((total + 1))
  { [ "$expected" = valid ] || [ "$expected" = value ]; } && valid_total=$((valid_total + 1))
  for c in "${configs[@]}"; do
    cname="${c%%|*}"; pre="$(echo "$c" | cut -d'|' -f2)"; env="$(echo "$c" | cut -d'|' -f3)"
    cell="$(run_one "$bin" "$name" "$pre" "$env")"
    [ "$cell" = n/a ] && [ "$expected" != info ] && na[$cname]=$((na[$cname] + 1))
    case "$expected:$cell" in
      caught:caught*|valid:ran|value:ran) right[$cname]=$((right[$cname] + 1)) ;;
    esac
    case "$expected:$cell" in
      valid:caught*|value:caught*|valid:timeout|value:timeout) fp[$cname]=$((fp[$cname] + 1)); cell="**$cell**" ;;
    esac
    row="$row $cell |"
  done
  echo "$row" >>"$table"
done
{
  row="| **right** (of $total) | |"
  for c in "${configs[@]}"; do n="${c%%|*}"; row="$row ${right[$n]}/$total |"; done
  echo "$row"
  row="| **false positives** (of $valid_total valid) | |"
  for c in "${configs[@]}"; do n="${c%%|*}"; row="$row ${fp[$n]} |"; done
  echo "$row"
  row="| n/a (function missing) | |"
  for c in "${configs[@]}"; do n="${c%%|*}"; row="$row ${na[$n]} |"; done
  echo "$row"
  echo
  echo "expected: caught / valid / value (exit 0 with hardened_malloc's output) / info (not counted); * = inferred"
  echo "from the probe, no stored test_smc.py entry. lib: $lib"
} >>"$table"
cat "$table"
[ -n "$out_file" ] && cp "$table" "$out_file"
exit 0
