// Argument checks shared by the freestanding (fixed/api.cc) and threaded
// host (fixed/api_host.cc) entry points of the integer mode.  Float-free.
#pragma once
#include <stdint.h>

#include "chacha20.h"
#include "discrete_gaussian.h"
#include "dplora.h"

namespace dplora {
namespace fixedpt {

inline int check_clip_sum(const int32_t *grads, int64_t batch, int64_t dim, int64_t clip_int,
                          const int64_t *sum) {
  if (batch < 0 || dim < 0 ||
      ((grads == nullptr && batch > 0 && dim > 0) || (sum == nullptr && dim > 0))) {
    return DPLORA_EINVAL;
  }
  if (clip_int < 1 || clip_int > DPLORA_FIXED_QMAX) return DPLORA_EINVAL;
  if (dim > (int64_t(1) << 53)) return DPLORA_EINVAL;
  // |sum| <= batch * clip_int <= 2^62 leaves 2^62 of int64 for the noise.
  if (batch > DPLORA_FIXED_SUM_BOUND / clip_int) return DPLORA_EOVERFLOW;
  return DPLORA_OK;
}

}  // namespace fixedpt

namespace dgauss {

// Validates a sampling call and prepares its parameters and group count.
inline int check_sample_args(const uint8_t *key, const uint8_t *nonce, const uint64_t *position,
                             uint64_t num, uint64_t den, const int64_t *out, int64_t n, Params &p,
                             int64_t &groups) {
  if (key == nullptr || nonce == nullptr || position == nullptr || n < 0 ||
      (out == nullptr && n > 0) || num == 0 || den == 0) {
    return DPLORA_EINVAL;
  }
  if (!setup(num, den, p)) return DPLORA_EOVERFLOW;
  groups = (n + kGroup - 1) / kGroup;
  // The regions must fit below 2^64 - 1.
  if (uint64_t(groups) > ((~uint64_t(0) - *position) >> kRegionLog2)) return DPLORA_EOVERFLOW;
  return DPLORA_OK;
}

// A validated sampling call: its parameters, group count and stream (shared by the freestanding
// and the threaded entry points, which differ only in how the groups are split).
struct SampleCall {
  Params p;
  int64_t groups = 0;
  chacha::Stream s;
};

inline int prepare_sample(const uint8_t *key, const uint8_t *nonce, const uint64_t *position,
                          uint64_t num, uint64_t den, const int64_t *out, int64_t n,
                          SampleCall &call) {
  const int rc = check_sample_args(key, nonce, position, num, den, out, n, call.p, call.groups);
  if (rc != DPLORA_OK) return rc;
  call.s = chacha::make_stream(key, nonce);
  return DPLORA_OK;
}

}  // namespace dgauss
}  // namespace dplora
