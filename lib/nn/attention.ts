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
import { addInPlace, attentionCore, attentionCoreBackward } from '../kernels/elementwise';
import { SequenceMask, sequenceInput } from './sequence_mask';
import { Tensor } from './tensor';
import { scratch } from './workspace';

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
  // One native call over every (sequence, head): scores, masked softmax, weighted sum.
  attentionCore(q, k, v, mask ? mask.valid : null, batch, seq, heads, dHead, scale, out, probs);
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
  return attentionGrads(gOut, q, k, v, probs, null, batch, seq, heads, dHead, scale);
}

/** {@link attentionBackward} reading only the real keys of `valid` (null: all keys). */
function attentionGrads(
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
): { gq: Float32Array; gk: Float32Array; gv: Float32Array } {
  const n = batch * seq * heads * dHead;
  const gq = scratch(n);
  const gk = scratch(n);
  const gv = scratch(n);
  attentionCoreBackward(gOut, q, k, v, probs, valid, batch, seq, heads, dHead, scale, gq, gk, gv);
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
    mask: SequenceMask | null;
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
    this.saved = this.training
      ? { shape: x.shape, q, k, v, probs, batch, seq, mask: this.mask }
      : null;
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
    const { gq, gk, gv } = attentionGrads(
      gAttn,
      sv.q,
      sv.k,
      sv.v,
      sv.probs,
      sv.mask ? sv.mask.valid : null,
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
    addInPlace(gx.data, gxk.data);
    addInPlace(gx.data, gxv.data);
    return gx;
  }
}
