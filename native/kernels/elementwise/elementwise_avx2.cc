// AVX2 + FMA row kernels of elementwise.h (8 floats per vector; tails with masked loads and
// stores).
#include <immintrin.h>

#include "elementwise_impl.h"

namespace dplora {
namespace elem {
namespace {

struct V256 {
  using T = __m256;
  static constexpr int W = 8;
  // The first n (0..8) 32-bit lanes set.
  static __m256i lanes(int64_t n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)),
                              _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  static T load(const float *p) { return _mm256_loadu_ps(p); }
  static T loadn(const float *p, int64_t n, float fill) {
    const __m256i m = lanes(n);
    return _mm256_blendv_ps(_mm256_set1_ps(fill), _mm256_maskload_ps(p, m), _mm256_castsi256_ps(m));
  }
  static void store(float *p, T v) { _mm256_storeu_ps(p, v); }
  static void storen(float *p, T v, int64_t n) { _mm256_maskstore_ps(p, lanes(n), v); }
  static T set1(float x) { return _mm256_set1_ps(x); }
  static T zero() { return _mm256_setzero_ps(); }
  static T add(T a, T b) { return _mm256_add_ps(a, b); }
  static T sub(T a, T b) { return _mm256_sub_ps(a, b); }
  static T mul(T a, T b) { return _mm256_mul_ps(a, b); }
  static T fmadd(T a, T b, T c) { return _mm256_fmadd_ps(a, b, c); }
  static T fnmadd(T a, T b, T c) { return _mm256_fnmadd_ps(a, b, c); }
  static T max(T a, T b) { return _mm256_max_ps(a, b); }
  static T round(T x) { return _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  static T pow2(T k) {
    const __m256i e = _mm256_add_epi32(_mm256_cvtps_epi32(k), _mm256_set1_epi32(127));
    return _mm256_castsi256_ps(_mm256_slli_epi32(e, 23));
  }
  static T keep_ge(T x, T t, T v) { return _mm256_and_ps(_mm256_cmp_ps(x, t, _CMP_GE_OQ), v); }
  static T keep_pos(T y, T g) {
    return _mm256_and_ps(_mm256_cmp_ps(y, _mm256_setzero_ps(), _CMP_GT_OQ), g);
  }
  // Lanes summed in double by a tree of shuffles (no store, no serial chain).
  static double hsum(T v) {
    __m256d s = _mm256_add_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(v)),
                              _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
    s = _mm256_add_pd(s, _mm256_permute2f128_pd(s, s, 0x01));
    s = _mm256_add_pd(s, _mm256_permute_pd(s, 0x5));
    return _mm_cvtsd_f64(_mm256_castpd256_pd128(s));
  }
  // 4 elements per step in double (two accumulators, then lane order); the tail one by one.
  static double mse_row(const float *p, const float *t, int64_t n, double per, float *g) {
    const __m256d pv = _mm256_set1_pd(per);
    __m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd();
    int64_t j = 0;
    for (; j + 8 <= n; j += 8) {
      const __m256d d0 =
          _mm256_sub_pd(_mm256_cvtps_pd(_mm_loadu_ps(p + j)), _mm256_cvtps_pd(_mm_loadu_ps(t + j)));
      const __m256d d1 = _mm256_sub_pd(_mm256_cvtps_pd(_mm_loadu_ps(p + j + 4)),
                                       _mm256_cvtps_pd(_mm_loadu_ps(t + j + 4)));
      s0 = _mm256_add_pd(s0, _mm256_mul_pd(d0, d0));
      s1 = _mm256_add_pd(s1, _mm256_mul_pd(d1, d1));
      _mm_storeu_ps(g + j, _mm256_cvtpd_ps(_mm256_div_pd(_mm256_add_pd(d0, d0), pv)));
      _mm_storeu_ps(g + j + 4, _mm256_cvtpd_ps(_mm256_div_pd(_mm256_add_pd(d1, d1), pv)));
    }
    alignas(32) double lane[4];
    _mm256_store_pd(lane, _mm256_add_pd(s0, s1));
    double s = 0;
    for (double v : lane) s += v;
    for (; j < n; ++j) {
      const double d = static_cast<double>(p[j]) - static_cast<double>(t[j]);
      s += d * d;
      g[j] = static_cast<float>((2 * d) / per);
    }
    return s;
  }
  static float hmax(T v) {
    T m = max(v, _mm256_permute2f128_ps(v, v, 0x01));
    m = max(m, _mm256_permute_ps(m, 0x4E));
    m = max(m, _mm256_permute_ps(m, 0xB1));
    return _mm256_cvtss_f32(m);
  }
};

}  // namespace

const RowKernels kRowAvx2 = Impl<V256>::table();

}  // namespace elem
}  // namespace dplora
