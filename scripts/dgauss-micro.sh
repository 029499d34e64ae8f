#!/usr/bin/env bash
# Same-process microbenchmark: the working tree's discrete Gaussian sampler
# against the one at git revision $1 (default HEAD), CPU time, 1 thread.
# Uses the AVX-512 keystream: x86-64 with AVX-512 only.
# Usage: bash scripts/dgauss-micro.sh [rev] [rounds]
set -euo pipefail
cd "$(dirname "$0")/.."
rev=${1:-HEAD}
rounds=${2:-10}
tmp=$(mktemp -d)
[ -n "${KEEP:-}" ] && echo "build dir: $tmp" || trap 'rm -rf "$tmp"' EXIT
git show "$rev:native/kernels/intonly/discrete_gaussian.cc" >"$tmp/dg_base.cc"
# Beside the source, so its #include "discrete_gaussian.h" finds the revision's header.
git show "$rev:native/kernels/discrete_gaussian.h" >"$tmp/discrete_gaussian.h"
inc=(-Inative/include $(node scripts/sources.js includes | sed "s/\([^ ]*\)/-I\1/g"))
flags=(-std=c++17 -O3 -Wall -Wextra -Werror)
nice g++ "${flags[@]}" "${inc[@]}" -mgeneral-regs-only -Ddgauss=dgauss_base -c "$tmp/dg_base.cc" -o "$tmp/base.o"
nice g++ "${flags[@]}" "${inc[@]}" -mgeneral-regs-only -c native/kernels/intonly/discrete_gaussian.cc -o "$tmp/new.o"
nice g++ "${flags[@]}" "${inc[@]}" -mgeneral-regs-only -c native/kernels/intonly/chacha20.cc -o "$tmp/chacha.o"
nice g++ "${flags[@]}" "${inc[@]}" -mavx2 -mavx512f -mavx512bw -mavx512dq -mavx512vl -c native/kernels/rng/chacha20_avx512.cc -o "$tmp/avx512.o"
nice g++ "${flags[@]}" "${inc[@]}" -mavx2 -c native/kernels/rng/chacha20_avx2.cc -o "$tmp/avx2.o"
nice g++ "${flags[@]}" "${inc[@]}" native/tests/bench_dgauss_micro.cc "$tmp"/*.o -o "$tmp/micro"
uptime
"$tmp/micro" "$rounds"
