/**
 * Enumeration helpers for adapters and checkpoints.
 */
import { LoraLinear } from './lora_linear';
import { Module } from './module';
import { Parameter } from './tensor';

/** Every {@link LoraLinear} in the model with its dotted path (e.g. `layers.3`). */
export function loraModules(model: Module): Array<{
  /** Module path in the model, e.g. `fc1`. */
  path: string;
  /** The LoRA layer. */
  module: LoraLinear;
}> {
  return model
    .namedModules()
    .filter(([, m]) => m instanceof LoraLinear)
    .map(([path, m]) => ({ path, module: m as LoraLinear }));
}

/**
 * Trainable parameters by dotted path (`layers.3.lora_A`, `head.weight`, ...).
 * With `excludeLora`, LoRA A/B are left out (leaving, e.g., a classifier head).
 */
export function trainableParameters(
  model: Module,
  options: {
    /** Leave out the LoRA matrices (A and B). */
    excludeLora?: boolean;
  } = {},
): Array<{
  /** Parameter path in the model, e.g. `fc1.weight`. */
  path: string;
  /** The parameter. */
  param: Parameter;
}> {
  const loraParams = new Set<Parameter>();
  if (options.excludeLora)
    for (const { module } of loraModules(model))
      loraParams.add(module.loraAParam).add(module.loraBParam);
  return model
    .namedParameters()
    .filter(([, p]) => p.requiresGrad && !loraParams.has(p))
    .map(([path, param]) => ({ path, param }));
}
