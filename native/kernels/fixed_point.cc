// C API of the fixed-point mode: the quantizer and dequantizers (the only
// floating-point code of the mode) and the thread-pool split of the
// integer-only clipping kernels (intonly/fixed_clip.cc).
#include "fixed_point.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <new>
#include <vector>

#include "dplora.h"
#include "thread_pool.h"

extern "C" {

int dplora_fixed_quantize(const float *x, int64_t n, int frac_bits, int32_t *out,
                          dplora_quantize_stats *stats) {
  if (n < 0 || ((x == nullptr || out == nullptr) && n > 0)) return DPLORA_EINVAL;
  if (frac_bits < 0 || frac_bits > DPLORA_FIXED_MAX_FRAC_BITS) return DPLORA_EINVAL;
  const double scale = std::ldexp(1.0, frac_bits);
  const double qmax = double(DPLORA_FIXED_QMAX);
  int64_t sat = 0, nan = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double v = double(x[i]);
    if (std::isnan(v)) {
      out[i] = 0;
      ++nan;
      continue;
    }
    // x * 2^f is exact in double (float input, power-of-two scale);
    // nearbyint rounds half to even in the default rounding mode.
    const double r = std::nearbyint(v * scale);
    if (r > qmax) {
      out[i] = DPLORA_FIXED_QMAX;
      ++sat;
    } else if (r < -qmax) {
      out[i] = -DPLORA_FIXED_QMAX;
      ++sat;
    } else {
      out[i] = int32_t(r);
    }
  }
  if (stats != nullptr) {
    stats->saturated = sat;
    stats->nan = nan;
  }
  return DPLORA_OK;
}

int dplora_fixed_dequantize_i32(const int32_t *q, int64_t n, int frac_bits, float *out) {
  if (n < 0 || ((q == nullptr || out == nullptr) && n > 0)) return DPLORA_EINVAL;
  if (frac_bits < 0 || frac_bits > DPLORA_FIXED_MAX_FRAC_BITS) return DPLORA_EINVAL;
  const double scale = std::ldexp(1.0, -frac_bits);
  for (int64_t i = 0; i < n; ++i) out[i] = float(double(q[i]) * scale);
  return DPLORA_OK;
}

int dplora_fixed_dequantize_i64(const int64_t *q, int64_t n, int frac_bits, double *out) {
  if (n < 0 || ((q == nullptr || out == nullptr) && n > 0)) return DPLORA_EINVAL;
  if (frac_bits < 0 || frac_bits > DPLORA_FIXED_MAX_FRAC_BITS) return DPLORA_EINVAL;
  const double scale = std::ldexp(1.0, -frac_bits);
  for (int64_t i = 0; i < n; ++i) out[i] = double(q[i]) * scale;
  return DPLORA_OK;
}

int dplora_fixed_clip_sum(const int32_t *grads, int64_t batch, int64_t dim, int64_t clip_int,
                          int64_t *sum, int64_t *clipped) {
  if (batch < 0 || dim < 0 ||
      ((grads == nullptr && batch > 0 && dim > 0) || (sum == nullptr && dim > 0))) {
    return DPLORA_EINVAL;
  }
  if (clip_int < 1 || clip_int > DPLORA_FIXED_QMAX) return DPLORA_EINVAL;
  if (dim > (int64_t(1) << 53)) return DPLORA_EINVAL;
  // |sum| <= batch * clip_int <= 2^62 leaves 2^62 of int64 for the noise.
  if (batch > DPLORA_FIXED_SUM_BOUND / clip_int) return DPLORA_EOVERFLOW;
  if (dim == 0 || batch == 0) {  // nothing to clip: every norm is 0
    for (int64_t j = 0; j < dim; ++j) sum[j] = 0;
    if (clipped != nullptr) *clipped = 0;
    return DPLORA_OK;
  }
  std::vector<int64_t> scale;
  try {
    scale.resize(size_t(batch));
  } catch (const std::bad_alloc &) {
    return DPLORA_ENOMEM;
  }
  int64_t nclipped = 0;
  // Pass 1: per-sample scales (rows split over threads).
  {
    std::atomic_int64_t total{0};
    dplora::parallel_for(
        batch, std::max<int64_t>(1, (int64_t(1) << 16) / std::max<int64_t>(dim, 1)),
        [&](int64_t b, int64_t e) {
          total += dplora::fixedpt::clip_scales(grads, b, e, dim, clip_int, scale.data());
        });
    nclipped = total.load();
  }
  // Pass 2: column sums (columns split over threads; each column is summed
  // over samples in order, exactly).
  dplora::parallel_for(dim, 256, [&](int64_t b, int64_t e) {
    dplora::fixedpt::column_sums(grads, scale.data(), batch, dim, b, e, sum);
  });
  if (clipped != nullptr) *clipped = nclipped;
  return DPLORA_OK;
}

}  // extern "C"
