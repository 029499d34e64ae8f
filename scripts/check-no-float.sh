#!/usr/bin/env bash
# Builds the integer-only objects (CMake target dplora_intonly_objs) and
# scans them for floating-point instructions and soft-float/libm symbols.
# Exit status 1 on any hit.  The jest test test/fixed_no_float.test.ts does
# the same (and more) from the node side.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=build-nofloat
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Release -DDPLORA_TESTS=OFF > "$dir.configure.log" 2>&1 || { cat "$dir.configure.log"; exit 1; }
cmake --build "$dir" --target dplora_intonly_objs -j 2
mapfile -t objs < <(find "$dir" -path '*intonly*' -name '*.o' | sort)
if [[ ${#objs[@]} -eq 0 ]]; then echo "no integer-only objects found" >&2; exit 1; fi
node scripts/fp-scan.js "${objs[@]}"
