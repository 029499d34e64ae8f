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
  }

  protected hyper() {
    return { beta1: this.beta1, beta2: this.beta2, eps: this.eps, weightDecay: this.weightDecay };
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
    for (let j = 0; j < w.length; j++) {
      if (decoupled) w[j] -= lr * wd * w[j];
      const d = decoupled ? g[j] : g[j] + wd * w[j];
      m[j] = b1 * m[j] + (1 - b1) * d;
      v[j] = b2 * v[j] + (1 - b2) * d * d;
      w[j] -= (lr * (m[j] / c1)) / (Math.sqrt(v[j] / c2) + this.eps);
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
