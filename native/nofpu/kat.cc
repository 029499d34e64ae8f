// Known-answer tests of the integer mode, built for every FPU-less target by
// scripts/nofpu-tests.sh (and for x86-64 as the reference): ChaCha20
// (RFC 8439 2.3.2), the exact discrete Gaussian sample for sample against
// the independent Python implementation (dgauss_kat_vectors.h), the
// portable 128-bit type, the integer clipped sum, and (when built with
// NOFPU_WITH_STEP) several integer LoRA steps.  It prints digests that the
// script compares with the x86-64 output byte for byte.  Float-free.
#include "chacha20.h"
#include "dgauss_kat_vectors.h"
#include "discrete_gaussian.h"
#include "dplora_fixed.h"
#include "fixed/u128.h"
#include "intonly/int_math.h"
#include "platform.h"

namespace {

int failures = 0;

void check(bool ok, const char *what) {
  nofpu::put(ok ? "ok   " : "FAIL ");
  nofpu::put(what);
  nofpu::put("\n");
  if (!ok) ++failures;
}

struct Digest {  // FNV-1a over 64-bit words
  uint64_t h = 0xcbf29ce484222325ull;
  void add(uint64_t v) {
    for (int i = 0; i < 8; ++i) {
      h ^= (v >> (8 * i)) & 0xff;
      h *= 0x100000001b3ull;
    }
  }
};

void print_digest(const char *what, const Digest &d) {
  nofpu::put("digest ");
  nofpu::put(what);
  nofpu::put(" ");
  nofpu::put_hex(d.h);
  nofpu::put("\n");
}

void test_chacha() {
  const uint8_t key[32] = {0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15,
                           16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31};
  const uint8_t nonce[12] = {0, 0, 0, 9, 0, 0, 0, 0x4a, 0, 0, 0, 0};
  // RFC 8439 section 2.3.2, serialized block.
  const uint8_t expect[64] = {0x10, 0xf1, 0xe7, 0xe4, 0xd1, 0x3b, 0x59, 0x15, 0x50, 0x0f, 0xdd,
                              0x1f, 0xa3, 0x20, 0x71, 0xc4, 0xc7, 0xd1, 0xf4, 0xc7, 0x33, 0xc0,
                              0x68, 0x03, 0x04, 0x22, 0xaa, 0x9a, 0xc3, 0xd4, 0x6c, 0x4e, 0xd2,
                              0x82, 0x64, 0x46, 0x07, 0x9f, 0xaa, 0x09, 0x14, 0xc2, 0xd7, 0x05,
                              0xd9, 0x8b, 0x02, 0xa2, 0xb5, 0x12, 0x9c, 0xd1, 0xde, 0x16, 0x4e,
                              0xb9, 0xcb, 0xd0, 0x83, 0xe8, 0xa2, 0x50, 0x3c, 0x4e};
  uint8_t out[64];
  bool ok = dplora_chacha20_block(key, 1, nonce, out) == DPLORA_OK;
  for (int i = 0; i < 64; ++i) ok = ok && out[i] == expect[i];
  check(ok, "chacha20 RFC 8439 2.3.2");
}

void test_dgauss() {
  int64_t buf[128];
  Digest all;
  for (const KatCase &c : kKatCases) {
    uint64_t pos = c.base;
    const int rc = dplora_fx_discrete_gaussian(kKatKey, kKatNonce, &pos, c.num, c.den, buf, c.n);
    bool ok = rc == DPLORA_OK && pos == c.base + (uint64_t((c.n + 63) / 64) << 26);
    for (int64_t i = 0; i < c.n; ++i) {
      ok = ok && buf[i] == c.expect[i];
      all.add(uint64_t(buf[i]));
    }
    nofpu::put("dgauss ");
    check(ok, c.name);
  }
  // Single slots on chosen slices: every rare step of the sampler's definition.
  const dplora::chacha::Stream st = dplora::chacha::make_stream(kKatKey, kKatNonce);
  for (const SlotCase &c : kSlotCases) {
    dplora::dgauss::Params p;
    int64_t y = 0;
    uint64_t used = 0;
    const int rc = dplora::dgauss::setup(c.num, c.den, p)
                       ? dplora::dgauss::slot_for_test(st, c.pos, p, c.w, &y, &used)
                       : -3;
    all.add(uint64_t(y));
    nofpu::put("dgauss slot ");
    check(rc == c.accepted && y == c.y && used == c.used, c.name);
  }
  uint64_t pos = 0;
  check(dplora_fx_discrete_gaussian(kKatKey, kKatNonce, &pos, 0, 1, buf, 1) == DPLORA_EINVAL,
        "dgauss refuses sigma^2 = 0");
  print_digest("dgauss", all);
}

// The portable 128-bit type on stream-derived operands; the digest must be
// the same on every target (native __int128 on 64-bit, the struct on
// 32-bit, and the struct forced on x86-64 by the script).
void test_u128() {
  using dplora::u128;
  const dplora::chacha::Stream s = dplora::chacha::make_stream(kKatKey, kKatNonce);
  uint32_t w[16 * 64];
  dplora::chacha::words(s, 0, w, 16 * 64, dplora::chacha::blocks_scalar);
  Digest d;
  for (int i = 0; i + 8 <= 16 * 64; i += 8) {
    const int shift = int(w[i] & 63);
    uint64_t x0 = (uint64_t(w[i]) << 32) | w[i + 1], x1 = (uint64_t(w[i + 2]) << 32) | w[i + 3];
    uint64_t y0 = (uint64_t(w[i + 4]) << 32) | w[i + 5], y1 = (uint64_t(w[i + 6]) << 32) | w[i + 7];
    if (i % 32 == 8) x1 >>= shift;  // a spread of magnitudes
    if (i % 32 == 16) y1 = 0;
    if (i % 32 == 24) y1 >>= shift, y0 |= 1;
    const u128 a = dplora::u128_make(x1, x0), b = dplora::u128_make(y1, y0);
    const u128 p = dplora::mul64x64(x0, y0), m = a * b, s1 = a + b, s2 = a - b;
    const u128 q = b != u128(0) ? a / b : u128(0), r = b != u128(0) ? a % b : u128(0);
    u128 mo;
    const bool fits = dplora::u128_mul_ok(a >> shift, b >> (64 - shift), mo);
    const u128 rt = dplora::intmath::isqrt_floor<u128>(a);
    const u128 vals[] = {p, m, s1, s2, q, r, a << shift, a >> shift, rt, fits ? mo : u128(7)};
    for (const u128 &v : vals) {
      d.add(dplora::u128_hi(v));
      d.add(dplora::u128_lo(v));
    }
    d.add(uint64_t(dplora::u128_bitlen(a)) | (uint64_t(fits) << 8) | (uint64_t(a < b) << 9));
  }
  check(DPLORA_U128_NATIVE == 0 || DPLORA_U128_NATIVE == 1, "u128 type selected");
  print_digest("u128", d);
}

void test_clip() {
  const dplora::chacha::Stream s = dplora::chacha::make_stream(kKatKey, kKatNonce);
  constexpr int kB = 16, kD = 24;
  uint32_t w[kB * kD];
  dplora::chacha::words(s, 12345, w, kB * kD, dplora::chacha::blocks_scalar);
  int32_t g[kB * kD];
  for (int i = 0; i < kB * kD; ++i) {
    const int sh = 1 + int(i / kD) % 24;  // rows of very different norms
    g[i] = int32_t(w[i]) >> sh;
  }
  int64_t sum[kD], scratch[kB], clipped = -1;
  const int64_t clip = 1 << 20;
  const int rc = dplora_fx_clip_sum(g, kB, kD, clip, sum, &clipped, scratch);
  check(rc == DPLORA_OK && clipped > 0 && clipped < kB, "clip_sum runs, clips some rows");
  // Every clipped row has norm <= clip: check the bound row by row.
  bool bound = true;
  for (int i = 0; i < kB; ++i) {
    int64_t one[kD], c1 = 0, sc[1];
    dplora_fx_clip_sum(g + i * kD, 1, kD, clip, one, &c1, sc);
    dplora::u128 n2 = 0;
    for (int j = 0; j < kD; ++j)
      n2 += dplora::mul64x64(uint64_t(one[j] < 0 ? -one[j] : one[j]),
                             uint64_t(one[j] < 0 ? -one[j] : one[j]));
    bound = bound && n2 <= dplora::mul64x64(uint64_t(clip), uint64_t(clip));
  }
  check(bound, "clip_sum: every clipped row has sum v^2 <= C^2");
  Digest d;
  for (int j = 0; j < kD; ++j) d.add(uint64_t(sum[j]));
  d.add(uint64_t(clipped));
  print_digest("clip_sum", d);
}

}  // namespace

#ifdef NOFPU_WITH_STEP
void nofpu_step_tests(void (*chk)(bool, const char *), void (*dig)(const char *, uint64_t));
#endif

#ifdef NOFPU_INJECT_FLOAT
extern "C" uint64_t nofpu_control_float(uint64_t v);
#endif

int nofpu_main() {
  nofpu::put("dp-lora integer mode known-answer tests\n");
#ifdef NOFPU_INJECT_FLOAT
  nofpu::put("control: ");
  nofpu::put_hex(nofpu_control_float(7));
  nofpu::put("\n");
#endif
  test_chacha();
  test_u128();
  test_dgauss();
  test_clip();
#ifdef NOFPU_WITH_STEP
  nofpu_step_tests(check, [](const char *what, uint64_t h) {
    Digest d;
    d.h = h;
    print_digest(what, d);
  });
#endif
  nofpu::put(failures == 0 ? "ALL OK\n" : "FAILED\n");
  return failures == 0 ? 0 : 1;
}
