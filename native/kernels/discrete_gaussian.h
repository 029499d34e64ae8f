// Exact discrete Gaussian kernels (integer-only: intonly/discrete_gaussian.cc).
//
// Stream layout: samples come in groups of kGroup = 64; group g reads its
// words sequentially from its own region [base + g 2^26, base + (g+1) 2^26)
// of the stream, so groups are independent (split over threads with results
// that do not depend on the thread count).  A call of n samples advances the
// position by ceil(n / 64) * 2^26.  A group needing more than 2^26 words
// (expected use: about 600 for large sigma, 800 at sigma = 1) is refused with
// DPLORA_EOVERFLOW.
#pragma once
#include <stdint.h>

#include "chacha20.h"
#include "fixed/u128.h"

namespace dplora {
namespace dgauss {

constexpr int64_t kGroup = 64;
constexpr int kRegionLog2 = 26;

struct Params {
  uint64_t a, b;   // sigma^2 = a / b
  uint64_t t;      // block width T: the least T >= 1 with T^2 b >= 2 a (T >= sigma sqrt 2)
  uint64_t two_t;  // 2 T
  uint64_t thr;    // Lemire's rejection threshold: 2^32 mod 2T (2T <= 2^32), else 2^64 mod 2T
  uint64_t bp;     // b / g, g = gcd(b, 2 a)
  u128 den;        // 2 a / g: the acceptance exponent is (x^2 bp - j den) / den
  uint64_t inv;    // floor((2^(63+k) - 1) / den), k = bitlen(den) (when den <= 2^40)
  int sh;          // 31 + k
  bool fast;       // the branch-free slot covers these parameters (see fast_slot)
};

// False when a or b is 0 (every other sigma^2 = a / b with 64-bit a, b is taken).
bool setup(uint64_t a, uint64_t b, Params &p);

// Samples of groups [g0, g1) into out[64 g0 .. min(64 g1, n)).
// DPLORA_OK or DPLORA_EOVERFLOW.  `blocks` and `batch` choose the keystream
// the stream reader buffers (chacha::host_keystream on the host; null: the
// scalar block function); the samples do not depend on them.
int sample_groups(const chacha::Stream &s, uint64_t base, const Params &p, int64_t g0, int64_t g1,
                  int64_t *out, int64_t n, chacha::BlocksFn blocks = nullptr, int batch = 1);

// The same samples with the branch-free fast path off (every slot by its
// definition, scalar keystream): for tests.
int sample_groups_reference(const chacha::Stream &s, uint64_t base, const Params &p, int64_t g0,
                            int64_t g1, int64_t *out, int64_t n);

// Test hook: one slot by its definition on the slice w, the continuation read
// from stream position pos: 1 accepted (*y), 0 rejected, -1 failure, -2 when
// the fast path settles the slot differently; *used = continuation words.
int slot_for_test(const chacha::Stream &s, uint64_t pos, const Params &p, const uint32_t w[5],
                  int64_t *y, uint64_t *used);

// sum[i] = saturate(sum[i] + noise[i]) (exact addition first); returns the
// number saturated.
int64_t add_saturating(int64_t *sum, const int64_t *noise, int64_t n);

}  // namespace dgauss
}  // namespace dplora
