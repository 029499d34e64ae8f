// Exact discrete Gaussian sampler (Canonne, Kamath and Steinke, "The
// Discrete Gaussian for Differential Privacy", 2020, Algorithms 1-3) in
// integer arithmetic only.  Float-free translation unit (compiled with
// -mgeneral-regs-only or the target's soft-float flags): no floating point
// exists here to attack.  No exceptions, heap or threads: it builds
// freestanding for 32- and 64-bit soft-float targets (dplora::u128 is the
// portable 128-bit type of fixed/u128.h).
//
// Every probability is a ratio of integers or exp(-ratio), and every test
// is exact (no table, no truncation):
//  - U < n/d for a uniform U in [0, 1) reads U 16 bits at a time, most
//    significant first, with a multiply and a compare per chunk (lt); it
//    continues only while n/d lies inside the chunk's cell (probability
//    2^-16 per chunk).  d >= 2^111 draws U in [0, d) 32 bits at a time with
//    rejection (bern_chunks).
//  - Bernoulli(exp(-gamma)), gamma = n/d in [0, 1], is Algorithm 1: the
//    index k of the first failing trial Bernoulli(gamma/k) is odd with
//    probability exp(-gamma), and P(k > j) = gamma^j / j!.  The first
//    trials are read off one uniform U (k = min{j : U >= gamma^j / j!}):
//    j <= 2 for d <= 2^40, j <= 7 for gamma = 1 (thresholds 1/j!, constant);
//    later trials are fresh.  A threshold inside the chunk's cell is settled
//    on U's further bits; at most one can be (the next is at most half of
//    it), so the rest are decided by the chunk.
//  - exp(-(q + r/d)) is q trials of exp(-1) (by subtraction, stopping at the
//    first failure) and then exp(-r/d).
//  - The Laplace scale t is floor(sigma) or floor(sigma) + 1 (laplace_scale;
//    any t gives the exact distribution), and gcd(a, b t) is taken out of
//    the acceptance exponent once per call.
// Intermediates are 128-bit (the acceptance exponent is squared into 256
// bits and divided exactly when it exceeds 64 bits); a value that does not
// fit is refused with DPLORA_EOVERFLOW, never wrapped.  An overflow or an
// exhausted stream region sets a sticky failure flag that every loop
// checks, so the sampler stops and the caller reports DPLORA_EOVERFLOW.
// scripts/dgauss_kat.py implements the same consumption of the stream with
// exact fractions; the known-answer vectors pin the sample sequence.
#include "chacha20.h"
#include "discrete_gaussian.h"
#include "dplora.h"
#include "fixed/u128.h"
#include "int_math.h"

namespace dplora {
namespace dgauss {
namespace {

using chacha::Reader;

struct Sampler {
  Reader rd;
  bool overflow = false;  // an intermediate did not fit its integer type

  Sampler(const chacha::Stream &s, uint64_t pos, uint64_t limit, chacha::BlocksFn blocks, int batch)
      : rd(s, pos, limit, blocks, batch) {}

  bool failed() const { return overflow || rd.failed(); }

  // Bernoulli(n / d), 0 < n < d, d > 2^32: U uniform in [0, d) drawn most
  // significant chunk first (the top chunk holds len mod 32 bits, then
  // whole 32-bit words), with rejection of U >= d; returns U < n as soon as
  // the prefix decides it.  Same distribution as drawing all of U at once.
  template <typename U>
  bool bern_chunks(U n, U d) {
    const int len = u128_bitlen(u128(d - 1));  // U has `len` bits; d <= 2^len
    const bool d_above = len == int(8 * sizeof(U)) ? false : (d >> len) != 0;
    const int first = len - 32 * ((len - 1) / 32);  // 1..32
    for (;;) {
      if (failed()) return false;
      int vs_n = 0;                 // 0: prefix equal to n's, 1: U > n
      int vs_d = d_above ? -1 : 0;  // 0: equal to d's, -1: U < d
      bool reject = false;
      for (int rem = len, c = first; rem > 0; rem -= c, c = 32) {
        const uint32_t mask = c == 32 ? ~uint32_t(0) : (uint32_t(1) << c) - 1;
        const uint32_t u = c == 32 ? rd.word() : uint32_t(rd.bits(c));
        const uint32_t nc = uint32_t(U(n >> (rem - c))) & mask;
        const uint32_t dc = uint32_t(U(d >> (rem - c))) & mask;
        if (vs_n == 0) {
          if (u < nc) return true;  // U < n < d
          if (u > nc) vs_n = 1;
        }
        if (vs_d == 0) {
          if (u < dc) {
            vs_d = -1;
          } else if (u > dc) {  // U > d
            reject = true;
            break;
          }
        }
        if (vs_n == 1 && vs_d == -1) return false;  // n < U < d
      }
      if (reject || vs_d == 0) continue;  // U >= d: draw again
      return false;                       // U == n < d
    }
  }

  // U < n / d for a fresh uniform U in [0, 1), 0 < n < d < 2^112: U is read
  // 16 bits at a time, most significant first.  With w the next chunk,
  // x = n 2^16 - w d decides U >= n/d (x <= 0) or U < n/d (x >= d);
  // otherwise the rest of U is compared with x / d.  Exact, no rejection,
  // no division.
  bool lt(u128 n, u128 d) {
    if (u128_hi(d) == 0 && u128_lo(d) < (uint64_t(1) << 47)) {  // 64-bit arithmetic
      uint64_t n64 = u128_lo(n);
      const uint64_t d64 = u128_lo(d);
      for (;;) {
        if (failed()) return false;
        const uint64_t hi = n64 << 16, lo = rd.bits(16) * d64;
        if (hi <= lo) return false;
        n64 = hi - lo;
        if (n64 >= d64) return true;
      }
    }
    for (;;) {
      if (failed()) return false;
      const u128 hi = n << 16, lo = u128(rd.bits(16)) * d;
      if (hi <= lo) return false;
      n = hi - lo;
      if (n >= d) return true;
    }
  }

  // Bernoulli(n / d), d >= 1.
  bool bern(u128 n, u128 d) {
    if (n == 0) return false;
    if (n >= d) return true;
    if (u128_bitlen(d) <= 111) return lt(n, d);
    return bern_chunks<u128>(n, d);
  }

  // Bernoulli(exp(-1)): Algorithm 1 with gamma = 1 stops at the first k
  // whose trial Bernoulli(1/k) fails and answers k odd; P(k > j) = 1/j!, so
  // one uniform U gives k = min{j : U >= 1/j!}.  The first 16-bit chunk w of
  // U settles U against 1/2, 1/3!, ..., 1/7! (at most one of them is in w's
  // cell; that one is compared on U's further bits); beyond 7 (probability
  // 1/5040) fresh trials Bernoulli(1/k), k = 8, 9, ...
  bool bern_e1() {
    static constexpr uint32_t kT[6] = {32768, 10922, 2730, 546, 91, 13};  // floor(2^16 / j!)
    static constexpr uint32_t kF[6] = {2, 6, 24, 120, 720, 5040};         // j!, j = 2..7
    const uint32_t w = uint32_t(rd.bits(16));
    uint32_t c = 0;  // thresholds 1/j!, j = 2..7, above U
    bool tie = false;
    for (int i = 0; i < 6; ++i) c += w < kT[i] ? 1 : 0;
    for (int i = 1; i < 6; ++i) tie |= w == kT[i];  // 2^16 / 2 is exact: no tie there
    if (tie) {                                      // w == floor(2^16 / j!) for j = c + 2
      const uint32_t f = kF[c];
      if (lt(65536 - kT[c] * f, f)) ++c;
    }
    uint64_t k = 2 + c;
    if (c == 6) {  // U < 1/7!: k >= 8
      k = 8;
      while (!failed() && bern(1, k)) ++k;
    }
    return (k & 1) != 0;
  }

  // Bernoulli(exp(-n/d)) for 0 <= n <= d (Algorithm 1, gamma = n/d in [0, 1]).
  // Where d <= 2^40 and n/d >= 2^-16 one uniform U settles the first two
  // trials: k = 1 if U >= gamma, 2 if gamma^2/2 <= U < gamma (P(k > j) =
  // gamma^j / j!); beyond that, fresh trials Bernoulli(gamma / k), k >= 3.
  bool bern_exp1(u128 n, u128 d) {
    if (n == 0) return true;
    if (n == d) return bern_e1();
    if (u128_hi(d) == 0 && u128_lo(d) <= (uint64_t(1) << 40) && (u128_lo(n) << 16) >= u128_lo(d)) {
      const uint64_t n64 = u128_lo(n), d64 = u128_lo(d);
      const uint64_t w = rd.bits(16);
      const uint64_t x1 = n64 << 16, y1 = w * d64;  // U < gamma: x1 - y1 >= d
      if (x1 <= y1) return true;                    // U >= gamma: k = 1 (inline, the usual case)
      return bern_exp1_two(n64, d64, w, x1 - y1);
    }
    return bern_exp1_from(n, d, 1);
  }

  // The rest of the two-trial read: U < gamma + (x1 - y1 - d) 2^-16 known.
  __attribute__((noinline)) bool bern_exp1_two(uint64_t n64, uint64_t d64, uint64_t w, uint64_t x) {
    if (x < d64) {  // gamma inside w's cell (w >= 1)
      // U < gamma leaves U >= w 2^-16 > gamma^2/2: k = 2.
      return !lt(x, d64);
    }
    const u128 d2 = mul64x64(d64, d64) << 1;
    const u128 x2 = mul64x64(n64, n64) << 16, y2 = u128(w) * d2;  // U < gamma^2/2: x2 - y2 >= d2
    if (x2 <= y2) return false;                                   // k = 2
    if (x2 - y2 < d2 && !lt(x2 - y2, d2)) return false;
    return bern_exp1_from(n64, d64, 3);
  }

  // Algorithm 1 from trial k on: Bernoulli(n / (d k)), Bernoulli(n / (d (k + 1))), ...
  __attribute__((noinline)) bool bern_exp1_from(u128 n, u128 d, u128 k) {
    for (;;) {
      if (failed()) return false;
      u128 dk;
      if (!u128_mul_ok(d, k, dk)) return fail_overflow();
      if (!bern(n, dk)) break;
      ++k;
    }
    return (u128_lo(k) & 1) != 0;
  }

  bool fail_overflow() {
    overflow = true;
    return false;
  }

  // Uniform in [0, t), 1 <= t <= 2^B, by Lemire's multiply-and-reject on
  // B-bit draws w: m = w t; m >> B is uniform once the low halves below
  // 2^B mod t are rejected (exact, no modulo bias).
  template <int B>
  uint64_t uniform_lemire(uint64_t t) {
    constexpr uint64_t kMask = (uint64_t(1) << B) - 1;
    auto draw = [this]() -> uint64_t { return B == 32 ? rd.word() : rd.bits(B); };
    uint64_t m = draw() * t;
    if ((m & kMask) < t) {
      const uint64_t thresh = ((uint64_t(1) << B) - t) % t;  // 2^B mod t
      while ((m & kMask) < thresh && !rd.failed()) m = draw() * t;
    }
    return m >> B;
  }

  uint64_t uniform32(uint64_t t) {
    if (t == 1) return 0;
    return uniform_lemire<32>(t);
  }

  // Uniform in [0, t), 1 <= t < 2^64 (the same with 64-bit draws).
  uint64_t uniform(uint64_t t) {
    if (t <= (uint64_t(1) << 32)) return uniform32(t);
    auto draw = [this]() { return (uint64_t(rd.word()) << 32) | rd.word(); };
    u128 m = mul64x64(draw(), t);
    uint64_t low = u128_lo(m);
    if (low < t) {
      const uint64_t thresh = (uint64_t(0) - t) % t;  // 2^64 mod t
      while (low < thresh && !rd.failed()) {
        m = mul64x64(draw(), t);
        low = u128_lo(m);
      }
    }
    return u128_hi(m);
  }

  // Discrete Laplace with scale t (Algorithm 2 with s = 1): P(y) ~ exp(-|y|/t).
  int64_t dlap(uint64_t t) {
    for (;;) {
      if (failed()) return 0;
      const uint64_t u = uniform(t);
      if (!bern_exp1(u, t)) continue;
      uint64_t v = 0;
      while (bern_e1() && !failed()) ++v;
      const u128 x = u128(u) + mul64x64(t, v);
      if (u128_hi(x) != 0 || (u128_lo(x) >> 63) != 0) return fail_overflow();
      const uint32_t neg = rd.bit();
      const int64_t x64 = int64_t(u128_lo(x));
      if (neg && x64 == 0) continue;
      return neg ? -x64 : x64;
    }
  }
};

// 256-bit (hi, lo) / d -> quotient capped at 2^128 - 1, exact remainder.
void divmod256(u128 hi, u128 lo, u128 d, u128 &q, u128 &r) {
  r = 0;
  u128 qlo = 0;
  bool q_big = false;
  for (int i = 255; i >= 0; --i) {
    const u128 bit = i >= 128 ? (hi >> (i - 128)) & u128(1) : (lo >> i) & u128(1);
    const bool carry = (r >> 127) != 0;
    r = (r << 1) | bit;
    if (carry || r >= d) {
      r -= d;
      if (i >= 128)
        q_big = true;
      else
        qlo |= u128(1) << i;
    }
  }
  q = q_big ? ~u128(0)
            : qlo;  // beyond 2^128 exp(-1) trials all succeeding is impossible in practice
}

// x^2 as 256 bits.
void square128(u128 x, u128 &hi, u128 &lo) {
  const uint64_t x0 = u128_lo(x), x1 = u128_hi(x);
  const u128 p00 = mul64x64(x0, x0), p01 = mul64x64(x0, x1), p11 = mul64x64(x1, x1);
  // x^2 = p11 2^128 + 2 p01 2^64 + p00
  const u128 mid_lo = p01 << 65;  // low 128 bits of 2 p01 2^64
  const u128 mid_hi = p01 >> 63;  // the rest
  lo = p00 + mid_lo;
  hi = p11 + mid_hi + (lo < p00 ? 1 : 0);
}

// One DGauss(sigma^2 = a / b) sample (Algorithm 3) with the constants of setup().
// den = 2 a b t^2 precomputed.
int64_t dgauss(Sampler &s, const Params &p) {
  const uint64_t t = p.t, a = p.ar;
  const u128 den = p.den;
  for (;;) {
    if (s.failed()) return 0;
    const int64_t y = s.dlap(t);
    const uint64_t ay = y < 0 ? uint64_t(0) - uint64_t(y) : uint64_t(y);
    // (|y| bt' - a')^2 / den = exp argument (see setup).
    u128 ybt;
    if (!u128_mul_ok(u128(ay), p.btr, ybt)) return s.fail_overflow();
    const u128 diff = ybt >= u128(a) ? ybt - u128(a) : u128(a) - ybt;
    // Bernoulli(exp(-(q + r/den))): q trials of exp(-1), then exp(-r/den).
    bool pass = true;
    u128 r;
    if (u128_hi(diff) == 0) {  // diff^2 < 2^128: q by subtraction, stopping at the first failure
      r = mul64x64(u128_lo(diff), u128_lo(diff));
      while (r >= den && !s.failed()) {
        if (!s.bern_e1()) {
          pass = false;
          break;
        }
        r -= den;
      }
    } else {
      u128 hi, lo, q;
      square128(diff, hi, lo);
      divmod256(hi, lo, den, q, r);
      for (u128 i = 0; i < q && pass && !s.failed(); ++i) pass = s.bern_e1();
    }
    if (pass && s.bern_exp1(r, den)) return y;
  }
}

// The Laplace scale t: any t >= 1 gives the exact distribution (Algorithm 3
// accepts with exp(-(|y| - sigma^2/t)^2 / (2 sigma^2)) for every t); the
// expected number of proposals is about t exp(sigma^2 / (2 t^2)) / sigma,
// least near t = sigma.  Between s = floor(sigma) and s + 1 the choice
// compares ln(1 + 1/s) (as 2/(2s + 1)) with the change of sigma^2/(2t^2):
// t = s when a (2s + 1)^2 < 4 b s^2 (s + 1)^2; above s = 2^20 the same test
// to first order, 4 (a - b s^2) < b (4s + 3).  Deterministic, integer only.
uint64_t laplace_scale(uint64_t a, uint64_t b) {
  const uint64_t s = intmath::isqrt_floor<uint64_t>(a / b);
  if (s == 0) return 1;
  bool lower;
  if (s < (uint64_t(1) << 20)) {
    const u128 q = mul64x64(s, s + 1);  // < 2^41
    u128 rhs;
    const bool fits = u128_mul_ok(q * q * 4, u128(b), rhs);
    lower = !fits || mul64x64(a, 1) * mul64x64(2 * s + 1, 2 * s + 1) < rhs;
  } else {
    const uint64_t e = a - b * s * s;  // b s^2 <= a
    lower = mul64x64(e, 4) < mul64x64(b, 4 * s + 3);
  }
  return lower ? s : s + 1;
}

uint64_t gcd64(uint64_t x, uint64_t y) {
  while (y != 0) {
    const uint64_t r = x % y;
    x = y;
    y = r;
  }
  return x;
}

}  // namespace

bool setup(uint64_t a, uint64_t b, Params &p) {
  if (a == 0 || b == 0) return false;
  p.a = a;
  p.b = b;
  p.t = laplace_scale(a, b);
  // The acceptance exponent (|y| b t - a)^2 / (2 a b t^2) with the common
  // factor g = gcd(b t, a) taken out of |y| b t - a once per call:
  // (|y| bt' - a')^2 / (2 a' bt' t), bt' = b t / g, a' = a / g.
  const u128 bt = mul64x64(b, p.t);
  const uint64_t g = gcd64(a, uint64_t(bt % u128(a)));
  p.ar = a / g;
  p.btr = bt / u128(g);
  u128 x;
  if (!u128_mul_ok(p.btr, u128(p.ar), x)) return false;
  if (!u128_mul_ok(x, u128(p.t), x)) return false;
  if (!u128_mul_ok(x, u128(2), x)) return false;
  p.den = x;
  return true;
}

int sample_groups(const chacha::Stream &s, uint64_t base, const Params &p, int64_t g0, int64_t g1,
                  int64_t *out, int64_t n, chacha::BlocksFn blocks, int batch) {
  for (int64_t g = g0; g < g1; ++g) {
    const uint64_t start = base + (uint64_t(g) << kRegionLog2);
    Sampler smp(s, start, start + (uint64_t(1) << kRegionLog2), blocks, batch);
    const int64_t end = (g + 1) * kGroup < n ? (g + 1) * kGroup : n;
    for (int64_t i = g * kGroup; i < end; ++i) {
      out[i] = dgauss(smp, p);
      if (smp.failed()) return DPLORA_EOVERFLOW;
    }
  }
  return DPLORA_OK;
}

int64_t add_saturating(int64_t *sum, const int64_t *noise, int64_t n) {
  int64_t sat = 0;
  for (int64_t i = 0; i < n; ++i) {
    int64_t v;
    if (__builtin_add_overflow(sum[i], noise[i], &v)) {
      v = noise[i] > 0 ? INT64_MAX : INT64_MIN;  // saturate only after the exact sum
      ++sat;
    }
    sum[i] = v;
  }
  return sat;
}

}  // namespace dgauss
}  // namespace dplora
