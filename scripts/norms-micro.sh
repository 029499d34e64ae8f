#!/usr/bin/env bash
# Same-process microbenchmark: the working tree's direct norm kernels (AVX-512
# and AVX2) against those at git revision $1 (default HEAD), with the read
# bandwidth and FMA peak probed in the same run; thread CPU time, 1 thread.
# x86-64 with AVX-512 only.
# Usage: bash scripts/norms-micro.sh [rev] [rounds]
set -euo pipefail
cd "$(dirname "$0")/.."
rev=${1:-HEAD}
rounds=${2:-15}
tmp=$(mktemp -d)
[ -n "${KEEP:-}" ] && echo "build dir: $tmp" || trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/base"
for f in norms.h norms_avx2.cc norms_avx512.cc; do
  git show "$rev:native/kernels/norms/$f" >"$tmp/base/$f"
done
inc=(-Inative/include $(node scripts/sources.js includes | sed "s/\([^ ]*\)/-I\1/g"))
flags=(-std=c++17 -O3 -fno-math-errno -Wall -Wextra -Werror)
a2=(-mavx2 -mfma)
a5=(-mavx2 -mfma -mavx512f -mavx512bw -mavx512dq -mavx512vl)
nice g++ "${flags[@]}" -I"$tmp/base" "${inc[@]}" "${a2[@]}" -Ddplora=dplora_base -c "$tmp/base/norms_avx2.cc" -o "$tmp/b2.o"
nice g++ "${flags[@]}" -I"$tmp/base" "${inc[@]}" "${a5[@]}" -Ddplora=dplora_base -c "$tmp/base/norms_avx512.cc" -o "$tmp/b5.o"
nice g++ "${flags[@]}" "${inc[@]}" "${a2[@]}" -c native/kernels/norms/norms_avx2.cc -o "$tmp/n2.o"
nice g++ "${flags[@]}" "${inc[@]}" "${a5[@]}" -c native/kernels/norms/norms_avx512.cc -o "$tmp/n5.o"
nice g++ "${flags[@]}" "${inc[@]}" "${a2[@]}" -c native/kernels/roofline/roofline_avx2.cc -o "$tmp/r2.o"
nice g++ "${flags[@]}" "${inc[@]}" "${a5[@]}" -c native/kernels/roofline/roofline_avx512.cc -o "$tmp/r5.o"
nice g++ "${flags[@]}" "${inc[@]}" native/tests/bench_norms_micro.cc "$tmp"/*.o -o "$tmp/micro"
uptime
"$tmp/micro" "$rounds"
