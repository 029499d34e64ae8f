// AVX2 + FMA row kernels of elementwise.h (8 floats per vector; tails with masked loads and
// stores).
#include <immintrin.h>

#include <cmath>

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
  static double hsum(T v) {
    alignas(32) float t[8];
    _mm256_store_ps(t, v);
    double s = 0;
    for (int i = 0; i < 8; ++i) s += static_cast<double>(t[i]);
    return s;
  }
  static float hmax(T v) {
    alignas(32) float t[8];
    _mm256_store_ps(t, v);
    float m = t[0];
    for (int i = 1; i < 8; ++i) m = std::fmax(m, t[i]);
    return m;
  }
};

}  // namespace

const RowKernels kRowAvx2 = Impl<V256>::table();

}  // namespace elem
}  // namespace dplora
