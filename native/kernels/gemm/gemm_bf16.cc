// The bf16 frozen-base product driver: op(B) rounded and packed once,
// op(A) rounded while packed per cache block, fp32 accumulation.  With a
// native bf16 micro-kernel (GemmBf16Kernel::micro) the panels hold bf16 pairs
// along k; without one (a CPU without AVX512_BF16, or a forced DPLORA_ISA)
// they hold bf16 in the fp32 kernel's panel layout and are widened to fp32 per
// cache block for the ISA's fp32 micro-kernel (widening is exact).
#include <algorithm>
#include <atomic>
#include <cstring>
#include <memory>
#include <new>

#include "dplora.h"
#include "gemm_bf16.h"
#include "kernels.h"
#include "thread_pool.h"

namespace dplora {
namespace linalg {
namespace {

inline uint16_t round_bf16(float x) {
  uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  return f32_to_bf16(u);
}

inline float widen(uint16_t h) {
  const uint32_t u = static_cast<uint32_t>(h) << 16;
  float x;
  std::memcpy(&x, &u, sizeof x);
  return x;
}

// Per-thread scratch grown on demand (pool threads live for the process).
struct AlignedFree {
  void operator()(void *p) const { ::operator delete(p, std::align_val_t(64)); }
};
struct Scratch {
  std::unique_ptr<void, AlignedFree> p;
  size_t cap = 0;
  void *get(size_t bytes) {
    if (bytes > cap) {
      p.reset();
      cap = 0;
      void *q = ::operator new(bytes, std::align_val_t(64), std::nothrow);
      if (q == nullptr) return nullptr;
      p.reset(q);
      cap = bytes;
    }
    return p.get();
  }
};
thread_local Scratch tls_a, tls_b;

struct Problem {
  const GemmBf16Kernel *bk;
  const GemmKernel *fk;
  bool native;  // bk->micro present
  bool ta;
  int64_t m, n, k;
  float alpha;
  const float *a;
  int64_t lda;
  const uint16_t *bp;
  float beta;
  float *c;
  int64_t ldc;
  int mr, nr;
  int64_t mc, kc, nc;
  // The fp32 C init (columns of every block a multiple of fk->nr), or null.
  const GemmInit *init;
};

// C[i0 : i0+mc, j0 : j0+nc] = beta C + the init product, by the fp32 driver on that block
// alone: the panels of B2 from column j0 on are themselves a packed B2 of nc columns, and
// every element is the same one-k-block sum as in a product over the whole of C.
bool init_block(const Problem &P, int64_t i0, int64_t mc, int64_t j0, int64_t nc) {
  const GemmInit &I = *P.init;
  const int64_t fnr = P.fk->nr;
  return gemm_prepacked(*P.fk, false, mc, nc, I.k, I.alpha, I.a + i0 * I.lda, I.lda,
                        I.bpacked + (j0 / fnr) * I.k * fnr, P.beta, P.c + i0 * P.ldc + j0, P.ldc,
                        false) == DPLORA_OK;
}

// op(A)(i, kk) rounded to bf16.
inline uint16_t a_bf16(const Problem &P, int64_t i, int64_t kk) {
  return round_bf16(P.ta ? P.a[kk * P.lda + i] : P.a[i * P.lda + kk]);
}

// Native path: op(A)[i0 : i0+mc, p0 : p0+kc] as MR-row panels of bf16 pairs.
void pack_a_native(const Problem &P, int64_t i0, int64_t mc, int64_t p0, int64_t kc,
                   uint32_t *dst) {
  const int mr = P.mr;
  const int64_t kp = (kc + 1) / 2;
  for (int64_t ip = 0; ip < mc; ip += mr) {
    const int64_t rows = std::min<int64_t>(mr, mc - ip);
    if (!P.ta) {
      const float *src = P.a + (i0 + ip) * P.lda + p0;
      if (P.bk->pack_a != nullptr) {
        P.bk->pack_a(src, P.lda, rows, kc, mr, dst);
      } else {
        pack_a_bf16_scalar(src, P.lda, rows, kc, mr, dst);
      }
    } else {
      for (int64_t p = 0; p < kp; ++p) {
        const int64_t k0 = p0 + 2 * p;
        for (int64_t r = 0; r < mr; ++r) {
          uint32_t w = 0;
          if (r < rows) {
            w = a_bf16(P, i0 + ip + r, k0);
            if (2 * p + 1 < kc) w |= static_cast<uint32_t>(a_bf16(P, i0 + ip + r, k0 + 1)) << 16;
          }
          dst[p * mr + r] = w;
        }
      }
    }
    dst += kp * mr;
  }
}

// Fallback: op(A) rounded to bf16 and widened, in the fp32 kernel's A panels.
void pack_a_widened(const Problem &P, int64_t i0, int64_t mc, int64_t p0, int64_t kc, float *dst) {
  const int mr = P.mr;
  for (int64_t ip = 0; ip < mc; ip += mr) {
    const int64_t rows = std::min<int64_t>(mr, mc - ip);
    for (int64_t kk = 0; kk < kc; ++kk) {
      for (int64_t r = 0; r < mr; ++r) {
        dst[kk * mr + r] = r < rows ? widen(a_bf16(P, i0 + ip + r, p0 + kk)) : 0.0f;
      }
    }
    dst += kc * mr;
  }
}

// C[m0:m1, n0:n1] = beta C (beta == 0 writes zeros without reading C).
void scale_c(const Problem &P, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  scale_rows(P.c, P.ldc, P.beta, m0, m1, n0, n1);
}

// The blocked product on C[m0:m1, n0:n1] (n0 a multiple of NR).
bool run_block(const Problem &P, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  const bool work = P.k > 0 && P.alpha != 0.0f && m1 > m0 && n1 > n0;
  const bool init = P.init != nullptr;
  if (!work) {
    if (init) return init_block(P, m0, m1 - m0, n0, n1 - n0);
    scale_c(P, m0, m1, n0, n1);
    return true;
  }
  // beta == 0 with a native kernel and no init: the first k block overwrites C instead.
  const bool overwrite = P.native && P.beta == 0.0f && !init;
  // With an init each block of C is scaled and initialized right before its first k block.
  if (!overwrite && !init) scale_c(P, m0, m1, n0, n1);
  const int64_t mr = P.mr, nr = P.nr;
  const int64_t kc_max = std::min(P.kc, P.k);
  const int64_t mc_max = std::min(P.mc, (m1 - m0 + mr - 1) / mr * mr);
  const int64_t nc_max = std::min(P.nc, (n1 - n0 + nr - 1) / nr * nr);
  if (P.native) {
    const int64_t kp_all = (P.k + 1) / 2;
    auto *abuf = static_cast<uint32_t *>(
        tls_a.get(static_cast<size_t>(mc_max * ((kc_max + 1) / 2)) * sizeof(uint32_t)));
    if (abuf == nullptr) return false;
    for (int64_t jc = n0; jc < n1; jc += P.nc) {
      const int64_t nc = std::min(P.nc, n1 - jc);
      for (int64_t pc = 0; pc < P.k; pc += P.kc) {
        const int64_t kc = std::min(P.kc, P.k - pc), kp = (kc + 1) / 2;
        for (int64_t ic = m0; ic < m1; ic += P.mc) {
          const int64_t mc = std::min(P.mc, m1 - ic);
          if (init && pc == 0 && !init_block(P, ic, mc, jc, nc)) return false;
          pack_a_native(P, ic, mc, pc, kc, abuf);
          for (int64_t jr = 0; jr < nc; jr += nr) {
            const int64_t nn = std::min(nr, nc - jr);
            const uint16_t *bp = P.bp + ((jc + jr) / nr) * kp_all * nr * 2 + (pc / 2) * nr * 2;
            for (int64_t ir = 0; ir < mc; ir += mr) {
              P.bk->micro(kp, abuf + (ir / mr) * kp * mr, bp, P.c + (ic + ir) * P.ldc + jc + jr,
                          P.ldc, std::min(mr, mc - ir), nn, P.alpha, overwrite && pc == 0);
            }
          }
        }
      }
    }
    return true;
  }
  auto *abuf = static_cast<float *>(tls_a.get(static_cast<size_t>(mc_max * kc_max) * 4));
  auto *bbuf = static_cast<float *>(tls_b.get(static_cast<size_t>(nc_max * kc_max) * 4));
  if (abuf == nullptr || bbuf == nullptr) return false;
  for (int64_t jc = n0; jc < n1; jc += P.nc) {
    const int64_t nc = std::min(P.nc, n1 - jc);
    for (int64_t pc = 0; pc < P.k; pc += P.kc) {
      const int64_t kc = std::min(P.kc, P.k - pc);
      // Widen the bf16 panels of this KC x NC block (exact).
      for (int64_t jr = 0; jr < nc; jr += nr) {
        const uint16_t *src = P.bp + ((jc + jr) / nr) * P.k * nr + pc * nr;
        float *d = bbuf + (jr / nr) * kc * nr;
        for (int64_t e = 0; e < kc * nr; ++e) d[e] = widen(src[e]);
      }
      for (int64_t ic = m0; ic < m1; ic += P.mc) {
        const int64_t mc = std::min(P.mc, m1 - ic);
        if (init && pc == 0 && !init_block(P, ic, mc, jc, nc)) return false;
        pack_a_widened(P, ic, mc, pc, kc, abuf);
        for (int64_t jr = 0; jr < nc; jr += nr) {
          const int64_t nn = std::min(nr, nc - jr);
          for (int64_t ir = 0; ir < mc; ir += mr) {
            P.fk->micro(kc, abuf + (ir / mr) * kc * mr, bbuf + (jr / nr) * kc * nr, nr,
                        P.c + (ic + ir) * P.ldc + jc + jr, P.ldc, std::min(mr, mc - ir), nn,
                        P.alpha);
          }
        }
      }
    }
  }
  return true;
}

}  // namespace

void pack_a_bf16_scalar(const float *a, int64_t lda, int64_t rows, int64_t kc, int mr,
                        uint32_t *dst) {
  const int64_t kp = (kc + 1) / 2;
  for (int64_t p = 0; p < kp; ++p) {
    for (int64_t r = 0; r < mr; ++r) {
      uint32_t w = 0;
      if (r < rows) {
        const float *src = a + r * lda + 2 * p;
        w = round_bf16(src[0]);
        if (2 * p + 1 < kc) w |= static_cast<uint32_t>(round_bf16(src[1])) << 16;
      }
      dst[p * mr + r] = w;
    }
  }
}

int64_t packed_b_bf16_elems(const GemmBf16Kernel &bk, const GemmKernel &fk, int64_t k, int64_t n) {
  if (bk.micro != nullptr) {
    return (n + bk.nr - 1) / bk.nr * bk.nr * ((k + 1) / 2) * 2;
  }
  return (n + fk.nr - 1) / fk.nr * fk.nr * k;
}

void pack_b_bf16_whole(const GemmBf16Kernel &bk, const GemmKernel &fk, bool trans_b, int64_t k,
                       int64_t n, const float *b, int64_t ldb, uint16_t *dst, bool parallel) {
  const bool native = bk.micro != nullptr;
  const int64_t nr = native ? bk.nr : fk.nr, panels = (n + nr - 1) / nr;
  const int64_t kp = (k + 1) / 2;
  auto at = [&](int64_t kk, int64_t j) -> uint16_t {
    if (kk >= k || j >= n) return 0;
    return round_bf16(trans_b ? b[j * ldb + kk] : b[kk * ldb + j]);
  };
  auto body = [&](int64_t q0, int64_t q1) {
    for (int64_t q = q0; q < q1; ++q) {
      const int64_t j0 = q * nr;
      if (native) {
        uint16_t *d = dst + q * kp * nr * 2;
        for (int64_t p = 0; p < kp; ++p) {
          for (int64_t jj = 0; jj < nr; ++jj) {
            d[(p * nr + jj) * 2] = at(2 * p, j0 + jj);
            d[(p * nr + jj) * 2 + 1] = at(2 * p + 1, j0 + jj);
          }
        }
      } else {
        uint16_t *d = dst + q * k * nr;
        for (int64_t kk = 0; kk < k; ++kk) {
          for (int64_t jj = 0; jj < nr; ++jj) d[kk * nr + jj] = at(kk, j0 + jj);
        }
      }
    }
  };
  if (parallel && static_cast<double>(k) * n > 2.0e5) {
    parallel_for(panels, 4, body);
  } else {
    body(0, panels);
  }
}

int gemm_bf16_prepacked(const GemmBf16Kernel &bk, const GemmKernel &fk, bool trans_a, int64_t m,
                        int64_t n, int64_t k, float alpha, const float *a, int64_t lda,
                        const uint16_t *bpacked, float beta, float *c, int64_t ldc, bool parallel,
                        const GemmInit *init) {
  if (m < 0 || n < 0 || k < 0) return DPLORA_EINVAL;
  if (m == 0 || n == 0) return DPLORA_OK;
  const int64_t wa = trans_a ? m : k;
  if (lda < std::max<int64_t>(1, wa) || ldc < std::max<int64_t>(1, n)) return DPLORA_EINVAL;
  if (c == nullptr) return DPLORA_EINVAL;
  if (k > 0 && alpha != 0.0f && (a == nullptr || bpacked == nullptr)) return DPLORA_EINVAL;
  if (init != nullptr) {
    if (init->k <= 0 || init->k > fk.kc || init->lda < init->k) return DPLORA_EINVAL;
    if (init->a == nullptr || init->bpacked == nullptr) return DPLORA_EINVAL;
    if (init->alpha == 0.0f) init = nullptr;  // nothing to add (and A2 is not read)
  }
  Problem P{};
  P.bk = &bk;
  P.fk = &fk;
  P.native = bk.micro != nullptr;
  P.ta = trans_a;
  P.m = m;
  P.n = n;
  P.k = k;
  P.alpha = alpha;
  P.a = a;
  P.lda = lda;
  P.bp = bpacked;
  P.beta = beta;
  P.c = c;
  P.ldc = ldc;
  if (P.native) {
    P.mr = bk.mr;
    P.nr = bk.nr;
    P.mc = bk.mc;
    P.kc = bk.kc;
    P.nc = bk.nc;
  } else {
    P.mr = fk.mr;
    P.nr = fk.nr;
    P.mc = fk.mc;
    P.kc = fk.kc;
    P.nc = fk.nc;
  }
  if (init != nullptr && (P.nr % fk.nr != 0 || P.nc % fk.nr != 0)) {
    // Column blocks that do not start on the init's panels: the init over all of C first.
    const int rc = gemm_prepacked(fk, false, m, n, init->k, init->alpha, init->a, init->lda,
                                  init->bpacked, beta, c, ldc, parallel);
    if (rc != DPLORA_OK) return rc;
    P.beta = 1.0f;
    init = nullptr;
  }
  P.init = init;
  const int64_t tiles_m = (m + P.mr - 1) / P.mr, tiles_n = (n + P.nr - 1) / P.nr;
  const double work = static_cast<double>(m) * static_cast<double>(n) *
                      static_cast<double>(std::max<int64_t>(k, 1));
  if (!parallel || work < 2.0e5 || (tiles_m < 2 && tiles_n < 2)) {
    return run_block(P, 0, m, 0, n) ? DPLORA_OK : DPLORA_ENOMEM;
  }
  std::atomic<bool> ok{true};
  // Split the rows when there are enough row tiles for every thread, else the
  // columns; each element is summed in the same order either way.
  const bool by_rows = tiles_m >= 4 * static_cast<int64_t>(pool_threads()) || tiles_m > tiles_n;
  if (by_rows) {
    const double per_tile = static_cast<double>(P.mr) * n * std::max<int64_t>(k, 1);
    const int64_t grain = std::max<int64_t>(1, static_cast<int64_t>(2.6e5 / per_tile));
    parallel_for(tiles_m, grain, [&](int64_t t0, int64_t t1) {
      if (!run_block(P, t0 * P.mr, std::min(m, t1 * P.mr), 0, n)) ok = false;
    });
  } else {
    const double per_tile = static_cast<double>(P.nr) * m * std::max<int64_t>(k, 1);
    const int64_t grain = std::max<int64_t>(1, static_cast<int64_t>(2.6e5 / per_tile));
    parallel_for(tiles_n, grain, [&](int64_t t0, int64_t t1) {
      if (!run_block(P, 0, m, t0 * P.nr, std::min(n, t1 * P.nr))) ok = false;
    });
  }
  return ok ? DPLORA_OK : DPLORA_ENOMEM;
}

}  // namespace linalg
}  // namespace dplora
