// dplora_clipped_sum: out[p, d] (+)= sum_{i,t} f_i g_{i,t} a_{i,t}^T as one
// blocked matrix product over the B*T rows, with the factors folded into the
// packing of the narrower operand, so no per-sample gradient is formed:
//   p <= d:  out = (F g)^T a            (op(A) = (F g)^T, B = a read in place)
//   p >  d:  tmp = (F a)^T g, out = tmp^T (op(A) = (F a)^T, B = g read in place)
// Samples with factor 0 are skipped (the product runs over each maximal run
// of kept samples), so NaN or Inf in a dropped sample never reaches the sum.
#include <algorithm>
#include <cmath>
#include <new>
#include <vector>

#include "dplora.h"
#include "linalg_kernels.h"

extern "C" int dplora_clipped_sum(const float *a, const float *g, int64_t batch, int64_t seq,
                                  int64_t in_dim, int64_t out_dim, const float *factors,
                                  float *out, int accumulate) {
  using namespace dplora::linalg;
  if (batch < 0 || seq < 0 || in_dim < 0 || out_dim < 0) return DPLORA_EINVAL;
  int64_t bt = 0, tmp = 0;
  if (__builtin_mul_overflow(batch, seq, &bt) || __builtin_mul_overflow(bt, in_dim, &tmp) ||
      __builtin_mul_overflow(bt, out_dim, &tmp) || __builtin_mul_overflow(in_dim, out_dim, &tmp)) {
    return DPLORA_EINVAL;
  }
  const int64_t d = in_dim, p = out_dim;
  if (p == 0 || d == 0) return DPLORA_OK;
  if (out == nullptr) return DPLORA_EINVAL;
  if (bt > 0 && (a == nullptr || g == nullptr || factors == nullptr)) return DPLORA_EINVAL;
  const bool transposed = p > d;
  std::vector<float> kscale, t_out;
  try {
    kscale.resize(static_cast<size_t>(bt));
    if (transposed) t_out.assign(static_cast<size_t>(d * p), 0.0f);
  } catch (const std::bad_alloc &) {
    return DPLORA_ENOMEM;
  }
  auto keep = [&](int64_t i) { return std::isfinite(factors[i]) && factors[i] != 0.0f; };
  for (int64_t i = 0; i < batch; ++i) {
    const float f = keep(i) ? factors[i] : 0.0f;
    std::fill(kscale.begin() + i * seq, kscale.begin() + (i + 1) * seq, f);
  }
  const LinalgKernels &K = active_kernels();
  float *c = transposed ? t_out.data() : out;
  bool first = true;
  int rc = DPLORA_OK;
  for (int64_t i0 = 0; i0 < batch && rc == DPLORA_OK;) {
    if (!keep(i0)) {
      ++i0;
      continue;
    }
    int64_t i1 = i0 + 1;
    while (i1 < batch && keep(i1)) ++i1;
    const int64_t k0 = i0 * seq, kn = (i1 - i0) * seq;
    const float beta = (first && !transposed && !accumulate) ? 0.0f : 1.0f;
    if (kn > 0) {
      if (!transposed) {
        rc = gemm(K.gemm, true, false, p, d, kn, 1.0f, g + k0 * p, p, a + k0 * d, d, beta, c, d,
                  kscale.data() + k0, true);
      } else {
        rc = gemm(K.gemm, true, false, d, p, kn, 1.0f, a + k0 * d, d, g + k0 * p, p, beta, c, p,
                  kscale.data() + k0, true);
      }
      first = false;
    }
    i0 = i1;
  }
  if (rc != DPLORA_OK) return rc;
  if (transposed) {
    for (int64_t j = 0; j < p; ++j) {
      float *row = out + j * d;
      for (int64_t k = 0; k < d; ++k) row[k] = (accumulate ? row[k] : 0.0f) + t_out[k * p + j];
    }
  } else if (first && !accumulate) {  // nothing kept: the sum is zero
    std::fill(out, out + p * d, 0.0f);
  }
  return DPLORA_OK;
}
