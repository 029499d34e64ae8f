// AVX-512 row kernels of elementwise.h (16 floats per vector; tails with masked loads and stores).
// GCC 12 flags its own _mm512_undefined_* helpers as uninitialized: a false
// positive.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include "avx512_masks.h"
#include "elementwise_impl.h"

namespace dplora {
namespace elem {
namespace {

struct V512 {
  using T = __m512;
  static constexpr int W = 16;
  static __mmask16 lanes(int64_t n) { return mask16(n); }
  static T load(const float *p) { return _mm512_loadu_ps(p); }
  static T loadn(const float *p, int64_t n, float fill) {
    return _mm512_mask_loadu_ps(_mm512_set1_ps(fill), lanes(n), p);
  }
  static void store(float *p, T v) { _mm512_storeu_ps(p, v); }
  static void storen(float *p, T v, int64_t n) { _mm512_mask_storeu_ps(p, lanes(n), v); }
  static T set1(float x) { return _mm512_set1_ps(x); }
  static T zero() { return _mm512_setzero_ps(); }
  static T add(T a, T b) { return _mm512_add_ps(a, b); }
  static T sub(T a, T b) { return _mm512_sub_ps(a, b); }
  static T mul(T a, T b) { return _mm512_mul_ps(a, b); }
  static T fmadd(T a, T b, T c) { return _mm512_fmadd_ps(a, b, c); }
  static T fnmadd(T a, T b, T c) { return _mm512_fnmadd_ps(a, b, c); }
  static T max(T a, T b) { return _mm512_max_ps(a, b); }
  static T round(T x) {
    return _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  }
  static T pow2(T k) {
    const __m512i e = _mm512_add_epi32(_mm512_cvtps_epi32(k), _mm512_set1_epi32(127));
    return _mm512_castsi512_ps(_mm512_slli_epi32(e, 23));
  }
  static T keep_ge(T x, T t, T v) {
    return _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(x, t, _CMP_GE_OQ), v);
  }
  static T keep_pos(T y, T g) {
    return _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(y, _mm512_setzero_ps(), _CMP_GT_OQ), g);
  }
  // Lanes summed in double by a tree of shuffles (no store, no serial chain).
  static double hsum(T v) {
    const __m512d lo = _mm512_cvtps_pd(_mm512_castps512_ps256(v));
    const __m512d hi = _mm512_cvtps_pd(_mm512_castps512_ps256(_mm512_shuffle_f32x4(v, v, 0x4E)));
    __m512d s = _mm512_add_pd(lo, hi);
    s = _mm512_add_pd(s, _mm512_shuffle_f64x2(s, s, 0x4E));
    s = _mm512_add_pd(s, _mm512_shuffle_f64x2(s, s, 0xB1));
    s = _mm512_add_pd(s, _mm512_permute_pd(s, 0x55));
    return _mm_cvtsd_f64(_mm512_castpd512_pd128(s));
  }
  // 8 elements per step in double (two accumulators, then lane order); the tail masked.
  static double mse_row(const float *p, const float *t, int64_t n, double per, float *g) {
    const __m512d pv = _mm512_set1_pd(per);
    __m512d s0 = _mm512_setzero_pd(), s1 = _mm512_setzero_pd();
    int64_t j = 0;
    for (; j + 16 <= n; j += 16) {
      const __m512d d0 = _mm512_sub_pd(_mm512_cvtps_pd(_mm256_loadu_ps(p + j)),
                                       _mm512_cvtps_pd(_mm256_loadu_ps(t + j)));
      const __m512d d1 = _mm512_sub_pd(_mm512_cvtps_pd(_mm256_loadu_ps(p + j + 8)),
                                       _mm512_cvtps_pd(_mm256_loadu_ps(t + j + 8)));
      s0 = _mm512_add_pd(s0, _mm512_mul_pd(d0, d0));
      s1 = _mm512_add_pd(s1, _mm512_mul_pd(d1, d1));
      _mm256_storeu_ps(g + j, _mm512_cvtpd_ps(_mm512_div_pd(_mm512_add_pd(d0, d0), pv)));
      _mm256_storeu_ps(g + j + 8, _mm512_cvtpd_ps(_mm512_div_pd(_mm512_add_pd(d1, d1), pv)));
    }
    for (; j < n; j += 8) {
      const __mmask8 m = mask8(n - j);
      const __m512d d = _mm512_sub_pd(_mm512_cvtps_pd(_mm256_maskz_loadu_ps(m, p + j)),
                                      _mm512_cvtps_pd(_mm256_maskz_loadu_ps(m, t + j)));
      s0 = _mm512_add_pd(s0, _mm512_mul_pd(d, d));
      _mm256_mask_storeu_ps(g + j, m, _mm512_cvtpd_ps(_mm512_div_pd(_mm512_add_pd(d, d), pv)));
    }
    alignas(64) double lane[8];
    _mm512_store_pd(lane, _mm512_add_pd(s0, s1));
    double s = 0;
    for (double v : lane) s += v;
    return s;
  }
  static float hmax(T v) {
    T m = max(v, _mm512_shuffle_f32x4(v, v, 0x4E));
    m = max(m, _mm512_shuffle_f32x4(m, m, 0xB1));
    m = max(m, _mm512_permute_ps(m, 0x4E));
    m = max(m, _mm512_permute_ps(m, 0xB1));
    return _mm512_cvtss_f32(m);
  }
};

}  // namespace

const RowKernels kRowAvx512 = Impl<V512>::table();

}  // namespace elem
}  // namespace dplora
