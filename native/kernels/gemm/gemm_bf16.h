// Products with a bf16 frozen operand: op(B) rounded once to bf16 and packed,
// op(A) rounded to bf16 (round to nearest even) while it is packed, products
// accumulated in fp32.  Where the CPU has AVX512_BF16 the micro-kernel is
// vdpbf16ps (pairs along k); elsewhere (and under a forced DPLORA_ISA) the
// bf16 panels are widened to fp32 and the ISA's fp32 micro-kernel runs them.
//
// Both paths compute the same exact products (a bf16 x bf16 product fits in
// an fp32 significand) and differ only in the order and rounding of the fp32
// sums, so each is within gamma_{k + ceil(k / KC) + 1} * sum_k |a_k b_k| (plus
// k * 2^-126 for results flushed to zero by vdpbf16ps) of the exact sum of the
// rounded operands.
#pragma once
#include <cstdint>

#include "gemm.h"

namespace dplora {
namespace linalg {

// bf16 micro-kernel: C[m x n] += alpha * Ap Bp over kp pairs along k, where Ap
// holds kp steps of MR 32-bit words (the bf16 pair (a[i][2p], a[i][2p+1]), low
// half first) and Bp kp steps of NR pairs (2 * NR bf16: column j's pair at
// 2j, 2j+1).  m <= MR, n <= NR select the edge path (all MR x NR are read).
// overwrite: C = alpha * Ap Bp instead (C is not read).
using GemmBf16MicroFn = void (*)(int64_t kp, const uint32_t *ap, const uint16_t *bp, float *c,
                                 int64_t ldc, int64_t m, int64_t n, float alpha, bool overwrite);
// Packs rows [0, rows) x columns [0, kc) of a row-major A (row stride lda) as
// ceil(kc / 2) steps of mr words, rows past `rows` and the odd tail zero.
using PackABf16Fn = void (*)(const float *a, int64_t lda, int64_t rows, int64_t kc, int mr,
                             uint32_t *dst);

struct GemmBf16Kernel {
  int mr, nr;             // register tile of the bf16 micro-kernel
  int64_t mc, kc, nc;     // cache blocks (kc even)
  GemmBf16MicroFn micro;  // null: the fp32 fallback (the table's GemmKernel)
  PackABf16Fn pack_a;     // null: the portable packing
};

// fp32 -> bf16, round to nearest even; NaN stays a (quiet) NaN of the same sign,
// and a subnormal becomes a zero of the same sign (as VCVTNE2PS2BF16 does).
inline uint16_t f32_to_bf16(uint32_t bits) {
  if ((bits & 0x7f800000u) == 0x7f800000u && (bits & 0x007fffffu) != 0) {
    return static_cast<uint16_t>((bits >> 16) | 0x0040u);
  }
  if ((bits & 0x7f800000u) == 0) return static_cast<uint16_t>((bits >> 16) & 0x8000u);
  const uint32_t lsb = (bits >> 16) & 1u;
  return static_cast<uint16_t>((bits + 0x7fffu + lsb) >> 16);
}

// Elements (bf16) of op(B) (k x n) packed for `bk` (or, without a native
// micro-kernel, for the fallback with the fp32 kernel `fk`).
int64_t packed_b_bf16_elems(const GemmBf16Kernel &bk, const GemmKernel &fk, int64_t k, int64_t n);
// Rounds op(B) (B stored k x n, or n x k when trans_b) to bf16 and packs it.
void pack_b_bf16_whole(const GemmBf16Kernel &bk, const GemmKernel &fk, bool trans_b, int64_t k,
                       int64_t n, const float *b, int64_t ldb, uint16_t *dst, bool parallel);
// C = alpha bf16(op(A)) B + beta C, B from pack_b_bf16_whole with the same kernels.
// Each element of C is summed in an order that depends only on k (never on the
// split over threads or on the other rows).  With init (an fp32 product, its B2
// from pack_b_whole with fk; see GemmInit): C = alpha bf16(op(A)) B + (beta C +
// init), each block of C rows getting the init from the fp32 driver right before
// the bf16 updates, while it is in cache: bitwise equal to gemm_prepacked(fk) of
// the init with beta followed by this product with beta = 1.  Returns a DPLORA_*
// status.
int gemm_bf16_prepacked(const GemmBf16Kernel &bk, const GemmKernel &fk, bool trans_a, int64_t m,
                        int64_t n, int64_t k, float alpha, const float *a, int64_t lda,
                        const uint16_t *bpacked, float beta, float *c, int64_t ldc, bool parallel,
                        const GemmInit *init = nullptr);

// The portable A packing (also the fallback's rounding), exposed for tests.
void pack_a_bf16_scalar(const float *a, int64_t lda, int64_t rows, int64_t kc, int mr,
                        uint32_t *dst);

#if defined(__x86_64__) || defined(_M_X64)
// AVX512_BF16 (the *_avx512bf16.cc unit; call only where the CPU has it).
void gemm_bf16_micro_avx512bf16(int64_t, const uint32_t *, const uint16_t *, float *, int64_t,
                                int64_t, int64_t, float, bool);
void pack_a_bf16_avx512bf16(const float *, int64_t, int64_t, int64_t, int, uint32_t *);
constexpr int kBf16MrAvx512 = 12, kBf16NrAvx512 = 32;
#endif

}  // namespace linalg
}  // namespace dplora
