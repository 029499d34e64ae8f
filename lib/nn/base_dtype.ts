/**
 * The element type of a model's frozen base weights, set for every layer at once.
 */
import { Linear, BASE_DTYPES } from './linear';
import { Module } from './module';
import type { BaseDtype } from '../kernels/linalg';
import { requireInstance, requireOneOf } from '../validate';

/**
 * Sets {@link Linear.baseDtype} on every {@link Linear} of `model` (LoRA-wrapped bases
 * included): `'bf16'` stores each frozen weight's packed copy in bfloat16 and accumulates its
 * products in fp32; `'fp32'` (the default of every layer) restores exact fp32 products.
 * Trainable weights, biases, LoRA adapters, norms, clipping, noise and the optimizer stay
 * fp32/double whatever the setting, so the privacy arithmetic is unchanged.
 *
 * @example
 * ```ts
 * const model = new Sequential(new LoraLinear(new Linear(768, 768, { trainable: false }), { r: 8 }));
 * setBaseDtype(model, 'bf16'); // returns 1: one Linear layer set
 * ```
 *
 * @param model the model (any {@link Module})
 * @param dtype `'fp32'` or `'bf16'`
 * @returns the number of {@link Linear} layers set
 * @throws InvalidArgumentError naming `model` or `dtype`
 */
export function setBaseDtype(model: Module, dtype: BaseDtype): number {
  requireInstance('model', model, Module);
  const d = requireOneOf('dtype', dtype, BASE_DTYPES);
  let n = 0;
  for (const [, m] of model.namedModules()) {
    if (m instanceof Linear) {
      m.baseDtype = d;
      n++;
    }
  }
  return n;
}
