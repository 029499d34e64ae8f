// Blocked SGEMM driver: packs op(A) into MR-row panels and op(B) into
// NR-column panels per cache block (MC x KC, KC x NC) and runs the ISA's
// register-blocked micro-kernel over them.  Large products are split over
// the thread pool by whole micro-tiles of the larger dimension of C; every
// element of C is summed in the same order (KC blocks, then k inside the
// micro-kernel) whatever the split, so results do not depend on the thread
// count at all.
#include <algorithm>
#include <atomic>
#include <cstring>
#include <memory>
#include <new>
#include <vector>

#if defined(__SSE2__)
#include <xmmintrin.h>
#endif

#include "dplora.h"
#include "kernels.h"
#include "thread_pool.h"

namespace dplora {
namespace linalg {

void scale_rows(float *c, int64_t ldc, float beta, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  if (beta == 1.0f) return;
  for (int64_t i = m0; i < m1; ++i) {
    float *row = c + i * ldc;
    if (beta == 0.0f) {
      std::memset(row + n0, 0, static_cast<size_t>(n1 - n0) * sizeof(float));
    } else {
      for (int64_t j = n0; j < n1; ++j) row[j] *= beta;
    }
  }
}

namespace {

// Packing buffers, kept per thread and grown on demand: a fresh allocation
// per call would pay page faults on every first touch (pool threads live for
// the whole process, so each holds at most one buffer pair).
struct AlignedDelete {
  void operator()(float *p) const { ::operator delete(p, std::align_val_t(64)); }
};
struct ThreadBuf {
  std::unique_ptr<float, AlignedDelete> p;
  size_t cap = 0;
  float *get(size_t n) {
    if (n > cap) {
      p.reset();
      cap = 0;
      float *q = static_cast<float *>(
          ::operator new(n * sizeof(float), std::align_val_t(64), std::nothrow));
      if (q == nullptr) return nullptr;
      p.reset(q);
      cap = n;
    }
    return p.get();
  }
};
thread_local ThreadBuf tls_abuf, tls_bbuf;

struct Problem {
  const GemmKernel *kern;
  bool ta, tb;
  int64_t m, n, k;
  float alpha;
  const float *a;
  int64_t lda;
  const float *b;
  int64_t ldb;
  float beta;
  float *c;
  int64_t ldc;
  const float *kscale;
  // op(B) already packed (PackedB layout, for this kernel), or null.
  const float *bpacked = nullptr;
  // A product written as the C init (with bpacked only), or null.
  const GemmInit *init = nullptr;
};

// op(B) as NR-column panels over the whole of k: panel q (columns q*NR ..)
// holds k rows of NR floats (zero padded past n), so the KC slice starting
// at row pc of the panel holding column j is at bpacked + (j / NR) * k * NR +
// pc * NR.  The layout depends only on NR, never on the cache blocking.
inline const float *packed_panel(const Problem &P, int64_t j, int64_t pc) {
  const int64_t nr = P.kern->nr;
  return P.bpacked + (j / nr) * P.k * nr + pc * nr;
}

// The largest op(A) block (floats) run_block packs for all of k at once (see whole_k there):
// 384 KB, with the block of C and the streamed B panels still within a 1 MB L2.
constexpr int64_t kWholeKFloats = 96 * 1024;

// Whether mr rows lda floats apart start in at least mr / 3 different sets of a 64-set L1
// (64-byte lines): rows a multiple of 4 KB apart (lda 1024, 3072 ...) all fall in one set, and
// the micro-kernel's MR row streams then evict each other.
bool rows_spread_sets(int64_t lda, int64_t mr) {
  uint64_t seen = 0;
  int count = 0;
  for (int64_t r = 0; r < mr; ++r) {
    const uint64_t bit = uint64_t(1) << (((r * lda) >> 4) & 63);
    if ((seen & bit) == 0) ++count;
    seen |= bit;
  }
  return 3 * count >= mr;
}

// op(A)(i, kk) for the stored A.
inline float op_a(const Problem &P, int64_t i, int64_t kk) {
  return P.ta ? P.a[kk * P.lda + i] : P.a[i * P.lda + kk];
}

// One full panel of MR rows of A (row stride lda) transposed k-major: with
// MR known at compile time the inner loop unrolls (the generic loop below
// costs about a tenth of a large product's time).
// Where SSE is baseline (x86-64), blocks of 4 rows x 4 k are
// transposed in registers: 4 loads and 4 stores per 16 values instead of 16 each (the scalar
// copy cost about 4% of a 768-deep prepacked product on AVX-512).  Only copies: the packed
// panel is the same either way.
template <int MR>
void pack_rows(const float *a, int64_t lda, int64_t kc, float *dst) {
  const float *src[MR];
  for (int r = 0; r < MR; ++r) src[r] = a + r * lda;
  int64_t kk = 0;
#if defined(__SSE2__)
  if (MR >= 4) {
    constexpr int kQuads = MR / 4 * 4;  // rows in 4-row groups; the rest one by one
    for (; kk + 4 <= kc; kk += 4) {
      for (int r = kQuads; r < MR; ++r) {
        for (int q = 0; q < 4; ++q) dst[(kk + q) * MR + r] = src[r][kk + q];
      }
      for (int r = 0; r < kQuads; r += 4) {
        __m128 r0 = _mm_loadu_ps(src[r] + kk), r1 = _mm_loadu_ps(src[r + 1] + kk);
        __m128 r2 = _mm_loadu_ps(src[r + 2] + kk), r3 = _mm_loadu_ps(src[r + 3] + kk);
        _MM_TRANSPOSE4_PS(r0, r1, r2, r3);
        _mm_storeu_ps(dst + kk * MR + r, r0);
        _mm_storeu_ps(dst + (kk + 1) * MR + r, r1);
        _mm_storeu_ps(dst + (kk + 2) * MR + r, r2);
        _mm_storeu_ps(dst + (kk + 3) * MR + r, r3);
      }
    }
  }
#endif
  for (; kk < kc; ++kk) {
    for (int r = 0; r < MR; ++r) dst[kk * MR + r] = src[r][kk];
  }
}

// pack_rows for the register tile heights of the ISAs; false: not covered.
bool pack_rows_fixed(int mr, const float *a, int64_t lda, int64_t kc, float *dst) {
  switch (mr) {
    case 4:
      pack_rows<4>(a, lda, kc, dst);
      return true;
    case 6:
      pack_rows<6>(a, lda, kc, dst);
      return true;
    case 8:
      pack_rows<8>(a, lda, kc, dst);
      return true;
    case 12:
      pack_rows<12>(a, lda, kc, dst);
      return true;
    case 16:
      pack_rows<16>(a, lda, kc, dst);
      return true;
    default:
      return false;
  }
}

// Packs op(A)[i0 : i0+mc, p0 : p0+kc] into panels of MR rows, k-major.
void pack_a(const Problem &P, int64_t i0, int64_t mc, int64_t p0, int64_t kc, float *dst) {
  const int mr = P.kern->mr;
  for (int64_t ip = 0; ip < mc; ip += mr) {
    const int64_t rows = std::min<int64_t>(mr, mc - ip);
    const int64_t i = i0 + ip;
    if (!P.ta && P.kscale == nullptr && rows == mr &&
        pack_rows_fixed(mr, P.a + i * P.lda + p0, P.lda, kc, dst)) {
      // done
    } else if (!P.ta && P.kscale == nullptr) {
      const float *src[32];
      for (int64_t r = 0; r < rows; ++r) src[r] = P.a + (i + r) * P.lda + p0;
      for (int64_t kk = 0; kk < kc; ++kk) {
        for (int64_t r = 0; r < rows; ++r) dst[kk * mr + r] = src[r][kk];
      }
    } else if (P.ta && P.kscale == nullptr) {
      for (int64_t kk = 0; kk < kc; ++kk) {
        const float *src = P.a + (p0 + kk) * P.lda + i;
        for (int64_t r = 0; r < rows; ++r) dst[kk * mr + r] = src[r];
      }
    } else if (P.ta) {
      for (int64_t kk = 0; kk < kc; ++kk) {
        const float s = P.kscale[p0 + kk];
        const float *src = P.a + (p0 + kk) * P.lda + i;
        for (int64_t r = 0; r < rows; ++r) dst[kk * mr + r] = s == 0.0f ? 0.0f : s * src[r];
      }
    } else {
      for (int64_t kk = 0; kk < kc; ++kk) {
        const float s = P.kscale[p0 + kk];
        for (int64_t r = 0; r < rows; ++r) {
          dst[kk * mr + r] = s == 0.0f ? 0.0f : s * op_a(P, i + r, p0 + kk);
        }
      }
    }
    for (int64_t r = rows; r < mr; ++r) {
      for (int64_t kk = 0; kk < kc; ++kk) dst[kk * mr + r] = 0.0f;
    }
    dst += kc * mr;
  }
}

// Packs op(B)[p0 : p0+kc, j0 : j0+nc] into panels of NR columns, k-major.
void pack_b(const Problem &P, int64_t p0, int64_t kc, int64_t j0, int64_t nc, float *dst) {
  const int nr = P.kern->nr;
  for (int64_t jp = 0; jp < nc; jp += nr) {
    const int64_t cols = std::min<int64_t>(nr, nc - jp);
    const int64_t j = j0 + jp;
    for (int64_t kk = 0; kk < kc; ++kk) {
      float *d = dst + kk * nr;
      if (!P.tb) {
        const float *src = P.b + (p0 + kk) * P.ldb + j;
        for (int64_t q = 0; q < cols; ++q) d[q] = src[q];
      } else {
        const float *src = P.b + j * P.ldb + (p0 + kk);
        for (int64_t q = 0; q < cols; ++q) d[q] = src[q * P.ldb];
      }
      for (int64_t q = cols; q < nr; ++q) d[q] = 0.0f;
    }
    dst += kc * nr;
  }
}

// C[m0:m1, n0:n1] = beta C (beta == 0 writes zeros without reading C).
void scale_c(const Problem &P, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  scale_rows(P.c, P.ldc, P.beta, m0, m1, n0, n1);
}

// The whole blocked algorithm on the sub-block C[m0:m1, n0:n1].  When op(B)
// needs no packing here (pre-packed, or read in place), each MC-row block of
// C is finished (scaled, then every KC block added) before the next one, so
// it stays in L2 across the KC blocks instead of being streamed from memory
// once per KC block; otherwise a packed KC x NC panel of op(B) serves all
// rows before the next is packed.  Either way every element of C is summed
// in the same order (KC blocks ascending, then k inside the micro-kernel).
bool run_block(const Problem &P, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  const bool main = P.k > 0 && P.alpha != 0.0f;
  const bool init = P.init != nullptr && P.init->k > 0 && P.init->alpha != 0.0f;
  if ((!main && !init) || m1 <= m0 || n1 <= n0) {
    scale_c(P, m0, m1, n0, n1);
    return true;
  }
  const GemmKernel &K = *P.kern;
  const int64_t mr = K.mr, nr = K.nr;
  // Few rows of op(A): read B in place (full NR-wide tiles only).
  const bool prepacked = P.bpacked != nullptr;
  const bool direct_b = !prepacked && !P.tb && (m1 - m0) <= 2 * mr;
  // With an init product (always prepacked) C is finished block of rows by block of rows.
  const bool rows_outer = prepacked || direct_b || init;
  const int64_t kc_max = std::max(std::min(K.kc, P.k), init ? P.init->k : 0);
  const int64_t mc_max = std::min(K.mc, (m1 - m0 + mr - 1) / mr * mr);
  const int64_t nc_max = direct_b ? nr : std::min(K.nc, (n1 - n0 + nr - 1) / nr * nr);
  // Pre-packed op(B) a few KC blocks deep (a 768-deep frozen weight): the block of op(A) rows is
  // packed for all of k at once and each C tile takes its KC-block updates back to back while it
  // is in L1, instead of one pass over the block of C per KC block (between which the streamed
  // B evicts it from L2).  Same updates in the same order, so the same bits.  Measured on Zen 5
  // (4096 x 768 x 768, one thread, AVX-512): about 3% faster.
  const bool whole_k = prepacked && main && P.k > K.kc && mc_max * P.k <= kWholeKFloats;
  // ... and op(A) = A, unscaled, read in place by the micro-kernel instead of packed (no copy:
  // 2-3% of a 4096 x 768 x 768 product on AVX-512 and AVX2), unless A's rows are a multiple of
  // 4 KB apart or close to it, where the MR rows would share a few L1 sets (see
  // rows_spread_sets).  Only with many rows: at 32 rows the packed panels were faster (AVX2:
  // about 9%).
  const bool in_place = whole_k && K.micro_rows != nullptr && !P.ta && P.kscale == nullptr &&
                        m1 - m0 >= 4 * K.mc && rows_spread_sets(P.lda, mr);
  float *abuf = tls_abuf.get(static_cast<size_t>(mc_max * (whole_k ? P.k : kc_max)));
  float *bbuf = prepacked ? nullptr : tls_bbuf.get(static_cast<size_t>(nc_max * kc_max));
  if (abuf == nullptr || (!prepacked && bbuf == nullptr)) return false;
  // C[ic : ic + mc, jc : jc + nc] += alpha op(A) op(B) over k block pc.
  auto block = [&](int64_t jc, int64_t nc, int64_t pc, int64_t kc, int64_t ic, int64_t mc) {
    pack_a(P, ic, mc, pc, kc, abuf);
    for (int64_t jr = 0; jr < nc; jr += nr) {
      const int64_t nn = std::min(nr, nc - jr);
      const float *bp;
      int64_t ldbp = nr;
      if (prepacked) {
        bp = packed_panel(P, jc + jr, pc);
      } else if (!direct_b) {
        bp = bbuf + (jr / nr) * kc * nr;
      } else if (nn == nr) {
        bp = P.b + pc * P.ldb + jc + jr;
        ldbp = P.ldb;
      } else {
        pack_b(P, pc, kc, jc + jr, nn, bbuf);
        bp = bbuf;
      }
      for (int64_t ir = 0; ir < mc; ir += mr) {
        const float *ap = abuf + (ir / mr) * kc * mr;
        float *cp = P.c + (ic + ir) * P.ldc + (jc + jr);
        K.micro(kc, ap, bp, ldbp, cp, P.ldc, std::min(mr, mc - ir), nn, P.alpha);
      }
    }
  };
  // block() for every KC block of the pre-packed op(B), C tile by C tile (see whole_k): op(A)'s
  // rows packed per KC block side by side (block pc at abuf + mcr * pc).
  // With a micro_rows kernel (see in_place) the full MR-row tiles read op(A) where it is and only
  // a last partial panel is packed.
  auto whole_k_block = [&](int64_t jc, int64_t nc, int64_t ic, int64_t mc) {
    const int64_t mcr = (mc + mr - 1) / mr * mr;
    const int64_t packed_from = in_place ? mc / mr * mr : 0;
    if (packed_from < mc) {
      for (int64_t pc = 0; pc < P.k; pc += K.kc)
        pack_a(P, ic + packed_from, mc - packed_from, pc, std::min(K.kc, P.k - pc),
               abuf + mcr * pc + packed_from * std::min(K.kc, P.k - pc));
    }
    for (int64_t jr = 0; jr < nc; jr += nr) {
      const int64_t nn = std::min(nr, nc - jr);
      for (int64_t ir = 0; ir < mc; ir += mr) {
        float *cp = P.c + (ic + ir) * P.ldc + (jc + jr);
        for (int64_t pc = 0; pc < P.k; pc += K.kc) {
          const int64_t kc = std::min(K.kc, P.k - pc);
          const float *bp = packed_panel(P, jc + jr, pc);
          if (ir < packed_from) {
            K.micro_rows(kc, P.a + (ic + ir) * P.lda + pc, P.lda, bp, nr, cp, P.ldc, nn, P.alpha);
          } else {
            K.micro(kc, abuf + mcr * pc + (ir / mr) * kc * mr, bp, nr, cp, P.ldc,
                    std::min(mr, mc - ir), nn, P.alpha);
          }
        }
      }
    }
  };
  // One KC block (a LoRA rank as k: the adapter term as the C init of a base product, beta = 0):
  // each block of C is scaled right before its only update, while it is in cache, instead of
  // all of C first (one pass over C from memory fewer; the same values).
  const bool one_kc = P.k <= K.kc;
  if (!rows_outer && !one_kc) scale_c(P, m0, m1, n0, n1);
  // C[ic : ic + mc, jc : jc + nc] += alpha2 A2 B2: the init product (prepacked B2, one k block).
  auto init_block = [&](int64_t jc, int64_t nc, int64_t ic, int64_t mc) {
    Problem Q = P;
    Q.ta = false;
    Q.k = P.init->k;
    Q.alpha = P.init->alpha;
    Q.a = P.init->a;
    Q.lda = P.init->lda;
    Q.kscale = nullptr;
    Q.bpacked = P.init->bpacked;
    pack_a(Q, ic, mc, 0, Q.k, abuf);
    for (int64_t jr = 0; jr < nc; jr += nr) {
      const int64_t nn = std::min(nr, nc - jr);
      const float *bp = packed_panel(Q, jc + jr, 0);
      for (int64_t ir = 0; ir < mc; ir += mr) {
        K.micro(Q.k, abuf + (ir / mr) * Q.k * mr, bp, nr, P.c + (ic + ir) * P.ldc + (jc + jr),
                P.ldc, std::min(mr, mc - ir), nn, Q.alpha);
      }
    }
  };
  for (int64_t jc = n0; jc < n1; jc += K.nc) {
    const int64_t nc = std::min(K.nc, n1 - jc);
    if (rows_outer) {
      for (int64_t ic = m0; ic < m1; ic += K.mc) {
        const int64_t mc = std::min(K.mc, m1 - ic);
        scale_c(P, ic, ic + mc, jc, jc + nc);
        if (init) init_block(jc, nc, ic, mc);
        if (!main) continue;
        if (whole_k) {
          whole_k_block(jc, nc, ic, mc);
          continue;
        }
        for (int64_t pc = 0; pc < P.k; pc += K.kc)
          block(jc, nc, pc, std::min(K.kc, P.k - pc), ic, mc);
      }
      continue;
    }
    for (int64_t pc = 0; pc < P.k; pc += K.kc) {
      const int64_t kc = std::min(K.kc, P.k - pc);
      pack_b(P, pc, kc, jc, nc, bbuf);
      for (int64_t ic = m0; ic < m1; ic += K.mc) {
        const int64_t mc = std::min(K.mc, m1 - ic);
        if (one_kc) scale_c(P, ic, ic + mc, jc, jc + nc);
        block(jc, nc, pc, kc, ic, mc);
      }
    }
  }
  return true;
}

// Parallel version for large m and n: each KC x NC panel of op(B) is packed
// once (panels split over the pool) into a shared buffer, then the rows of C
// are split over the pool by whole micro-tiles, each thread packing its own
// rows of op(A).  The k order of every element is that of run_block.
bool run_shared(const Problem &P, int64_t grain_tiles) {
  const GemmKernel &K = *P.kern;
  const int64_t mr = K.mr, nr = K.nr;
  const int64_t tiles_m = (P.m + mr - 1) / mr;
  std::atomic<bool> ok{true};
  // One KC block: each thread scales its blocks of C right before their only update (see
  // run_block).
  const bool one_kc = P.k > 0 && P.k <= K.kc && P.alpha != 0.0f;
  if (!one_kc) {
    parallel_for(P.m, std::max<int64_t>(1, 65536 / std::max<int64_t>(P.n, 1)),
                 [&](int64_t i0, int64_t i1) { scale_c(P, i0, i1, 0, P.n); });
  }
  if (P.k == 0 || P.alpha == 0.0f) return true;
  const int64_t kc_max = std::min(K.kc, P.k);
  const int64_t nc_max = std::min(K.nc, (P.n + nr - 1) / nr * nr);
  const bool prepacked = P.bpacked != nullptr;
  float *bbuf = prepacked ? nullptr : tls_bbuf.get(static_cast<size_t>(nc_max * kc_max));
  if (!prepacked && bbuf == nullptr) return false;
  for (int64_t jc = 0; jc < P.n; jc += K.nc) {
    const int64_t nc = std::min(K.nc, P.n - jc);
    const int64_t panels = (nc + nr - 1) / nr;
    for (int64_t pc = 0; pc < P.k; pc += K.kc) {
      const int64_t kc = std::min(K.kc, P.k - pc);
      if (!prepacked) {
        parallel_for(panels, 4, [&](int64_t q0, int64_t q1) {
          pack_b(P, pc, kc, jc + q0 * nr, std::min(nc, q1 * nr) - q0 * nr, bbuf + q0 * kc * nr);
        });
      }
      parallel_for(tiles_m, grain_tiles, [&](int64_t t0, int64_t t1) {
        const int64_t m0 = t0 * mr, m1 = std::min(P.m, t1 * mr);
        float *abuf = tls_abuf.get(static_cast<size_t>(std::min(K.mc, m1 - m0 + mr) * kc));
        if (abuf == nullptr) {
          ok = false;
          return;
        }
        for (int64_t ic = m0; ic < m1; ic += K.mc) {
          const int64_t mc = std::min(K.mc, m1 - ic);
          if (one_kc) scale_c(P, ic, ic + mc, jc, jc + nc);
          pack_a(P, ic, mc, pc, kc, abuf);
          for (int64_t jr = 0; jr < nc; jr += nr) {
            const float *bp = prepacked ? packed_panel(P, jc + jr, pc) : bbuf + (jr / nr) * kc * nr;
            const int64_t nn = std::min(nr, nc - jr);
            for (int64_t ir = 0; ir < mc; ir += mr) {
              K.micro(kc, abuf + (ir / mr) * kc * mr, bp, nr, P.c + (ic + ir) * P.ldc + (jc + jr),
                      P.ldc, std::min(mr, mc - ir), nn, P.alpha);
            }
          }
        }
      });
      if (!ok) return false;
    }
  }
  return true;
}

}  // namespace

namespace {

int run(const Problem &P, bool parallel);

// Few output columns, op(A) = A read in place: n dot products per row of A
// with the rows of op(B)^T (copied into 64-byte aligned rows of ldy floats,
// ldy = k rounded up to 16: unaligned rows cost the AVX-512 kernel a split
// load on every step, about half its speed), rows split over the pool.  Each
// element is one dot product, so the thread count never changes a result.
int run_skinny(const Problem &P, bool parallel) {
  const int64_t m = P.m, n = P.n, k = P.k;
  const int64_t ldy = (k + 15) / 16 * 16;
  float *yt = tls_bbuf.get(static_cast<size_t>(n * ldy));
  if (yt == nullptr) return DPLORA_ENOMEM;
  for (int64_t j = 0; j < n; ++j) {
    float *row = yt + j * ldy;
    if (P.tb) {
      std::memcpy(row, P.b + j * P.ldb, static_cast<size_t>(k) * sizeof(float));
    } else {
      for (int64_t kk = 0; kk < k; ++kk) row[kk] = P.b[kk * P.ldb + j];
    }
    for (int64_t kk = k; kk < ldy; ++kk) row[kk] = 0.0f;
  }
  const GemmSkinnyFn fn = P.kern->skinny;
  auto body = [&](int64_t i0, int64_t i1) {
    fn(i1 - i0, n, k, P.alpha, P.a + i0 * P.lda, P.lda, yt, ldy, P.beta, P.c + i0 * P.ldc, P.ldc);
  };
  const int64_t grain = std::max<int64_t>(2, static_cast<int64_t>(2.6e5 / (n * k)) / 2 * 2);
  if (parallel) {
    parallel_for(m, grain, body);
  } else {
    body(0, m);
  }
  return DPLORA_OK;
}

// Few output columns, op(A) = A^T (a weight gradient g^T h): the transposed
// product C^T = op(B)^T A (few rows, A read in place as the B operand) into a
// scratch, then C = beta C + scratch^T.
int run_swapped(const Problem &P, bool parallel) {
  std::vector<float> t;
  try {
    t.resize(static_cast<size_t>(P.n * P.m));
  } catch (const std::bad_alloc &) {
    return DPLORA_ENOMEM;
  }
  // op(B)^T: B stored k x n (tb = 0) is read transposed; B stored n x k as is.
  Problem S{P.kern, !P.tb, false, P.n,  P.m,      P.k, P.alpha, P.b,
            P.ldb,  P.a,   P.lda, 0.0f, t.data(), P.m, nullptr};
  const int rc = run(S, parallel);
  if (rc != DPLORA_OK) return rc;
  for (int64_t i = 0; i < P.m; ++i) {
    float *row = P.c + i * P.ldc;
    for (int64_t j = 0; j < P.n; ++j) {
      const float v = t[static_cast<size_t>(j * P.m + i)];
      row[j] = P.beta == 0.0f ? v : v + P.beta * row[j];
    }
  }
  return DPLORA_OK;
}

// k == 1 and beta == 0 (a bias broadcast: ones x b^T): one pass writing C,
// rows split over the pool.  The blocked path would zero C, then add
// alpha * (a_i b_j) tile by tile: the same value, alpha * (a_i b_j) rounded
// twice, plus zero (which turns a -0 into +0, as the fused update onto the
// zeroed C does).
void run_rank1(const Problem &P, bool parallel) {
  auto body = [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      const float ai = P.ta ? P.a[i] : P.a[i * P.lda];
      float *row = P.c + i * P.ldc;
      if (P.tb) {
        for (int64_t j = 0; j < P.n; ++j) row[j] = P.alpha * (ai * P.b[j * P.ldb]) + 0.0f;
      } else {
        for (int64_t j = 0; j < P.n; ++j) row[j] = P.alpha * (ai * P.b[j]) + 0.0f;
      }
    }
  };
  const int64_t grain = std::max<int64_t>(1, 65536 / std::max<int64_t>(P.n, 1));
  if (parallel) {
    parallel_for(P.m, grain, body);
  } else {
    body(0, P.m);
  }
}

// Runs a validated problem, splitting it over the pool when `parallel`.
int run(const Problem &P, bool parallel) {
  const GemmKernel &kern = *P.kern;
  if (P.k == 1 && P.beta == 0.0f && P.kscale == nullptr && P.bpacked == nullptr &&
      P.alpha != 0.0f) {
    run_rank1(P, parallel);
    return DPLORA_OK;
  }
  // Narrow products (a LoRA rank as n): the blocked kernel would use a
  // fraction of its NR-wide tile and pack the large operand.
  const bool plain = P.kscale == nullptr && P.bpacked == nullptr && P.alpha != 0.0f;
  if (plain && P.n <= kSkinnyMaxN && P.k >= 16 && P.m >= 4 * kern.mr) {
    if (!P.ta && kern.skinny != nullptr) return run_skinny(P, parallel);
    if (P.ta && 2 * P.n <= kern.nr) return run_swapped(P, parallel);
  }
  const int64_t m = P.m, n = P.n, k = P.k;
  const int64_t tiles_m = (m + kern.mr - 1) / kern.mr;
  const int64_t tiles_n = (n + kern.nr - 1) / kern.nr;
  const double work = static_cast<double>(m) * static_cast<double>(n) *
                      static_cast<double>(std::max<int64_t>(k, 1));
  if (!parallel || work < 2.0e5 || (tiles_m < 2 && tiles_n < 2)) {
    return run_block(P, 0, m, 0, n) ? DPLORA_OK : DPLORA_ENOMEM;
  }
  std::atomic<bool> ok{true};
  // Chunks of at least ~256K multiply-adds.  Few rows: split the columns
  // (op(A) is small, B is read in place, pre-packed or packed per chunk); few
  // columns: split the rows; otherwise share the packed B panels.
  // Few row tiles per thread (a small batch): a row split would leave threads
  // idle (3 tiles on 2 threads: one third of the time), so split the columns;
  // every path sums each element in the same order, so the choice never
  // changes a result.
  const bool few_rows = tiles_m < 4 * static_cast<int64_t>(pool_threads()) && tiles_n >= tiles_m;
  if (tiles_m > 2 && tiles_n > 2 && !few_rows && (P.bpacked != nullptr || P.init != nullptr)) {
    // Pre-packed op(B): nothing to share, so each thread runs whole row
    // blocks (its C rows stay in its L2 across the KC blocks).
    const double per_tile = static_cast<double>(kern.mr) * n * std::max<int64_t>(k, 1);
    const int64_t grain = std::max<int64_t>(1, static_cast<int64_t>(2.6e5 / per_tile));
    parallel_for(tiles_m, grain, [&](int64_t t0, int64_t t1) {
      if (!run_block(P, t0 * kern.mr, std::min(m, t1 * kern.mr), 0, n)) ok = false;
    });
    return ok ? DPLORA_OK : DPLORA_ENOMEM;
  }
  if (tiles_m > 2 && tiles_n > 2 && !few_rows) {
    const double per_tile = static_cast<double>(kern.mr) * n * std::max<int64_t>(k, 1);
    const int64_t grain = std::max<int64_t>(1, static_cast<int64_t>(2.6e5 / per_tile));
    return run_shared(P, grain) ? DPLORA_OK : DPLORA_ENOMEM;
  }
  if (tiles_n >= tiles_m) {
    const double per_tile = static_cast<double>(kern.nr) * m * std::max<int64_t>(k, 1);
    const int64_t grain = std::max<int64_t>(1, static_cast<int64_t>(2.6e5 / per_tile));
    parallel_for(tiles_n, grain, [&](int64_t t0, int64_t t1) {
      if (!run_block(P, 0, m, t0 * kern.nr, std::min(n, t1 * kern.nr))) ok = false;
    });
  } else {
    const double per_tile = static_cast<double>(kern.mr) * n * std::max<int64_t>(k, 1);
    const int64_t grain = std::max<int64_t>(1, static_cast<int64_t>(2.6e5 / per_tile));
    parallel_for(tiles_m, grain, [&](int64_t t0, int64_t t1) {
      if (!run_block(P, t0 * kern.mr, std::min(m, t1 * kern.mr), 0, n)) ok = false;
    });
  }
  return ok ? DPLORA_OK : DPLORA_ENOMEM;
}

}  // namespace

int gemm(const GemmKernel &kern, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
         float alpha, const float *a, int64_t lda, const float *b, int64_t ldb, float beta,
         float *c, int64_t ldc, const float *kscale, bool parallel) {
  if (m < 0 || n < 0 || k < 0) return DPLORA_EINVAL;
  if (m == 0 || n == 0) return DPLORA_OK;
  const int64_t wa = trans_a ? m : k, wb = trans_b ? k : n;
  if (lda < std::max<int64_t>(1, wa) || ldb < std::max<int64_t>(1, wb) ||
      ldc < std::max<int64_t>(1, n)) {
    return DPLORA_EINVAL;
  }
  if (c == nullptr) return DPLORA_EINVAL;
  if (k > 0 && alpha != 0.0f && (a == nullptr || b == nullptr)) return DPLORA_EINVAL;
  const Problem P{&kern, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, kscale};
  return run(P, parallel);
}

int64_t packed_b_floats(const GemmKernel &kern, int64_t k, int64_t n) {
  return (n + kern.nr - 1) / kern.nr * kern.nr * k;
}

void pack_b_whole(const GemmKernel &kern, bool trans_b, int64_t k, int64_t n, const float *b,
                  int64_t ldb, float *dst, bool parallel) {
  Problem P{&kern, false, trans_b, 0, n, k, 1.0f, nullptr, 1, b, ldb, 0.0f, nullptr, 1, nullptr};
  const int64_t nr = kern.nr, panels = (n + nr - 1) / nr;
  auto body = [&](int64_t q0, int64_t q1) {
    pack_b(P, 0, k, q0 * nr, std::min(n, q1 * nr) - q0 * nr, dst + q0 * k * nr);
  };
  if (parallel && static_cast<double>(k) * n > 2.0e5) {
    parallel_for(panels, 4, body);
  } else {
    body(0, panels);
  }
}

int gemm_prepacked(const GemmKernel &kern, bool trans_a, int64_t m, int64_t n, int64_t k,
                   float alpha, const float *a, int64_t lda, const float *bpacked, float beta,
                   float *c, int64_t ldc, bool parallel, const GemmInit *init) {
  if (m < 0 || n < 0 || k < 0) return DPLORA_EINVAL;
  if (m == 0 || n == 0) return DPLORA_OK;
  const int64_t wa = trans_a ? m : k;
  if (lda < std::max<int64_t>(1, wa) || ldc < std::max<int64_t>(1, n)) return DPLORA_EINVAL;
  if (c == nullptr) return DPLORA_EINVAL;
  if (k > 0 && alpha != 0.0f && (a == nullptr || bpacked == nullptr)) return DPLORA_EINVAL;
  if (init != nullptr) {
    if (init->k <= 0 || init->k > kern.kc || init->lda < init->k) return DPLORA_EINVAL;
    if (init->a == nullptr || init->bpacked == nullptr) return DPLORA_EINVAL;
    if (init->alpha == 0.0f) init = nullptr;  // nothing to add (and A2 is not read)
  }
  Problem P{&kern, trans_a, false, m, n, k, alpha, a, lda, nullptr, 1, beta, c, ldc, nullptr};
  P.bpacked = bpacked;
  P.init = init;
  return run(P, parallel);
}

}  // namespace linalg
}  // namespace dplora

extern "C" int dplora_sgemm(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                            const float *a, int64_t lda, const float *b, int64_t ldb, float beta,
                            float *c, int64_t ldc) {
  const auto &K = dplora::kernels();
  return dplora::linalg::gemm(K.gemm, trans_a != 0, trans_b != 0, m, n, k, alpha, a, lda, b, ldb,
                              beta, c, ldc, nullptr, true);
}

struct dplora_packed_b {
  int isa;  // the dispatch table the panels were packed for
  int64_t k, n;
  float *data;  // 64-byte aligned, packed_b_floats(k, n) floats (fp32 handles)
  // bf16 handles (dplora_sgemm_pack_b_bf16): data is null and bf16 holds
  // packed_b_bf16_elems(k, n) values, 64-byte aligned.
  uint16_t *bf16 = nullptr;
};

extern "C" int dplora_sgemm_pack_b(int trans_b, int64_t k, int64_t n, const float *b, int64_t ldb,
                                   dplora_packed_b **out) {
  if (out == nullptr) return DPLORA_EINVAL;
  *out = nullptr;
  if (k < 0 || n < 0) return DPLORA_EINVAL;
  const int64_t wb = trans_b ? k : n;
  if (ldb < std::max<int64_t>(1, wb)) return DPLORA_EINVAL;
  if (k > 0 && n > 0 && b == nullptr) return DPLORA_EINVAL;
  const dplora::Kernels &K = dplora::kernels();
  const int64_t floats = dplora::linalg::packed_b_floats(K.gemm, k, n);
  if (floats > (int64_t(1) << 40)) return DPLORA_EINVAL;
  auto *p = new (std::nothrow) dplora_packed_b{K.isa, k, n, nullptr, nullptr};
  if (p == nullptr) return DPLORA_ENOMEM;
  if (floats > 0) {
    p->data = static_cast<float *>(::operator new(static_cast<size_t>(floats) * sizeof(float),
                                                  std::align_val_t(64), std::nothrow));
    if (p->data == nullptr) {
      delete p;
      return DPLORA_ENOMEM;
    }
    dplora::linalg::pack_b_whole(K.gemm, trans_b != 0, k, n, b, ldb, p->data, true);
  }
  *out = p;
  return DPLORA_OK;
}

extern "C" void dplora_packed_b_free(dplora_packed_b *p) {
  if (p == nullptr) return;
  if (p->data != nullptr) ::operator delete(p->data, std::align_val_t(64));
  if (p->bf16 != nullptr) ::operator delete(p->bf16, std::align_val_t(64));
  delete p;
}

extern "C" int dplora_packed_b_isa(const dplora_packed_b *p) {
  return p == nullptr ? -1 : p->isa;
}

extern "C" void dplora_packed_b_dims(const dplora_packed_b *p, int64_t *k, int64_t *n) {
  if (k) *k = p ? p->k : 0;
  if (n) *n = p ? p->n : 0;
}

extern "C" int64_t dplora_packed_b_bytes(const dplora_packed_b *p) {
  if (p != nullptr && p->bf16 != nullptr) {
    const dplora::Kernels &K = dplora::kernels_for(p->isa);
    return dplora::linalg::packed_b_bf16_elems(K.bf16, K.gemm, p->k, p->n) *
           static_cast<int64_t>(sizeof(uint16_t));
  }
  if (p == nullptr || p->data == nullptr) return 0;
  return dplora::linalg::packed_b_floats(dplora::kernels_for(p->isa).gemm, p->k, p->n) *
         static_cast<int64_t>(sizeof(float));
}

extern "C" int dplora_sgemm_packed(int trans_a, int64_t m, float alpha, const float *a, int64_t lda,
                                   const dplora_packed_b *pb, float beta, float *c, int64_t ldc) {
  if (pb == nullptr) return DPLORA_EINVAL;
  const dplora::Kernels &K = dplora::kernels();
  if (K.isa != pb->isa) return DPLORA_ESTALE;
  if (pb->bf16 != nullptr) {
    return dplora::linalg::gemm_bf16_prepacked(K.bf16, K.gemm, trans_a != 0, m, pb->n, pb->k, alpha,
                                               a, lda, pb->bf16, beta, c, ldc, true);
  }
  return dplora::linalg::gemm_prepacked(K.gemm, trans_a != 0, m, pb->n, pb->k, alpha, a, lda,
                                        pb->data, beta, c, ldc, true);
}

namespace {
// The checks both C-init entry points make of their handles (both non-null): the init handle pb2
// fp32 with pb's n columns and 1 to 64 rows, both packed for the active ISA path.
int check_init_handles(const dplora_packed_b *pb, const dplora_packed_b *pb2) {
  if (pb2->bf16 != nullptr) return DPLORA_EINVAL;
  if (pb2->n != pb->n || pb2->k < 1 || pb2->k > 64) return DPLORA_EINVAL;
  const dplora::Kernels &K = dplora::kernels();
  if (K.isa != pb->isa || K.isa != pb2->isa) return DPLORA_ESTALE;
  return DPLORA_OK;
}
}  // namespace

extern "C" int dplora_sgemm_packed_init(int trans_a, int64_t m, float alpha, const float *a,
                                        int64_t lda, const dplora_packed_b *pb, float beta,
                                        float *c, int64_t ldc, float alpha2, const float *a2,
                                        int64_t lda2, const dplora_packed_b *pb2) {
  if (pb == nullptr || pb2 == nullptr || pb->bf16 != nullptr) return DPLORA_EINVAL;
  const int rc = check_init_handles(pb, pb2);
  if (rc != DPLORA_OK) return rc;
  const dplora::Kernels &K = dplora::kernels();
  const dplora::linalg::GemmInit init{a2, lda2, pb2->k, pb2->data, alpha2};
  return dplora::linalg::gemm_prepacked(K.gemm, trans_a != 0, m, pb->n, pb->k, alpha, a, lda,
                                        pb->data, beta, c, ldc, true, &init);
}

extern "C" int dplora_sgemm_pack_b_bf16(int trans_b, int64_t k, int64_t n, const float *b,
                                        int64_t ldb, dplora_packed_b **out) {
  if (out == nullptr) return DPLORA_EINVAL;
  *out = nullptr;
  if (k < 0 || n < 0) return DPLORA_EINVAL;
  const int64_t wb = trans_b ? k : n;
  if (ldb < std::max<int64_t>(1, wb)) return DPLORA_EINVAL;
  if (k > 0 && n > 0 && b == nullptr) return DPLORA_EINVAL;
  const dplora::Kernels &K = dplora::kernels();
  const int64_t elems = dplora::linalg::packed_b_bf16_elems(K.bf16, K.gemm, k, n);
  if (elems > (int64_t(1) << 40)) return DPLORA_EINVAL;
  auto *p = new (std::nothrow) dplora_packed_b{K.isa, k, n, nullptr, nullptr};
  if (p == nullptr) return DPLORA_ENOMEM;
  // At least one element, so that a bf16 handle is never mistaken for an empty fp32 one.
  const size_t bytes = static_cast<size_t>(std::max<int64_t>(elems, 32)) * sizeof(uint16_t);
  p->bf16 = static_cast<uint16_t *>(::operator new(bytes, std::align_val_t(64), std::nothrow));
  if (p->bf16 == nullptr) {
    delete p;
    return DPLORA_ENOMEM;
  }
  if (elems > 0) {
    dplora::linalg::pack_b_bf16_whole(K.bf16, K.gemm, trans_b != 0, k, n, b, ldb, p->bf16, true);
  }
  *out = p;
  return DPLORA_OK;
}

extern "C" int dplora_packed_b_dtype(const dplora_packed_b *p) {
  if (p == nullptr) return -1;
  return p->bf16 != nullptr ? DPLORA_DTYPE_BF16 : DPLORA_DTYPE_F32;
}

extern "C" int dplora_bf16_native(void) {
  return dplora::kernels().bf16.micro != nullptr ? 1 : 0;
}

// The C-init product in front of an fp32 or bf16 base, and the repack of an existing handle (no
// allocation: the LoRA operands of the fused passes change every step).
extern "C" int dplora_sgemm_packed_base_init(int trans_a, int64_t m, float alpha, const float *a,
                                             int64_t lda, const dplora_packed_b *pb, float beta,
                                             float *c, int64_t ldc, float alpha2, const float *a2,
                                             int64_t lda2, const dplora_packed_b *pb2) {
  if (pb == nullptr || pb2 == nullptr) return DPLORA_EINVAL;
  if (pb->bf16 == nullptr) {
    return dplora_sgemm_packed_init(trans_a, m, alpha, a, lda, pb, beta, c, ldc, alpha2, a2, lda2,
                                    pb2);
  }
  const int rc = check_init_handles(pb, pb2);
  if (rc != DPLORA_OK) return rc;
  const dplora::Kernels &K = dplora::kernels();
  const dplora::linalg::GemmInit init{a2, lda2, pb2->k, pb2->data, alpha2};
  return dplora::linalg::gemm_bf16_prepacked(K.bf16, K.gemm, trans_a != 0, m, pb->n, pb->k, alpha,
                                             a, lda, pb->bf16, beta, c, ldc, true, &init);
}

extern "C" int dplora_packed_b_repack(dplora_packed_b *p, int trans_b, const float *b,
                                      int64_t ldb) {
  if (p == nullptr) return DPLORA_EINVAL;
  const int64_t wb = trans_b ? p->k : p->n;
  if (ldb < std::max<int64_t>(1, wb)) return DPLORA_EINVAL;
  if (p->k > 0 && p->n > 0 && b == nullptr) return DPLORA_EINVAL;
  const dplora::Kernels &K = dplora::kernels();
  if (K.isa != p->isa) return DPLORA_ESTALE;  // the layout (and size) is another path's
  if (p->bf16 != nullptr) {
    if (dplora::linalg::packed_b_bf16_elems(K.bf16, K.gemm, p->k, p->n) > 0) {
      dplora::linalg::pack_b_bf16_whole(K.bf16, K.gemm, trans_b != 0, p->k, p->n, b, ldb, p->bf16,
                                        true);
    }
  } else if (p->data != nullptr) {
    dplora::linalg::pack_b_whole(K.gemm, trans_b != 0, p->k, p->n, b, ldb, p->data, true);
  }
  return DPLORA_OK;
}
