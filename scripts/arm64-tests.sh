#!/usr/bin/env bash
# Cross-builds the standalone kernel library and the native tests for
# AArch64 (NEON paths) and runs them under qemu user-mode emulation.
# Needs: apt-get install -y g++-aarch64-linux-gnu qemu-user
# Usage: scripts/arm64-tests.sh [build-dir]   (default: build-arm64)
set -euo pipefail
cd "$(dirname "$0")/.."
dir="${1:-build-arm64}"
jobs="$(nproc 2>/dev/null || echo 2)"
for tool in aarch64-linux-gnu-g++ qemu-aarch64; do
  command -v "$tool" > /dev/null || { echo "missing $tool (apt-get install -y g++-aarch64-linux-gnu qemu-user)" >&2; exit 1; }
done
mkdir -p "$dir"
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_TOOLCHAIN_FILE="$PWD/cmake/aarch64-linux-gnu.cmake" > "$dir.configure.log" 2>&1 \
  || { cat "$dir.configure.log"; exit 1; }
cmake --build "$dir" -j "$jobs"
# Emulation is slow: generous per-test timeout (the CMake default is 600 s).
ctest --test-dir "$dir" --output-on-failure -j "$jobs" --timeout 1800
