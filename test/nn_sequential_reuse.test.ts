/**
 * Sequential reuses its internal activations and gradients from one pass to the next
 * (lib/nn/sequential.ts): the results must be bit-identical to running the same layers with
 * plain allocation, over several steps with changing inputs, non-private and private (one
 * token per sample, where the pending capture reads the layers' output gradients, and several,
 * where it materializes them); what is handed to the caller must never be overwritten by a
 * later step; a child of unknown lifetimes turns the reuse off.
 */
import { Rng } from '../lib/kernels/rng';
import { GELU, Linear, LoraLinear, Module, ReLU, Sequential, Tensor, mseLoss } from '../lib/nn';
import { DPOptimizer } from '../lib/privacy';
import {
  BUFFER_REUSE,
  Workspace,
  outsideWorkspace,
  releaseScratch,
  scratch,
} from '../lib/nn/workspace';
import { lcg, randArray, rawGrad, relErr } from './helpers/nn_ref';
import { Recorder } from './helpers/sensitivity';

const W = 8;

/** The same layers every time (fixed seeds): LoRA over frozen bases, activations, a trained Linear. */
function layers(dropout = 0): Module[] {
  const lora = (seed: number, drop = 0): LoraLinear => {
    const l = new LoraLinear(new Linear(W, W, { trainable: false, seed }), {
      r: 3,
      seed: seed + 1,
      dropout: drop,
    });
    l.loraB = randArray(W * 3, lcg(seed + 2), 0.5);
    return l;
  };
  return [
    lora(10),
    new ReLU(),
    lora(20, dropout),
    new Linear(W, W, { seed: 30 }),
    new GELU(),
    lora(40),
    lora(50),
  ];
}

/** The reference: the same layers run one by one, every array newly allocated. */
class Chain extends Module {
  constructor(readonly ls: Module[]) {
    super();
  }
  children(): Array<[string, Module]> {
    return this.ls.map((m, i) => [String(i), m]);
  }
  forward(x: Tensor): Tensor {
    return this.ls.reduce((h, l) => l.forward(h), x);
  }
  backward(g: Tensor, inputGrad = true): Tensor {
    for (let i = this.ls.length - 1; i >= 0; i--) g = this.ls[i].backward(g, i > 0 || inputGrad);
    return g;
  }
}

function input(step: number, batch: number, seq: number): Tensor {
  return new Tensor(randArray(batch * seq * W, lcg(100 + step), 2), [batch, seq, W]);
}

function target(step: number, batch: number, seq: number): Float32Array {
  return randArray(batch * seq * W, lcg(200 + step));
}

const bits = (a: Float32Array | Float64Array): number[] => Array.from(a);

describe('Sequential buffer reuse', () => {
  // Every buffer taken back for reuse is filled with NaN: a read after its reuse point
  // changes the results compared below.
  beforeAll(() => {
    BUFFER_REUSE.poison = true;
  });
  afterAll(() => {
    BUFFER_REUSE.poison = false;
  });

  test('non-private: bit-identical outputs, input gradients and parameter gradients; outputs kept by the caller stay intact', () => {
    const m = new Sequential(...layers(0.25));
    const ref = new Chain(layers(0.25));
    const kept: Array<{ out: Tensor; gi: Tensor; outCopy: number[]; giCopy: number[] }> = [];
    for (let step = 0; step < 4; step++) {
      const [batch, seq] = step === 2 ? [3, 5] : [4, 6]; // a different shape in between
      const x = input(step, batch, seq);
      m.zeroGrad();
      ref.zeroGrad();
      const out = m.forward(x);
      const outRef = ref.forward(x);
      expect(bits(out.data)).toEqual(bits(outRef.data));
      const g = mseLoss(out, target(step, batch, seq)).grad;
      const gRef = mseLoss(outRef, target(step, batch, seq)).grad;
      const gi = m.backward(g);
      const giRef = ref.backward(gRef);
      expect(bits(gi.data)).toEqual(bits(giRef.data));
      const ps = m.trainableParameters();
      const psRef = ref.trainableParameters();
      expect(ps.length).toBe(psRef.length);
      ps.forEach((p, i) => expect(bits(p.grad!)).toEqual(bits(psRef[i].grad!)));
      // The caller's arrays: new memory every step, never another step's.
      for (const k of kept) {
        expect(k.out.data.buffer).not.toBe(out.data.buffer);
        expect(k.gi.data.buffer).not.toBe(gi.data.buffer);
        expect(k.gi.data.buffer).not.toBe(out.data.buffer);
      }
      kept.push({ out, gi, outCopy: bits(out.data), giCopy: bits(gi.data) });
    }
    // Later steps did not write into what the caller kept.
    for (const k of kept) {
      expect(bits(k.out.data)).toEqual(k.outCopy);
      expect(bits(k.gi.data)).toEqual(k.giCopy);
    }
    // The internal buffers were reused: the workspace holds a fixed set after the first steps.
    const ws = m['workspace'];
    const before = ws.floats();
    expect(before).toBeGreaterThan(0);
    const x = input(9, 4, 6);
    m.backward(mseLoss(m.forward(x), target(9, 4, 6)).grad);
    expect(ws.floats()).toBe(before);
  });

  test.each([
    [1, 'the capture reads the output gradients'],
    [5, 'the capture materializes the per-sample gradients'],
  ])('private, seq %i (%s): bit-identical clipped sums over several steps', (seq) => {
    const run = (model: Module): Float32Array[][] => {
      const rec = new Recorder(model.trainableParameters(), 1);
      const dp = new DPOptimizer(model, rec, {
        noiseMultiplier: 0,
        maxGradNorm: 0.5,
        expectedBatchSize: 4,
        rng: new Rng({ seed: new Uint8Array(32) }),
      });
      const sums: Float32Array[][] = [];
      for (let step = 0; step < 3; step++) {
        const out = model.forward(input(step, 4, seq));
        model.backward(mseLoss(out, target(step, 4, seq)).grad, false);
        dp.step();
        sums.push(rec.last.map((v) => Float32Array.from(v)));
      }
      return sums;
    };
    const got = run(new Sequential(...layers()));
    const want = run(new Chain(layers()));
    expect(got.length).toBe(3);
    got.forEach((step, s) => {
      expect(step.length).toBe(want[s].length);
      step.forEach((v, i) => expect(bits(v)).toEqual(bits(want[s][i])));
      // Not all zero: the test compares real sums.
      expect(step.some((v) => v.some((e) => e !== 0))).toBe(true);
    });
  });

  test('private, seq 5: norms and clipped sums against per-sample raw gradients, step after step (reused per-sample buffers)', () => {
    // Several layers with per-sample tensors of one size: each step's captures take the
    // buffers the previous step's released; a buffer shared between two live captures, or
    // handed out before its capture is released, changes the sums.
    const batch = 4;
    const seq = 5;
    const model = new Sequential(...layers());
    const params = model.trainableParameters();
    const C = 0.5;
    for (let step = 0; step < 3; step++) {
      const x = input(step, batch, seq);
      const t = target(step, batch, seq);
      const loss = (y: Tensor, i0: number, i1: number) =>
        mseLoss(y, t.subarray(i0 * seq * W, i1 * seq * W));
      // Reference: each sample's raw gradient (sum mode, the sample alone), clipped in double.
      const n = params.reduce((s, p) => s + p.size, 0);
      const want = new Float64Array(n);
      for (let i = 0; i < batch; i++) {
        const gi = rawGrad(model, params, x, loss, i, i + 1);
        const norm = Math.sqrt(gi.reduce((s, v) => s + v * v, 0));
        const f = Math.min(1, C / (norm + 1e-6));
        for (let j = 0; j < n; j++) want[j] += f * gi[j];
      }
      model.setGradMode('perSample');
      const rec = new Recorder(params, 1);
      const dp = new DPOptimizer(model, rec, {
        noiseMultiplier: 0,
        maxGradNorm: C,
        expectedBatchSize: 1,
        rng: new Rng({ seed: new Uint8Array(32) }),
      });
      model.backward(mseLoss(model.forward(x), t).grad, false);
      dp.step();
      const got = new Float64Array(n);
      let o = 0;
      rec.last.forEach((v) => {
        got.set(v, o);
        o += v.length;
      });
      expect(o).toBe(n);
      expect(relErr(got, want)).toBeLessThan(1e-4);
      model.setGradMode('sum');
    }
  });

  test('a child of unknown lifetimes (a subclass keeping its inputs) turns the reuse off', () => {
    class Probe extends Linear {
      readonly seen: Tensor[] = [];
      forward(x: Tensor): Tensor {
        this.seen.push(x);
        return super.forward(x);
      }
    }
    const probe = new Probe(W, W, { trainable: false, seed: 60 });
    const m = new Sequential(...layers().slice(0, 3), probe, new ReLU());
    const copies: number[][] = [];
    for (let step = 0; step < 3; step++) {
      m.backward(mseLoss(m.forward(input(step, 2, 3)), target(step, 2, 3)).grad);
      copies.push(bits(probe.seen[step].data));
    }
    probe.seen.forEach((t, i) => expect(bits(t.data)).toEqual(copies[i]));
    expect(m['workspace'].floats()).toBe(0);
  });

  test('inputGrad = false: backward(g) skips the input gradient, parameter gradients unchanged', () => {
    const a = new Sequential(...layers());
    const b = new Sequential(...layers());
    b.inputGrad = false;
    const x = input(1, 3, 2);
    const ga = a.backward(mseLoss(a.forward(x), target(1, 3, 2)).grad);
    const gb = b.backward(mseLoss(b.forward(x), target(1, 3, 2)).grad);
    expect(ga.size).toBe(3 * 2 * W);
    expect(gb.size).toBe(0);
    const pb = b.trainableParameters();
    a.trainableParameters().forEach((p, i) => expect(bits(pb[i].grad!)).toEqual(bits(p.grad!)));
    // An explicit argument still wins.
    const gc = b.backward(mseLoss(b.forward(x), target(1, 3, 2)).grad, true);
    expect(bits(gc.data)).toEqual(bits(ga.data));
  });

  test('releaseScratch: only a buffer the active pass handed out, once; outsideWorkspace allocates', () => {
    const ws = new Workspace();
    const owner = new Sequential();
    expect(releaseScratch(new Float32Array(4))).toBe(false); // no workspace active
    ws.run(owner, true, () => {
      const a = scratch(64);
      const b = scratch(64);
      expect(b.buffer).not.toBe(a.buffer);
      expect(releaseScratch(new Float32Array(64))).toBe(false); // not the pass's
      expect(releaseScratch(a)).toBe(true);
      expect(releaseScratch(a)).toBe(false); // already back
      const c = scratch(64);
      expect(c.buffer).toBe(a.buffer); // reused within the pass
      const d = scratch(64);
      expect(d.buffer).not.toBe(b.buffer); // b is still in use
      const e = outsideWorkspace(() => scratch(64));
      expect([a, b, c, d].some((v) => v.buffer === e.buffer)).toBe(false);
      expect(Array.from(e)).toEqual(new Array(64).fill(0));
    });
  });
});
