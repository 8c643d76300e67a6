#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/) with clang-16 in their own build
# directory and runs each over a copy of its seed corpus (fuzz/corpus/<target>)
# for SECONDS_PER_TARGET seconds (default 600), one after the other, then
# prints target / executions / crashes. Exits non-zero if any target crashed
# (sanitizer report, failed property, timeout, OOM) or did not run.
#
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
#        scripts/fuzz.sh --runs EXECUTIONS [TARGET...]   (each target until it has
#        run EXECUTIONS inputs, however long that takes: the README's figures)
# Environment: KPANEL_FUZZ_BUILD_DIR (default build-fuzz), KPANEL_FUZZ_JOBS
# (build parallelism, default nproc), CC/CXX (default clang-16/clang++-16).
# Needs: apt-get install clang-16 libclang-rt-16-dev (plus the usual build deps,
# scripts/deps.sh: the whole tree is configured, only the fuzz targets are built).
# Findings land in BUILD_DIR/fuzz-run/<target>/ (crash-*, timeout-*, oom-*, leak-*,
# and the log); reproduce with BUILD_DIR/fuzz/<target> FILE.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"

usage() {
  echo "usage: $0 [SECONDS_PER_TARGET] [TARGET...] | --runs EXECUTIONS [TARGET...]" >&2
  exit 2
}
runs=0
if [[ "${1:-}" == --runs ]]; then
  runs="${2:-}"
  [[ "$runs" =~ ^[1-9][0-9]*$ ]] || usage
  seconds=0  # no time limit: -runs ends each target
  shift 2
else
  seconds="${1:-600}"
  [[ "$seconds" =~ ^[1-9][0-9]*$ ]] || usage
  shift || true
fi

all_targets=(fuzz_frame fuzz_request fuzz_response fuzz_config fuzz_base32 fuzz_otpauth_uri
             fuzz_recovery_code)
targets=("${all_targets[@]}")
if [[ $# -gt 0 ]]; then targets=("$@"); fi

# Longest input libFuzzer generates, per target.
declare -A max_len=(
  [fuzz_frame]=16384 [fuzz_request]=8192 [fuzz_response]=16384 [fuzz_config]=8192
  [fuzz_base32]=1024 [fuzz_otpauth_uri]=2048 [fuzz_recovery_code]=256)

build="${KPANEL_FUZZ_BUILD_DIR:-$here/build-fuzz}"
jobs="${KPANEL_FUZZ_JOBS:-$(nproc)}"
export CC="${CC:-clang-16}" CXX="${CXX:-clang++-16}"
for tool in "$CC" "$CXX"; do
  command -v "$tool" >/dev/null || { echo "$tool not found: apt-get install clang-16 libclang-rt-16-dev" >&2; exit 2; }
done

start=$SECONDS
cmake -S "$here" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKPANEL_FUZZ=ON -DKPANEL_WERROR=ON \
      -DKPANEL_BUILD_TESTS=OFF -DKPANEL_SANITIZE=OFF >/dev/null
cmake --build "$build" --target "${targets[@]}" -j "$jobs"
if [[ $runs -gt 0 ]]; then
  echo "== built in $((SECONDS - start)) s; fuzzing ${#targets[@]} target(s) for $runs executions each =="
else
  echo "== built in $((SECONDS - start)) s; fuzzing ${#targets[@]} target(s) for ${seconds} s each =="
fi

run_root="$build/fuzz-run"
declare -A execs=() crashes=() verdict=() corpus_size=() elapsed=()
failed=0
for target in "${targets[@]}"; do
  dir="$run_root/$target"
  rm -rf "$dir"
  mkdir -p "$dir/corpus"
  # A copy: libFuzzer adds what it finds to the corpus directory, and the
  # seeds in the repository stay as they are.
  cp -a "$here/fuzz/corpus/$target/." "$dir/corpus/"
  echo "-- $target"
  rc=0
  ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}" \
  target_start=$SECONDS
  "$build/fuzz/$target" -max_total_time="$seconds" -runs="$((runs > 0 ? runs : -1))" \
      -max_len="${max_len[$target]:-4096}" \
      -timeout=25 -rss_limit_mb=2048 -print_final_stats=1 \
      -artifact_prefix="$dir/" "$dir/corpus" >"$dir/log" 2>&1 || rc=$?
  n="$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/log" | tail -1)"
  execs[$target]="${n:-?}"
  elapsed[$target]=$((SECONDS - target_start))
  # A slow unit (over 10 s) counts only if it is slow again on its own: a run
  # that shares the machine (nice, a build beside it) reports units that were
  # merely waiting for a core. Over 10 s alone fails, as a timeout does.
  for slow in "$dir"/slow-unit-*; do
    [[ -e "$slow" ]] || continue
    if timeout 10 "$build/fuzz/$target" "$slow" >/dev/null 2>&1; then
      echo "   $(basename "$slow"): slow only under load (fast alone), kept as $slow.not-slow"
      mv "$slow" "$slow.not-slow"
    fi
  done
  found="$(find "$dir" -maxdepth 1 -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' \
                                              -o -name 'oom-*' -o -name 'slow-unit-*' \) \
                                           ! -name '*.not-slow' | wc -l)"
  crashes[$target]="$found"
  corpus_size[$target]="$(find "$dir/corpus" -type f | wc -l)"
  if [[ $rc -ne 0 || $found -ne 0 || -z "$n" ]]; then
    verdict[$target]="FAIL (exit $rc, see $dir/log)"
    failed=1
    grep -E '^(==[0-9]+==ERROR|SUMMARY|.*runtime error)' "$dir/log" | head -5 || true
  else
    verdict[$target]=ok
  fi
done

echo
printf '%-20s %12s %10s %8s %8s  %s\n' target executions exec/s crashes corpus result
for target in "${targets[@]}"; do
  rate='?'
  if [[ "${execs[$target]}" =~ ^[0-9]+$ ]]; then
    rate=$((execs[$target] / (elapsed[$target] > 0 ? elapsed[$target] : 1)))
  fi
  printf '%-20s %12s %10s %8s %8s  %s\n' "$target" "${execs[$target]}" "$rate" \
         "${crashes[$target]}" "${corpus_size[$target]}" "${verdict[$target]}"
done
echo "total time: $((SECONDS - start)) s"
exit "$failed"
