#!/usr/bin/env bash
# Same-process sweep of the fp32 prepacked product's cache blocking over the
# working tree's driver and micro-kernels (native/tests/bench_gemm_blocks.cc):
# one thread, thread CPU time, FMA probe in the same run.  x86-64 with AVX-512
# only.  Needs the static library for the rest of the kernels.
# Usage: bash scripts/gemm-blocks.sh ROUNDS ROWS[,ROWS..] ISA:MC:KC:NC ...
#   e.g. bash scripts/gemm-blocks.sh 5 2048,8192 avx512:0:0:0 avx2:0:0:0 avx512:192:256:0
set -euo pipefail
cd "$(dirname "$0")/.."
lib=${LIB:-build-native/libdplora.a}
[ -f "$lib" ] || { echo "build $lib first: cmake -S . -B build-native && cmake --build build-native --target dplora"; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
G=native/kernels/gemm
inc=(-Inative/include $(node scripts/sources.js includes | sed "s/\([^ ]*\)/-I\1/g"))
flags=(-std=c++17 -O3 -fno-math-errno -Wall -Wextra -Werror)
a2=(-mavx2 -mfma)
a5=(-mavx2 -mfma -mavx512f -mavx512bw -mavx512dq -mavx512vl)
cc() { nice g++ "${flags[@]}" "$@"; }
cc "${inc[@]}" -c $G/sgemm.cc -o "$tmp/n.o" &
cc "${inc[@]}" -c native/kernels/common/dispatch.cc -o "$tmp/nd.o" &
cc "${inc[@]}" "${a2[@]}" -c $G/sgemm_avx2.cc -o "$tmp/n2.o" &
cc "${inc[@]}" "${a5[@]}" -c $G/sgemm_avx512.cc -o "$tmp/n5.o" &
wait
cc "${inc[@]}" -Inative/tests native/tests/bench_gemm_blocks.cc "$tmp"/*.o "$lib" -lpthread -o "$tmp/blocks"
uptime
"$tmp/blocks" "$@"
