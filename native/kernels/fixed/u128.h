// Portable unsigned 128-bit integer for the float-free units.
//
// dplora::U128Struct is two 64-bit halves with the operators the integer
// kernels use (+ - * / % << >> & | ^ ~, comparisons, overflow-checked
// multiply).  It builds on every target (32-bit ones call libgcc's integer
// helpers for 64-bit multiply/divide, never a floating-point one).
// dplora::u128 is `unsigned __int128` where the compiler has it
// (__SIZEOF_INT128__) and U128Struct elsewhere, or everywhere with
// -DDPLORA_FORCE_U128_STRUCT (how the native test compares the two).
#pragma once
#include <stdint.h>

namespace dplora {

struct U128Struct {
  uint64_t lo, hi;

  constexpr U128Struct() : lo(0), hi(0) {}
  constexpr U128Struct(uint64_t v) : lo(v), hi(0) {}  // NOLINT: implicit, like the native type
  constexpr U128Struct(uint64_t h, uint64_t l, int) : lo(l), hi(h) {}
  constexpr explicit operator uint64_t() const { return lo; }
  constexpr explicit operator uint32_t() const { return uint32_t(lo); }
  constexpr explicit operator bool() const { return (lo | hi) != 0; }

  friend constexpr U128Struct operator+(U128Struct a, U128Struct b) {
    const uint64_t lo = a.lo + b.lo;
    return U128Struct(a.hi + b.hi + (lo < a.lo ? 1 : 0), lo, 0);
  }
  friend constexpr U128Struct operator-(U128Struct a, U128Struct b) {
    return U128Struct(a.hi - b.hi - (a.lo < b.lo ? 1 : 0), a.lo - b.lo, 0);
  }
  friend constexpr U128Struct operator~(U128Struct a) { return U128Struct(~a.hi, ~a.lo, 0); }
  friend constexpr U128Struct operator&(U128Struct a, U128Struct b) {
    return U128Struct(a.hi & b.hi, a.lo & b.lo, 0);
  }
  friend constexpr U128Struct operator|(U128Struct a, U128Struct b) {
    return U128Struct(a.hi | b.hi, a.lo | b.lo, 0);
  }
  friend constexpr U128Struct operator^(U128Struct a, U128Struct b) {
    return U128Struct(a.hi ^ b.hi, a.lo ^ b.lo, 0);
  }
  friend constexpr U128Struct operator<<(U128Struct a, int s) {
    return s == 0    ? a
           : s >= 64 ? U128Struct(a.lo << (s - 64), 0, 0)
                     : U128Struct((a.hi << s) | (a.lo >> (64 - s)), a.lo << s, 0);
  }
  friend constexpr U128Struct operator>>(U128Struct a, int s) {
    return s == 0    ? a
           : s >= 64 ? U128Struct(0, a.hi >> (s - 64), 0)
                     : U128Struct(a.hi >> s, (a.lo >> s) | (a.hi << (64 - s)), 0);
  }
  friend constexpr bool operator==(U128Struct a, U128Struct b) {
    return a.lo == b.lo && a.hi == b.hi;
  }
  friend constexpr bool operator!=(U128Struct a, U128Struct b) { return !(a == b); }
  friend constexpr bool operator<(U128Struct a, U128Struct b) {
    return a.hi < b.hi || (a.hi == b.hi && a.lo < b.lo);
  }
  friend constexpr bool operator>(U128Struct a, U128Struct b) { return b < a; }
  friend constexpr bool operator<=(U128Struct a, U128Struct b) { return !(b < a); }
  friend constexpr bool operator>=(U128Struct a, U128Struct b) { return !(a < b); }

  // 64 x 64 -> 128 from 32-bit halves (no 128-bit type needed).
  static constexpr U128Struct mul64(uint64_t a, uint64_t b) {
    const uint64_t a0 = uint32_t(a), a1 = a >> 32, b0 = uint32_t(b), b1 = b >> 32;
    const uint64_t p00 = a0 * b0, p01 = a0 * b1, p10 = a1 * b0, p11 = a1 * b1;
    const uint64_t mid = (p00 >> 32) + uint32_t(p01) + uint32_t(p10);
    return U128Struct(p11 + (p01 >> 32) + (p10 >> 32) + (mid >> 32), (mid << 32) | uint32_t(p00),
                      0);
  }
  friend constexpr U128Struct operator*(U128Struct a, U128Struct b) {
    U128Struct r = mul64(a.lo, b.lo);
    r.hi += a.lo * b.hi + a.hi * b.lo;
    return r;
  }
  // Shift-subtract long division; b != 0.
  static constexpr void divmod(U128Struct a, U128Struct b, U128Struct &q, U128Struct &r) {
    q = U128Struct();
    r = U128Struct();
    if (a.hi == 0 && b.hi == 0) {
      q = U128Struct(a.lo / b.lo);
      r = U128Struct(a.lo % b.lo);
      return;
    }
    for (int i = 127; i >= 0; --i) {
      r = (r << 1) | ((a >> i) & U128Struct(1));
      if (r >= b) {
        r = r - b;
        q = q | (U128Struct(1) << i);
      }
    }
  }
  friend constexpr U128Struct operator/(U128Struct a, U128Struct b) {
    U128Struct q, r;
    divmod(a, b, q, r);
    return q;
  }
  friend constexpr U128Struct operator%(U128Struct a, U128Struct b) {
    U128Struct q, r;
    divmod(a, b, q, r);
    return r;
  }
  U128Struct &operator+=(U128Struct b) { return *this = *this + b; }
  U128Struct &operator-=(U128Struct b) { return *this = *this - b; }
  U128Struct &operator|=(U128Struct b) { return *this = *this | b; }
  U128Struct &operator>>=(int s) { return *this = *this >> s; }
  U128Struct &operator<<=(int s) { return *this = *this << s; }
  U128Struct &operator++() { return *this = *this + U128Struct(1); }
};

#if defined(__SIZEOF_INT128__) && !defined(DPLORA_FORCE_U128_STRUCT)
using u128 = unsigned __int128;
#define DPLORA_U128_NATIVE 1
inline u128 u128_make(uint64_t hi, uint64_t lo) {
  return (u128(hi) << 64) | lo;
}
inline uint64_t u128_hi(u128 x) {
  return uint64_t(x >> 64);
}
inline uint64_t u128_lo(u128 x) {
  return uint64_t(x);
}
inline u128 mul64x64(uint64_t a, uint64_t b) {
  return u128(a) * b;
}
// a * b, false when it does not fit 128 bits.
inline bool u128_mul_ok(u128 a, u128 b, u128 &r) {
  return !__builtin_mul_overflow(a, b, &r);
}
#else
using u128 = U128Struct;
#define DPLORA_U128_NATIVE 0
inline u128 u128_make(uint64_t hi, uint64_t lo) {
  return U128Struct(hi, lo, 0);
}
inline uint64_t u128_hi(u128 x) {
  return x.hi;
}
inline uint64_t u128_lo(u128 x) {
  return x.lo;
}
inline u128 mul64x64(uint64_t a, uint64_t b) {
  return U128Struct::mul64(a, b);
}
inline bool u128_mul_ok(u128 a, u128 b, u128 &r) {
  if (a.hi != 0 && b.hi != 0) return false;
  // One operand < 2^64: a * b = lo * x.lo + 2^64 (lo * x.hi) must stay < 2^128.
  const uint64_t s = a.hi != 0 ? b.lo : a.lo;
  const U128Struct x = a.hi != 0 ? a : b;
  const U128Struct low = U128Struct::mul64(s, x.lo), high = U128Struct::mul64(s, x.hi);
  if (high.hi != 0) return false;
  const uint64_t top = low.hi + high.lo;
  if (top < low.hi) return false;
  r = U128Struct(top, low.lo, 0);
  return true;
}
#endif

// Bits needed to write x (0 for 0).
inline int u128_bitlen(u128 x) {
  const uint64_t hi = u128_hi(x), lo = u128_lo(x);
  if (hi != 0) return 128 - __builtin_clzll(hi);
  if (lo != 0) return 64 - __builtin_clzll(lo);
  return 0;
}

}  // namespace dplora
