/**
 * What a pending per-sample capture keeps alive (lib/nn/per_sample.ts), checked with the
 * garbage collector: with more than one token per sample a LoRA layer materializes its
 * per-sample gradients during backward (B * r * (in + out) floats) and keeps neither its
 * input activation nor its [B, T, out] output gradient until the clip factors are known;
 * with one token per sample it keeps both (the exact outer-product sum needs them, and they
 * are smaller than the materialized tensors).  The one-token case is the control that shows
 * the probe detects a kept array.
 */
import * as v8 from 'v8';
import * as vm from 'vm';
import { Rng } from '../lib/kernels/rng';
import { Linear, LoraLinear, Sequential, Tensor, mseLoss } from '../lib/nn';
import { DPOptimizer } from '../lib/privacy';
import { lcg, randArray } from './helpers/nn_ref';
import { Recorder } from './helpers/sensitivity';

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

const IN = 12;
const OUT = 10;
const R = 3;

function makeModel(): Sequential {
  const layers = [0, 1].map((l) => {
    const lora = new LoraLinear(new Linear(l ? OUT : IN, OUT, { trainable: false, seed: 3 + l }), {
      r: R,
      seed: 4 + l,
    });
    lora.loraB = randArray(OUT * R, lcg(5 + l), 0.5);
    return lora;
  });
  return new Sequential(...layers);
}

/**
 * Runs forward and backward on a fresh batch in perSample mode, leaving the capture pending, and
 * returns weak references to the batch input, the layer-1 input (layer 0's output) and the
 * output gradient (nothing else holds them here).
 */
function backwardOnly(
  m: Sequential,
  batch: number,
  seq: number,
): { input: WeakRef<Float32Array>; hidden: WeakRef<Float32Array>; grad: WeakRef<Float32Array> } {
  const x = new Tensor(randArray(batch * seq * IN, lcg(11), 2), [batch, seq, IN]);
  const h = m.layers[0].forward(x);
  const out = m.layers[1].forward(h);
  const g = mseLoss(out, randArray(batch * seq * OUT, lcg(12))).grad;
  m.backward(g);
  return { input: new WeakRef(x.data), hidden: new WeakRef(h.data), grad: new WeakRef(g.data) };
}

/** Lets the current job end (WeakRef targets stay alive until then), then collects twice. */
async function collect(): Promise<void> {
  await new Promise((r) => setImmediate(r));
  gc();
  gc();
}

describe('per-sample capture memory', () => {
  test('seq > 1: activations and output gradients are collectable while the capture is pending', async () => {
    const m = makeModel();
    const dp = new DPOptimizer(m, new Recorder(m.trainableParameters(), 1), {
      noiseMultiplier: 0,
      maxGradNorm: 1,
      expectedBatchSize: 4,
      rng: new Rng({ seed: new Uint8Array(32) }),
    });
    const refs = backwardOnly(m, 4, 6);
    await collect();
    expect(dp.hasPendingCapture()).toBe(true);
    expect(refs.hidden.deref()).toBeUndefined();
    expect(refs.grad.deref()).toBeUndefined();
    expect(refs.input.deref()).toBeUndefined();
    dp.step(); // the materialized tensors are all the step needs
    expect(dp.lastStepStats?.samples).toBe(4);
  });

  test('seq = 1 (control): the kept outer-product factors are still reachable', async () => {
    const m = makeModel();
    const dp = new DPOptimizer(m, new Recorder(m.trainableParameters(), 1), {
      noiseMultiplier: 0,
      maxGradNorm: 1,
      expectedBatchSize: 4,
      rng: new Rng({ seed: new Uint8Array(32) }),
    });
    const refs = backwardOnly(m, 4, 1);
    await collect();
    expect(refs.hidden.deref()).toBeDefined(); // layer 1's input, for lora_A's sum
    expect(refs.grad.deref()).toBeDefined(); // layer 1's output gradient, for lora_B's sum
    dp.step();
    await collect();
    expect(refs.hidden.deref()).toBeUndefined();
    expect(refs.grad.deref()).toBeUndefined();
  });
});
