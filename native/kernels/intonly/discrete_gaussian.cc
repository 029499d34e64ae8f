// Exact discrete Gaussian sampler in integer arithmetic only.  Float-free
// translation unit (compiled with -mgeneral-regs-only or the target's
// soft-float flags): no floating point exists here to attack.  No
// exceptions, heap or threads: it builds freestanding for 32- and 64-bit
// soft-float targets (dplora::u128 is the portable 128-bit type of
// fixed/u128.h).
//
// Rejection sampling from a staircase envelope (the proposal of Canonne,
// Kamath and Steinke, "The Discrete Gaussian for Differential Privacy",
// 2020, Algorithm 3, with the discrete Laplace's within-block factor
// exp(-u/t) moved into the acceptance test).  sigma^2 = a / b; T is the least
// integer >= 1 with T^2 b >= 2a (T >= sigma sqrt 2).  One proposal ("slot"):
//   j >= 0 with P(j) = (1 - e^-1) e^-j (trials of Bernoulli(e^-1) until the
//   first failure), (u, s) uniform on [0, T) x {0, 1}, x = j T + u,
//   y = (-1)^s x; y = 0 with s = 1 is rejected.  The proposal's pmf is then
//   (1 - e^-1) / (2T) e^-floor(|y|/T) on all of Z.  y is accepted with
//   probability exp(-(y^2 / (2 sigma^2) - j)) (at most 1: |y| >= j T gives
//   y^2 / (2 sigma^2) >= j^2 >= j), so an accepted y has pmf proportional to
//   exp(-y^2 / (2 sigma^2)): exactly the discrete Gaussian.  Acceptance is
//   about (1 - e^-1) sqrt(pi / 2) sigma / T = 0.56 per slot for large sigma.
//
// Stream consumption is defined per slot: a slot first takes a fixed slice
// of five words W0..W4, then (rarely) a continuation from the stream right
// after it, in the order the steps below ask for it:
//  1. (u, s) = v >> 1, v & 1 for v uniform on [0, 2T) by Lemire's
//     multiply-and-reject on W0 (2T <= 2^32), or on W0 2^32 + one continuation
//     word (2T > 2^32); a rejected draw rejects the slot (no redraw).
//  2. Trial i of Bernoulli(e^-1) for j reads its uniform's first 16 bits from
//     W1's high half (i = 1), low half (i = 2), the continuation (i >= 3).
//     Bernoulli(e^-1) is Algorithm 1 with gamma = 1: the index k of the first
//     failing trial Bernoulli(1/k) is odd with probability e^-1 and
//     P(k > i) = 1/i!, so k = min{i : U >= 1/i!} on one uniform U for i <= 7
//     (a threshold inside the first chunk's cell is settled on U's further
//     bits), fresh trials Bernoulli(1/k), k >= 8, beyond.
//  3. y as above; y = -0 rejects.
//  4. gamma = (x^2 bp - j den) / den = q + r / den: q trials of Bernoulli(e^-1)
//     (stopping at the first failure, which rejects), their first chunks from
//     W2's high half, low half, then the continuation.
//  5. Bernoulli(exp(-r / den)), Algorithm 1 with gamma = r / den < 1: where
//     den <= 2^40 and gamma >= 2^-16, one uniform U with first 32 bits W3
//     settles the first two trials (k = 1 if U >= gamma, k = 2 if
//     gamma^2 / 2 <= U < gamma), trials k = 3 and 4 (Bernoulli(gamma / k))
//     read their first 16 bits from W4's high and low halves, later trials
//     and further bits come from the continuation; otherwise every trial is
//     fresh from the continuation.
// Every comparison of a uniform with a ratio n / d is exact: U is read most
// significant first, 16 bits at a time, with a multiply and a compare per
// chunk (lt), continuing only while n / d lies inside the chunk's cell;
// d >= 2^111 draws U in [0, d) 32 bits at a time with rejection
// (bern_chunks).  The common case (j <= 1, q <= 2, no threshold inside a
// chunk's cell, k <= 4) is computed without data-dependent branches by
// fast_slot; anything else runs the slot's definition (Sampler::slot) on the
// same five words.  Samples are the accepted slots in order; a group of 64
// stops at its 64th.  Independent slots (each reads its own fresh bits)
// make the accepted values independent draws from the target.
//
// A value that does not fit its integer type is refused with
// DPLORA_EOVERFLOW, never wrapped (|y| < 2^63).  An overflow or an
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

// Bernoulli(e^-1) on one uniform U with first 16-bit chunk w: thresholds
// floor(2^16 / i!), i = 2..7; U < 1/i! for sure when w < floor(2^16 / i!).
// The count is branch-free: w < T exactly when w - T wraps (both below
// 2^17), so the sign bit of the 32-bit difference is the comparison.
constexpr uint32_t kT[6] = {32768, 10922, 2730, 546, 91, 13};
// The threshold that can tie with w once the count c is known (w == kTie[c]:
// 1/(c + 2)! lies in w's cell); 2^16 / 2 is exact and c = 6 has none.
constexpr uint32_t kTie[7] = {65536, 10922, 2730, 546, 91, 13, 65536};
constexpr uint32_t kF[6] = {2, 6, 24, 120, 720, 5040};  // i!, i = 2..7

constexpr uint32_t e1_count(uint32_t w) {
  uint32_t c = 0;
  for (int i = 0; i < 6; ++i) c += (w - kT[i]) >> 31;
  return c;
}

// The chunk alone does not settle the trial: a tie, or U < 1/7!.
constexpr bool e1_open(uint32_t w, uint32_t c) {
  return (w == kTie[c]) | (c == 6);
}

// Both at once: bit 0 the trial's success (the count is odd: k = 2 + c odd),
// bit 1 open.  Hosted builds read a 16 KiB table (2 bits per chunk value);
// freestanding builds, short of flash, count.
#if defined(DPLORA_FREESTANDING)
inline uint32_t e1_bits(uint32_t w) {
  const uint32_t c = e1_count(w);
  return (c & 1) | (uint32_t(e1_open(w, c)) << 1);
}
#else
struct E1Table {
  uint8_t v[16384] = {};
  constexpr E1Table() {
    for (uint32_t w = 0; w < 65536; ++w) {
      const uint32_t c = e1_count(w);
      const uint32_t bits = (c & 1) | (uint32_t(e1_open(w, c)) << 1);
      v[w >> 2] = uint8_t(v[w >> 2] | (bits << ((w & 3) * 2)));
    }
  }
};
constexpr E1Table kE1{};
inline uint32_t e1_bits(uint32_t w) {
  return (uint32_t(kE1.v[w >> 2]) >> ((w & 3) * 2)) & 3;
}
#endif

constexpr uint64_t k2p40 = uint64_t(1) << 40;

struct Sampler {
  Reader rd;
  bool overflow = false;  // an intermediate did not fit its integer type

  Sampler(const chacha::Stream &s, uint64_t pos, uint64_t limit, chacha::BlocksFn blocks, int batch)
      : rd(s, pos, limit, blocks, batch) {}

  bool failed() const { return overflow || rd.failed(); }

  bool fail_overflow() {
    overflow = true;
    return false;
  }

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

  // U < n / d for U whose first 16 bits are w (the rest from the stream),
  // 0 < n < d < 2^47.
  bool lt16(uint64_t n, uint64_t d, uint32_t w) {
    const uint64_t hi = n << 16, lo = uint64_t(w) * d;
    if (hi <= lo) return false;
    if (hi - lo >= d) return true;
    return lt(hi - lo, d);
  }

  // Bernoulli(e^-1) on U whose first 16 bits are w (see kT).
  bool e1(uint32_t w) {
    uint32_t c = e1_count(w);
    if (w == kTie[c]) {  // w == floor(2^16 / i!) for i = c + 2: compare U's further bits
      const uint32_t f = kF[c];
      if (lt(65536 - kT[c] * f, f)) ++c;
    }
    if (c < 6) return (c & 1) != 0;  // k = 2 + c
    uint64_t k = 8;                  // U < 1/7!: k >= 8
    while (!failed() && bern(1, k)) ++k;
    return (k & 1) != 0;
  }

  // The chunk for Bernoulli(e^-1) trial i (0-based) of a step: the slice
  // word's high half, its low half, then the stream.
  uint32_t chunk(uint32_t wd, uint64_t i) {
    return i == 0 ? wd >> 16 : i == 1 ? wd & 0xffff : uint32_t(rd.bits(16));
  }

  // Algorithm 1 from trial k on: Bernoulli(n / (d k)), Bernoulli(n / (d (k + 1))), ...
  bool bern_exp1_from(u128 n, u128 d, u128 k) {
    for (;;) {
      if (failed()) return false;
      u128 dk;
      if (!u128_mul_ok(d, k, dk)) return fail_overflow();
      if (!bern(n, dk)) break;
      ++k;
    }
    return (u128_lo(k) & 1) != 0;
  }

  // Step 5: Bernoulli(exp(-r / den)), 0 <= r < den, with slice words w3, w4.
  bool exp_frac(u128 r, u128 den, uint32_t w3, uint32_t w4) {
    if (r == 0) return true;
    if (u128_hi(den) != 0 || u128_lo(den) > k2p40 || (r << 16) < den) {
      return bern_exp1_from(r, den, 1);
    }
    const uint64_t n = u128_lo(r), d = u128_lo(den);
    // k = 1 when U >= gamma: n 2^32 <= w3 d.
    const u128 a1 = u128(n) << 32, b1 = mul64x64(w3, d);
    if (a1 <= b1) return true;
    // gamma inside w3's cell (w3 >= 2^16 - 1 as gamma >= 2^-16): U < gamma
    // leaves U >= w3 2^-32 > gamma^2 / 2, so k = 2.
    if (a1 - b1 < u128(d)) return !lt(a1 - b1, u128(d));
    const u128 d2 = mul64x64(d, d) << 1;  // U < gamma^2 / 2: n^2 2^32 - w3 2 d^2 > 0
    // w3 d2 < 2^113 (b2hi = 0).  Written as u128(w3) * d2, arm-none-eabi-g++
    // 12.2 -O2 -marm (ARMv5TE) settled the comparison below wrongly (right at
    // -O1/-Os/-O3, on Cortex-M3, and UBSan-clean on x86-64 with the struct).
    u128 b2hi, b2;
    mul128x64(d2, w3, b2hi, b2);
    const u128 a2 = mul64x64(n, n) << 32;
    if (a2 <= b2) return false;                          // k = 2
    if (a2 - b2 < d2 && !lt(a2 - b2, d2)) return false;  // k = 2
    if (!lt16(n, 3 * d, w4 >> 16)) return true;          // k = 3
    if (!lt16(n, 4 * d, w4 & 0xffff)) return false;      // k = 4
    return bern_exp1_from(r, den, 5);
  }

  // One slot by its definition (see the file comment); true with y when accepted.
  bool slot(const Params &p, const uint32_t *w, int64_t &y) {
    // 1. v uniform on [0, 2T).
    uint64_t v;
    if (p.two_t <= (uint64_t(1) << 32)) {
      const uint64_t m = uint64_t(w[0]) * p.two_t;
      if ((m & 0xffffffffu) < p.thr) return false;
      v = m >> 32;
    } else {
      const uint64_t draw = (uint64_t(w[0]) << 32) | rd.word();
      const u128 m = mul64x64(draw, p.two_t);
      if (u128_lo(m) < p.thr) return false;
      v = u128_hi(m);
    }
    const uint64_t u = v >> 1, s = v & 1;
    // 2. j: trials of Bernoulli(e^-1) up to the first failure.  Once two have
    // succeeded (j >= 2, so q >= j^2 - j >= 2), the first two trials of step 4
    // run before the rest of j's.
    uint64_t j = 0;
    int pre = 0;  // step 4's trials already run
    if (e1(w[1] >> 16)) {
      j = 1;
      if (!failed() && e1(w[1] & 0xffff)) {
        if (!e1(w[2] >> 16) || failed() || !e1(w[2] & 0xffff)) return false;
        pre = 2;
        j = 2;
        while (!failed() && e1(uint32_t(rd.bits(16)))) ++j;
      }
    }
    if (failed()) return false;
    // 3. x = j T + u < 2^63; -0 rejects.
    const u128 xw = mul64x64(j, p.t) + u128(u);
    if (u128_hi(xw) != 0 || (u128_lo(xw) >> 63) != 0) return fail_overflow();
    const uint64_t x = u128_lo(xw);
    if ((x == 0) & (s != 0)) return false;
    // 4. x^2 bp - j den (< 2^192) = q den + r; q trials of Bernoulli(e^-1)
    // (trial i's first chunk: W2's high half, low half, then the stream).
    const u128 x2 = mul64x64(x, x);  // < 2^126
    u128 phi, plo, jhi, jlo;
    mul128x64(x2, p.bp, phi, plo);
    mul128x64(p.den, j, jhi, jlo);
    const u128 nlo = plo - jlo;
    const u128 nhi = phi - jhi - u128(plo < jlo ? 1 : 0);
    u128 r;
    if (nhi == 0) {  // by subtraction, stopping at the first failed trial
      r = nlo;
      for (uint64_t i = 0; r >= p.den; ++i) {
        if (i >= uint64_t(pre) && (!e1(chunk(w[2], i)) || failed())) return false;
        r -= p.den;
      }
    } else {
      u128 q;
      divmod256(nhi, nlo, p.den, q, r);
      for (u128 i = u128(uint64_t(pre)); i < q; ++i) {
        if (!e1(chunk(w[2], u128_hi(i) != 0 ? 2 : u128_lo(i))) || failed()) return false;
      }
    }
    // 5.
    if (!exp_frac(r, p.den, w[3], w[4]) || failed()) return false;
    y = int64_t((x ^ (uint64_t(0) - s)) + s);
    return true;
  }

  // (hi, lo) = a b as 256 bits, b < 2^64.
  static void mul128x64(u128 a, uint64_t b, u128 &hi, u128 &lo) {
    const u128 p0 = mul64x64(u128_lo(a), b), p1 = mul64x64(u128_hi(a), b);
    lo = p0 + (p1 << 64);
    hi = (p1 >> 64) + u128(lo < p0 ? 1 : 0);
  }

  // 256-bit (hi, lo) / d -> quotient capped at 2^128 - 1, exact remainder.
  static void divmod256(u128 hi, u128 lo, u128 d, u128 &q, u128 &r) {
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
    // Beyond 2^128 Bernoulli(e^-1) trials all succeeding cannot happen within a
    // group's 2^26 words.
    q = q_big ? ~u128(0) : qlo;
  }
};

// The common case of Sampler::slot without data-dependent branches (Params::fast:
// 2T <= 2^31, (2T)^2 bp < 2^64, den <= 2^40): 1 accepted (y set), 0 rejected,
// 2 when the slot may need more than its slice (j >= 2 past step 4's first two
// trials, q >= 3 past them, a threshold near a chunk's cell, gamma < 2^-16,
// k >= 5), which Sampler::slot then settles.  Step 5 compares with G, where
// gamma 2^32 lies in [G, G + 2) (see Params::inv): 64-bit arithmetic only, and
// a comparison that G cannot settle is left to Sampler::slot.
inline int fast_slot(const Params &p, const uint32_t *w, int64_t &y) {
  // 1. Lemire on 2T.
  const uint64_t m = uint64_t(w[0]) * p.two_t;
  const bool ok1 = (m & 0xffffffffu) >= p.thr;
  const uint64_t v = m >> 32, u = v >> 1, s = v & 1;
  // 2. Geometric trials on W1's halves.
  const uint32_t g1 = w[1] >> 16, g2 = w[1] & 0xffff;
  const uint32_t b1 = e1_bits(g1), b2 = e1_bits(g2);
  const bool t1 = (b1 & 1) != 0, t2 = (b2 & 1) != 0;
  const bool open2 = (b1 >> 1) | (t1 & (b2 >> 1));
  const bool jge2 = t1 & t2;
  const uint64_t j = t1;  // when !jge2
  // 3.
  const uint64_t x = u + (p.t & (uint64_t(0) - j));
  const bool zneg = (x == 0) & (s != 0);
  // 4. gamma = (x^2 bp - j d) / d; trials on W2's halves (the first two run for any j >= 2).
  const uint64_t d = u128_lo(p.den);
  const uint64_t nn = x * x * p.bp - (d & (uint64_t(0) - j));
  const bool q1 = nn >= d, q2 = nn >= 2 * d, q3 = nn >= 3 * d;
  const uint32_t h1 = w[2] >> 16, h2 = w[2] & 0xffff;
  const uint32_t b3 = e1_bits(h1), b4 = e1_bits(h2);
  const bool s1 = (b3 & 1) != 0, s2 = (b4 & 1) != 0;
  const bool need1 = q1 | jge2, need2 = q2 | jge2, more = q3 | jge2;
  const bool okq = ((!need1) | s1) & ((!need2) | s2);
  const bool open4 = (need1 & (b3 >> 1)) | (need2 & s1 & (b4 >> 1)) | (more & s1 & s2);
  const uint64_t r = nn - (d & (uint64_t(0) - q1)) - (d & (uint64_t(0) - q2));
  // 5. U (first 32 bits W3) against gamma and gamma^2 / 2, trials 3 and 4 on W4's halves.
  const uint64_t g = u128_lo(mul64x64(r, p.inv) >> p.sh);  // gamma 2^32 in [g, g + 2)
  const uint64_t w3 = w[3];
  const bool k1 = w3 >= g + 2, below1 = w3 + 1 <= g;  // U >= gamma / U < gamma
  const uint64_t l2 = (g * g) >> 33;                  // gamma^2 2^31 in [l2, l2 + 4)
  const bool k2 = w3 >= l2 + 4, below2 = w3 + 1 <= l2;
  const uint64_t w4h = uint64_t(w[4] >> 16) << 16, w4l = uint64_t(w[4] & 0xffff) << 16;
  const bool f3 = 3 * w4h >= g + 2, s3 = 3 * (w4h + 65536) <= g;  // trial 3 fails / succeeds
  const bool f4 = 4 * w4l >= g + 2;   // trial 4 fails (a success or an open cell goes on)
  const bool deep = below1 & below2;  // U < gamma^2 / 2: trials 3, 4, ...
  const bool open5 = (g < 65536) | (!(k1 | below1)) | (below1 & !(k2 | below2)) |
                     (deep & ((!(f3 | s3)) | (s3 & !f4)));
  const bool acc5 = k1 | (deep & f3);
  const bool simple = okq & !more;  // steps 4 and 5 settled on the slice
  const bool open = ok1 & (open2 | ((!zneg) & (open4 | (simple & (r != 0) & open5))));
  y = int64_t((x ^ (uint64_t(0) - s)) + s);
  return open ? 2 : int(ok1 & !zneg & simple & ((r == 0) | acc5));
}

// The block width T: the least T >= 1 with T^2 b >= 2a.
uint64_t block_width(uint64_t a, uint64_t b) {
  const u128 two_a = u128(a) << 1;
  if (u128(b) >= two_a) return 1;
  // b < 2a: s = floor(sqrt(2a / b)) >= 1 and (s + 1)^2 b <= 4 s^2 b <= 8a < 2^67.
  const uint64_t s = u128_lo(intmath::isqrt_floor<u128>(two_a / u128(b)));
  return mul64x64(s, s) * u128(b) >= two_a ? s : s + 1;
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
  p.t = block_width(a, b);  // <= 2^33
  p.two_t = 2 * p.t;
  p.thr = p.two_t <= (uint64_t(1) << 32) ? ((uint64_t(1) << 32) - p.two_t) % p.two_t
                                         : (uint64_t(0) - p.two_t) % p.two_t;
  // g = gcd(b, 2a) = gcd(b, 2a mod b).
  const u128 two_a = u128(a) << 1;
  const uint64_t g = gcd64(b, uint64_t(two_a % u128(b)));
  p.bp = b / g;
  p.den = two_a / u128(g);
  const bool small_den = u128_hi(p.den) == 0 && u128_lo(p.den) <= k2p40;
  // G = (r inv) >> sh with inv = floor((2^(63+k) - 1) / den) < 2^64, sh = 31 + k,
  // k = bitlen(den): gamma 2^32 - G lies in [0, 1 + 2^-30) for r < den.
  p.sh = 31 + u128_bitlen(p.den);
  p.inv = small_den ? u128_lo(((u128(1) << (p.sh + 32)) - u128(1)) / p.den) : 0;
  // fast_slot: 64-bit x^2 bp for x < 2T, the den <= 2^40 reads of step 5.
  u128 sq;
  p.fast = small_den && p.two_t <= (uint64_t(1) << 31) &&
           u128_mul_ok(mul64x64(p.two_t, p.two_t), u128(p.bp), sq) && u128_hi(sq) == 0;
  return true;
}

int sample_groups(const chacha::Stream &s, uint64_t base, const Params &p, int64_t g0, int64_t g1,
                  int64_t *out, int64_t n, chacha::BlocksFn blocks, int batch) {
  for (int64_t g = g0; g < g1; ++g) {
    const uint64_t start = base + (uint64_t(g) << kRegionLog2);
    Sampler smp(s, start, start + (uint64_t(1) << kRegionLog2), blocks, batch);
    int64_t i = g * kGroup;
    const int64_t end = (g + 1) * kGroup < n ? (g + 1) * kGroup : n;
    while (i < end) {
      uint32_t w[5];
      for (int k = 0; k < 5; ++k) w[k] = smp.rd.word();
      int64_t y = 0;
      int acc = p.fast ? fast_slot(p, w, y) : 2;
      if (__builtin_expect(acc == 2, 0)) acc = smp.slot(p, w, y) ? 1 : 0;
      if (smp.failed()) return DPLORA_EOVERFLOW;
      out[i] = y;
      i += acc;
    }
  }
  return DPLORA_OK;
}

// Fast path off: every slot by its definition (tests compare the two).
int sample_groups_reference(const chacha::Stream &s, uint64_t base, const Params &p, int64_t g0,
                            int64_t g1, int64_t *out, int64_t n) {
  Params q = p;
  q.fast = false;
  return sample_groups(s, base, q, g0, g1, out, n, nullptr, 1);
}

int slot_for_test(const chacha::Stream &s, uint64_t pos, const Params &p, const uint32_t w[5],
                  int64_t *y, uint64_t *used) {
  Sampler smp(s, pos, ~uint64_t(0), nullptr, 1);
  int64_t v = 0;
  const bool acc = smp.slot(p, w, v);
  if (smp.failed()) return -1;
  *used = smp.rd.position() - pos;
  *y = acc ? v : 0;
  int64_t vf = 0;
  const int fast = p.fast ? fast_slot(p, w, vf) : 2;
  if (fast != 2 && (fast != int(acc) || (acc && vf != v))) return -2;  // the fast path disagrees
  return acc ? 1 : 0;
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
