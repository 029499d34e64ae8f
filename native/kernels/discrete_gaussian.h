// Exact discrete Gaussian kernels (integer-only: intonly/discrete_gaussian.cc).
//
// Stream layout: samples come in groups of kGroup = 64; group g reads its
// words sequentially from its own region [base + g 2^26, base + (g+1) 2^26)
// of the stream, so groups are independent (split over threads with results
// that do not depend on the thread count).  A call of n samples advances the
// position by ceil(n / 64) * 2^26.  A group needing more than 2^26 words
// (expected use: about 600) is refused with DPLORA_EOVERFLOW.
#pragma once
#include <stdint.h>

#include "chacha20.h"
#include "fixed/u128.h"

namespace dplora {
namespace dgauss {

constexpr int64_t kGroup = 64;
constexpr int kRegionLog2 = 26;

struct Params {
  uint64_t a, b;  // sigma^2 = a / b
  uint64_t t;     // the discrete Laplace scale, floor(sigma) or floor(sigma) + 1 (at least 1)
  uint64_t ar;    // a / g, g = gcd(a, b t)
  u128 btr;       // b t / g
  u128 den;       // 2 a b t^2 / g^2
};

// False when the parameters overflow 128 bits (or a or b is 0).
bool setup(uint64_t a, uint64_t b, Params &p);

// Samples of groups [g0, g1) into out[64 g0 .. min(64 g1, n)).
// DPLORA_OK or DPLORA_EOVERFLOW.  `blocks` and `batch` choose the keystream
// the stream reader buffers (chacha::host_keystream on the host; null: the
// scalar block function); the samples do not depend on them.
int sample_groups(const chacha::Stream &s, uint64_t base, const Params &p, int64_t g0, int64_t g1,
                  int64_t *out, int64_t n, chacha::BlocksFn blocks = nullptr, int batch = 1);

// sum[i] = saturate(sum[i] + noise[i]) (exact addition first); returns the
// number saturated.
int64_t add_saturating(int64_t *sum, const int64_t *noise, int64_t n);

}  // namespace dgauss
}  // namespace dplora
