/**
 * The float twin of the integer LoRA model (bench/intmode.ts): the same two-layer model
 * (frozen fc1 and fc2 with their biases, LoRA on both, ReLU, a trainable head with bias), the same
 * initial A, A2 and head (dequantized from the integer plan), the same loss (softmax
 * cross-entropy), clipping, exponential-average momentum and learning rate, the same Poisson
 * sampling rate and step count, and continuous Gaussian noise with the same noise multiplier, but
 * everything in float64 with the unquantized base. Its accuracy against the integer step's tells
 * quantization apart from the model and the optimizer. Sampling and noise come from a seeded
 * public PRNG: a measurement tool, not a private trainer.
 */

import { InitRandom } from '../lib/nn/init';

/** Float weights of the frozen base. */
export interface TwinBase {
  fc1: Float32Array;
  b1: Float32Array;
  fc2: Float32Array;
  b2: Float32Array;
}

/** Hyperparameters and initial trainable values of the twin. */
export interface TwinOptions {
  dim: number;
  hidden: number;
  classes: number;
  rank: number;
  /** LoRA scale alpha / rank. */
  loraScale: number;
  /** Initial trainable parameters, real units: A [rank][dim], A2 [rank][hidden], head, headB. */
  a: Float64Array;
  a2: Float64Array;
  head: Float64Array;
  headB: Float64Array;
  clip: number;
  noiseMultiplier: number;
  sampleRate: number;
  expectedBatch: number;
  steps: number;
  learningRate: number;
  momentum: number;
  seed: number;
}

interface SparseRow {
  idx: Int32Array;
  val: Float64Array;
}

function sparseRows(X: Float32Array, n: number, dim: number): SparseRow[] {
  const rows: SparseRow[] = [];
  for (let i = 0; i < n; i++) {
    const idx: number[] = [];
    const val: number[] = [];
    for (let j = 0; j < dim; j++) {
      const v = X[i * dim + j];
      if (v !== 0) {
        idx.push(j);
        val.push(v);
      }
    }
    rows.push({ idx: Int32Array.from(idx), val: Float64Array.from(val) });
  }
  return rows;
}

/** The twin model and its DP-SGD loop. */
export class FloatTwin {
  private readonly o: TwinOptions;
  private readonly base: TwinBase;
  readonly a: Float64Array;
  readonly b: Float64Array;
  readonly a2: Float64Array;
  readonly b2: Float64Array;
  readonly head: Float64Array;
  readonly headB: Float64Array;

  constructor(base: TwinBase, o: TwinOptions) {
    this.base = base;
    this.o = o;
    this.a = o.a.slice();
    this.b = new Float64Array(o.hidden * o.rank);
    this.a2 = o.a2.slice();
    this.b2 = new Float64Array(o.hidden * o.rank);
    this.head = o.head.slice();
    this.headB = o.headB.slice();
  }

  private params(): Float64Array[] {
    return [this.a, this.b, this.a2, this.b2, this.head, this.headB];
  }

  private forward(x: SparseRow) {
    const { hidden: H, rank: R, dim: D, classes: C, loraScale: s } = this.o;
    const z = new Float64Array(R);
    for (let k = 0; k < R; k++) {
      let v = 0;
      for (let t = 0; t < x.idx.length; t++) v += this.a[k * D + x.idx[t]] * x.val[t];
      z[k] = v;
    }
    const h1 = new Float64Array(H);
    const a1 = new Float64Array(H);
    for (let i = 0; i < H; i++) {
      let v = this.base.b1[i];
      for (let t = 0; t < x.idx.length; t++) v += this.base.fc1[i * D + x.idx[t]] * x.val[t];
      for (let k = 0; k < R; k++) v += s * this.b[i * R + k] * z[k];
      h1[i] = v;
      a1[i] = v > 0 ? v : 0;
    }
    const z2 = new Float64Array(R);
    for (let k = 0; k < R; k++) {
      let v = 0;
      for (let i = 0; i < H; i++) v += this.a2[k * H + i] * a1[i];
      z2[k] = v;
    }
    const h2 = new Float64Array(H);
    const a2 = new Float64Array(H);
    for (let i = 0; i < H; i++) {
      let v = this.base.b2[i];
      for (let j = 0; j < H; j++) v += this.base.fc2[i * H + j] * a1[j];
      for (let k = 0; k < R; k++) v += s * this.b2[i * R + k] * z2[k];
      h2[i] = v;
      a2[i] = v > 0 ? v : 0;
    }
    const out = new Float64Array(C);
    for (let c = 0; c < C; c++) {
      let v = this.headB[c];
      for (let i = 0; i < H; i++) v += this.head[c * H + i] * a2[i];
      out[c] = v;
    }
    return { z, h1, a1, z2, h2, a2, out };
  }

  /** Per-record gradient of the cross-entropy into g (A, B, A2, B2, head, headB order). */
  private grad(x: SparseRow, y: number, g: Float64Array): void {
    const { hidden: H, rank: R, dim: D, classes: C, loraScale: s } = this.o;
    const f = this.forward(x);
    const mx = Math.max(...f.out);
    let tot = 0;
    const dl = new Float64Array(C);
    for (let c = 0; c < C; c++) tot += dl[c] = Math.exp(f.out[c] - mx);
    for (let c = 0; c < C; c++) dl[c] = dl[c] / tot - (c === y ? 1 : 0);
    const oB = R * D;
    const oA2 = oB + H * R;
    const oB2 = oA2 + R * H;
    const oH = oB2 + H * R;
    const oHb = oH + C * H;
    g.fill(0);
    for (let c = 0; c < C; c++) {
      for (let i = 0; i < H; i++) g[oH + c * H + i] = dl[c] * f.a2[i];
      g[oHb + c] = dl[c];
    }
    const dh2 = new Float64Array(H);
    for (let i = 0; i < H; i++) {
      let v = 0;
      for (let c = 0; c < C; c++) v += this.head[c * H + i] * dl[c];
      dh2[i] = f.h2[i] > 0 ? v : 0;
    }
    const dz2 = new Float64Array(R);
    for (let i = 0; i < H; i++)
      for (let k = 0; k < R; k++) {
        g[oB2 + i * R + k] = s * dh2[i] * f.z2[k];
        dz2[k] += s * this.b2[i * R + k] * dh2[i];
      }
    for (let k = 0; k < R; k++) for (let j = 0; j < H; j++) g[oA2 + k * H + j] = dz2[k] * f.a1[j];
    const dh1 = new Float64Array(H);
    for (let j = 0; j < H; j++) {
      let v = 0;
      for (let i = 0; i < H; i++) v += this.base.fc2[i * H + j] * dh2[i];
      for (let k = 0; k < R; k++) v += this.a2[k * H + j] * dz2[k];
      dh1[j] = f.h1[j] > 0 ? v : 0;
    }
    const dz = new Float64Array(R);
    for (let i = 0; i < H; i++)
      for (let k = 0; k < R; k++) {
        g[oB + i * R + k] = s * dh1[i] * f.z[k];
        dz[k] += s * this.b[i * R + k] * dh1[i];
      }
    for (let k = 0; k < R; k++)
      for (let t = 0; t < x.idx.length; t++) g[k * D + x.idx[t]] = dz[k] * x.val[t];
  }

  /** Trains on (X [n][dim], y) for the configured steps. */
  train(X: Float32Array, y: Int32Array): void {
    const o = this.o;
    const rows = sparseRows(X, y.length, o.dim);
    const init = new InitRandom(o.seed);
    const rnd = () => init.next();
    const gauss = (): number => Math.sqrt(-2 * Math.log(1 - rnd())) * Math.cos(2 * Math.PI * rnd());
    const params = this.params();
    const P = params.reduce((s, p) => s + p.length, 0);
    const g = new Float64Array(P);
    const sum = new Float64Array(P);
    const m = new Float64Array(P);
    for (let t = 0; t < o.steps; t++) {
      sum.fill(0);
      for (let i = 0; i < rows.length; i++) {
        if (rnd() >= o.sampleRate) continue;
        this.grad(rows[i], y[i], g);
        let n2 = 0;
        for (let j = 0; j < P; j++) n2 += g[j] * g[j];
        const sc = n2 > o.clip * o.clip ? o.clip / Math.sqrt(n2) : 1;
        for (let j = 0; j < P; j++) sum[j] += g[j] * sc;
      }
      let off = 0;
      for (const p of params) {
        for (let j = 0; j < p.length; j++) {
          const gj = (sum[off + j] + o.noiseMultiplier * o.clip * gauss()) / o.expectedBatch;
          m[off + j] = o.momentum * m[off + j] + (1 - o.momentum) * gj;
          p[j] -= o.learningRate * m[off + j];
        }
        off += p.length;
      }
    }
  }

  /** Accuracy on (X [n][dim], y). */
  accuracy(X: Float32Array, y: Int32Array): number {
    const rows = sparseRows(X, y.length, this.o.dim);
    let ok = 0;
    for (let i = 0; i < rows.length; i++) {
      const s = this.forward(rows[i]).out;
      let best = 0;
      for (let c = 1; c < s.length; c++) if (s[c] > s[best]) best = c;
      ok += best === y[i] ? 1 : 0;
    }
    return ok / rows.length;
  }
}
