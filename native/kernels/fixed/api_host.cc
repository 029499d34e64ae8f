// Threaded host entry points of the integer mode (dplora.h "fixed" and the
// discrete Gaussian): the same float-free kernels as fixed/api.cc split over
// the thread pool.  Float-free translation unit (compiled with
// -mgeneral-regs-only and scanned); not part of the freestanding build.
#include <atomic>
#include <new>

#include "chacha20.h"
#include "discrete_gaussian.h"
#include "dplora.h"
#include "fixed/check.h"
#include "fixed_point.h"
#include "thread_pool.h"

namespace {

// Owns a heap array of int64 (no std::vector: nothing that could pull in
// library code with floating point).
struct Scratch {
  int64_t *p = nullptr;
  explicit Scratch(int64_t n) : p(new (std::nothrow) int64_t[size_t(n > 0 ? n : 1)]) {}
  ~Scratch() { delete[] p; }
  Scratch(const Scratch &) = delete;
  Scratch &operator=(const Scratch &) = delete;
};

inline int64_t max64(int64_t a, int64_t b) {
  return a > b ? a : b;
}

}  // namespace

extern "C" {

int dplora_fixed_clip_sum(const int32_t *grads, int64_t batch, int64_t dim, int64_t clip_int,
                          int64_t *sum, int64_t *clipped) {
  const int rc = dplora::fixedpt::check_clip_sum(grads, batch, dim, clip_int, sum);
  if (rc != DPLORA_OK) return rc;
  if (dim == 0 || batch == 0) {  // nothing to clip: every norm is 0
    for (int64_t j = 0; j < dim; ++j) sum[j] = 0;
    if (clipped != nullptr) *clipped = 0;
    return DPLORA_OK;
  }
  Scratch scale(batch);
  if (scale.p == nullptr) return DPLORA_ENOMEM;
  // Pass 1: per-sample scales (rows split over threads).
  std::atomic<int64_t> total{0};
  dplora::parallel_for(batch, max64(1, (int64_t(1) << 16) / max64(dim, 1)),
                       [&](int64_t b, int64_t e) {
                         total += dplora::fixedpt::clip_scales(grads, b, e, dim, clip_int, scale.p);
                       });
  // Pass 2: column sums (columns split over threads; each column is summed
  // over samples in order, exactly).
  dplora::parallel_for(dim, 256, [&](int64_t b, int64_t e) {
    dplora::fixedpt::column_sums(grads, scale.p, batch, dim, b, e, sum);
  });
  if (clipped != nullptr) *clipped = total.load();
  return DPLORA_OK;
}

int dplora_rng_discrete_gaussian(const uint8_t key[32], const uint8_t nonce[12], uint64_t *position,
                                 uint64_t num, uint64_t den, int64_t *out, int64_t n) {
  using namespace dplora::dgauss;
  SampleCall c;
  const int rc = prepare_sample(key, nonce, position, num, den, out, n, c);
  if (rc != DPLORA_OK) return rc;
  const uint64_t base = *position;
  dplora::chacha::BlocksFn blocks;  // the host's SIMD keystream (integer only)
  int batch;
  dplora::chacha::host_keystream(blocks, batch);
  std::atomic<int> status{DPLORA_OK};
  dplora::parallel_for(c.groups, 4, [&](int64_t g0, int64_t g1) {
    const int st = sample_groups(c.s, base, c.p, g0, g1, out, n, blocks, batch);
    if (st != DPLORA_OK) status.store(st);
  });
  if (status.load() != DPLORA_OK) return status.load();
  *position = base + (uint64_t(c.groups) << kRegionLog2);
  return DPLORA_OK;
}

int dplora_fixed_add_discrete_gaussian(const uint8_t key[32], const uint8_t nonce[12],
                                       uint64_t *position, uint64_t num, uint64_t den, int64_t *sum,
                                       int64_t n, int64_t *saturated) {
  if (key == nullptr || nonce == nullptr || position == nullptr || n < 0 ||
      (sum == nullptr && n > 0) || num == 0 || den == 0) {
    return DPLORA_EINVAL;
  }
  // Draw all the noise first, so that a refusal leaves sum untouched.
  Scratch noise(n);
  if (noise.p == nullptr) return DPLORA_ENOMEM;
  uint64_t pos = *position;
  const int rc = dplora_rng_discrete_gaussian(key, nonce, &pos, num, den, noise.p, n);
  if (rc != DPLORA_OK) return rc;
  const int64_t sat = dplora::dgauss::add_saturating(sum, noise.p, n);
  *position = pos;
  if (saturated != nullptr) *saturated = sat;
  return DPLORA_OK;
}

}  // extern "C"
