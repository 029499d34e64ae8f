/**
 * Sequential container: children named `0`, `1`, ... (paths `layers.0` when
 * nested under a parent's `layers` field).
 */
import { Module } from './module';
import { Tensor } from './tensor';
import { requireInstance } from '../validate';

/** Runs its children in order; backward in reverse. */
export class Sequential extends Module {
  /** The layers, applied in order. */
  readonly layers: Module[];

  constructor(...layers: Module[]) {
    super();
    layers.forEach((l, i) => requireInstance(`layers[${i}]`, l, Module, 'a Module'));
    this.layers = layers;
  }

  children(): Array<[string, Module]> {
    return this.layers.map((m, i) => [String(i), m]);
  }

  forward(x: Tensor): Tensor {
    let h = x;
    for (const l of this.layers) h = l.forward(h);
    return h;
  }

  /**
   * Runs the layers' backward in reverse. `inputGrad = false` lets the first layer skip
   * the gradient with respect to the model input (for a frozen first layer, one full
   * product per step) and returns an empty tensor instead of it.
   */
  backward(gradOut: Tensor, inputGrad = true): Tensor {
    let g = gradOut;
    for (let i = this.layers.length - 1; i >= 0; i--)
      g = this.layers[i].backward(g, i > 0 || inputGrad);
    return g;
  }
}
