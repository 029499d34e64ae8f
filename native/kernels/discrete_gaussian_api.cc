// C API of the exact discrete Gaussian: splits the sample groups over the
// thread pool (the sampling itself is integer-only code in
// intonly/discrete_gaussian.cc; nothing here computes).
#include <atomic>
#include <new>
#include <vector>

#include "chacha20.h"
#include "discrete_gaussian.h"
#include "dplora.h"
#include "thread_pool.h"

extern "C" {

int dplora_rng_discrete_gaussian(const uint8_t key[32], const uint8_t nonce[12], uint64_t *position,
                                 uint64_t num, uint64_t den, int64_t *out, int64_t n) {
  using namespace dplora::dgauss;
  if (key == nullptr || nonce == nullptr || position == nullptr || n < 0 ||
      (out == nullptr && n > 0) || num == 0 || den == 0) {
    return DPLORA_EINVAL;
  }
  Params p;
  if (!setup(num, den, p)) return DPLORA_EOVERFLOW;
  const int64_t groups = (n + kGroup - 1) / kGroup;
  const uint64_t base = *position;
  // The regions must fit below 2^64 - 1.
  if (uint64_t(groups) > ((~uint64_t(0) - base) >> kRegionLog2)) return DPLORA_EOVERFLOW;
  const dplora::chacha::Stream s = dplora::chacha::make_stream(key, nonce);
  std::atomic<int> status{DPLORA_OK};
  dplora::parallel_for(groups, 4, [&](int64_t g0, int64_t g1) {
    const int rc = sample_groups(s, base, p, g0, g1, out, n);
    if (rc != DPLORA_OK) status.store(rc);
  });
  if (status.load() != DPLORA_OK) return status.load();
  *position = base + (uint64_t(groups) << kRegionLog2);
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
  std::vector<int64_t> noise;
  try {
    noise.resize(size_t(n));
  } catch (const std::bad_alloc &) {
    return DPLORA_ENOMEM;
  }
  uint64_t pos = *position;
  const int rc = dplora_rng_discrete_gaussian(key, nonce, &pos, num, den, noise.data(), n);
  if (rc != DPLORA_OK) return rc;
  const int64_t sat = dplora::dgauss::add_saturating(sum, noise.data(), n);
  *position = pos;
  if (saturated != nullptr) *saturated = sat;
  return DPLORA_OK;
}

}  // extern "C"
