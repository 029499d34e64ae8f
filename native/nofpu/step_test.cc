// Several integer LoRA steps (dplora_fx_step) on a small synthetic task,
// run on every FPU-less target by scripts/nofpu-tests.sh: prints a digest
// of the parameters after each step (compared with x86-64 bit for bit),
// checks that it learns and that the step budget is enforced.  Float-free,
// no heap (static buffers).
#include "chacha20.h"
#include "dplora_fixed.h"

namespace {

constexpr int kDin = 64, kHidden = 16, kRank = 4, kClasses = 2, kN = 128, kSteps = 16;
int8_t w0[kHidden * kDin], w0_shift[kHidden];
int32_t w0_mult[kHidden];
int32_t pa[kRank * kDin], pb[kHidden * kRank], ph[kClasses * kHidden];
// The two-layer model (layers = 2, biases, head bias, momentum).
int8_t w1[kHidden * kHidden], w1_shift[kHidden];
int32_t w1_mult[kHidden], bias0[kHidden], bias1[kHidden];
int32_t pa2[kRank * kHidden], pb2[kHidden * kRank], phb[kClasses];
int32_t mom2[kRank * kDin + 3 * kHidden * kRank + kClasses * kHidden + kClasses];
int8_t xs[kN * kDin];
int32_t ys[kN];
uint64_t scratch[2048];

uint64_t digest(uint64_t h, const int32_t *v, int n) {
  for (int i = 0; i < n; ++i) {
    for (int b = 0; b < 4; ++b) {
      h ^= (uint32_t(v[i]) >> (8 * b)) & 0xff;
      h *= 0x100000001b3ull;
    }
  }
  return h;
}

// A fresh state (steps 0, position 0) over the global parameters pa, pb, ph,
// with momentum m and the second layer / head bias when given.
dplora_fx_step_state make_state(int32_t *m = nullptr, int32_t *a2 = nullptr, int32_t *b2 = nullptr,
                                int32_t *head_b = nullptr) {
  dplora_fx_step_state st = {};
  st.a = pa;
  st.b = pb;
  st.head = ph;
  st.m = m;
  st.a2 = a2;
  st.b2 = b2;
  st.head_b = head_b;
  return st;
}

int accuracy(const dplora_fx_step_config &c, const dplora_fx_step_state &st) {
  int ok = 0;
  for (int r = 0; r < kN; ++r)
    ok += dplora_fx_predict(&c, &st, xs + r * kDin, scratch, sizeof(scratch)) == ys[r];
  return ok;
}

}  // namespace

void nofpu_step_tests(void (*check)(bool, const char *), void (*dig)(const char *, uint64_t)) {
  uint8_t key[32], nonce[12] = {0};
  for (int i = 0; i < 32; ++i) key[i] = uint8_t(7 * i + 1);
  const dplora::chacha::Stream s = dplora::chacha::make_stream(key, nonce);
  // Public setup from the stream's far end (not the training randomness).
  static uint32_t w[kN * kDin + kHidden * kDin + kRank * kDin + kClasses * kHidden];
  dplora::chacha::words(s, uint64_t(1) << 60, w, sizeof(w) / 4, dplora::chacha::blocks_scalar);
  int at = 0;
  for (int r = 0; r < kN; ++r) {
    ys[r] = r & 1;
    for (int j = 0; j < kDin; ++j) {
      // Class-dependent bag of words: class y favours its half of the buckets.
      const uint32_t u = w[at++];
      const bool favoured = (j < kDin / 2) == (ys[r] == 0);
      xs[r * kDin + j] = int8_t((u & 15) < (favoured ? 5u : 2u) ? 1 + (u >> 30) : 0);
    }
  }
  for (int i = 0; i < kHidden * kDin; ++i) w0[i] = int8_t(int32_t(w[at++] & 63) - 32);
  for (int i = 0; i < kHidden; ++i) {
    w0_mult[i] = 1 << 20;
    w0_shift[i] = 18;  // base ~ acc * 4 in Q8
  }
  const int at_params = at;
  auto init_params = [&]() {
    int k = at_params;
    for (int i = 0; i < kRank * kDin; ++i) pa[i] = int32_t(w[k++] & 1023) - 512;
    for (int i = 0; i < kHidden * kRank; ++i) pb[i] = 0;
    for (int i = 0; i < kClasses * kHidden; ++i) ph[i] = int32_t(w[k++] & 2047) - 1024;
  };
  init_params();

  dplora_fx_step_config c = {};
  c.d_in = kDin;
  c.hidden = kHidden;
  c.rank = kRank;
  c.classes = kClasses;
  c.w0 = w0;
  c.w0_mult = w0_mult;
  c.w0_shift = w0_shift;
  c.frac_bits = 12;
  c.clip_int = 1 << 12;
  c.sigma2_num = uint64_t(1) << 24;  // sigma = 4096 = 1 x C_int
  c.sigma2_den = 1;
  c.sample_num = 1;
  c.sample_den = 2;
  c.lr_num = 1;
  c.lr_den = 1;
  c.expected_batch = kN / 2;
  c.max_steps = kSteps;
  c.loss = DPLORA_FX_SQUARED;
  c.update = DPLORA_FX_SGD;
  c.beta_num = 0;
  c.beta_den = 1;
  dplora_fx_step_state st = make_state();
  check(dplora_fx_step_scratch_bytes(&c) <= sizeof(scratch), "step: scratch fits");
  const int acc0 = accuracy(c, st);
  bool all_ok = true;
  for (int t = 0; t < kSteps; ++t) {
    int64_t batch = 0;
    all_ok = all_ok && dplora_fx_step(&c, &st, key, nonce, xs, ys, kN, scratch, sizeof(scratch),
                                      &batch) == DPLORA_OK;
    all_ok = all_ok && batch > kN / 4 && batch < 3 * kN / 4;
    uint64_t h = 0xcbf29ce484222325ull;
    h = digest(h, pa, kRank * kDin);
    h = digest(h, pb, kHidden * kRank);
    h = digest(h, ph, kClasses * kHidden);
    h = digest(h, reinterpret_cast<const int32_t *>(&batch), 2);
    dig("step", h);
  }
  check(all_ok, "step: 16 steps ran, Poisson batches near 64");
  const int acc1 = accuracy(c, st);
  dig("step accuracy before/after (of 128)", (uint64_t(acc0) << 32) | uint64_t(acc1));
  check(acc1 >= acc0 + 16 && acc1 >= 96,
        "step: it learns (train accuracy up >= 16/128 and >= 96/128)");
  const uint64_t pos = st.position;
  const int32_t a0 = pa[0];
  check(dplora_fx_step(&c, &st, key, nonce, xs, ys, kN, scratch, sizeof(scratch), nullptr) ==
                DPLORA_EBUDGET &&
            st.steps == kSteps && st.position == pos && pa[0] == a0,
        "step: refuses past the planned budget, state untouched");

  // Cross-entropy (integer exp) and the sign-momentum update, a few steps.
  init_params();
  static int32_t mom[kRank * kDin + kHidden * kRank + kClasses * kHidden];
  c.loss = DPLORA_FX_CROSS_ENTROPY;
  c.update = DPLORA_FX_SIGN_MOMENTUM;
  c.beta_num = 58982;
  c.beta_den = 65536;
  c.lr_num = 1;
  c.lr_den = 256;
  dplora_fx_step_state st2 = make_state(mom);
  bool ok2 = true;
  for (int t = 0; t < 4; ++t)
    ok2 = ok2 && dplora_fx_step(&c, &st2, key, nonce, xs, ys, kN, scratch, sizeof(scratch),
                                nullptr) == DPLORA_OK;
  uint64_t h2 = 0xcbf29ce484222325ull;
  h2 = digest(h2, pa, kRank * kDin);
  h2 = digest(h2, pb, kHidden * kRank);
  h2 = digest(h2, ph, kClasses * kHidden);
  h2 = digest(h2, mom, int(sizeof(mom) / 4));
  dig("step cross-entropy sign-momentum", h2);
  check(ok2, "step: cross-entropy + sign-momentum steps run");

  // The float path's architecture in integers: two frozen layers with biases and LoRA on both,
  // a head bias, input and LoRA scale shifts, cross-entropy and exponential-average momentum.
  init_params();
  static uint32_t w2[kHidden * kHidden + 2 * kHidden + kRank * kHidden];
  dplora::chacha::words(s, (uint64_t(1) << 60) + (uint64_t(1) << 40), w2, sizeof(w2) / 4,
                        dplora::chacha::blocks_scalar);
  int k2 = 0;
  for (int i = 0; i < kHidden * kHidden; ++i) w1[i] = int8_t(int32_t(w2[k2++] & 127) - 64);
  for (int i = 0; i < kHidden; ++i) {
    w1_mult[i] = 1 << 29;
    w1_shift[i] = 36;  // row scale 2^-7
    bias0[i] = int32_t(w2[k2++] & 1023) - 256;
    bias1[i] = int32_t(w2[k2++] & 1023) - 256;
  }
  for (int i = 0; i < kRank * kHidden; ++i) pa2[i] = int32_t(w2[k2++] & 2047) - 1024;
  for (int i = 0; i < kHidden * kRank; ++i) pb2[i] = 0;
  phb[0] = 100;
  phb[1] = -100;
  c.layers = 2;
  c.w1 = w1;
  c.w1_mult = w1_mult;
  c.w1_shift = w1_shift;
  c.bias0 = bias0;
  c.bias1 = bias1;
  c.in_shift = 2;
  c.lora_shift = 1;
  c.head_bias = 1;
  c.update = DPLORA_FX_MOMENTUM;
  c.lr_num = 3;
  c.lr_den = 2;
  dplora_fx_step_state st3 = make_state(mom2, pa2, pb2, phb);
  check(dplora_fx_step_scratch_bytes(&c) <= sizeof(scratch), "step: two-layer scratch fits");
  const int acc2 = accuracy(c, st3);
  bool ok3 = true;
  for (int t = 0; t < 8; ++t)
    ok3 = ok3 && dplora_fx_step(&c, &st3, key, nonce, xs, ys, kN, scratch, sizeof(scratch),
                                nullptr) == DPLORA_OK;
  uint64_t h3 = 0xcbf29ce484222325ull;
  h3 = digest(h3, pa, kRank * kDin);
  h3 = digest(h3, pb, kHidden * kRank);
  h3 = digest(h3, pa2, kRank * kHidden);
  h3 = digest(h3, pb2, kHidden * kRank);
  h3 = digest(h3, ph, kClasses * kHidden);
  h3 = digest(h3, phb, kClasses);
  h3 = digest(h3, mom2, int(sizeof(mom2) / 4));
  dig("step two-layer cross-entropy momentum", h3);
  dig("step two-layer accuracy before/after (of 128)",
      (uint64_t(acc2) << 32) | uint64_t(accuracy(c, st3)));
  check(ok3, "step: two-layer cross-entropy + momentum steps run");
}
