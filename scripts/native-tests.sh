#!/usr/bin/env bash
# Builds the standalone kernel library and runs the native ctest suite,
# once plainly and once under AddressSanitizer + UndefinedBehaviorSanitizer.
# Usage: scripts/native-tests.sh [plain|sanitize|all]   (default: all)
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-all}"
jobs="$(nproc 2>/dev/null || echo 2)"

run() {
  local dir="$1"; shift
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" > "$dir.configure.log" 2>&1 || { cat "$dir.configure.log"; exit 1; }
  cmake --build "$dir" -j "$jobs"
  ctest --test-dir "$dir" --output-on-failure -j "$jobs"
}

mkdir -p build-native build-asan
if [[ "$mode" == plain || "$mode" == all ]]; then
  run build-native
fi
if [[ "$mode" == sanitize || "$mode" == all ]]; then
  # The sanitizers check every ISA path the CPU has: the tests force each one.
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    run build-asan -DDPLORA_SANITIZE=ON
fi
