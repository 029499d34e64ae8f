// The few integer helpers GCC calls on RV64 without the B extension
// (count-leading-zeros, 128-bit divide and variable shifts) for the freestanding link: Debian's
// riscv64 libgcc is built for the double-float ABI and cannot be linked
// into soft-float (lp64) objects.  Float-free; uses the portable 128-bit
// struct so the helpers do not call themselves.
#include <stdint.h>

#include "fixed/u128.h"

extern "C" {

int __clzdi2(uint64_t x) {
  int n = 0;
  for (uint64_t bit = uint64_t(1) << 63; bit != 0 && (x & bit) == 0; bit >>= 1) ++n;
  return n;
}
int __ctzdi2(uint64_t x) {
  int n = 0;
  for (uint64_t bit = 1; bit != 0 && (x & bit) == 0; bit <<= 1) ++n;
  return n;
}

#ifdef __SIZEOF_INT128__
using native_u128 = unsigned __int128;
static dplora::U128Struct to_struct(native_u128 v) {
  return dplora::U128Struct(uint64_t(v >> 64), uint64_t(v), 0);
}
static native_u128 from_struct(dplora::U128Struct v) {
  return (native_u128(v.hi) << 64) | v.lo;
}
native_u128 __udivti3(native_u128 a, native_u128 b) {
  return from_struct(to_struct(a) / to_struct(b));
}
native_u128 __umodti3(native_u128 a, native_u128 b) {
  return from_struct(to_struct(a) % to_struct(b));
}
native_u128 __lshrti3(native_u128 a, int s) {
  return from_struct(to_struct(a) >> s);
}
native_u128 __ashlti3(native_u128 a, int s) {
  return from_struct(to_struct(a) << s);
}
#endif
}
