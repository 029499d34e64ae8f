// AVX-512 row kernels of elementwise.h (16 floats per vector; tails with masked loads and stores).
#include <immintrin.h>

#include <cmath>

#include "elementwise_impl.h"

namespace dplora {
namespace elem {
namespace {

// The unmasked forms of max, roundscale, cvtps_epi32 and slli_epi32 start from
// _mm512_undefined_*, which GCC 12 reports as uninitialized once inlined
// (-Wmaybe-uninitialized): the zero-masked forms with every lane set are the same
// instructions without that.
constexpr __mmask16 kAll = 0xFFFF;

struct V512 {
  using T = __m512;
  static constexpr int W = 16;
  static __mmask16 lanes(int64_t n) { return static_cast<__mmask16>((1u << n) - 1u); }
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
  static T max(T a, T b) { return _mm512_maskz_max_ps(kAll, a, b); }
  static T round(T x) {
    return _mm512_maskz_roundscale_ps(kAll, x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  }
  static T pow2(T k) {
    const __m512i e = _mm512_add_epi32(_mm512_maskz_cvtps_epi32(kAll, k), _mm512_set1_epi32(127));
    return _mm512_castsi512_ps(_mm512_maskz_slli_epi32(kAll, e, 23));
  }
  static T keep_ge(T x, T t, T v) {
    return _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(x, t, _CMP_GE_OQ), v);
  }
  static T keep_pos(T y, T g) {
    return _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(y, _mm512_setzero_ps(), _CMP_GT_OQ), g);
  }
  static double hsum(T v) {
    alignas(64) float t[16];
    _mm512_store_ps(t, v);
    double s = 0;
    for (int i = 0; i < 16; ++i) s += static_cast<double>(t[i]);
    return s;
  }
  static float hmax(T v) {
    alignas(64) float t[16];
    _mm512_store_ps(t, v);
    float m = t[0];
    for (int i = 1; i < 16; ++i) m = std::fmax(m, t[i]);
    return m;
  }
};

}  // namespace

const RowKernels kRowAvx512 = Impl<V512>::table();

}  // namespace elem
}  // namespace dplora
