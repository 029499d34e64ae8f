// Freestanding C entry points of the integer mode (dplora_fixed.h).
// Float-free translation unit: compiled with -mgeneral-regs-only on the host
// and with soft-float flags on FPU-less targets; no exceptions, heap,
// threads or libc.
#include "chacha20.h"
#include "discrete_gaussian.h"
#include "dplora_fixed.h"
#include "fixed/check.h"
#include "fixed_point.h"

extern "C" {

int dplora_fx_key_from_trng(dplora_trng_fn trng, void *ctx, uint8_t key[32]) {
  if (trng == nullptr || key == nullptr) return DPLORA_EINVAL;
  if (trng(ctx, key, 32) != 0) return DPLORA_EENTROPY;
  return DPLORA_OK;
}

int dplora_fx_clip_sum(const int32_t *grads, int64_t batch, int64_t dim, int64_t clip_int,
                       int64_t *sum, int64_t *clipped, int64_t *scratch) {
  const int rc = dplora::fixedpt::check_clip_sum(grads, batch, dim, clip_int, sum);
  if (rc != DPLORA_OK) return rc;
  if (scratch == nullptr && batch > 0 && dim > 0) return DPLORA_EINVAL;
  int64_t n = 0;
  if (dim > 0 && batch > 0) {
    n = dplora::fixedpt::clip_scales(grads, 0, batch, dim, clip_int, scratch);
    dplora::fixedpt::column_sums(grads, scratch, batch, dim, 0, dim, sum);
  } else {
    for (int64_t j = 0; j < dim; ++j) sum[j] = 0;
  }
  if (clipped != nullptr) *clipped = n;
  return DPLORA_OK;
}

int dplora_fx_discrete_gaussian(const uint8_t key[32], const uint8_t nonce[12], uint64_t *position,
                                uint64_t num, uint64_t den, int64_t *out, int64_t n) {
  using namespace dplora::dgauss;
  SampleCall c;
  const int rc = prepare_sample(key, nonce, position, num, den, out, n, c);
  if (rc != DPLORA_OK) return rc;
  const int st = sample_groups(c.s, *position, c.p, 0, c.groups, out, n);
  if (st != DPLORA_OK) return st;
  *position += uint64_t(c.groups) << kRegionLog2;
  return DPLORA_OK;
}

int dplora_fx_add_discrete_gaussian(const uint8_t key[32], const uint8_t nonce[12],
                                    uint64_t *position, uint64_t num, uint64_t den, int64_t *sum,
                                    int64_t n, int64_t *saturated, int64_t *scratch) {
  if ((sum == nullptr || scratch == nullptr) && n > 0) return DPLORA_EINVAL;
  uint64_t pos = position == nullptr ? 0 : *position;
  const int rc = dplora_fx_discrete_gaussian(key, nonce, &pos, num, den, scratch, n);
  if (rc != DPLORA_OK) return rc;
  const int64_t sat = dplora::dgauss::add_saturating(sum, scratch, n);
  *position = pos;
  if (saturated != nullptr) *saturated = sat;
  return DPLORA_OK;
}

}  // extern "C"
