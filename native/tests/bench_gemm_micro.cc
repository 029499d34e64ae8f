// Same-process microbenchmark of the fp32 SGEMM (not a ctest;
// scripts/gemm-micro.sh builds and runs it): the working tree's blocked
// driver and AVX-512 / AVX2 micro-kernels against a git revision's copies
// compiled into namespace dplora_base, one thread, thread CPU time, every
// variant once per round in turn with the FMA probe of its ISA, medians over
// rounds.  Shapes of the training step (rows = B * T, frozen 768 x 768 base
// packed once) and the plain 768^3 product.  Also checks that the two
// revisions give bitwise equal products where their blocking is the same
// (otherwise the largest difference relative to sum |a||b|).
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "dplora.h"
#include "gemm.h"
#include "kernels.h"
#include "bench_micro.h"
#include "roofline.h"
#include "thread_pool.h"

// The base revision's gemm.h (copied by the script), its names renamed.
#define dplora dplora_base
#include "base_gemm.h"
#undef dplora

namespace dplora_base {
// The base revision's driver, renamed, runs on the working tree's pool.
using RangeFn = dplora::RangeFn;
void parallel_for(int64_t n, int64_t grain, const RangeFn &fn) {
  dplora::parallel_for(n, grain, fn);
}
int pool_threads() {
  return dplora::pool_threads();
}
}  // namespace dplora_base

namespace {

using bench_micro::cpu_now;
using bench_micro::filled;
using bench_micro::median;

struct Impl {
  const char *name;
  bool base, avx512;
  dplora::linalg::GemmKernel kern;     // the working tree's
  dplora_base::linalg::GemmKernel bk;  // the base revision's
};

struct Case {
  const char *name;
  int64_t m, n, k;
  bool ta, tb, packed;
  float beta;
};

}  // namespace

int main(int argc, char **argv) {
  namespace L = dplora::linalg;
  namespace BL = dplora_base::linalg;
  const int rounds = argc > 1 ? atoi(argv[1]) : 9;
  dplora::set_pool_threads(1);
  // The base revision's blocking (native/kernels/common/dispatch.cc at that revision).
  using BK = dplora_base::linalg::GemmKernel;
  // (The script defines BASE_MICRO_ROWS when the base revision has the in-place micro-kernels.)
#ifdef BASE_MICRO_ROWS
  const BK b512{12,
                32,
                96,
                256,
                1024,
                BL::gemm_micro_avx512,
                BL::gemm_skinny_avx512,
                BL::gemm_micro_rows_avx512};
  const BK b2{
      6, 16, 72, 256, 1024, BL::gemm_micro_avx2, BL::gemm_skinny_avx2, BL::gemm_micro_rows_avx2};
#else
  const BK b512{12, 32, 96, 256, 1024, BL::gemm_micro_avx512, BL::gemm_skinny_avx512};
  const BK b2{6, 16, 72, 256, 1024, BL::gemm_micro_avx2, BL::gemm_skinny_avx2};
#endif
  const L::GemmKernel n512 = dplora::kernels_for(DPLORA_ISA_AVX512).gemm;
  const L::GemmKernel n2 = dplora::kernels_for(DPLORA_ISA_AVX2).gemm;
  const Impl impls[] = {{"avx512 base", true, true, n512, b512},
                        {"avx512 new", false, true, n512, b512},
                        {"avx2 base", true, false, n2, b2},
                        {"avx2 new", false, false, n2, b2}};

  const int ni = sizeof impls / sizeof impls[0];
  const Case cases[] = {
      {"fwd x W^T 4096x768x768 packed", 4096, 768, 768, false, true, true, 0.0f},
      {"dgrad g W 4096x768x768 packed", 4096, 768, 768, false, false, true, 0.0f},
      {"fwd x W^T 32x768x768 packed", 32, 768, 768, false, true, true, 0.0f},
      {"sgemm 768x768x768", 768, 768, 768, false, false, false, 0.0f},
      {"sgemm 768x768x768 B^T", 768, 768, 768, false, true, false, 0.0f},
      {"lora y += h B^T 4096x768x8", 4096, 768, 8, false, true, false, 1.0f},
      {"lora h = x A^T 4096x8x768", 4096, 8, 768, false, true, false, 0.0f},
      {"np wgrad g^T h 768x8x4096", 768, 8, 4096, true, false, false, 0.0f},
      {"np wgrad gh^T x 8x768x4096", 8, 768, 4096, true, false, false, 0.0f},
  };
  int bad = 0;
  for (const Case &c : cases) {
    const int64_t m = c.m, n = c.n, k = c.k;
    const auto a = filled(m * k, 1), b = filled(k * n, 2);
    const int64_t lda = c.ta ? m : k, ldb = c.tb ? k : n;
    std::vector<std::vector<float>> packs(ni), outs(ni, std::vector<float>(m * n));
    for (int v = 0; v < ni; ++v) {
      const Impl &I = impls[v];
      if (!c.packed) continue;
      if (I.base) {
        packs[v].resize(BL::packed_b_floats(I.bk, k, n));
        BL::pack_b_whole(I.bk, c.tb, k, n, b.data(), ldb, packs[v].data(), false);
      } else {
        packs[v].resize(L::packed_b_floats(I.kern, k, n));
        L::pack_b_whole(I.kern, c.tb, k, n, b.data(), ldb, packs[v].data(), false);
      }
    }
    auto run = [&](int v) {
      const Impl &I = impls[v];
      float *out = outs[v].data();
      if (c.beta != 0.0f) std::fill(outs[v].begin(), outs[v].end(), 0.25f);
      int rc;
      if (c.packed) {
        rc = I.base ? BL::gemm_prepacked(I.bk, c.ta, m, n, k, 1.0f, a.data(), lda, packs[v].data(),
                                         c.beta, out, n, false)
                    : L::gemm_prepacked(I.kern, c.ta, m, n, k, 1.0f, a.data(), lda, packs[v].data(),
                                        c.beta, out, n, false);
      } else {
        rc = I.base ? BL::gemm(I.bk, c.ta, c.tb, m, n, k, 1.0f, a.data(), lda, b.data(), ldb,
                               c.beta, out, n, nullptr, false)
                    : L::gemm(I.kern, c.ta, c.tb, m, n, k, 1.0f, a.data(), lda, b.data(), ldb,
                              c.beta, out, n, nullptr, false);
      }
      if (rc != DPLORA_OK) ++bad;
    };
    std::vector<std::vector<double>> t(ni);
    std::vector<double> pk512, pk2;
    for (int r = 0; r < rounds; ++r) {
      bench_micro::probe_fma_peaks(&pk512, &pk2);
      for (int v = 0; v < ni; ++v) {
        const double s = cpu_now();
        run(v);
        t[v].push_back(cpu_now() - s);
      }
    }
    const double flops = 2.0 * m * n * k;
    printf("%s: %.0f MFLOP; fp32 peak %.0f GFLOP/s (avx512) %.0f (avx2)\n", c.name, flops / 1e6,
           median(pk512) / 1e9, median(pk2) / 1e9);
    for (int v = 0; v < ni; ++v) {
      const double tm = median(t[v]), pk = impls[v].avx512 ? median(pk512) : median(pk2);
      // Agreement with the other revision of the same ISA (v ^ 1).
      const std::vector<float> &o = outs[v], &ref = outs[v ^ 1];
      double worst = 0;
      bool same = true;
      for (int64_t i = 0; i < m; ++i) {
        for (int64_t j = 0; j < n; ++j) {
          double mag = 0;
          for (int64_t q = 0; q < k; ++q) {
            const double x = c.ta ? a[q * lda + i] : a[i * lda + q];
            const double y = c.tb ? b[j * ldb + q] : b[q * ldb + j];
            mag += std::fabs(x * y);
          }
          const double diff = std::fabs(double(o[i * n + j]) - double(ref[i * n + j]));
          if (diff != 0) same = false;
          worst = std::max(worst, diff / (mag + 1.0));
          if (j > 4 && i > 4 && i % 97 != 0) break;  // sample the rest
        }
      }
      if (worst > 1e-5) ++bad;
      // Paired: this variant's speed over the other revision's in the same round (robust to
      // load that changes between rounds), median over rounds.
      std::vector<double> ratio;
      for (int r = 0; r < rounds; ++r) ratio.push_back(t[v ^ 1][r] / t[v][r]);
      printf("  %-12s %8.3f ms  %6.1f GFLOP/s = %.3f of peak  x%.3f vs other rev  %s\n",
             impls[v].name, tm * 1e3, flops / tm / 1e9, flops / tm / pk, median(ratio),
             same ? "bitwise = other rev" : "differs (ok)");
    }
  }
  printf("%s\n", bad ? "ERRORS" : "all ok");
  return bad ? 1 : 0;
}
