/**
 * Element-wise activations (no parameters): ReLU, GELU (tanh form), Tanh.
 */
import { Module, checkGradShape, noForward } from './module';
import { Tensor } from './tensor';
import { scratch } from './workspace';
import { reluBackward, reluForward } from '../kernels/elementwise';

abstract class Elementwise extends Module {
  private saved: Tensor | null = null;
  protected abstract f(x: Float32Array, y: Float32Array): void;
  /** gi = g * f'(x), given x, y = f(x) and g. */
  protected abstract df(x: Float32Array, y: Float32Array, g: Float32Array, gi: Float32Array): void;
  private savedOut: Float32Array | null = null;
  /** Whether `df` reads only y (so the input may be overwritten by the output). */
  protected readonly inPlaceSafe: boolean = false;

  /**
   * Applies the activation. With `inPlace` (honoured by ReLU and Tanh, whose backward reads
   * only the output) `x.data` is overwritten by the result, saving a buffer; the caller must
   * not need x afterwards.
   */
  forward(x: Tensor, inPlace = false): Tensor {
    const y = inPlace && this.inPlaceSafe ? x.data : scratch(x.size);
    this.f(x.data, y);
    this.saved = this.training ? x : null;
    this.savedOut = this.training ? y : null;
    return new Tensor(y, x.shape);
  }

  backward(gradOut: Tensor): Tensor {
    const x = this.saved;
    if (!x || !this.savedOut) throw noForward(`${this.constructor.name}.backward`);
    checkGradShape(gradOut, x.shape, `${this.constructor.name}.backward`);
    const gi = scratch(x.size);
    this.df(x.data, this.savedOut, gradOut.data, gi);
    this.saved = null;
    this.savedOut = null;
    return new Tensor(gi, x.shape);
  }
}

/** max(0, x): x where x > 0, else 0 (NaN and -0 give 0). */
export class ReLU extends Elementwise {
  protected readonly inPlaceSafe = true;
  // Native (per ISA, split over the pool): max(x, 0) with NaN and -0 mapped to +0.
  protected f(x: Float32Array, y: Float32Array): void {
    reluForward(x, y);
  }
  // gi = g where y > 0 (y is 0 or in (0, +inf]), else 0.
  protected df(_x: Float32Array, y: Float32Array, g: Float32Array, gi: Float32Array): void {
    reluBackward(y, g, gi);
  }
}

/** tanh(x). */
export class Tanh extends Elementwise {
  protected readonly inPlaceSafe = true;
  protected f(x: Float32Array, y: Float32Array): void {
    for (let i = 0; i < x.length; i++) y[i] = Math.tanh(x[i]);
  }
  protected df(_x: Float32Array, y: Float32Array, g: Float32Array, gi: Float32Array): void {
    for (let i = 0; i < y.length; i++) gi[i] = g[i] * (1 - y[i] * y[i]);
  }
}

const K = Math.sqrt(2 / Math.PI);

/** GELU, tanh approximation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). */
export class GELU extends Elementwise {
  protected f(x: Float32Array, y: Float32Array): void {
    for (let i = 0; i < x.length; i++) {
      const v = x[i];
      y[i] = 0.5 * v * (1 + Math.tanh(K * (v + 0.044715 * v * v * v)));
    }
  }
  protected df(x: Float32Array, _y: Float32Array, g: Float32Array, gi: Float32Array): void {
    for (let i = 0; i < x.length; i++) {
      const v = x[i];
      const t = Math.tanh(K * (v + 0.044715 * v * v * v));
      const d = 0.5 * (1 + t) + 0.5 * v * (1 - t * t) * K * (1 + 3 * 0.044715 * v * v);
      gi[i] = g[i] * d;
    }
  }
}
