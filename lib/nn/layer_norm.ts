/**
 * LayerNorm over the last dimension: y = (x - mean) / sqrt(var + eps) * gamma + beta.
 * gamma/beta may be trainable or frozen.  Per-sample gradients of gamma and
 * beta are small ([batch, features]) and formed directly in backward.
 */
import { requireInt } from '../validate';
import { bsf, checkGradShape, noForward } from './module';
import { PerSampleLayer } from './per_sample';
import { Parameter, Tensor } from './tensor';
import { scratch, scratchZeroed } from './workspace';

/** Options of {@link LayerNorm}. */
export interface LayerNormOptions {
  /** Epsilon added to the variance (default 1e-5). */
  eps?: number;
  /** Whether training changes gamma and beta (default true). */
  trainable?: boolean;
}

/** Layer normalization with optional per-sample gradient support. */
export class LayerNorm extends PerSampleLayer {
  /** Width of the normalized last dimension. */
  readonly features: number;
  /** Added to the variance before the square root. */
  readonly eps: number;
  /** Scale gamma [features]. */
  readonly weight: Parameter;
  /** Shift beta [features]. */
  readonly bias: Parameter;
  private saved: {
    shape: number[];
    xhat: Float32Array;
    invStd: Float32Array;
    batch: number;
    seq: number;
  } | null = null;

  constructor(features: number, options: LayerNormOptions = {}) {
    super();
    this.features = requireInt('features', features, { min: 1, max: 2 ** 24 });
    this.eps = options.eps ?? 1e-5;
    const trainable = options.trainable ?? true;
    this.weight = new Parameter(new Float32Array(features).fill(1), [features], trainable);
    this.bias = new Parameter(new Float32Array(features), [features], trainable);
  }

  ownParameters(): Array<[string, Parameter]> {
    return [
      ['weight', this.weight],
      ['bias', this.bias],
    ];
  }

  forward(x: Tensor): Tensor {
    const { batch, seq } = bsf(x, 'LayerNorm.forward', this.features);
    const d = this.features;
    const rows = batch * seq;
    const xd = x.data;
    // xhat and 1/std are kept for backward only.
    const xhat = this.training ? scratch(x.size) : null;
    const invStd = scratch(rows);
    const y = scratch(x.size);
    const w = this.weight.data;
    const b = this.bias.data;
    const eps = this.eps;
    for (let r = 0; r < rows; r++) {
      const o = r * d;
      // Mean and variance in one pass over c = x - x0, x0 the row's first element (double):
      // |E[c]| is within the row's range, so E[c^2] - E[c]^2 loses at most about log2(d) bits
      // to cancellation; a rounding below 0 is clamped.
      const x0 = xd[o];
      let s1 = 0;
      let s2 = 0;
      for (let j = 0; j < d; j++) {
        const c = xd[o + j] - x0;
        s1 += c;
        s2 += c * c;
      }
      const m1 = s1 / d;
      const mean = x0 + m1;
      let v = s2 / d - m1 * m1;
      if (v < 0) v = 0;
      const is = 1 / Math.sqrt(v + eps);
      invStd[r] = is;
      if (xhat) {
        for (let j = 0; j < d; j++) {
          const xh = (xd[o + j] - mean) * is;
          xhat[o + j] = xh;
          y[o + j] = xh * w[j] + b[j];
        }
      } else {
        for (let j = 0; j < d; j++) y[o + j] = (xd[o + j] - mean) * is * w[j] + b[j];
      }
    }
    this.saved = xhat ? { shape: x.shape, xhat, invStd, batch, seq } : null;
    return new Tensor(y, x.shape);
  }

  backward(gradOut: Tensor): Tensor {
    const sv = this.saved;
    if (!sv) throw noForward('LayerNorm.backward');
    checkGradShape(gradOut, sv.shape, 'LayerNorm.backward');
    const d = this.features;
    const { batch, seq, xhat, invStd } = sv;
    const g = gradOut.data;
    const w = this.weight.data;
    const gi = scratch(g.length);
    const trainW = this.weight.requiresGrad;
    const trainB = this.bias.requiresGrad;
    // Per-sample parameter gradients [batch, d] (tiny next to the activations), formed only
    // for a trainable gamma / beta.
    const gw = trainW ? scratchZeroed(batch * d) : null;
    const gb = trainB ? scratchZeroed(batch * d) : null;
    for (let i = 0; i < batch; i++) {
      for (let t = 0; t < seq; t++) {
        const o = (i * seq + t) * d;
        let m1 = 0;
        let m2 = 0;
        for (let j = 0; j < d; j++) {
          const gx = g[o + j] * w[j];
          m1 += gx;
          m2 += gx * xhat[o + j];
        }
        if (gw) for (let j = 0; j < d; j++) gw[i * d + j] += g[o + j] * xhat[o + j];
        if (gb) for (let j = 0; j < d; j++) gb[i * d + j] += g[o + j];
        m1 /= d;
        m2 /= d;
        const is = invStd[i * seq + t];
        for (let j = 0; j < d; j++) gi[o + j] = is * (g[o + j] * w[j] - m1 - xhat[o + j] * m2);
      }
    }
    if (trainW || trainB) {
      if (this.gradMode === 'perSample') {
        const cap = this.beginCapture(batch);
        if (gw) cap.addRows(this.weight, gw);
        if (gb) cap.addRows(this.bias, gb);
      } else {
        const sum = (src: Float32Array, dst: Float32Array) => {
          for (let i = 0; i < batch; i++) for (let j = 0; j < d; j++) dst[j] += src[i * d + j];
        };
        if (gw) sum(gw, this.weight.rawGradBuffer());
        if (gb) sum(gb, this.bias.rawGradBuffer());
      }
    }
    this.saved = null;
    return new Tensor(gi, sv.shape);
  }
}
