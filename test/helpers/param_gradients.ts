/**
 * Test helpers over a model's parameters: their values or gradients flattened into one array,
 * and an SGD that records the gradient the DP optimizer hands it.
 */
import { Parameter } from '../../lib/nn';
import { SGD } from '../../lib/optim';

/** `get(p)` of every parameter, concatenated in order (zeros where it is null). */
export function flatParams(
  ps: Parameter[],
  get: (p: Parameter) => ArrayLike<number> | null,
): Float64Array {
  const out = new Float64Array(ps.reduce((s, p) => s + p.size, 0));
  let o = 0;
  for (const p of ps) {
    const g = get(p);
    if (g) for (let j = 0; j < p.size; j++) out[o + j] = g[j];
    o += p.size;
  }
  return out;
}

/** Records the private gradient the DP optimizer hands over (sum / expected batch). */
export class RecordingSGD extends SGD {
  /** The gradients at the last step, flattened. */
  last: Float64Array | null = null;
  step(): void {
    this.last = flatParams(this.params, (p) => p.grad);
    super.step();
  }
}
