/** Adam (L2 weight decay in the gradient) and AdamW (decoupled weight decay). */
import { Parameter } from '../nn/tensor';
import { Optimizer } from './optimizer';
import { requireNumber, requireObject } from '../validate';

/** Options of {@link Adam} and {@link AdamW}. */
export interface AdamOptions {
  /** Learning rate. */
  lr: number;
  /** Decay of the first-moment estimate, in [0, 1) (default 0.9). */
  beta1?: number;
  /** Decay of the second-moment estimate, in [0, 1) (default 0.999). */
  beta2?: number;
  /** Added to the denominator for numerical stability, > 0 (default 1e-8). */
  eps?: number;
  /** Adam: L2 penalty added to the gradient; AdamW: decoupled decay (default 0 / 0.01). */
  weightDecay?: number;
  /**
   * DP-AdamBC (Tang, Shpilevskiy and Lecuyer, AAAI 2024): the variance that differential-privacy
   * noise adds to each coordinate of the gradient this optimizer receives, subtracted from the
   * bias-corrected second moment before its square root. For a `DPOptimizer` `dp` it is
   * `(dp.noiseStd / dp.expectedBatchSize) ** 2`. Only the update
   * of the already-noised gradient changes (post-processing: no privacy cost). Default 0: plain
   * Adam.
   */
  noiseVariance?: number;
  /**
   * DP-AdamBC's floor of the corrected second moment, > 0 (default: `noiseVariance / 10`); used
   * only when `noiseVariance` > 0. The update of a coordinate is at most
   * `lr * |m| / sqrt(varianceFloor)`.
   */
  varianceFloor?: number;
}

abstract class AdamBase extends Optimizer {
  /** Decay of the first-moment estimate. */
  readonly beta1: number;
  /** Decay of the second-moment estimate. */
  readonly beta2: number;
  /** Added to the denominator for numerical stability. */
  readonly eps: number;
  /** Adam: L2 penalty added to the gradient; AdamW: decoupled decay rate. */
  readonly weightDecay: number;
  private bcVariance = 0;
  private bcFloor = 0;
  protected abstract readonly decoupled: boolean;

  constructor(params: Parameter[], options: AdamOptions, defaultDecay: number) {
    requireObject('options', options);
    super(params, options.lr);
    this.beta1 = options.beta1 ?? 0.9;
    this.beta2 = options.beta2 ?? 0.999;
    this.eps = options.eps ?? 1e-8;
    this.weightDecay = options.weightDecay ?? defaultDecay;
    requireNumber('beta1', this.beta1, { min: 0, lessThan: 1 });
    requireNumber('beta2', this.beta2, { min: 0, lessThan: 1 });
    requireNumber('eps', this.eps, { greaterThan: 0 });
    requireNumber('weightDecay', this.weightDecay, { min: 0 });
    this.setNoiseVariance(options.noiseVariance ?? 0, options.varianceFloor);
  }

  /**
   * Sets DP-AdamBC's correction (see {@link AdamOptions.noiseVariance}), e.g. once the noise
   * multiplier of a private run is known: `variance` >= 0 (0 turns it off), `floor` > 0 (default
   * `variance / 10`). Throws an InvalidArgumentError naming the argument otherwise.
   */
  setNoiseVariance(variance: number, floor?: number): void {
    requireNumber('noiseVariance', variance, { min: 0 });
    const f = floor ?? variance / 10;
    if (variance > 0) requireNumber('varianceFloor', f, { greaterThan: 0 });
    this.bcVariance = variance;
    this.bcFloor = variance > 0 ? f : 0;
  }

  /** DP-AdamBC: noise variance subtracted from the second moment (0: plain Adam). */
  get noiseVariance(): number {
    return this.bcVariance;
  }

  /** DP-AdamBC: floor of the corrected second moment (0 when the correction is off). */
  get varianceFloor(): number {
    return this.bcFloor;
  }

  protected hyper() {
    const h = {
      beta1: this.beta1,
      beta2: this.beta2,
      eps: this.eps,
      weightDecay: this.weightDecay,
    };
    // Plain Adam's state keeps its earlier shape; DP-AdamBC's records its two settings.
    return this.noiseVariance > 0
      ? { ...h, noiseVariance: this.noiseVariance, varianceFloor: this.varianceFloor }
      : h;
  }

  /** The second moment `v` is a running mean of squares: never negative (its root is taken). */
  protected validSlotValue(slot: string, x: number): boolean {
    return Number.isFinite(x) && (slot !== 'v' || x >= 0);
  }

  protected update(i: number, p: Parameter, g: Float32Array): void {
    const w = p.data;
    const m = this.slot(i, 'm');
    const v = this.slot(i, 'v');
    const t = this.stepCount;
    const b1 = this.beta1;
    const b2 = this.beta2;
    const c1 = 1 - Math.pow(b1, t);
    const c2 = 1 - Math.pow(b2, t);
    const lr = this.lr;
    const wd = this.weightDecay;
    const decoupled = this.decoupled;
    const phi = this.bcVariance;
    const floor = this.bcFloor;
    for (let j = 0; j < w.length; j++) {
      if (decoupled) w[j] -= lr * wd * w[j];
      const d = decoupled ? g[j] : g[j] + wd * w[j];
      m[j] = b1 * m[j] + (1 - b1) * d;
      v[j] = b2 * v[j] + (1 - b2) * d * d;
      const vh = phi > 0 ? Math.max(v[j] / c2 - phi, floor) : v[j] / c2;
      w[j] -= (lr * (m[j] / c1)) / (Math.sqrt(vh) + this.eps);
    }
  }
}

/** Adam (Kingma & Ba) with optional L2 weight decay added to the gradient. */
export class Adam extends AdamBase {
  /** Always `adam`. */
  readonly kind = 'adam';
  protected readonly decoupled = false;
  constructor(params: Parameter[], options: AdamOptions) {
    super(params, options, 0);
  }
}

/** AdamW (Loshchilov & Hutter): weight decay applied to the weights, not the gradient (default 0.01). */
export class AdamW extends AdamBase {
  /** Always `adamw`. */
  readonly kind = 'adamw';
  protected readonly decoupled = true;
  constructor(params: Parameter[], options: AdamOptions) {
    super(params, options, 0.01);
  }
}
