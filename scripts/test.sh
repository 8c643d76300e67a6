#!/usr/bin/env bash
# Installs what the build and the tests need (only what is missing), builds,
# and runs every test with CTest: first a normal build, then the same suite
# built with ASan+UBSan. Usage: scripts/test.sh [--no-sanitize] [ctest args...]
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"

sanitize=1
if [[ "${1:-}" == "--no-sanitize" ]]; then sanitize=0; shift; fi

# shellcheck source=scripts/deps.sh
source "$here/scripts/deps.sh"
kpanel_install_packages "${KPANEL_BUILD_PACKAGES[@]}" "${KPANEL_TEST_PACKAGES[@]}"

jobs="$(nproc)"

run_suite() {
  local dir="$1"; shift
  # Warnings are errors here (and so in CI), not in a user's own build.
  cmake -S "$here" -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKPANEL_WERROR=ON "$@"
  cmake --build "$dir" -j "$jobs"
  # Integration tests spend most of their time waiting for the next TOTP step,
  # so more run at once than there are cores.
  (cd "$dir" && ctest --output-on-failure -j "$((jobs + 2))" "${ctest_args[@]}")
}

ctest_args=("$@")
echo "== build and test =="
run_suite "${KPANEL_BUILD_DIR:-$here/build}"
if [[ $sanitize == 1 ]]; then
  echo "== build and test with ASan+UBSan =="
  run_suite "${KPANEL_SANITIZE_BUILD_DIR:-$here/build-sanitize}" -DKPANEL_SANITIZE=ON
fi

# libFuzzer targets (clang): a short run of each over its seed corpus; any
# crash fails the suite. scripts/fuzz.sh [SECONDS] runs them long.
if command -v clang++-16 >/dev/null; then
  echo "== libFuzzer targets, 10 s each =="
  "$here/scripts/fuzz.sh" 10
fi
