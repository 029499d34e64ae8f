// Clipped sums in double: the per-ISA kernels behind dplora_outer_scaled_sum_f64
// and dplora_rows_scaled_sum_f64 (see per_sample.cc and lib/nn/per_sample.ts
// for the floating-point argument).
#pragma once
#include <cstdint>

namespace dplora {
namespace clip {

// Row blocks of the narrow side the vector kernels take at once: `nar` rows
// have a stride that is a multiple of this (zero padded) whenever np > 1.
constexpr int64_t kNarrowPad = 8;

// For p < np and q0 <= q < q1:
//   acc = sum_{i < m} nar[i * ns + p] * wide[rows[i] * nw + q]
// accumulated in double from zero, i ascending, one multiply-add per term
// (fused or not, the same on every element of a call's ISA, whatever q0, q1),
// then out[p * ps + q * qs] += acc.  Only the rows listed in `rows` are read.
// ns == 1 when np == 1, else a multiple of kNarrowPad with nar zero padded.
using OuterSumFn = void (*)(const double *nar, int64_t np, int64_t ns, const float *wide,
                            int64_t nw, const int64_t *rows, int64_t m, int64_t q0, int64_t q1,
                            double *out, int64_t ps, int64_t qs);

void outer_sum_scalar(const double *, int64_t, int64_t, const float *, int64_t, const int64_t *,
                      int64_t, int64_t, int64_t, double *, int64_t, int64_t);
#if defined(__x86_64__) || defined(_M_X64)
void outer_sum_avx2(const double *, int64_t, int64_t, const float *, int64_t, const int64_t *,
                    int64_t, int64_t, int64_t, double *, int64_t, int64_t);
void outer_sum_avx512(const double *, int64_t, int64_t, const float *, int64_t, const int64_t *,
                      int64_t, int64_t, int64_t, double *, int64_t, int64_t);
#endif

}  // namespace clip
}  // namespace dplora
