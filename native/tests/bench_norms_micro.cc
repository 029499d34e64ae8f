// Same-process microbenchmark of the direct per-sample norm kernels (not a
// ctest; scripts/norms-micro.sh builds and runs it): the working tree's
// AVX-512 and AVX2 kernels against a git revision's copies compiled into
// namespace dplora_base, each against the read bandwidth and the FMA peak
// probed in the same run.  One thread, thread CPU time, every variant run once
// per round in turn (so load changes hit all of them), medians over rounds.
// Also checks that both revisions agree to 1e-12 (relative).
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "norms.h"
#include "bench_micro.h"
#include "roofline.h"

namespace dplora_base {
namespace linalg {
double norm_direct_avx2(const float *, const float *, int64_t, int64_t, int64_t, double *,
                        const float *, int64_t);
double norm_direct_avx512(const float *, const float *, int64_t, int64_t, int64_t, double *,
                          const float *, int64_t);
}  // namespace linalg
}  // namespace dplora_base

namespace {

using bench_micro::cpu_now;
using bench_micro::filled;
using bench_micro::median;

using dplora::linalg::SampleNormFn;

// The per-sample loop of dplora_grad_norm_sq on one thread (next sample
// prefetched), with a and g already oriented (d >= p).
double run_all(SampleNormFn fn, const float *a, const float *g, int64_t B, int64_t T, int64_t d,
               int64_t p, double *gbuf, double *out) {
  for (int64_t i = 0; i < B; ++i) {
    const float *ai = a + i * T * d, *gi = g + i * T * p;
    out[i] = fn(ai, gi, T, d, p, gbuf, i + 1 < B ? ai + T * d : nullptr, T * d);
  }
  return out[0];
}

}  // namespace

int main(int argc, char **argv) {
  using namespace dplora::linalg;
  const int rounds = argc > 1 ? atoi(argv[1]) : 15;
  struct Case {
    const char *name;
    int64_t B, T, d, p;
  } cases[] = {{"LoRA B64 T128 768x8", 64, 128, 768, 8},
               {"LoRA B64 T128 768x16", 64, 128, 768, 16},
               {"full B16 T128 768x768", 16, 128, 768, 768}};
  struct Variant {
    const char *name;
    SampleNormFn fn;
    bool avx512;
  } variants[] = {{"avx512 base", dplora_base::linalg::norm_direct_avx512, true},
                  {"avx512 new", norm_direct_avx512, true},
                  {"avx2 base", dplora_base::linalg::norm_direct_avx2, false},
                  {"avx2 new", norm_direct_avx2, false}};
  const int nv = sizeof variants / sizeof variants[0];
  int bad = 0;
  for (const Case &c : cases) {
    const auto a = filled(c.B * c.T * c.d, 1), g = filled(c.B * c.T * c.p, 2);
    const size_t nbig = c.B * c.T * (c.d + c.p);
    const auto big = filled(nbig, 7);
    std::vector<double> gbuf(kNormScratch(c.T, c.d)), out(c.B), ref(c.B);
    std::vector<std::vector<double>> t(nv);
    std::vector<double> bw512, bw2, peak512, peak2;
    const double bytes = 4.0 * nbig;
    const double flops = 2.0 * c.B * c.T * c.d * c.p;
    volatile float sink = 0;
    for (int r = 0; r < rounds; ++r) {
      double t0 = cpu_now();
      sink = sink + read_probe_avx512(big.data(), nbig);
      double t1 = cpu_now();
      sink = sink + read_probe_avx2(big.data(), nbig);
      double t2 = cpu_now();
      sink = sink + static_cast<float>(fma_probe_avx512(200000));
      double t3 = cpu_now();
      sink = sink + static_cast<float>(fma_probe_avx2(400000));
      double t4 = cpu_now();
      bw512.push_back(bytes / (t1 - t0));
      bw2.push_back(bytes / (t2 - t1));
      peak512.push_back(200000 * kFmaProbeFlopsAvx512 / (t3 - t2));
      peak2.push_back(400000 * kFmaProbeFlopsAvx2 / (t4 - t3));
      for (int v = 0; v < nv; ++v) {
        const double s = cpu_now();
        run_all(variants[v].fn, a.data(), g.data(), c.B, c.T, c.d, c.p, gbuf.data(), out.data());
        t[v].push_back(cpu_now() - s);
        if (v == 0) {
          ref = out;
        } else {
          for (int64_t i = 0; i < c.B; ++i)
            if (!(std::fabs(out[i] - ref[i]) <= 1e-12 * std::fabs(ref[i]))) ++bad;
        }
      }
    }
    // The probe run second finds part of the buffer in L3: the larger median
    // is the bandwidth both ISAs are measured against.
    const double bwm = std::max(median(bw512), median(bw2));
    const double bw[2] = {bwm, bwm}, pk[2] = {median(peak512), median(peak2)};
    printf(
        "%s: %.1f MB, %.0f MFLOP; read %.1f GB/s (avx512 probe) %.1f (avx2); fp32 peak %.0f "
        "GFLOP/s (avx512) %.0f (avx2)\n",
        c.name, bytes / 1e6, flops / 1e6, bw[0] / 1e9, bw[1] / 1e9, pk[0] / 1e9, pk[1] / 1e9);
    for (int v = 0; v < nv; ++v) {
      const int k = variants[v].avx512 ? 0 : 1;
      const double tm = median(t[v]);
      printf("  %-12s %8.3f ms  %6.1f GB/s = %.2f of read bw   %6.1f GFLOP/s = %.2f of fp64 peak\n",
             variants[v].name, tm * 1e3, bytes / tm / 1e9, bytes / tm / bw[k], flops / tm / 1e9,
             flops / tm / (pk[k] / 2));
    }
  }
  printf("agreement: %s\n", bad ? "MISMATCH" : "all within 1e-12");
  return bad ? 1 : 0;
}
