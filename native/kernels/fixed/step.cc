// One private LoRA step in integers (dplora_fixed.h, "integer LoRA step").
// Float-free translation unit: no floating point, exceptions, heap, threads
// or libc; every buffer comes from the caller's scratch.
#include "chacha20.h"
#include "dplora_fixed.h"
#include "fixed/u128.h"
#include "fixed_point.h"

namespace {

constexpr int64_t kQ = DPLORA_FIXED_QMAX;

inline int64_t clamp32(int64_t v) {
  return v > kQ ? kQ : v < -kQ ? -kQ : v;
}

// a * b with both |a|, |b| <= 2^31 - 1 (exact in int64), accumulated with
// saturation at +-2^62 so that no sum can wrap.
inline void mac(int64_t &acc, int64_t a, int64_t b) {
  constexpr int64_t kLim = int64_t(1) << 62;
  const int64_t v = acc + a * b;
  acc = v > kLim ? kLim : v < -kLim ? -kLim : v;
}

// Arithmetic right shift (floor), defined for negative values too.
inline int64_t shr(int64_t v, int s) {
  return v >= 0 ? v >> s : -((-v - 1) >> s) - 1;
}

// exp(-u / 2^f) in Q30 for u >= 0: exp(-v) with v = u / 2^(f + 8) by a
// third-order Taylor polynomial (v <= 2^-8 once u < 2^(f+8)... larger u is
// split off as exp(-1)^k), then squared 8 times.  Deterministic integer
// arithmetic; the relative error (< 1e-6) only perturbs the gradient, which
// is clipped afterwards whatever its value.
int64_t exp_neg_q30(int64_t u, int f) {
  constexpr int64_t kOne = int64_t(1) << 30;
  constexpr int64_t kInvE = 395007542;  // round(2^30 / e)
  if (u <= 0) return kOne;
  int64_t r = kOne;
  const int64_t unit = int64_t(1) << f;
  while (u > unit) {  // exp(-1) factors
    r = (r * kInvE) >> 30;
    u -= unit;
    if (r == 0) return 1;  // never 0: the softmax total stays >= 2^30
  }
  // v = u / 2^(f+8) in Q30 (u <= 2^f so v <= 2^-8).
  const int64_t v = f + 8 >= 30 ? u >> (f + 8 - 30) : u << (30 - f - 8);
  const int64_t v2 = (v * v) >> 30, v3 = (v2 * v) >> 30;
  int64_t e = kOne - v + v2 / 2 - v3 / 6;
  for (int i = 0; i < 8; ++i) e = (e * e) >> 30;
  const int64_t out = (r * e) >> 30;
  return out > 0 ? out : 1;
}

struct Layout {
  int64_t p;  // parameters trained (see n_params)
  int32_t *grad;
  int32_t *nz;  // indices of the record's non-zero inputs (d_in)
  int64_t *sum, *noise;
  // Forward and backward buffers; the layer-2 ones are used when layers == 2.
  int64_t *z, *h, *act, *s, *dlog, *dh, *dz, *z2, *h2, *act2, *dh2, *dz2, *u;
};

inline bool two_layers(const dplora_fx_step_config *c) {
  return c->layers == 2;
}

// Parameter segments in the order of the gradient row: A, B, [A2, B2], head, [head_b].
int64_t n_params(const dplora_fx_step_config *c) {
  const int64_t lora = int64_t(c->rank) * c->d_in + int64_t(c->hidden) * c->rank;
  const int64_t lora2 = two_layers(c) ? 2 * int64_t(c->hidden) * c->rank : 0;
  return lora + lora2 + int64_t(c->classes) * c->hidden + (c->head_bias ? c->classes : 0);
}

size_t fwd_words(const dplora_fx_step_config *c) {
  return size_t(4 * c->rank + 7 * c->hidden + 2 * c->classes);
}

bool valid_channels(const int32_t *mult, const int8_t *shift, int32_t n, int lo) {
  if (mult == nullptr || shift == nullptr) return false;
  for (int32_t i = 0; i < n; ++i) {
    if (mult[i] <= 0 || shift[i] < lo || shift[i] > 62) return false;
  }
  return true;
}

bool valid_bias(const int32_t *b, int32_t n) {
  if (b == nullptr) return true;
  for (int32_t i = 0; i < n; ++i) {
    if (b[i] < -kQ || b[i] > kQ) return false;
  }
  return true;
}

bool valid(const dplora_fx_step_config *c) {
  if (c == nullptr || c->w0 == nullptr) return false;
  if (c->d_in < 1 || c->hidden < 1 || c->rank < 1 || c->classes < 2) return false;
  if (c->d_in > (1 << 20) || c->hidden > (1 << 16) || c->rank > 256 || c->classes > (1 << 16))
    return false;
  if (c->frac_bits < 1 || c->frac_bits > 24) return false;
  if (c->clip_int < 1 || c->clip_int > kQ) return false;
  if (c->sigma2_num == 0 || c->sigma2_den == 0) return false;
  if (c->sample_den == 0 || c->sample_den > (uint64_t(1) << 32) || c->sample_num > c->sample_den)
    return false;
  if (c->lr_num < 1 || c->lr_den < 1 || c->lr_num > kQ || c->lr_den > kQ) return false;
  if (c->expected_batch < 1 || c->expected_batch > kQ) return false;
  if (c->update != DPLORA_FX_SGD && c->update != DPLORA_FX_SIGN_MOMENTUM &&
      c->update != DPLORA_FX_MOMENTUM)
    return false;
  if (c->loss != DPLORA_FX_SQUARED && c->loss != DPLORA_FX_CROSS_ENTROPY) return false;
  if (c->update != DPLORA_FX_SGD &&
      (c->beta_num < 0 || c->beta_den < 1 || c->beta_num >= c->beta_den || c->beta_den > 65536))
    return false;
  if (c->layers < 0 || c->layers > 2) return false;
  if (c->in_shift < 0 || c->in_shift > 16) return false;
  if (c->lora_shift < 0 || c->lora_shift > 8 || c->lora_shift >= c->frac_bits) return false;
  if (c->head_bias != 0 && c->head_bias != 1) return false;
  if (!valid_channels(c->w0_mult, c->w0_shift, c->hidden, 0)) return false;
  if (!valid_bias(c->bias0, c->hidden)) return false;
  if (two_layers(c)) {
    if (c->w1 == nullptr || !valid_channels(c->w1_mult, c->w1_shift, c->hidden, 16)) return false;
    if (!valid_bias(c->bias1, c->hidden)) return false;
  }
  return true;
}

bool valid_state(const dplora_fx_step_config *c, const dplora_fx_step_state *st) {
  if (st == nullptr || st->a == nullptr || st->b == nullptr || st->head == nullptr) return false;
  if (two_layers(c) && (st->a2 == nullptr || st->b2 == nullptr)) return false;
  if (c->head_bias && st->head_b == nullptr) return false;
  return true;
}

Layout layout(const dplora_fx_step_config *c, void *scratch) {
  Layout l;
  l.p = n_params(c);
  int64_t *w = static_cast<int64_t *>(scratch);
  l.z = w;
  l.h = l.z + c->rank;
  l.act = l.h + c->hidden;
  l.s = l.act + c->hidden;
  l.dlog = l.s + c->classes;
  l.dh = l.dlog + c->classes;
  l.dz = l.dh + c->hidden;
  l.z2 = l.dz + c->rank;
  l.h2 = l.z2 + c->rank;
  l.act2 = l.h2 + c->hidden;
  l.dh2 = l.act2 + c->hidden;
  l.dz2 = l.dh2 + c->hidden;
  l.u = l.dz2 + c->rank;
  l.sum = l.u + c->hidden;
  l.noise = l.sum + l.p;
  l.grad = reinterpret_cast<int32_t *>(l.noise + l.p);
  l.nz = l.grad + l.p;
  return l;
}

// round(v * mult / 2^shift), halves away from zero, exact in 128 bits,
// saturated to +-(2^31 - 1).
int64_t requant(int64_t v, int32_t mult, int shift) {
  const uint64_t mag = v < 0 ? uint64_t(0) - uint64_t(v) : uint64_t(v);
  dplora::u128 p = dplora::mul64x64(mag, uint64_t(mult));
  if (shift > 0) p = (p + dplora::u128(uint64_t(1) << (shift - 1))) >> shift;
  const int64_t r = dplora::u128_hi(p) != 0 || dplora::u128_lo(p) > uint64_t(kQ)
                        ? kQ
                        : int64_t(dplora::u128_lo(p));
  return v < 0 ? -r : r;
}

// v / 2^s for s >= 1 (floor), the LoRA scale of the extensions.
inline int64_t lora_out(int64_t acc, const dplora_fx_step_config *c) {
  return shr(acc, c->frac_bits - c->lora_shift);
}

// One frozen layer with LoRA: h = Wq(in) + bias + lora_out(B z), act = relu(h).
// in: int8 inputs (in8, only the nnz entries listed in nz are non-zero) or Q f activations (in64).
void frozen_lora(const dplora_fx_step_config *c, const int8_t *w, const int32_t *mult,
                 const int8_t *shift, const int32_t *bias, const int32_t *b, int32_t n_in,
                 const int8_t *in8, const int32_t *nz, int32_t nnz, const int64_t *in64,
                 const int64_t *z, int64_t *h, int64_t *act) {
  for (int32_t i = 0; i < c->hidden; ++i) {
    const int8_t *wi = w + int64_t(i) * n_in;
    int64_t acc = 0;
    if (in8 != nullptr) {
      for (int32_t t = 0; t < nnz; ++t) acc += int32_t(wi[nz[t]]) * int32_t(in8[nz[t]]);
    } else {
      // |w| <= 128, |in| <= 2^31, n_in <= 2^16: the sum stays below 2^54.
      for (int32_t j = 0; j < n_in; ++j) acc += int64_t(wi[j]) * in64[j];
    }
    int64_t base = requant(acc, mult[i], shift[i]);
    if (bias != nullptr) base += bias[i];
    int64_t lora = 0;
    const int32_t *bi = b + int64_t(i) * c->rank;
    for (int32_t k = 0; k < c->rank; ++k) mac(lora, bi[k], z[k]);
    h[i] = clamp32(clamp32(base) + lora_out(lora, c));
    act[i] = h[i] > 0 ? h[i] : 0;
  }
}

// Forward pass of one record into the layout's buffers; the head's input is
// returned (act, or act2 with two layers).
const int64_t *forward(const dplora_fx_step_config *c, const dplora_fx_step_state *st,
                       const int8_t *x, const Layout &l) {
  const int f = c->frac_bits;
  // Hashed features are sparse: only the non-zero inputs enter the sums (adding a zero
  // product changes no sum, saturated or not, so the result is the dense one bit for bit).
  int32_t nnz = 0;
  for (int32_t j = 0; j < c->d_in; ++j) {
    if (x[j] != 0) l.nz[nnz++] = j;
  }
  for (int32_t k = 0; k < c->rank; ++k) {
    int64_t acc = 0;
    const int32_t *ak = st->a + int64_t(k) * c->d_in;
    for (int32_t t = 0; t < nnz; ++t) mac(acc, ak[l.nz[t]], x[l.nz[t]]);
    l.z[k] = clamp32(shr(acc, c->in_shift));  // Q f
  }
  frozen_lora(c, c->w0, c->w0_mult, c->w0_shift, c->bias0, st->b, c->d_in, x, l.nz, nnz, nullptr,
              l.z, l.h, l.act);
  const int64_t *top = l.act;
  if (two_layers(c)) {
    for (int32_t k = 0; k < c->rank; ++k) {
      int64_t acc = 0;
      const int32_t *ak = st->a2 + int64_t(k) * c->hidden;
      for (int32_t j = 0; j < c->hidden; ++j) mac(acc, ak[j], l.act[j]);
      l.z2[k] = clamp32(shr(acc, f));
    }
    frozen_lora(c, c->w1, c->w1_mult, c->w1_shift, c->bias1, st->b2, c->hidden, nullptr, nullptr, 0,
                l.act, l.z2, l.h2, l.act2);
    top = l.act2;
  }
  for (int32_t o = 0; o < c->classes; ++o) {
    int64_t acc = 0;
    const int32_t *ho = st->head + int64_t(o) * c->hidden;
    for (int32_t i = 0; i < c->hidden; ++i) mac(acc, ho[i], top[i]);
    l.s[o] = clamp32(shr(acc, f) + (c->head_bias ? st->head_b[o] : 0));
  }
  return top;
}

// Backward through one LoRA adapter: given dh (gradient at the layer's
// output, already masked by the ReLU), writes gB = lora_out(dh z^T),
// dz = lora_out(B^T dh) and gA = (dz in^T) >> in_sh.
void lora_backward(const dplora_fx_step_config *c, const int32_t *b, const int64_t *dh,
                   const int64_t *z, int64_t *dz, int32_t n_in, const int8_t *in8,
                   const int64_t *in64, int in_sh, int32_t *ga, int32_t *gb) {
  for (int32_t i = 0; i < c->hidden; ++i) {
    for (int32_t k = 0; k < c->rank; ++k)
      gb[int64_t(i) * c->rank + k] = int32_t(clamp32(lora_out(dh[i] * z[k], c)));
  }
  for (int32_t k = 0; k < c->rank; ++k) {
    int64_t acc = 0;
    for (int32_t i = 0; i < c->hidden; ++i) mac(acc, b[int64_t(i) * c->rank + k], dh[i]);
    dz[k] = clamp32(lora_out(acc, c));
  }
  for (int32_t k = 0; k < c->rank; ++k) {
    int32_t *gk = ga + int64_t(k) * n_in;
    if (in8 != nullptr) {
      for (int32_t j = 0; j < n_in; ++j) gk[j] = int32_t(clamp32(shr(dz[k] * in8[j], in_sh)));
    } else {
      for (int32_t j = 0; j < n_in; ++j) gk[j] = int32_t(clamp32(shr(dz[k] * in64[j], in_sh)));
    }
  }
}

// Per-record gradient of the loss into l.grad (order: A, B, [A2, B2], head,
// [head_b]), each entry saturated to int32.
void backward(const dplora_fx_step_config *c, const dplora_fx_step_state *st, const int8_t *x,
              int32_t y, const Layout &l, const int64_t *top) {
  const int f = c->frac_bits;
  if (c->loss == DPLORA_FX_CROSS_ENTROPY) {
    // softmax(s) - onehot(y), in Q f: e_o = exp(s_o - max) in Q30.
    int64_t mx = l.s[0];
    for (int32_t o = 1; o < c->classes; ++o) mx = l.s[o] > mx ? l.s[o] : mx;
    int64_t total = 0;
    for (int32_t o = 0; o < c->classes; ++o) {
      l.dlog[o] = exp_neg_q30(mx - l.s[o], f);
      total += l.dlog[o];
    }
    for (int32_t o = 0; o < c->classes; ++o) {
      const int64_t p = (l.dlog[o] << f) / total;  // Q f, total >= 2^30
      l.dlog[o] = p - (o == y ? (int64_t(1) << f) : 0);
    }
  } else {
    for (int32_t o = 0; o < c->classes; ++o)
      l.dlog[o] = clamp32(l.s[o] - (o == y ? (int64_t(1) << f) : 0));
  }
  const int64_t na = int64_t(c->rank) * c->d_in, nb = int64_t(c->hidden) * c->rank;
  int32_t *ga = l.grad, *gb = ga + na, *ga2 = gb + nb, *gb2 = ga2 + (two_layers(c) ? nb : 0),
          *gh = gb2 + (two_layers(c) ? nb : 0), *ghb = gh + int64_t(c->classes) * c->hidden;
  for (int32_t o = 0; o < c->classes; ++o) {
    for (int32_t i = 0; i < c->hidden; ++i)
      gh[int64_t(o) * c->hidden + i] = int32_t(clamp32(shr(l.dlog[o] * top[i], f)));
    if (c->head_bias) ghb[o] = int32_t(l.dlog[o]);
  }
  // Gradient at the head's input, masked by its ReLU.
  const int64_t *htop = two_layers(c) ? l.h2 : l.h;
  int64_t *dtop = two_layers(c) ? l.dh2 : l.dh;
  for (int32_t i = 0; i < c->hidden; ++i) {
    int64_t acc = 0;
    for (int32_t o = 0; o < c->classes; ++o)
      mac(acc, st->head[int64_t(o) * c->hidden + i], l.dlog[o]);
    dtop[i] = htop[i] > 0 ? clamp32(shr(acc, f)) : 0;
  }
  if (two_layers(c)) {
    lora_backward(c, st->b2, l.dh2, l.z2, l.dz2, c->hidden, nullptr, l.act, f, ga2, gb2);
    // Through the frozen W1 (row scale mult / 2^shift, shift >= 16): u = dh2 scale in
    // Q (f + 16), then dact1 = (W1^T u) >> 16 + (A2^T dz2) >> f.
    for (int32_t i = 0; i < c->hidden; ++i)
      l.u[i] = requant(l.dh2[i], c->w1_mult[i], c->w1_shift[i] - 16);
    for (int32_t j = 0; j < c->hidden; ++j) {
      int64_t acc = 0;
      for (int32_t i = 0; i < c->hidden; ++i) mac(acc, c->w1[int64_t(i) * c->hidden + j], l.u[i]);
      int64_t acc2 = 0;
      for (int32_t k = 0; k < c->rank; ++k) mac(acc2, st->a2[int64_t(k) * c->hidden + j], l.dz2[k]);
      l.dh[j] = l.h[j] > 0 ? clamp32(shr(acc, 16) + shr(acc2, f)) : 0;
    }
  }
  lora_backward(c, st->b, l.dh, l.z, l.dz, c->d_in, x, nullptr, c->in_shift, ga, gb);
}

// Exact Bernoulli(num / den), den <= 2^32: U uniform in [0, den) by
// Lemire's multiply-and-reject on 32-bit words, then U < num.
bool bernoulli(dplora::chacha::Reader &rd, uint64_t num, uint64_t den) {
  if (num == 0) return false;
  if (num >= den) return true;
  uint64_t m = uint64_t(rd.word()) * den;
  if ((m & 0xffffffffu) < den) {
    const uint64_t thresh = ((uint64_t(1) << 32) - den) % den;
    while ((m & 0xffffffffu) < thresh && !rd.failed()) m = uint64_t(rd.word()) * den;
  }
  return (m >> 32) < num;
}

// noisy * num / den, exact in 128 bits, truncated toward zero, saturated
// to +-2^62.
int64_t mul_div(int64_t v, int64_t num, int64_t den) {
  const uint64_t mag = v < 0 ? uint64_t(0) - uint64_t(v) : uint64_t(v);
  const dplora::u128 q = dplora::mul64x64(mag, uint64_t(num)) / dplora::u128(uint64_t(den));
  const uint64_t lim = uint64_t(1) << 62;
  const int64_t d = dplora::u128_hi(q) != 0 || dplora::u128_lo(q) > lim
                        ? int64_t(lim)
                        : int64_t(dplora::u128_lo(q));
  return v < 0 ? -d : d;
}

void update(int32_t *w, int32_t *m, const int64_t *noisy, int64_t n,
            const dplora_fx_step_config *c) {
  if (c->update == DPLORA_FX_SGD) {
    const int64_t den = c->lr_den * c->expected_batch;  // < 2^62
    for (int64_t i = 0; i < n; ++i)
      w[i] = int32_t(clamp32(int64_t(w[i]) - mul_div(noisy[i], c->lr_num, den)));
    return;
  }
  const int64_t step = (c->lr_num << c->frac_bits) / c->lr_den;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t g = clamp32(mul_div(noisy[i], 1, c->expected_batch));
    const int64_t mm = int64_t(m[i]) * c->beta_num + g * (c->beta_den - c->beta_num);
    m[i] = int32_t(clamp32(mm / c->beta_den));
    int64_t d;
    if (c->update == DPLORA_FX_MOMENTUM)
      d = mul_div(m[i], c->lr_num, c->lr_den);
    else
      d = m[i] > 0 ? step : m[i] < 0 ? -step : 0;
    w[i] = int32_t(clamp32(int64_t(w[i]) - d));
  }
}

}  // namespace

extern "C" {

size_t dplora_fx_step_scratch_bytes(const dplora_fx_step_config *c) {
  if (!valid(c)) return 0;
  const int64_t p = n_params(c);
  return 8 * (fwd_words(c) + size_t(2 * p)) + 4 * size_t(p) + 4 * size_t(c->d_in) + 8;
}

int32_t dplora_fx_predict(const dplora_fx_step_config *c, const dplora_fx_step_state *st,
                          const int8_t *x, void *scratch, size_t scratch_bytes) {
  if (!valid(c) || !valid_state(c, st) || x == nullptr || scratch == nullptr ||
      scratch_bytes < dplora_fx_step_scratch_bytes(c))
    return DPLORA_EINVAL;
  const Layout l = layout(c, scratch);
  forward(c, st, x, l);
  int32_t best = 0;
  for (int32_t o = 1; o < c->classes; ++o) {
    if (l.s[o] > l.s[best]) best = o;
  }
  return best;
}

int dplora_fx_step(const dplora_fx_step_config *c, dplora_fx_step_state *st, const uint8_t key[32],
                   const uint8_t nonce[12], const int8_t *x, const int32_t *y, int64_t n,
                   void *scratch, size_t scratch_bytes, int64_t *batch) {
  if (!valid(c) || !valid_state(c, st) || (c->update != DPLORA_FX_SGD && st->m == nullptr) ||
      key == nullptr || nonce == nullptr || n < 0 || n > (int64_t(1) << 24) ||
      (n > 0 && (x == nullptr || y == nullptr)) || scratch == nullptr ||
      scratch_bytes < dplora_fx_step_scratch_bytes(c))
    return DPLORA_EINVAL;
  for (int64_t r = 0; r < n; ++r) {
    if (y[r] < 0 || y[r] >= c->classes) return DPLORA_EINVAL;
  }
  // The budget is checked before anything is drawn or updated.
  if (st->steps >= c->max_steps) return DPLORA_EBUDGET;
  // Every record's clipped row adds at most clip_int per coordinate.
  if (n > DPLORA_FIXED_SUM_BOUND / c->clip_int) return DPLORA_EOVERFLOW;
  if (st->position > ~uint64_t(0) - (uint64_t(2) << 26)) return DPLORA_EOVERFLOW;
  const Layout l = layout(c, scratch);
  const dplora::chacha::Stream s = dplora::chacha::make_stream(key, nonce);
  for (int64_t i = 0; i < l.p; ++i) l.sum[i] = 0;
  dplora::chacha::Reader rd(s, st->position, st->position + (uint64_t(1) << 26));
  int64_t taken = 0;
  for (int64_t r = 0; r < n; ++r) {
    const bool in = bernoulli(rd, c->sample_num, c->sample_den);
    if (rd.failed()) return DPLORA_EOVERFLOW;
    if (!in) continue;
    ++taken;
    const int8_t *xr = x + r * c->d_in;
    backward(c, st, xr, y[r], l, forward(c, st, xr, l));
    int64_t scale = 0;
    dplora::fixedpt::clip_scales(l.grad, 0, 1, l.p, c->clip_int, &scale);
    // The row, clipped exactly as dplora_fixed_clip_sum does, into the sum.
    for (int64_t j = 0; j < l.p; ++j) {
      const int64_t g = l.grad[j];
      if (scale == dplora::fixedpt::kUnclipped) {
        l.sum[j] += g;
      } else {
        const uint64_t mag = uint64_t(g < 0 ? -g : g);
        const int64_t v = int64_t((mag * uint64_t(scale)) >> dplora::fixedpt::kShift);
        l.sum[j] += g < 0 ? -v : v;
      }
    }
  }
  uint64_t pos = st->position + (uint64_t(1) << 26);
  int64_t sat = 0;
  const int rc = dplora_fx_add_discrete_gaussian(key, nonce, &pos, c->sigma2_num, c->sigma2_den,
                                                 l.sum, l.p, &sat, l.noise);
  if (rc != DPLORA_OK) return rc;
  // Post-processing of the noisy sum, segment by segment in the gradient row's order.
  const int64_t na = int64_t(c->rank) * c->d_in, nb = int64_t(c->hidden) * c->rank;
  const bool two = two_layers(c);
  int32_t *const seg[6] = {st->a,
                           st->b,
                           two ? st->a2 : nullptr,
                           two ? st->b2 : nullptr,
                           st->head,
                           c->head_bias ? st->head_b : nullptr};
  const int64_t len[6] = {na, nb, nb, nb, int64_t(c->classes) * c->hidden, c->classes};
  int64_t off = 0;
  for (int k = 0; k < 6; ++k) {
    if (seg[k] == nullptr) continue;
    update(seg[k], st->m == nullptr ? nullptr : st->m + off, l.sum + off, len[k], c);
    off += len[k];
  }
  st->position = pos;
  ++st->steps;
  if (batch != nullptr) *batch = taken;
  return DPLORA_OK;
}

}  // extern "C"
