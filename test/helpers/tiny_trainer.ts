/**
 * The small trainer problem several test files share: `n` records of 6 features with two
 * separable classes, and a LoRA MLP over them (6 -> 8 LoRA -> ReLU -> 2).
 */
import { Linear, LoraLinear, ReLU, Sequential } from '../../lib/nn';
import { arrayDataset } from '../../lib/trainer/private_trainer';

/** Features per record. */
export const TINY_FEATURES = 6;

/** `n` records: label i % 2, features cos(1.7 i + j), the first shifted by the label. */
export function tinyData(n: number) {
  const F = TINY_FEATURES;
  const x = new Float32Array(n * F);
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    y[i] = i % 2;
    for (let j = 0; j < F; j++) x[i * F + j] = Math.cos(i * 1.7 + j) + (j === 0 ? 2 * y[i] - 1 : 0);
  }
  return arrayDataset(x, y, F);
}

/** The model, with fixed seeds; `r` and `method` change the LoRA layer's trainable parameters. */
export function tinyModel(r = 2, method: 'vanilla' | 'ffa' = 'vanilla'): Sequential {
  return new Sequential(
    new LoraLinear(new Linear(TINY_FEATURES, 8, { seed: 1 }), { r, alpha: 4, seed: 2, method }),
    new ReLU(),
    new Linear(8, 2, { seed: 3 }),
  );
}
