#!/usr/bin/env bash
# Builds kpanel-totp (RelWithDebInfo, as the tests do) and runs the performance suite; prints one table.
# Usage: sudo scripts/bench.sh [--smoke] [--dir PARENT] [--duration SECONDS]
#                              [--postgresql-dsn-file FILE | --no-postgresql]
# Needs root: the throwaway daemon answers verify requests from root only.
# The PostgreSQL store's rows come from a throwaway cluster (initdb/pg_ctl on
# 127.0.0.1, under PARENT, as the tests make one) unless --postgresql-dsn-file
# names a database to use instead, or --no-postgresql leaves them out.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${KPANEL_BENCH_BUILD_DIR:-$here/build-bench}"

args=()
parent=/var/tmp
postgresql=throwaway
while [[ $# -gt 0 ]]; do
  case "$1" in
    --no-postgresql) postgresql=none; shift ;;
    --postgresql-dsn-file) postgresql=given; args+=("$1" "${2:?--postgresql-dsn-file needs a FILE}"); shift 2 ;;
    --dir) parent="${2:?--dir needs a PARENT}"; args+=("$1" "$2"); shift 2 ;;
    *) args+=("$1"); shift ;;
  esac
done

# shellcheck source=scripts/deps.sh
source "$here/scripts/deps.sh"
kpanel_install_packages "${KPANEL_BUILD_PACKAGES[@]}" "${KPANEL_TEST_PACKAGES[@]}"

cmake -S "$here" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j "$(nproc)" --target kpanel_bench

if [[ $postgresql == throwaway ]]; then
  cluster_state="$(mktemp -d "$parent/kpanel-bench-pg.XXXXXX")"
  cleanup() { python3 "$here/tests/integration/pg_cluster.py" stop "$cluster_state" >/dev/null || true; }
  trap cleanup EXIT
  KPANEL_PG_PARENT="$parent" python3 "$here/tests/integration/pg_cluster.py" start "$cluster_state" >&2
  args+=(--postgresql-dsn-file "$cluster_state/dsn")
fi
"$build/bench/kpanel_bench" "${args[@]}"
