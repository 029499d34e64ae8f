// Same-process microbenchmark of the exact discrete Gaussian sampler (not a
// ctest; scripts/dgauss-micro.sh builds and runs it): the working tree's
// intonly/discrete_gaussian.cc against a git revision's copy compiled into
// namespace dgauss_base, thread CPU time, the two alternated round by round so
// load changes hit both.  Also checks that the working tree's fast path gives
// the same samples as its reference path (every slot by its definition) and
// prints both samplers' second moment over sigma^2 (the revisions may consume
// the stream differently).
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "discrete_gaussian.h"

namespace dplora {
namespace dgauss_base {
struct Params {  // opaque: large enough for any revision's parameters
  alignas(16) unsigned char raw[512];
};
bool setup(uint64_t a, uint64_t b, Params &p);
int sample_groups(const chacha::Stream &s, uint64_t base, const Params &p, int64_t g0, int64_t g1,
                  int64_t *out, int64_t n, chacha::BlocksFn blocks, int batch);
}  // namespace dgauss_base
}  // namespace dplora

static double cpu_now() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

int main(int argc, char **argv) {
  using namespace dplora;
  const int rounds = argc > 1 ? atoi(argv[1]) : 10;
  const int64_t n = 1 << 16;
  static int64_t out_new[1 << 16], out_base[1 << 16], out_ref[1 << 16];
  uint8_t key[32], nonce[12];
  for (int i = 0; i < 32; ++i) key[i] = uint8_t(7 * i + 1);
  memset(nonce, 3, sizeof nonce);
  const chacha::Stream s = chacha::make_stream(key, nonce);
  chacha::BlocksFn blocks = chacha::blocks_avx512;
  const int batch = 16;
  const struct {
    const char *name;
    uint64_t a, b;
  } cases[] = {{"sigma=2^16", uint64_t(1) << 32, 1},
               {"sigma=1", 1, 1},
               {"sigma^2=2^32+1", (uint64_t(1) << 32) + 1, 1}};
  int bad = 0;
  for (const auto &c : cases) {
    dgauss::Params pn;
    dgauss_base::Params pb;
    if (!dgauss::setup(c.a, c.b, pn) || !dgauss_base::setup(c.a, c.b, pb)) return 2;
    double tn = 0, tb = 0, mn = 0, mb = 0;
    const int64_t groups = (n + dgauss::kGroup - 1) / dgauss::kGroup;
    for (int r = 0; r < rounds; ++r) {
      const uint64_t base = uint64_t(r) << 40;
      double t0 = cpu_now();
      dgauss_base::sample_groups(s, base, pb, 0, groups, out_base, n, blocks, batch);
      double t1 = cpu_now();
      dgauss::sample_groups(s, base, pn, 0, groups, out_new, n, blocks, batch);
      double t2 = cpu_now();
      tb += t1 - t0;
      tn += t2 - t1;
      if (r == 0) {
        dgauss::sample_groups_reference(s, base, pn, 0, groups, out_ref, n);
        if (memcmp(out_new, out_ref, sizeof out_new) != 0) ++bad;
      }
      for (int64_t i = 0; i < n; ++i) {
        mn += double(out_new[i]) * double(out_new[i]);
        mb += double(out_base[i]) * double(out_base[i]);
      }
    }
    const double tot = double(n) * rounds;
    const double s2 = double(c.a) / double(c.b);
    printf(
        "%-16s base %6.2f M/s  new %6.2f M/s  ratio %.3f  E[z^2]/s^2 base %.4f new %.4f  "
        "fast==ref %s\n",
        c.name, tot / tb / 1e6, tot / tn / 1e6, tb / tn, mb / tot / s2, mn / tot / s2,
        bad ? "NO" : "yes");
  }
  return bad ? 1 : 0;
}
