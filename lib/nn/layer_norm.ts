/**
 * LayerNorm over the last dimension: y = (x - mean) / sqrt(var + eps) * gamma + beta.
 * gamma/beta may be trainable or frozen.  Per-sample gradients of gamma and
 * beta are small ([batch, features]) and formed directly in backward.
 */
import { requireInt } from '../validate';
import { bsf, checkGradShape, noForward } from './module';
import { PerSampleLayer } from './per_sample';
import { Parameter, Tensor } from './tensor';
import { scratch } from './workspace';
import { layerNormBackward, layerNormForward } from '../kernels/elementwise';

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
    // xhat and 1/std are kept for backward only.
    const xhat = this.training ? scratch(x.size) : null;
    const invStd = this.training ? scratch(batch * seq) : null;
    const y = scratch(x.size);
    // Native, rows split over the pool: mean and variance in double (two passes over the row).
    layerNormForward(
      x.data,
      this.weight.data,
      this.bias.data,
      batch * seq,
      d,
      this.eps,
      y,
      xhat,
      invStd,
    );
    this.saved = xhat && invStd ? { shape: x.shape, xhat, invStd, batch, seq } : null;
    return new Tensor(y, x.shape);
  }

  backward(gradOut: Tensor): Tensor {
    const sv = this.saved;
    if (!sv) throw noForward('LayerNorm.backward');
    checkGradShape(gradOut, sv.shape, 'LayerNorm.backward');
    const d = this.features;
    const { batch, seq, xhat, invStd } = sv;
    const gi = scratch(gradOut.size);
    const trainW = this.weight.requiresGrad;
    const trainB = this.bias.requiresGrad;
    // Per-sample parameter gradients [batch, d] (tiny next to the activations), formed only
    // for a trainable gamma / beta (each sample's sum over its tokens on one thread).
    const gw = trainW ? scratch(batch * d) : null;
    const gb = trainB ? scratch(batch * d) : null;
    layerNormBackward(gradOut.data, xhat, invStd, this.weight.data, batch, seq, d, gi, gw, gb);
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
