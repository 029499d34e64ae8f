#!/usr/bin/env bash
# Cross-builds the standalone kernel library and the native tests for
# AArch64 (NEON paths) and runs them under qemu user-mode emulation, once
# plainly and once under AddressSanitizer + UndefinedBehaviorSanitizer
# (LeakSanitizer cannot run under qemu-user, so leak detection is off there;
# the x86 run of scripts/native-tests.sh covers leaks).
# Needs: apt-get install -y g++-aarch64-linux-gnu qemu-user
# Usage: scripts/arm64-tests.sh [plain|sanitize|all]   (default: plain)
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-plain}"
jobs="$(nproc 2>/dev/null || echo 2)"
for tool in aarch64-linux-gnu-g++ qemu-aarch64; do
  command -v "$tool" > /dev/null || { echo "missing $tool (apt-get install -y g++-aarch64-linux-gnu qemu-user)" >&2; exit 1; }
done

run() {
  local dir="$1"; shift
  mkdir -p "$dir"
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_TOOLCHAIN_FILE="$PWD/cmake/aarch64-linux-gnu.cmake" "$@" > "$dir.configure.log" 2>&1 \
    || { cat "$dir.configure.log"; exit 1; }
  cmake --build "$dir" -j "$jobs"
  # Emulation is slow: generous per-test timeout (the CMake default is 600 s).
  ctest --test-dir "$dir" --output-on-failure -j "$jobs" --timeout 1800
}

case "$mode" in
  plain|sanitize|all) ;;
  *) echo "usage: $0 [plain|sanitize|all]" >&2; exit 2 ;;
esac
if [[ "$mode" == plain || "$mode" == all ]]; then
  run build-arm64
fi
if [[ "$mode" == sanitize || "$mode" == all ]]; then
  ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    run build-arm64-asan -DDPLORA_SANITIZE=ON
fi
