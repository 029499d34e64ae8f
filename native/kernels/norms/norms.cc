// dplora_grad_norm_sq: per-sample squared Frobenius norms of G_i = g_i^T a_i
// by the direct, ghost or bound method, split over samples on the pool (each
// sample is computed by one thread, so results do not depend on the thread
// count).
#include <algorithm>
#include <atomic>
#include <cmath>
#include <memory>
#include <new>

#include "dplora.h"
#include "kernels.h"
#include "thread_pool.h"

namespace dplora {
namespace linalg {
namespace {

// Per-thread scratch for the direct kernels, grown on demand (a fresh
// allocation per call would pay page faults on every first touch).
double *scratch(size_t n) {
  thread_local std::unique_ptr<double[]> buf;
  thread_local size_t cap = 0;
  if (n > cap) {
    buf.reset(new (std::nothrow) double[n]);
    cap = buf ? n : 0;
  }
  return buf.get();
}

bool mul_ok(int64_t x, int64_t y, int64_t *r) {
  return !__builtin_mul_overflow(x, y, r);
}

double bound_sample(const Kernels &K, const float *a, const float *g, int64_t T, int64_t d,
                    int64_t p) {
  double s = 0;
  for (int64_t t = 0; t < T; ++t)
    s += std::sqrt(K.sumsq(a + t * d, d)) * std::sqrt(K.sumsq(g + t * p, p));
  return s * s;
}

}  // namespace

// The exact method with fewer multiply-adds: direct T*d*p against ghost
// T(T+1)/2 * (d+p) (the ghost kernel visits each pair t >= s once).
int choose_norm_method(int64_t T, int64_t d, int64_t p) {
  const double direct = static_cast<double>(T) * d * p;
  const double ghost = 0.5 * static_cast<double>(T) * (T + 1) * (static_cast<double>(d) + p);
  return direct <= ghost ? DPLORA_NORM_DIRECT : DPLORA_NORM_GHOST;
}

}  // namespace linalg
}  // namespace dplora

extern "C" int dplora_grad_norm_sq(const float *a, const float *g, int64_t batch, int64_t seq,
                                   int64_t in_dim, int64_t out_dim, int method, double *out) {
  using namespace dplora::linalg;
  if (batch < 0 || seq < 0 || in_dim < 0 || out_dim < 0) return DPLORA_EINVAL;
  if (method < DPLORA_NORM_AUTO || method > DPLORA_NORM_BOUND) return DPLORA_EINVAL;
  int64_t bt = 0, na = 0, ng = 0;
  if (!mul_ok(batch, seq, &bt) || !mul_ok(bt, in_dim, &na) || !mul_ok(bt, out_dim, &ng))
    return DPLORA_EINVAL;
  if (batch == 0) return DPLORA_OK;
  if (out == nullptr || (na > 0 && a == nullptr) || (ng > 0 && g == nullptr)) return DPLORA_EINVAL;
  const int64_t T = seq, d = in_dim, p = out_dim;
  if (T == 0 || d == 0 || p == 0) {
    for (int64_t i = 0; i < batch; ++i) out[i] = 0.0;
    return DPLORA_OK;
  }
  const dplora::Kernels &K = dplora::kernels();
  if (method == DPLORA_NORM_AUTO) method = choose_norm_method(T, d, p);
  double cost;  // multiply-adds per sample
  if (T == 1 || method == DPLORA_NORM_BOUND) {
    cost = static_cast<double>(T) * (d + p);
  } else if (method == DPLORA_NORM_DIRECT) {
    cost = static_cast<double>(T) * d * p;
  } else {
    cost = 0.5 * static_cast<double>(T) * (T + 1) * (static_cast<double>(d) + p);
  }
  const int64_t grain = std::max<int64_t>(1, static_cast<int64_t>(1.0e5 / std::max(cost, 1.0)));
  std::atomic<bool> ok{true};
  dplora::parallel_for(batch, grain, [&](int64_t b0, int64_t b1) {
    double *gbuf = nullptr;
    if (T > 1 && method == DPLORA_NORM_DIRECT) {
      gbuf = scratch(static_cast<size_t>(kNormScratch(T, std::max(d, p))));
      if (gbuf == nullptr) {
        ok = false;
        return;
      }
    }
    for (int64_t i = b0; i < b1; ++i) {
      const float *ai = a + i * T * d, *gi = g + i * T * p;
      double v;
      if (method == DPLORA_NORM_BOUND) {
        v = bound_sample(K, ai, gi, T, d, p);
      } else if (T == 1) {
        v = K.sumsq(ai, d) * K.sumsq(gi, p);
      } else if (method == DPLORA_NORM_DIRECT) {
        // ||g^T a|| = ||a^T g||: vectorize over the wider of the two.
        const bool swap = p > d;
        const float *pf = i + 1 < b1 ? (swap ? gi + T * p : ai + T * d) : nullptr;
        v = swap ? K.direct(gi, ai, T, p, d, gbuf, pf, T * p)
                 : K.direct(ai, gi, T, d, p, gbuf, pf, T * d);
      } else {
        v = K.ghost(ai, gi, T, d, p, nullptr, nullptr, 0);
      }
      out[i] = v;
    }
  });
  return ok ? DPLORA_OK : DPLORA_ENOMEM;
}
