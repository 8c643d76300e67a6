#!/usr/bin/env bash
# Builds kpanel-totp (RelWithDebInfo, as the tests do) and runs the performance suite; prints one table.
# Usage: sudo scripts/bench.sh [--smoke] [--dir PARENT] [--duration SECONDS]
# Needs root: the throwaway daemon answers verify requests from root only.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${KPANEL_BENCH_BUILD_DIR:-$here/build-bench}"

# shellcheck source=scripts/deps.sh
source "$here/scripts/deps.sh"
kpanel_install_packages "${KPANEL_BUILD_PACKAGES[@]}" "${KPANEL_TEST_PACKAGES[@]}"

cmake -S "$here" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j "$(nproc)" --target kpanel_bench
exec "$build/bench/kpanel_bench" "$@"
