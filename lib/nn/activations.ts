/**
 * Element-wise activations (no parameters): ReLU, GELU (tanh form), Tanh.
 */
import { Module, checkGradShape, noForward } from './module';
import { Tensor } from './tensor';

abstract class Elementwise extends Module {
  private saved: Tensor | null = null;
  protected abstract f(x: Float32Array, y: Float32Array): void;
  /** gi = g * f'(x), given x, y = f(x) and g. */
  protected abstract df(x: Float32Array, y: Float32Array, g: Float32Array, gi: Float32Array): void;
  private savedOut: Float32Array | null = null;

  forward(x: Tensor): Tensor {
    const y = new Float32Array(x.size);
    this.f(x.data, y);
    this.saved = this.training ? x : null;
    this.savedOut = this.training ? y : null;
    return new Tensor(y, x.shape);
  }

  backward(gradOut: Tensor): Tensor {
    const x = this.saved;
    if (!x || !this.savedOut) throw noForward(`${this.constructor.name}.backward`);
    checkGradShape(gradOut, x.shape, `${this.constructor.name}.backward`);
    const gi = new Float32Array(x.size);
    this.df(x.data, this.savedOut, gradOut.data, gi);
    this.saved = null;
    this.savedOut = null;
    return new Tensor(gi, x.shape);
  }
}

/** max(0, x). */
export class ReLU extends Elementwise {
  protected f(x: Float32Array, y: Float32Array): void {
    for (let i = 0; i < x.length; i++) y[i] = x[i] > 0 ? x[i] : 0;
  }
  protected df(x: Float32Array, _y: Float32Array, g: Float32Array, gi: Float32Array): void {
    for (let i = 0; i < x.length; i++) gi[i] = x[i] > 0 ? g[i] : 0;
  }
}

/** tanh(x). */
export class Tanh extends Elementwise {
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
