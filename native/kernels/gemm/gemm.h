// Blocked SGEMM: the micro-kernel interface each ISA implements, its cache
// blocking, and the driver that sgemm.cc, clipped_sum.cc and the tests share.
#pragma once
#include <cstdint>

namespace dplora {
namespace linalg {

// SGEMM micro-kernel: C[m x n] += alpha * Ap * Bp, where Ap holds kc steps of
// MR packed values of op(A) and Bp kc rows of NR values of op(B), rows ldbp
// floats apart (NR for a packed panel; the row stride of B when B is read in
// place).  m <= MR and n <= NR select the edge-tile path (only the first n
// values of a B row are then meaningful, but all NR are read).
using GemmMicroFn = void (*)(int64_t kc, const float *ap, const float *bp, int64_t ldbp, float *c,
                             int64_t ldc, int64_t m, int64_t n, float alpha);

// Few output columns (n <= kSkinnyMaxN): C[i, j] = alpha * x_i . yt_j + beta * C[i, j]
// for rows i < m, x row-major (row stride ldx) read in place, yt = op(B)^T
// (n x k, row stride ldy >= k; the driver passes 64-byte aligned rows: an
// unaligned yt row costs a split load on every step); beta == 0 writes C
// without reading it.
using GemmSkinnyFn = void (*)(int64_t m, int64_t n, int64_t k, float alpha, const float *x,
                              int64_t ldx, const float *yt, int64_t ldy, float beta, float *c,
                              int64_t ldc);
constexpr int64_t kSkinnyMaxN = 16;

// The micro-kernel with op(A) read in place: rows r < MR of op(A) at a + r * lda, k
// contiguous (A not transposed), full MR-row tiles only (n <= NR as for GemmMicroFn).  The same
// updates in the same order as GemmMicroFn over the packed panel, so the same bits.
using GemmMicroRowsFn = void (*)(int64_t kc, const float *a, int64_t lda, const float *bp,
                                 int64_t ldbp, float *c, int64_t ldc, int64_t n, float alpha);

struct GemmKernel {
  int mr, nr;          // register tile
  int64_t mc, kc, nc;  // cache blocks (mc % mr == 0, nc % nr == 0)
  GemmMicroFn micro;
  GemmSkinnyFn skinny;         // null: the blocked path handles narrow products too
  GemmMicroRowsFn micro_rows;  // null: op(A) is always packed
};

// C = alpha op(A) op(B) + beta C with the given kernel.  When kscale is not
// null, column k of op(A) is multiplied by kscale[k] while packing (an exact
// zero where kscale[k] == 0; op(B) is still read, so callers that must drop
// rows holding NaN skip them instead).  When op(A) has few rows and B is not
// transposed, B is read in place instead of being packed (each B value is
// used by at most two micro-panels, so a packed copy would cost more than it
// saves).  parallel: split over the pool.  Returns a DPLORA_* status.
int gemm(const GemmKernel &kern, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
         float alpha, const float *a, int64_t lda, const float *b, int64_t ldb, float beta,
         float *c, int64_t ldc, const float *kscale, bool parallel);

// op(B) (k x n; B stored k x n, or n x k when trans_b) packed once for
// gemm_prepacked: NR-column panels over the whole of k, zero padded, the
// layout that gemm packs per cache block (so products are bitwise equal).
int64_t packed_b_floats(const GemmKernel &kern, int64_t k, int64_t n);
void pack_b_whole(const GemmKernel &kern, bool trans_b, int64_t k, int64_t n, const float *b,
                  int64_t ldb, float *dst, bool parallel);
// A second product written as the C init of gemm_prepacked's: C = beta C + alpha2 A2 B2 (A2
// m x k2 row-major, row stride lda2, not transposed; B2 = op(B2) k2 x n from pack_b_whole,
// same kernel; 0 < k2 <= kern.kc), then C += alpha op(A) B as usual.  Each block of C rows
// gets its init right before the main product's updates, while it is in cache (a LoRA
// adapter term bias + s h B^T in front of x W^T): bitwise equal to a beta = 0 product of the
// init followed by the main product with beta = 1.
struct GemmInit {
  const float *a;
  int64_t lda;
  int64_t k;
  const float *bpacked;
  float alpha;
};

// gemm with op(B) from pack_b_whole (same kernel): C = alpha op(A) B + beta C (with init:
// C = alpha op(A) B + (beta C + init), see GemmInit).
int gemm_prepacked(const GemmKernel &kern, bool trans_a, int64_t m, int64_t n, int64_t k,
                   float alpha, const float *a, int64_t lda, const float *bpacked, float beta,
                   float *c, int64_t ldc, bool parallel, const GemmInit *init = nullptr);

// Per-ISA kernels (the *_scalar.cc, *_avx2.cc, *_avx512.cc and *_neon.cc files).
void gemm_micro_scalar(int64_t, const float *, const float *, int64_t, float *, int64_t, int64_t,
                       int64_t, float);

#if defined(__x86_64__) || defined(_M_X64)
void gemm_micro_avx2(int64_t, const float *, const float *, int64_t, float *, int64_t, int64_t,
                     int64_t, float);
void gemm_micro_rows_avx2(int64_t, const float *, int64_t, const float *, int64_t, float *, int64_t,
                          int64_t, float);

void gemm_micro_avx512(int64_t, const float *, const float *, int64_t, float *, int64_t, int64_t,
                       int64_t, float);
void gemm_micro_rows_avx512(int64_t, const float *, int64_t, const float *, int64_t, float *,
                            int64_t, int64_t, float);
void gemm_skinny_avx2(int64_t, int64_t, int64_t, float, const float *, int64_t, const float *,
                      int64_t, float, float *, int64_t);
void gemm_skinny_avx512(int64_t, int64_t, int64_t, float, const float *, int64_t, const float *,
                        int64_t, float, float *, int64_t);
#endif

#if defined(__aarch64__)
void gemm_micro_neon(int64_t, const float *, const float *, int64_t, float *, int64_t, int64_t,
                     int64_t, float);
#endif

// C[m0:m1, n0:n1] = beta C for a row-major C with row stride ldc (beta == 0 writes zeros without
// reading C; beta == 1 does nothing).  Defined once in sgemm.cc (built without ISA flags), shared
// by the fp32 and bf16 drivers.
void scale_rows(float *c, int64_t ldc, float beta, int64_t m0, int64_t m1, int64_t n0, int64_t n1);

}  // namespace linalg
}  // namespace dplora
