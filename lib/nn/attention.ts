/**
 * Multi-head scaled dot-product attention with a key padding mask, forward
 * and backward, over separate query/key/value/output projections (Linear
 * layers, which LoRA may wrap).  Padding keys get no attention weight; a query
 * whose sequence has no real key at all attends uniformly (as a finite -1e9
 * bias does in TF).  Gradients are exact: padding keys and values receive
 * exactly zero gradient.
 */
import { requirePositiveInt } from '../validate';
import { InvalidArgumentError } from '../errors';
import { Linear } from './linear';
import { LoraLinear } from './lora_linear';
import { Module, checkGradShape, noForward, noInputGrad } from './module';
import { sgemm } from '../kernels/linalg';
import { SequenceMask, sequenceInput } from './sequence_mask';
import { Tensor } from './tensor';
import { scratch } from './workspace';

const LOG2E = 1.4426950408889634;
// ln 2 split so that k * LN2_HI is exact for |k| < 2^11 (Cody and Waite).
const LN2_HI = 0.6931471803691238;
const LN2_LO = 1.9082149292705877e-10;
/** POW2_NEG[k] = 2^-k. */
const POW2_NEG = Float64Array.from({ length: 160 }, (_, k) => 2 ** -k);

/**
 * exp(x) for x <= 0 in double, relative error below 1e-8 (then rounded to float by the
 * caller): x = k ln 2 + r with |r| <= ln(2)/2, exp(r) by its degree-8 Taylor polynomial.
 * Math.exp is a call into C per element (several times slower in a softmax loop).
 * Returns 0 below -103.5, where exp(x) rounds to 0 in float32 anyway.
 */
function expNonPositive(x: number): number {
  if (x < -103.5) return 0;
  const k = Math.floor(x * LOG2E + 0.5);
  const r = x - k * LN2_HI - k * LN2_LO;
  const p =
    1 +
    r *
      (1 +
        r *
          (0.5 +
            r *
              (1 / 6 +
                r * (1 / 24 + r * (1 / 120 + r * (1 / 720 + r * (1 / 5040 + r * (1 / 40320))))))));
  return p * POW2_NEG[-k];
}

/**
 * In-place softmax of row `p[row .. row + seq)` over the keys `s` with `valid[vOff + s]` set
 * (all keys when `valid` is null), padding keys set to 0; `len` >= 0 says the valid keys are
 * exactly `[0, len)` (the usual padded batch), -1 that they are arbitrary.
 */
function softmaxRow(
  p: Float32Array,
  row: number,
  seq: number,
  valid: Uint8Array | null,
  vOff: number,
  len: number,
): void {
  if (len >= 0) {
    let mx = -Infinity;
    for (let s = 0; s < len; s++) if (p[row + s] > mx) mx = p[row + s];
    let sum = 0;
    for (let s = 0; s < len; s++) {
      const e = expNonPositive(p[row + s] - mx);
      p[row + s] = e;
      sum += e;
    }
    const inv = 1 / sum;
    for (let s = 0; s < len; s++) p[row + s] *= inv;
    if (len < seq) p.fill(0, row + len, row + seq);
    return;
  }
  let mx = -Infinity;
  for (let s = 0; s < seq; s++) if ((!valid || valid[vOff + s]) && p[row + s] > mx) mx = p[row + s];
  let sum = 0;
  for (let s = 0; s < seq; s++) {
    if (valid && !valid[vOff + s]) {
      p[row + s] = 0;
      continue;
    }
    const e = expNonPositive(p[row + s] - mx);
    p[row + s] = e;
    sum += e;
  }
  const inv = 1 / sum;
  for (let s = 0; s < seq; s++) p[row + s] *= inv;
}

/** Real keys of sequence b: their count if they are exactly a prefix [0, n), else -1. */
function prefixLength(mask: SequenceMask | null, b: number, seq: number): number {
  if (!mask) return seq;
  const v = mask.valid;
  const o = b * seq;
  let n = 0;
  while (n < seq && v[o + n]) n++;
  for (let s = n; s < seq; s++) if (v[o + s]) return -1;
  return n;
}

/** A projection: a plain or LoRA-wrapped linear layer. */
export type Projection = Linear | LoraLinear;

/** Options of {@link MultiHeadAttention}. */
export interface MultiHeadAttentionOptions {
  /** Input width. */
  dIn: number;
  /** Width of queries, keys and values (split over the heads). */
  dAttn: number;
  /** Output width. */
  dOut: number;
  /** Number of heads (divides dAttn). */
  heads: number;
  /** Multiplier of the scores (default 1/sqrt(dAttn/heads)). */
  scale?: number;
  /** Seed of the default projections' initialization (public randomness; q, k, v, o get seed, +1, +2, +3). */
  seed?: number;
  /** Optional ready-made projections (e.g. loaded weights); query: dIn -> dAttn features. */
  q?: Projection;
  /** Ready-made key projection, dIn -> dAttn features (default: a new {@link Linear}). */
  k?: Projection;
  /** Ready-made value projection, dIn -> dAttn features (default: a new {@link Linear}). */
  v?: Projection;
  /** Ready-made output projection, dAttn -> dOut features (default: a new {@link Linear}). */
  o?: Projection;
}

/** out_h = p^T x_h: p [seq, seq], x_h and out_h the head's columns from `off` (row stride d). */
function headTransposedProduct(
  p: Float32Array,
  x: Float32Array,
  off: number,
  out: Float32Array,
  seq: number,
  dHead: number,
  d: number,
): void {
  sgemm(p, x.subarray(off), out.subarray(off), {
    m: seq,
    n: dHead,
    k: seq,
    transA: true,
    ldb: d,
    ldc: d,
  });
}

/** out[seq, seq] = alpha * x_h y_h^T for the head whose columns start at `off` (row stride d). */
function headProduct(
  x: Float32Array,
  y: Float32Array,
  off: number,
  out: Float32Array,
  seq: number,
  dHead: number,
  d: number,
  alpha: number,
): void {
  sgemm(x.subarray(off), y.subarray(off), out, {
    m: seq,
    n: seq,
    k: dHead,
    transB: true,
    alpha,
    lda: d,
    ldb: d,
  });
}

/**
 * Scaled dot-product attention core: out[b,t,h] = sum_s P[b,h,t,s] v[b,s,h]
 * with P = softmax over real keys of scale * q.k.  No parameters.
 */
export function attentionForward(
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  batch: number,
  seq: number,
  heads: number,
  dHead: number,
  scale: number,
  mask: SequenceMask | null,
): {
  /** Attention output, [batch, seq, heads * dHead] (heads side by side in the last axis). */
  out: Float32Array;
  /** Attention weights, [batch, heads, seq (query), seq (key)]; rows sum to 1, 0 on padding. */
  probs: Float32Array;
} {
  const d = heads * dHead;
  const out = scratch(batch * seq * d);
  const probs = scratch(batch * heads * seq * seq);
  const tt = seq * seq;
  for (let b = 0; b < batch; b++) {
    const base = b * seq * d;
    const len = prefixLength(mask, b, seq);
    // len = -1: real keys but not a prefix; 0: no real key at all.
    const anyValid = len !== 0;
    for (let h = 0; h < heads; h++) {
      const p = probs.subarray((b * heads + h) * tt, (b * heads + h + 1) * tt);
      if (!anyValid) {
        // No real key at all: uniform weights (as a finite -1e9 bias gives in TF).
        p.fill(1 / seq);
      } else {
        // scores = scale * q_h k_h^T   [seq, seq], then the masked softmax of each row
        headProduct(q, k, base + h * dHead, p, seq, dHead, d, scale);
        for (let t = 0; t < seq; t++)
          softmaxRow(p, t * seq, seq, mask ? mask.valid : null, b * seq, len);
      }
      // out_h = P v_h   [seq, dHead]
      sgemm(p, v.subarray(base + h * dHead), out.subarray(base + h * dHead), {
        m: seq,
        n: dHead,
        k: seq,
        ldb: d,
        ldc: d,
      });
    }
  }
  return { out, probs };
}

/** Backward of {@link attentionForward}: gradients of q, k and v. */
export function attentionBackward(
  gOut: Float32Array,
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  probs: Float32Array,
  batch: number,
  seq: number,
  heads: number,
  dHead: number,
  scale: number,
): {
  /** Gradient of the loss w.r.t. q, [batch, seq, heads * dHead]. */
  gq: Float32Array;
  /** Gradient of the loss w.r.t. k, [batch, seq, heads * dHead] (0 on padding keys). */
  gk: Float32Array;
  /** Gradient of the loss w.r.t. v, [batch, seq, heads * dHead] (0 on padding keys). */
  gv: Float32Array;
} {
  const d = heads * dHead;
  const gq = scratch(batch * seq * d);
  const gk = scratch(batch * seq * d);
  const gv = scratch(batch * seq * d);
  const tt = seq * seq;
  const dp = scratch(tt);
  for (let b = 0; b < batch; b++) {
    const base = b * seq * d;
    for (let h = 0; h < heads; h++) {
      const off = base + h * dHead;
      const p = probs.subarray((b * heads + h) * tt, (b * heads + h + 1) * tt);
      // gv_h = P^T gOut_h
      headTransposedProduct(p, gOut, off, gv, seq, dHead, d);
      // dP = gOut_h v_h^T
      headProduct(gOut, v, off, dp, seq, dHead, d, 1);
      // dS = P * (dP - rowsum(P * dP)), times scale
      for (let t = 0; t < seq; t++) {
        const row = t * seq;
        let dot = 0;
        for (let s = 0; s < seq; s++) dot += p[row + s] * dp[row + s];
        for (let s = 0; s < seq; s++) dp[row + s] = scale * p[row + s] * (dp[row + s] - dot);
      }
      // gq_h = dS k_h ; gk_h = dS^T q_h
      sgemm(dp, k.subarray(off), gq.subarray(off), { m: seq, n: dHead, k: seq, ldb: d, ldc: d });
      headTransposedProduct(dp, q, off, gk, seq, dHead, d);
    }
  }
  return { gq, gk, gv };
}

/** Multi-head attention block: q/k/v projections, masked attention, output projection. */
export class MultiHeadAttention extends Module {
  /** Input width (features of x, [batch, seq, dIn]). */
  readonly dIn: number;
  /** Width of queries, keys and values over all heads (heads * dHead). */
  readonly dAttn: number;
  /** Output width (features of the result, [batch, seq, dOut]). */
  readonly dOut: number;
  /** Number of attention heads. */
  readonly heads: number;
  /** Width of one head: dAttn / heads. */
  readonly dHead: number;
  /** Multiplier of the q.k scores before the softmax (default 1/sqrt(dHead)). */
  readonly scale: number;
  /** Query projection (PEFT name `q_proj`). */
  q: Projection;
  /** Key projection (`k_proj`). */
  k: Projection;
  /** Value projection (`v_proj`). */
  v: Projection;
  /** Output projection (`o_proj`). */
  o: Projection;
  private mask: SequenceMask | null = null;
  private saved: {
    shape: number[];
    q: Float32Array;
    k: Float32Array;
    v: Float32Array;
    probs: Float32Array;
    batch: number;
    seq: number;
  } | null = null;

  constructor(options: MultiHeadAttentionOptions) {
    super();
    const { dIn, dAttn, dOut, heads } = options;
    for (const [name, v] of Object.entries({ dIn, dAttn, dOut, heads }))
      requirePositiveInt(name, v);
    if (dAttn % heads !== 0)
      throw new InvalidArgumentError('heads', `must divide dAttn (${dAttn}), got ${heads}`);
    this.dIn = dIn;
    this.dAttn = dAttn;
    this.dOut = dOut;
    this.heads = heads;
    this.dHead = dAttn / heads;
    this.scale = options.scale ?? 1 / Math.sqrt(this.dHead);
    const seed = (i: number) => (options.seed === undefined ? undefined : options.seed + i);
    this.q = options.q ?? new Linear(dIn, dAttn, { seed: seed(0) });
    this.k = options.k ?? new Linear(dIn, dAttn, { seed: seed(1) });
    this.v = options.v ?? new Linear(dIn, dAttn, { seed: seed(2) });
    this.o = options.o ?? new Linear(dAttn, dOut, { seed: seed(3) });
    const want: Array<[string, Projection, number, number]> = [
      ['q', this.q, dIn, dAttn],
      ['k', this.k, dIn, dAttn],
      ['v', this.v, dIn, dAttn],
      ['o', this.o, dAttn, dOut],
    ];
    for (const [name, p, i, o] of want)
      if (p.inFeatures !== i || p.outFeatures !== o)
        throw new InvalidArgumentError(
          name,
          `must map ${i} -> ${o} features, got ${p.inFeatures} -> ${p.outFeatures}`,
        );
  }

  children(): Array<[string, Module]> {
    return [
      ['q_proj', this.q],
      ['k_proj', this.k],
      ['v_proj', this.v],
      ['o_proj', this.o],
    ];
  }

  /** Replaces a projection by its PEFT name (used to wrap it with LoRA). */
  setChild(name: string, m: Projection): void {
    if (name === 'q_proj') this.q = m;
    else if (name === 'k_proj') this.k = m;
    else if (name === 'v_proj') this.v = m;
    else if (name === 'o_proj') this.o = m;
    else throw new InvalidArgumentError('name', `no projection named ${name}`);
  }

  /** Sets the key padding mask for the next forward. */
  setMask(mask: SequenceMask | null): void {
    this.mask = mask;
  }

  forward(x: Tensor): Tensor {
    const { batch, seq } = sequenceInput(x, this.mask, 'MultiHeadAttention.forward', this.dIn);
    const q = this.q.forward(x).data;
    const k = this.k.forward(x).data;
    const v = this.v.forward(x).data;
    const { out, probs } = attentionForward(
      q,
      k,
      v,
      batch,
      seq,
      this.heads,
      this.dHead,
      this.scale,
      this.mask,
    );
    const y = this.o.forward(new Tensor(out, [batch, seq, this.dAttn]));
    this.saved = this.training ? { shape: x.shape, q, k, v, probs, batch, seq } : null;
    return y;
  }

  /**
   * Gradients of the projections' parameters, and of the input unless `inputGrad` is false
   * (then the input-gradient products of q, k and v are skipped and an empty tensor returned).
   */
  backward(gradOut: Tensor, inputGrad = true): Tensor {
    const sv = this.saved;
    if (!sv) throw noForward('MultiHeadAttention.backward');
    checkGradShape(gradOut, [sv.batch, sv.seq, this.dOut], 'MultiHeadAttention.backward');
    const gAttn = this.o.backward(gradOut).data;
    const { gq, gk, gv } = attentionBackward(
      gAttn,
      sv.q,
      sv.k,
      sv.v,
      sv.probs,
      sv.batch,
      sv.seq,
      this.heads,
      this.dHead,
      this.scale,
    );
    const shape = [sv.batch, sv.seq, this.dAttn];
    const gx = this.q.backward(new Tensor(gq, shape), inputGrad);
    const gxk = this.k.backward(new Tensor(gk, shape), inputGrad);
    const gxv = this.v.backward(new Tensor(gv, shape), inputGrad);
    this.saved = null;
    if (!inputGrad) return noInputGrad();
    const d = gx.data;
    const dk = gxk.data;
    const dv = gxv.data;
    for (let i = 0; i < d.length; i++) d[i] += dk[i] + dv[i];
    return gx;
  }
}
