// Same-process sweep of the fp32 prepacked product's cache blocking (not a
// ctest; scripts/gemm-blocks.sh builds and runs it): the training step's
// frozen 768 x 768 base products (forward x W^T and dgrad g W, B packed once)
// at several row counts, one thread, thread CPU time, each blocking once per
// round in turn with the FMA probe of its ISA, medians over rounds, reported
// as a fraction of the probe's peak.  Blockings that share KC must give
// bitwise equal products (the check below); a different KC changes the
// rounding only.
// Usage: bench_gemm_blocks ROUNDS ROWS[,ROWS..] ISA:MC:KC:NC [ISA:MC:KC:NC ...]
//        (ISA: avx512 or avx2; MC/KC/NC 0 keep the dispatch table's value)
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "bench_micro.h"
#include "dplora.h"
#include "gemm.h"
#include "kernels.h"
#include "roofline.h"
#include "thread_pool.h"

namespace {

using bench_micro::cpu_now;
using bench_micro::filled;
using bench_micro::median;

struct Config {
  std::string label;
  bool avx512;
  dplora::linalg::GemmKernel kern;
};

bool parse(const char *s, Config *out) {
  char isa[16] = {0};
  long long mc = 0, kc = 0, nc = 0;
  if (sscanf(s, "%15[a-z0-9]:%lld:%lld:%lld", isa, &mc, &kc, &nc) != 4) return false;
  const bool a512 = strcmp(isa, "avx512") == 0;
  if (!a512 && strcmp(isa, "avx2") != 0) return false;
  dplora::linalg::GemmKernel k =
      dplora::kernels_for(a512 ? DPLORA_ISA_AVX512 : DPLORA_ISA_AVX2).gemm;
  if (mc > 0) k.mc = mc;
  if (kc > 0) k.kc = kc;
  if (nc > 0) k.nc = nc;
  if (k.mc % k.mr != 0 || k.nc % k.nr != 0) return false;
  char label[96];
  snprintf(label, sizeof label, "%s mc %lld kc %lld nc %lld", isa, static_cast<long long>(k.mc),
           static_cast<long long>(k.kc), static_cast<long long>(k.nc));
  *out = Config{label, a512, k};
  return true;
}

}  // namespace

int main(int argc, char **argv) {
  namespace L = dplora::linalg;
  if (argc < 4) {
    fprintf(stderr, "usage: %s ROUNDS ROWS[,ROWS..] ISA:MC:KC:NC ...\n", argv[0]);
    return 2;
  }
  const int rounds = atoi(argv[1]);
  std::vector<int64_t> rows;
  for (const char *p = argv[2]; *p;) {
    rows.push_back(strtoll(p, const_cast<char **>(&p), 10));
    if (*p == ',') ++p;
  }
  std::vector<Config> cfgs;
  for (int i = 3; i < argc; ++i) {
    Config c;
    if (!parse(argv[i], &c)) {
      fprintf(stderr, "bad config %s\n", argv[i]);
      return 2;
    }
    cfgs.push_back(c);
  }
  dplora::set_pool_threads(1);
  const int64_t n = 768, k = 768;
  const auto b = filled(k * n, 2);
  int bad = 0;
  for (const int64_t m : rows) {
    const auto a = filled(m * k, 1);
    for (const bool tb : {true, false}) {
      const int nc = static_cast<int>(cfgs.size());
      std::vector<std::vector<float>> packs(nc), outs(nc, std::vector<float>(m * n));
      for (int v = 0; v < nc; ++v) {
        packs[v].resize(L::packed_b_floats(cfgs[v].kern, k, n));
        L::pack_b_whole(cfgs[v].kern, tb, k, n, b.data(), k, packs[v].data(), false);
      }
      std::vector<std::vector<double>> t(nc);
      std::vector<double> pk512, pk2;
      for (int r = 0; r < rounds; ++r) {
        bench_micro::probe_fma_peaks(&pk512, &pk2);
        for (int v = 0; v < nc; ++v) {
          const double s = cpu_now();
          const int rc = L::gemm_prepacked(cfgs[v].kern, false, m, n, k, 1.0f, a.data(), k,
                                           packs[v].data(), 0.0f, outs[v].data(), n, false);
          t[v].push_back(cpu_now() - s);
          if (rc != DPLORA_OK) ++bad;
        }
      }
      const double flops = 2.0 * m * n * k;
      printf("%s %lldx768x768: peak %.0f GFLOP/s (avx512) %.0f (avx2)\n",
             tb ? "fwd x W^T" : "dgrad g W", static_cast<long long>(m), median(pk512) / 1e9,
             median(pk2) / 1e9);
      for (int v = 0; v < nc; ++v) {
        const double tm = median(t[v]), pk = cfgs[v].avx512 ? median(pk512) : median(pk2);
        // Against the first config of the same ISA and KC: bitwise equal expected.
        const char *same = "";
        for (int u = 0; u < v; ++u) {
          if (cfgs[u].avx512 != cfgs[v].avx512 || cfgs[u].kern.kc != cfgs[v].kern.kc) continue;
          const bool eq = memcmp(outs[u].data(), outs[v].data(), outs[v].size() * 4) == 0;
          if (!eq) ++bad;
          same = eq ? "  bitwise = earlier same-kc" : "  DIFFERS from earlier same-kc";
          break;
        }
        const double tb_ = *std::min_element(t[v].begin(), t[v].end());
        const double pb = *std::max_element(cfgs[v].avx512 ? pk512.begin() : pk2.begin(),
                                            cfgs[v].avx512 ? pk512.end() : pk2.end());
        // Paired with the first config in each round (robust to load changing between rounds).
        std::vector<double> ratio;
        for (int r = 0; r < rounds; ++r) ratio.push_back(t[0][r] / t[v][r]);
        printf("  %-32s %8.2f ms  %6.1f GFLOP/s = %.3f of peak (best %.3f)  x%.3f%s\n",
               cfgs[v].label.c_str(), tm * 1e3, flops / tm / 1e9, flops / tm / pk, flops / tb_ / pb,
               median(ratio), same);
      }
      fflush(stdout);
    }
  }
  printf("%s\n", bad ? "ERRORS" : "all ok");
  return bad ? 1 : 0;
}
