/**
 * The transformer layers' elementwise and attention kernels (native, per ISA, split over the
 * native thread pool without changing any result): LayerNorm forward and backward, the
 * masked attention core over all sequences and heads, ReLU and residual adds. Internal to
 * the layers of lib/nn (not part of the public API); every output is written in place and
 * every argument is checked natively (lengths at least what the shape needs, outputs not
 * sharing memory with inputs except where a kernel allows it in place).
 */
import { loadAddon } from '../native';

/**
 * LayerNorm over the last axis of `x` [rows, d]: `y = (x - mean) / sqrt(var + eps) * gamma +
 * beta`, and the normalized rows `xhat` and `invStd` [rows] = `1 / sqrt(var + eps)` when
 * given (mean and variance accumulated in double).
 */
export function layerNormForward(
  x: Float32Array,
  gamma: Float32Array,
  beta: Float32Array,
  rows: number,
  d: number,
  eps: number,
  y: Float32Array,
  xhat: Float32Array | null,
  invStd: Float32Array | null,
): void {
  loadAddon().layerNormForward(x, gamma, beta, rows, d, eps, y, xhat, invStd);
}

/**
 * Backward of {@link layerNormForward} for `[batch, seq, d]`: the input gradient `gi`, and the
 * per-sample sums `gw[b] = sum_t g xhat` and `gb[b] = sum_t g` ([batch, d], overwritten) when
 * given.
 */
export function layerNormBackward(
  g: Float32Array,
  xhat: Float32Array,
  invStd: Float32Array,
  gamma: Float32Array,
  batch: number,
  seq: number,
  d: number,
  gi: Float32Array,
  gw: Float32Array | null,
  gb: Float32Array | null,
): void {
  loadAddon().layerNormBackward(g, xhat, invStd, gamma, batch, seq, d, gi, gw, gb);
}

/**
 * Scaled dot-product attention over all sequences and heads in one call: `probs[b, h]` =
 * the softmax over the real keys (`valid[b * seq + s]` nonzero; null: all) of
 * `scale * q_h k_h^T` (0 on padding keys; uniform for a sequence without real keys) and
 * `out_h = probs[b, h] v_h`; q, k, v, out are `[batch, seq, heads * dHead]`, probs
 * `[batch, heads, seq, seq]`.
 */
export function attentionCore(
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  valid: Uint8Array | null,
  batch: number,
  seq: number,
  heads: number,
  dHead: number,
  scale: number,
  out: Float32Array,
  probs: Float32Array,
): void {
  loadAddon().attentionForward(q, k, v, valid, batch, seq, heads, dHead, scale, out, probs);
}

/** Backward of {@link attentionCore}: `gq`, `gk`, `gv` (overwritten) from `gOut` and `probs`. */
export function attentionCoreBackward(
  gOut: Float32Array,
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  probs: Float32Array,
  valid: Uint8Array | null,
  batch: number,
  seq: number,
  heads: number,
  dHead: number,
  scale: number,
  gq: Float32Array,
  gk: Float32Array,
  gv: Float32Array,
): void {
  loadAddon().attentionBackward(
    gOut,
    q,
    k,
    v,
    probs,
    valid,
    batch,
    seq,
    heads,
    dHead,
    scale,
    gq,
    gk,
    gv,
  );
}

/** `y = max(x, 0)` elementwise (NaN and -0 give +0); `y` may be `x` itself. */
export function reluForward(x: Float32Array, y: Float32Array): void {
  loadAddon().reluForward(x, y);
}

/** `gi = g` where `y > 0`, else 0; `gi` may be `g` itself. */
export function reluBackward(y: Float32Array, g: Float32Array, gi: Float32Array): void {
  loadAddon().reluBackward(y, g, gi);
}

/** `y += x` elementwise (over `y`'s length). */
export function addInPlace(y: Float32Array, x: Float32Array): void {
  loadAddon().addInPlace(y, x);
}

/**
 * Masked mean over the tokens: `out[b] (+)= (1 / n_b) sum_t x[b, t]` over the `n_b` real
 * tokens of sequence b (`valid` null: all), `x` [batch, seq, f], `out` [batch, f]; a sequence
 * without real tokens gets 0 (left as is with `accumulate`). Padding rows are never read.
 */
export function tokenMean(
  x: Float32Array,
  valid: Uint8Array | null,
  batch: number,
  seq: number,
  f: number,
  out: Float32Array,
  accumulate: boolean,
): void {
  loadAddon().tokenMean(x, valid, batch, seq, f, out, accumulate);
}

/**
 * Adjoint of {@link tokenMean}: `gx[b, t] (+)= g[b] / n_b` on the real tokens; padding rows
 * are set to 0 (left as they are with `accumulate`).
 */
export function tokenSpread(
  g: Float32Array,
  valid: Uint8Array | null,
  batch: number,
  seq: number,
  f: number,
  gx: Float32Array,
  accumulate: boolean,
): void {
  loadAddon().tokenSpread(g, valid, batch, seq, f, gx, accumulate);
}

/**
 * Embedding lookup: `y[r] = scale * table[ids[r]]` for a `[vocab, d]` table and float-coded
 * integer ids; rows of id -1 are zeros. Throws if an id is neither -1 nor in `[0, vocab)`.
 */
export function gatherRows(
  table: Float32Array,
  vocab: number,
  d: number,
  ids: Float32Array,
  scale: number,
  y: Float32Array,
): void {
  loadAddon().gatherRows(table, vocab, d, ids, scale, y);
}

/**
 * Per-sample mean squared error of `pred` against `target`, both `[batch, per]`:
 * `losses[i] = (1 / per) sum_j (pred - target)^2` (the squares summed in double, the mean
 * rounded to float once) and `grad = 2 (pred - target) / per` (the gradient of the summed
 * losses, each element computed in double and rounded once).
 */
export function mseRows(
  pred: Float32Array,
  target: Float32Array,
  batch: number,
  per: number,
  losses: Float32Array,
  grad: Float32Array,
): void {
  loadAddon().mseLoss(pred, target, batch, per, losses, grad);
}
