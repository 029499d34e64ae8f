// Elementwise and attention kernels of the transformer layers (LayerNorm
// forward/backward, masked row softmax, ReLU, residual adds, and the
// attention core over all sequences and heads in one call).
//
// The row kernels exist per ISA (elementwise_{scalar,avx2,avx512}.cc, one
// template in elementwise_impl.h); the drivers (elementwise.cc) pick the
// table of the active ISA once per call and split the work over the thread
// pool by whole rows, samples or (sequence, head) pairs, so no result depends
// on the thread count.
#pragma once
#include <cstdint>

namespace dplora {
namespace elem {

// The per-ISA row kernels.
struct RowKernels {
  // y = (x - mean) / sqrt(var + eps) * gamma + beta over one row of d; xhat
  // (the normalized row) is written when not null; returns 1 / sqrt(var + eps).
  // Mean and variance: two passes, lane sums reduced in double.
  float (*ln_fwd)(const float *x, int64_t d, const float *gamma, const float *beta, float eps,
                  float *y, float *xhat);
  // LayerNorm input gradient of one row: gi = inv * (g w - mean(g w) - xhat mean(g w xhat));
  // gw += g * xhat and gb += g when not null.
  void (*ln_bwd)(const float *g, const float *xhat, float inv, const float *gamma, int64_t d,
                 float *gi, float *gw, float *gb);
  // In place softmax of p[0..n) over the keys [0, len) (0 < len <= n); p[len..n) set to 0.
  void (*softmax)(float *p, int64_t len, int64_t n);
  // dS = scale * p * (dp - sum_s p dp) in place in dp, over n values.
  void (*softmax_bwd)(const float *p, float *dp, int64_t n, float scale);
  // y = max(x, 0) (NaN and -0 give +0); x may equal y.
  void (*relu)(const float *x, float *y, int64_t n);
  // gi = g where y > 0, else 0 (gi may equal g).
  void (*relu_bwd)(const float *y, const float *g, float *gi, int64_t n);
  // y += x.
  void (*add)(float *y, const float *x, int64_t n);
  // One sample of the MSE loss: d = p - t in double, g = (2 d) / per rounded to float (the
  // same value as the JS reference's), returns the sum of d * d in double (lanes summed in
  // lane order, so within a few double ulps of a sequential sum).
  double (*mse_row)(const float *p, const float *t, int64_t n, double per, float *g);
};

extern const RowKernels kRowScalar;
#if defined(__x86_64__) || defined(_M_X64)
extern const RowKernels kRowAvx2;
extern const RowKernels kRowAvx512;
#endif

// The table of the active ISA path (dplora_set_isa / DPLORA_ISA); scalar
// where this family has no kernel of that path.
const RowKernels &row_kernels();

// LayerNorm over the last axis of x [rows, d]: y, and when not null xhat
// [rows, d] and inv_std [rows].  Rows split over the pool.  Returns a DPLORA_* status.
int layer_norm_forward(const float *x, int64_t rows, int64_t d, const float *gamma,
                       const float *beta, float eps, float *y, float *xhat, float *inv_std);

// Backward of layer_norm_forward for x [batch, seq, d]: gi [batch, seq, d], and
// when not null the per-sample sums gw[b] = sum_t g xhat and gb[b] = sum_t g
// ([batch, d], overwritten).  Samples split over the pool.
int layer_norm_backward(const float *g, const float *xhat, const float *inv_std, const float *gamma,
                        int64_t batch, int64_t seq, int64_t d, float *gi, float *gw, float *gb);

// Scaled dot-product attention over q, k, v [batch, seq, heads * dh]:
// probs[b, h] = softmax over the real keys of scale * q_h k_h^T ([batch,
// heads, seq, seq], 0 on padding keys), out_h = probs[b, h] v_h.  valid
// [batch, seq] (null: every key is real) marks the real keys; a sequence
// without any attends uniformly (1 / seq).  When the real keys of a sequence
// are a prefix [0, len), only those keys are read.  (sequence, head) pairs
// split over the pool.
int attention_forward(const float *q, const float *k, const float *v, int64_t batch, int64_t seq,
                      int64_t heads, int64_t dh, float scale, const uint8_t *valid, float *out,
                      float *probs);

// Backward of attention_forward given dLoss/dout and its probs: gq, gk, gv
// (all [batch, seq, heads * dh], overwritten; 0 on padding keys for gk, gv).
int attention_backward(const float *gout, const float *q, const float *k, const float *v,
                       const float *probs, int64_t batch, int64_t seq, int64_t heads, int64_t dh,
                       float scale, const uint8_t *valid, float *gq, float *gk, float *gv);

// Masked mean over the tokens of x [batch, seq, f]: out[b] = (1 / n_b) sum of
// x[b, t] over the n_b real tokens t (valid null: all), added to out[b] when
// `accumulate`; a sequence without real tokens gets 0 (left as is when
// accumulating).  Padding rows are never read.  Sequences split over the pool.
int token_mean(const float *x, int64_t batch, int64_t seq, int64_t f, const uint8_t *valid,
               float *out, bool accumulate);

// Its adjoint: gx[b, t] = g[b] / n_b for the real tokens t (added when
// `accumulate`), padding rows set to 0 (left as they are when accumulating).
int token_spread(const float *g, int64_t batch, int64_t seq, int64_t f, const uint8_t *valid,
                 float *gx, bool accumulate);

// Embedding lookup: y[r] = scale * table[ids[r]] ([vocab, d] table, ids
// float-coded integers), zeros for id -1.  EINVAL (y unspecified) if an id is
// neither -1 nor an integer in [0, vocab).  Rows split over the pool.
int gather_rows(const float *table, int64_t vocab, int64_t d, const float *ids, int64_t n,
                float scale, float *y);

// Per-sample mean squared error of pred against target, both [batch, per]:
// losses[i] = (sum_j (pred - target)^2) / per, the squares summed in double
// and the quotient rounded to float once; grad = 2 (pred - target) / per
// ([batch, per], the gradient of the summed losses, rounded once).  Samples
// split over the pool.
int mse_loss(const float *pred, const float *target, int64_t batch, int64_t per, float *losses,
             float *grad);

// y = max(x, 0), gi = g * (y > 0), y += x over n floats, split over the pool.
int relu_forward(const float *x, float *y, int64_t n);
int relu_backward(const float *y, const float *g, float *gi, int64_t n);
int add_inplace(float *y, const float *x, int64_t n);

}  // namespace elem
}  // namespace dplora
