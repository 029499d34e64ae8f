/**
 * The adapter of a trained model in the PEFT layout: every LoRA layer's A and B under its module
 * path, plus a linear classification head saved whole (`modules_to_save: ['head']`).
 */
import type { AdapterConfig, AdapterData } from '../io/peft_adapter';
import type { Linear } from '../nn/linear';
import type { Module } from '../nn/module';
import { loraModules } from '../nn/lora_modules';

/**
 * The adapter data of `model`: copies of the A and B of each LoRA layer (in module order) and of
 * `head`'s weight `[out, in]` and bias, with `config`.
 *
 * @param model - the model holding the LoRA layers
 * @param head - its linear head (saved as `head.weight` and `head.bias`)
 * @param config - the adapter configuration (see `defaultAdapterConfig`)
 */
export function loraHeadAdapter(model: Module, head: Linear, config: AdapterConfig): AdapterData {
  return {
    config,
    loras: loraModules(model).map(({ path, module: m }) => ({
      path,
      loraA: m.loraA.slice(),
      loraB: m.loraB.slice(),
      r: m.r,
      inDim: m.inFeatures,
      outDim: m.outFeatures,
    })),
    extra: {
      'head.weight': { data: head.weight.data.slice(), shape: [head.outFeatures, head.inFeatures] },
      ...(head.bias
        ? { 'head.bias': { data: head.bias.data.slice(), shape: [head.outFeatures] } }
        : {}),
    },
  };
}
