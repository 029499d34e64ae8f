/**
 * Adversarial sensitivity measurement through the public API: one DP step
 * with noise 0 and expected batch size 1, with and without a record; the
 * record's contribution is the L2 distance of the two float gradients the
 * DP optimizer hands to the wrapped optimizer (what the update is made of).
 */
import { Rng } from '../../lib/kernels/rng';
import {
  LayerNorm,
  Linear,
  LoraLinear,
  Module,
  Parameter,
  Sequential,
  Tensor,
  mseLoss,
} from '../../lib/nn';
import type { BaseDtype, NormMethod } from '../../lib/kernels/linalg';
import { Optimizer } from '../../lib/optim/optimizer';
import { DPOptimizer, GradientSubspace } from '../../lib/privacy';

/** Records what the DP optimizer hands over (the noisy, normalized gradient). */
export class Recorder extends Optimizer {
  readonly kind = 'recorder';
  last: Float32Array[] = [];
  protected hyper(): Record<string, number | boolean> {
    return {};
  }
  protected update(i: number, _p: Parameter, g: Float32Array): void {
    this.last[i] = Float32Array.from(g);
  }
}

export const F = 6;
export const P = 4;

/** Layer types under test. */
export type LayerKind = 'lora' | 'ffa' | 'linear' | 'layernorm';
export const LAYER_KINDS: LayerKind[] = ['lora', 'ffa', 'linear', 'layernorm'];
export const NORM_METHODS: NormMethod[] = ['auto', 'direct', 'ghost', 'bound'];

/** Element type of the frozen base weights of the models below (a test may set 'bf16'). */
export const sensBase: { dtype: BaseDtype } = { dtype: 'fp32' };

/** A small model of one layer type (same arguments -> same weights). */
export function makeSensModel(kind: LayerKind, method: NormMethod): Module {
  const baseDtype = sensBase.dtype;
  if (kind === 'lora' || kind === 'ffa') {
    const l = new LoraLinear(new Linear(F, P, { trainable: false, seed: 7, baseDtype }), {
      r: 2,
      method: kind === 'lora' ? 'vanilla' : 'ffa',
      seed: 9,
      normMethod: method,
    });
    for (let i = 0; i < l.loraB.length; i++) l.loraB[i] = 0.3 * Math.sin(i + 1);
    return l;
  }
  if (kind === 'linear') return new Linear(F, P, { seed: 5, normMethod: method });
  return new Sequential(
    new LayerNorm(F),
    new Linear(F, P, { trainable: false, seed: 5, baseDtype }),
  );
}

/** One record: input [T, F] and target [T, P]. */
export interface SensRecord {
  x: Float32Array;
  y: Float32Array;
  seq: number;
}

/**
 * The float gradient the DP optimizer produces for `records` split into micro-batches of `micro`
 * (the records of one micro-batch must have the same length), in the optimizer's subspace mode
 * when `space` is given.
 */
export function dpGradient(
  kind: LayerKind,
  method: NormMethod,
  records: SensRecord[],
  C: number,
  micro = records.length,
  space?: GradientSubspace,
): Float64Array {
  const model = makeSensModel(kind, method);
  const params = model.trainableParameters();
  const rec = new Recorder(params, 1);
  const dp = new DPOptimizer(model, rec, {
    noiseMultiplier: 0,
    maxGradNorm: C,
    expectedBatchSize: 1,
    rng: new Rng({ seed: new Uint8Array(32) }),
  });
  if (space) dp.setSubspace(space);
  for (let s = 0; s < records.length; s += Math.max(1, micro)) {
    const part = records.slice(s, s + Math.max(1, micro));
    const seq = part[0].seq;
    if (part.some((r) => r.seq !== seq))
      throw new Error('dpGradient: the records of one micro-batch must have the same length');
    const x = new Float32Array(part.length * seq * F);
    const y = new Float32Array(part.length * seq * P);
    part.forEach((r, k) => {
      x.set(r.x, k * seq * F);
      y.set(r.y, k * seq * P);
    });
    const out = model.forward(new Tensor(x, [part.length, seq, F]));
    model.backward(mseLoss(out, y).grad);
    dp.accumulate();
  }
  dp.step();
  const n = params.reduce((a, p) => a + p.size, 0);
  const g = new Float64Array(n);
  let o = 0;
  params.forEach((p, i) => {
    const v = rec.last[i];
    if (v) for (let j = 0; j < p.size; j++) g[o + j] = v[j];
    o += p.size;
  });
  return g;
}

/** L2 distance in double. */
export function dist(a: Float64Array, b: Float64Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i] - b[i]) ** 2;
  return Math.sqrt(s);
}

/** Contribution of `records[who]` to the summed update, in units of C. */
export function contribution(
  kind: LayerKind,
  method: NormMethod,
  records: SensRecord[],
  who: number,
  C: number,
  micro?: number,
): number {
  const others = records.filter((_, k) => k !== who);
  const w = dpGradient(kind, method, records, C, micro);
  const wo = dpGradient(kind, method, others, C, micro);
  return dist(w, wo) / C;
}

/** Model output for a single record (eval mode): what a white-box adversary knows. */
export function outputOf(kind: LayerKind, x: Float32Array, seq: number): Float32Array {
  const m = makeSensModel(kind, 'auto').eval();
  return m.forward(new Tensor(x, [1, seq, F])).data;
}

/** Deterministic PRNG in [0, 1). */
export function prng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 2 ** 32;
  };
}

/**
 * The minimal leak: two tokens with the same input and targets y +- K, so the
 * output gradients are opposite (about +-2K/(2P)) and the exact gradient ~ 0.
 */
export function cancellingPair(kind: LayerKind, K: number, xval = 1): SensRecord {
  const x = new Float32Array(2 * F);
  for (let j = 0; j < F; j++) x[j] = x[F + j] = xval * (j % 2 ? 1 : -0.5) * (1 + j / 7);
  const y0 = outputOf(kind, x, 2);
  const y = new Float32Array(2 * P);
  for (let j = 0; j < P; j++) {
    y[j] = y0[j] + K * (1 + j / 3);
    y[P + j] = y0[P + j] - K * (1 + j / 3);
  }
  return { x, y, seq: 2 };
}

/** Crafted adversarial records of many families (deterministic in `seed`). */
export function craftedRecord(kind: LayerKind, seed: number, maxSeq = 64): SensRecord {
  const rnd = prng(seed * 2654435761 + 17);
  const family = seed % 6;
  const mag = () => 10 ** (-30 + 60 * rnd());
  const sgn = () => (rnd() < 0.5 ? -1 : 1);
  if (family === 0) return cancellingPair(kind, mag(), mag() * sgn());
  let seq = 2 + Math.floor(rnd() * (maxSeq - 1));
  const x = new Float32Array(seq * F);
  const y = new Float32Array(seq * P);
  if (family === 1) {
    // Random magnitudes over 60 decades.
    for (let i = 0; i < x.length; i++) x[i] = sgn() * mag();
    for (let i = 0; i < y.length; i++) y[i] = sgn() * mag();
  } else if (family === 2) {
    // Subnormals and tiny values, a few large targets.
    for (let i = 0; i < x.length; i++) x[i] = sgn() * (rnd() < 0.5 ? 1e-40 * rnd() : 1e-44);
    for (let i = 0; i < y.length; i++) y[i] = sgn() * (rnd() < 0.2 ? 1e20 : 1e-42);
  } else if (family === 3) {
    // One huge token among tiny ones.
    const big = Math.floor(rnd() * seq);
    for (let t = 0; t < seq; t++) {
      const m = t === big ? 1e18 * (1 + rnd()) : 1e-18 * rnd();
      for (let j = 0; j < F; j++) x[t * F + j] = sgn() * m;
      for (let j = 0; j < P; j++) y[t * P + j] = sgn() * m;
    }
  } else {
    // Groups of identical inputs with targets cancelling around the output.
    seq -= seq % 2;
    if (seq < 2) seq = 2;
    const xs = new Float32Array(seq * F);
    const base = mag() * sgn();
    for (let t = 0; t < seq; t++)
      for (let j = 0; j < F; j++) xs[t * F + j] = base * (1 + ((j * 7 + (t >> 1)) % 5) / 9);
    const y0 = outputOf(kind, xs, seq);
    const ys = new Float32Array(seq * P);
    for (let t = 0; t < seq; t += 2) {
      const K = family === 4 ? 10 ** (4 + 8 * rnd()) : mag();
      for (let j = 0; j < P; j++) {
        ys[t * P + j] = y0[t * P + j] + K * (1 + rnd());
        ys[(t + 1) * P + j] = y0[(t + 1) * P + j] - K * (1 + rnd());
      }
    }
    return { x: xs, y: ys, seq };
  }
  return { x, y, seq };
}
