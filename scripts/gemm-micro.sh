#!/usr/bin/env bash
# Same-process microbenchmark: the working tree's SGEMM (driver, AVX-512 and
# AVX2 micro-kernels, skinny kernels, blocking in dispatch.cc) against the one
# at git revision $1 (default HEAD), one thread, thread CPU time, with the FMA
# probe in the same run.  x86-64 with AVX-512 only.  Needs the static library
# (cmake --build build-native --target dplora) for the rest of the kernels.
# Usage: bash scripts/gemm-micro.sh [rev] [rounds]
set -euo pipefail
cd "$(dirname "$0")/.."
rev=${1:-HEAD}
rounds=${2:-9}
lib=${LIB:-build-native/libdplora.a}
[ -f "$lib" ] || { echo "build $lib first: cmake -S . -B build-native && cmake --build build-native --target dplora"; exit 1; }
tmp=$(mktemp -d)
[ -n "${KEEP:-}" ] && echo "build dir: $tmp" || trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/base"
G=native/kernels/gemm
for f in gemm.h gemm_bf16.h sgemm.cc sgemm_avx2.cc sgemm_avx512.cc sgemm_skinny_avx2.cc sgemm_skinny_avx512.cc; do
  git show "$rev:$G/$f" >"$tmp/base/$f"
done
# The base driver without its C entry points (they would clash with the working tree's).
sed -i '/^extern "C"/,$d' "$tmp/base/sgemm.cc"
{ echo "// base revision copy"; cat "$tmp/base/gemm.h"; } >"$tmp/base/base_gemm.h"
inc=(-Inative/include $(node scripts/sources.js includes | sed "s/\([^ ]*\)/-I\1/g"))
flags=(-std=c++17 -O3 -fno-math-errno -Wall -Wextra -Werror)
a2=(-mavx2 -mfma)
a5=(-mavx2 -mfma -mavx512f -mavx512bw -mavx512dq -mavx512vl)
cc() { nice g++ "${flags[@]}" "$@"; }
B=(-I"$tmp/base" "${inc[@]}" -Ddplora=dplora_base)
cc "${B[@]}" -c "$tmp/base/sgemm.cc" -o "$tmp/b.o"
cc "${B[@]}" "${a2[@]}" -c "$tmp/base/sgemm_avx2.cc" -o "$tmp/b2.o"
cc "${B[@]}" "${a2[@]}" -c "$tmp/base/sgemm_skinny_avx2.cc" -o "$tmp/bs2.o"
cc "${B[@]}" "${a5[@]}" -c "$tmp/base/sgemm_avx512.cc" -o "$tmp/b5.o"
cc "${B[@]}" "${a5[@]}" -c "$tmp/base/sgemm_skinny_avx512.cc" -o "$tmp/bs5.o"
cc "${inc[@]}" -c $G/sgemm.cc -o "$tmp/n.o"
cc "${inc[@]}" -c native/kernels/common/dispatch.cc -o "$tmp/nd.o"
cc "${inc[@]}" "${a2[@]}" -c $G/sgemm_avx2.cc -o "$tmp/n2.o"
cc "${inc[@]}" "${a2[@]}" -c $G/sgemm_skinny_avx2.cc -o "$tmp/ns2.o"
cc "${inc[@]}" "${a5[@]}" -c $G/sgemm_avx512.cc -o "$tmp/n5.o"
cc "${inc[@]}" "${a5[@]}" -c $G/sgemm_skinny_avx512.cc -o "$tmp/ns5.o"
bdef=()
grep -q micro_rows "$tmp/base/gemm.h" && bdef=(-DBASE_MICRO_ROWS)
cc "${inc[@]}" "${bdef[@]}" -idirafter "$tmp/base" native/tests/bench_gemm_micro.cc "$tmp"/*.o "$lib" -lpthread -o "$tmp/micro"
uptime
"$tmp/micro" "$rounds"
