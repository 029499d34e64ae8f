/** Stochastic gradient descent with momentum and (L2) weight decay. */
import { Parameter } from '../nn/tensor';
import { Optimizer } from './optimizer';
import { requireNumber, requireObject } from '../validate';

/** Options of {@link SGD}. */
export interface SGDOptions {
  /** Learning rate. */
  lr: number;
  /** Momentum factor (default 0). */
  momentum?: number;
  /** L2 penalty added to the gradient (default 0). */
  weightDecay?: number;
  /** Nesterov momentum (default false). */
  nesterov?: boolean;
}

/** SGD: v = mu v + (g + wd w); w -= lr * (nesterov ? g + mu v : v). */
export class SGD extends Optimizer {
  /** Always `sgd`. */
  readonly kind = 'sgd';
  /** Momentum factor in [0, 1). */
  readonly momentum: number;
  /** L2 penalty added to the gradient. */
  readonly weightDecay: number;
  /** Whether Nesterov momentum is used. */
  readonly nesterov: boolean;

  constructor(params: Parameter[], options: SGDOptions) {
    requireObject('options', options);
    super(params, options.lr);
    this.momentum = options.momentum ?? 0;
    this.weightDecay = options.weightDecay ?? 0;
    this.nesterov = !!options.nesterov;
    requireNumber('momentum', this.momentum, { min: 0, lessThan: 1 });
    requireNumber('weightDecay', this.weightDecay, { min: 0 });
  }

  protected hyper() {
    return { momentum: this.momentum, weightDecay: this.weightDecay, nesterov: this.nesterov };
  }

  protected update(i: number, p: Parameter, g: Float32Array): void {
    const w = p.data;
    const lr = this.lr;
    const wd = this.weightDecay;
    const mu = this.momentum;
    if (mu === 0) {
      for (let j = 0; j < w.length; j++) w[j] -= lr * (g[j] + wd * w[j]);
      return;
    }
    const first = !this.slots[i].momentum;
    const v = this.slot(i, 'momentum');
    for (let j = 0; j < w.length; j++) {
      const d = g[j] + wd * w[j];
      v[j] = first ? d : mu * v[j] + d;
      w[j] -= lr * (this.nesterov ? d + mu * v[j] : v[j]);
    }
  }
}
