/**
 * Sequential container: children named `0`, `1`, ... (paths `layers.0` when
 * nested under a parent's `layers` field).
 */
import { Module } from './module';
import { Tensor } from './tensor';
import { InvalidArgumentError } from '../errors';

/** Runs its children in order; backward in reverse. */
export class Sequential extends Module {
  /** The layers, applied in order. */
  readonly layers: Module[];

  constructor(...layers: Module[]) {
    super();
    for (const l of layers)
      if (!(l instanceof Module))
        throw new InvalidArgumentError('layers', 'Sequential: layers must all be Modules');
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

  backward(gradOut: Tensor): Tensor {
    let g = gradOut;
    for (let i = this.layers.length - 1; i >= 0; i--) g = this.layers[i].backward(g);
    return g;
  }
}
