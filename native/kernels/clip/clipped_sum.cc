// dplora_clipped_sum: out[p, d] (+)= sum_{i,t} f_i g_{i,t} a_{i,t}^T as one
// blocked matrix product over the B*T rows, with the factors folded into the
// packing of the narrower operand, so no per-sample gradient is formed:
//   p <= d:  out = (F g)^T a            (op(A) = (F g)^T, B = a read in place)
//   p >  d:  tmp = (F a)^T g, out = tmp^T (op(A) = (F a)^T, B = g read in place)
// Samples with factor 0 are skipped (the product runs over each maximal run
// of kept samples), so NaN or Inf in a dropped sample never reaches the sum.
#include <algorithm>
#include <atomic>
#include <utility>
#include <cmath>
#include <new>
#include <vector>

#include "dplora.h"
#include "kernels.h"
#include "thread_pool.h"

extern "C" int dplora_clipped_sum(const float *a, const float *g, int64_t batch, int64_t seq,
                                  int64_t in_dim, int64_t out_dim, const float *factors, float *out,
                                  int accumulate) {
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
  const dplora::Kernels &K = dplora::kernels();
  float *c = transposed ? t_out.data() : out;
  const int64_t M = transposed ? d : p, N = transposed ? p : d;
  // Runs of kept samples as row ranges [k0, k0 + kn).
  std::vector<std::pair<int64_t, int64_t>> runs;
  for (int64_t i0 = 0; i0 < batch;) {
    if (!keep(i0)) {
      ++i0;
      continue;
    }
    int64_t i1 = i0 + 1;
    while (i1 < batch && keep(i1)) ++i1;
    if (seq > 0) runs.emplace_back(i0 * seq, (i1 - i0) * seq);
    i0 = i1;
  }
  auto piece_gemm = [&](int64_t k0, int64_t kn, float beta, float *dst, bool parallel) {
    if (!transposed) {
      return gemm(K.gemm, true, false, p, d, kn, 1.0f, g + k0 * p, p, a + k0 * d, d, beta, dst, d,
                  kscale.data() + k0, parallel);
    }
    return gemm(K.gemm, true, false, d, p, kn, 1.0f, a + k0 * d, d, g + k0 * p, p, beta, dst, p,
                kscale.data() + k0, parallel);
  };
  int rc = DPLORA_OK;
  // Narrow products (LoRA: M <= 2 micro-tile rows) are memory-bound: split
  // the rows into pieces whose size depends only on the row count (never on
  // the thread count), each thread streaming whole row blocks, then add the
  // small partial sums in piece order.
  std::vector<std::pair<int64_t, int64_t>> pieces;
  const int64_t piece_rows = std::max<int64_t>(2048, bt / 64);
  if (M <= 2 * K.gemm.mr) {
    for (const auto &r : runs) {
      for (int64_t k0 = r.first; k0 < r.first + r.second; k0 += piece_rows) {
        pieces.emplace_back(k0, std::min(piece_rows, r.first + r.second - k0));
      }
    }
  }
  std::vector<float> part;
  if (pieces.size() > 1 && pieces.size() <= 256) {
    try {
      part.resize(pieces.size() * static_cast<size_t>(M * N));
    } catch (const std::bad_alloc &) {
      return DPLORA_ENOMEM;
    }
    std::atomic<int> err{DPLORA_OK};
    dplora::parallel_for(static_cast<int64_t>(pieces.size()), 1, [&](int64_t q0, int64_t q1) {
      for (int64_t q = q0; q < q1; ++q) {
        const int e =
            piece_gemm(pieces[q].first, pieces[q].second, 0.0f, part.data() + q * M * N, false);
        if (e != DPLORA_OK) err = e;
      }
    });
    if (err != DPLORA_OK) return err;
    const bool add_out = !transposed && accumulate;
    for (int64_t x = 0; x < M * N; ++x) {
      float sum = add_out ? c[x] : 0.0f;
      for (size_t q = 0; q < pieces.size(); ++q) sum += part[q * M * N + x];
      c[x] = sum;
    }
  } else {
    bool first = true;
    for (const auto &r : runs) {
      const float beta = (first && !transposed && !accumulate) ? 0.0f : 1.0f;
      rc = piece_gemm(r.first, r.second, beta, c, true);
      if (rc != DPLORA_OK) break;
      first = false;
    }
    if (rc == DPLORA_OK && first && !transposed && !accumulate) std::fill(out, out + p * d, 0.0f);
  }
  if (rc != DPLORA_OK) return rc;
  if (transposed) {
    for (int64_t j = 0; j < p; ++j) {
      float *row = out + j * d;
      for (int64_t k = 0; k < d; ++k) row[k] = (accumulate ? row[k] : 0.0f) + t_out[k * p + j];
    }
  }
  return DPLORA_OK;
}
