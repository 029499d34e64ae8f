// dplora_clipped_sum: out[p, d] (+)= sum_{i,t} f_i g_{i,t} a_{i,t}^T as ONE
// blocked matrix product out = (F g)^T a over the B*T rows; the factors are
// folded into the packing of g, so no per-sample gradient is formed.  Rows of
// samples with factor 0 are packed as exact zeros on both sides: a dropped
// sample (non-finite norm) cannot put NaN or Inf into the sum.
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
  if (out_dim == 0 || in_dim == 0) return DPLORA_OK;
  if (out == nullptr) return DPLORA_EINVAL;
  if (bt > 0 && (a == nullptr || g == nullptr || factors == nullptr)) return DPLORA_EINVAL;
  std::vector<float> kscale;
  try {
    kscale.resize(static_cast<size_t>(bt));
  } catch (const std::bad_alloc &) {
    return DPLORA_ENOMEM;
  }
  for (int64_t i = 0; i < batch; ++i) {
    const float f = std::isfinite(factors[i]) ? factors[i] : 0.0f;
    for (int64_t t = 0; t < seq; ++t) kscale[static_cast<size_t>(i * seq + t)] = f;
  }
  const LinalgKernels &K = active_kernels();
  // op(A) = g^T (p x BT, stored BT x p), op(B) = a (BT x d).
  return gemm(K.gemm, true, false, out_dim, in_dim, bt, 1.0f, g, out_dim, a, in_dim,
              accumulate ? 1.0f : 0.0f, out, in_dim, kscale.data(), true);
}
