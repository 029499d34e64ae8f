/**
 * The speed work on the sequence blocks keeps their results: scratch memory reused across
 * passes (never while a per-sample capture may still read it, never handed to the caller),
 * the branch-free ReLU (bitwise the same as `x > 0 ? x : 0`), the polynomial exp of the
 * attention softmax (against a double-precision softmax), the one-pass LayerNorm statistics
 * (against a two-pass double reference, offset rows included), the cached timing signal,
 * the skipped input gradient of the first trained layer (same parameter gradients), and the
 * last layer fused with the mean pooling (fc2 once per sequence) against layer + pooling.
 */
import * as path from 'path';
import { LayerNorm, Parameter, PerSampleLayer, ReLU, Tensor } from '../lib/nn';
import { attentionForward } from '../lib/nn/attention';
import { applyLora } from '../lib/nn/lora_targets';
import { Module, isPerSampleModule } from '../lib/nn/module';
import { PER_SAMPLE_BUDGET } from '../lib/nn/per_sample';
import { maskFromLengths } from '../lib/nn/sequence_mask';
import { TimingSignal } from '../lib/nn/timing_signal';
import { MeanPooling } from '../lib/nn/pooling';
import { TransformerLayer } from '../lib/nn/transformer_layer';
import { Workspace, scratch, scratchZeroed } from '../lib/nn/workspace';
import { crossEntropyLoss } from '../lib/nn/losses';
import { defaultUseLiteDir } from '../lib/models/use_lite/model';
import { readTfjsWeights } from '../lib/models/use_lite/weights';
import {
  CachedPart,
  USE_LITE_TARGETS,
  forwardRows,
  loraClassifier,
} from '../lib/models/use_lite/finetune';
import { lcg, randArray } from './helpers/nn_ref';

jest.setTimeout(300000);

/** A module with one per-sample layer whose capture can be left pending. */
class Holder extends Module {
  readonly layer = new (class extends PerSampleLayer {
    forward(x: Tensor): Tensor {
      return x;
    }
    backward(g: Tensor): Tensor {
      return g;
    }
    pend(): void {
      this.beginCapture(1);
    }
  })();
  children(): Array<[string, Module]> {
    return [['layer', this.layer]];
  }
  forward(x: Tensor): Tensor {
    return x;
  }
  backward(g: Tensor): Tensor {
    return g;
  }
}

describe('Workspace', () => {
  test('outside a workspace scratch gives new zeroed arrays', () => {
    const a = scratch(8);
    const b = scratch(8);
    expect(a.buffer).not.toBe(b.buffer);
    expect(Array.from(a)).toEqual(new Array(8).fill(0));
  });

  test('buffers are distinct within a pass, reused by the next, zeroed on request', () => {
    const ws = new Workspace();
    const owner = new Holder();
    const first = ws.run(owner, true, () => [scratch(100), scratch(100), scratch(7)]);
    expect(new Set(first.map((b) => b.buffer)).size).toBe(3);
    first.forEach((b) => b.fill(5));
    const second = ws.run(owner, true, () => [scratch(100), scratch(100), scratchZeroed(7)]);
    expect(new Set(second.map((b) => b.buffer))).toEqual(new Set(first.map((b) => b.buffer)));
    expect(Array.from(second[2])).toEqual(new Array(7).fill(0));
    // Without a new pass, nothing handed out in this pass is handed out again.
    const more = ws.run(owner, false, () => scratch(100));
    expect(first.some((b) => b.buffer === more.buffer)).toBe(false);
    expect(ws.floats()).toBeGreaterThanOrEqual(307);
  });

  test('a pending per-sample capture keeps the previous pass alive', () => {
    const ws = new Workspace();
    const owner = new Holder();
    const first = ws.run(owner, true, () => [scratch(64), scratch(64)]);
    owner.layer.pend();
    const second = ws.run(owner, true, () => [scratch(64), scratch(64)]);
    for (const b of second) expect(first.some((a) => a.buffer === b.buffer)).toBe(false);
    owner.layer.releaseCapture();
    const third = ws.run(owner, true, () => [scratch(64), scratch(64)]);
    expect(new Set(third.map((b) => b.buffer))).toEqual(new Set(second.map((b) => b.buffer)));
  });
});

describe('ReLU', () => {
  const special = [NaN, -NaN, 0, -0, 1, -1, Infinity, -Infinity, 1e-45, -1e-45, 3.5, -2e30];
  const negNaN = new Float32Array(1);
  new Int32Array(negNaN.buffer)[0] = 0xffc00001 | 0;
  const values = Float32Array.from([...special, negNaN[0], ...randArray(500, lcg(3))]);

  test('forward and backward are bitwise x > 0 ? x : 0 and x > 0 ? g : 0, in place too', () => {
    const g = randArray(values.length, lcg(4));
    for (const inPlace of [false, true]) {
      const r = new ReLU();
      r.train();
      const x = new Tensor(values.slice(), [values.length, 1]);
      const y = r.forward(x, inPlace);
      expect(y.data === x.data).toBe(inPlace);
      const gi = r.backward(new Tensor(g.slice(), [values.length, 1]));
      for (let i = 0; i < values.length; i++) {
        const v = values[i];
        expect(Object.is(y.data[i], v > 0 ? v : 0)).toBe(true);
        expect(Object.is(gi.data[i], v > 0 ? g[i] : 0)).toBe(true);
      }
    }
  });
});

describe('attention softmax', () => {
  test('probabilities within 2e-6 of a double-precision softmax, padding 0, empty rows uniform', () => {
    const batch = 4;
    const seq = 6;
    const heads = 2;
    const dHead = 3;
    const d = heads * dHead;
    const rnd = lcg(11);
    const q = randArray(batch * seq * d, rnd, 4);
    const k = randArray(batch * seq * d, rnd, 4);
    const v = randArray(batch * seq * d, rnd);
    const mask = maskFromLengths([6, 3, 0, 5], seq);
    mask.valid[3 * seq + 1] = 0; // sequence 3: keys 0, 2, 3, 4 (not a prefix)
    const scale = 3; // scores of magnitude up to ~100: exp over a wide range
    const { probs } = attentionForward(q, k, v, batch, seq, heads, dHead, scale, mask);
    let worst = 0;
    for (let b = 0; b < batch; b++)
      for (let h = 0; h < heads; h++)
        for (let t = 0; t < seq; t++) {
          const row = ((b * heads + h) * seq + t) * seq;
          const valid = (s: number) => mask.valid[b * seq + s] === 1;
          const n = [...Array(seq).keys()].filter(valid).length;
          const sc = [...Array(seq).keys()].map((s) => {
            let dot = 0;
            for (let j = 0; j < dHead; j++)
              dot += q[(b * seq + t) * d + h * dHead + j] * k[(b * seq + s) * d + h * dHead + j];
            return Math.fround(scale * dot);
          });
          const mx = Math.max(...sc.filter((_, s) => valid(s)));
          const e = sc.map((x, s) => (valid(s) ? Math.exp(x - mx) : 0));
          const sum = e.reduce((a, c) => a + c, 0);
          for (let s = 0; s < seq; s++) {
            const want = n === 0 ? 1 / seq : e[s] / sum;
            if (n > 0 && !valid(s)) expect(probs[row + s]).toBe(0);
            worst = Math.max(worst, Math.abs(probs[row + s] - want));
          }
        }
    // The float scores of the kernel may differ from the reference's in the last bit.
    expect(worst).toBeLessThan(2e-6);
    expect(worst).toBeGreaterThan(0);
  });
});

describe('LayerNorm statistics', () => {
  test('rows far from zero and constant rows match a two-pass double reference', () => {
    const d = 64;
    const rows = 5;
    const rnd = lcg(21);
    const x = new Float32Array(rows * d);
    const offsets = [0, 1e4, -3e5, 7, 0];
    const spreads = [1, 0.05, 3, 1e-3, 0];
    for (let r = 0; r < rows; r++)
      for (let j = 0; j < d; j++) x[r * d + j] = offsets[r] + spreads[r] * (2 * rnd() - 1);
    const ln = new LayerNorm(d, { eps: 1e-6, trainable: false });
    ln.weight.data.set(randArray(d, rnd));
    ln.bias.data.set(randArray(d, rnd));
    ln.eval();
    const y = ln.forward(new Tensor(x, [rows, d])).data;
    for (let r = 0; r < rows; r++) {
      let mean = 0;
      for (let j = 0; j < d; j++) mean += x[r * d + j];
      mean /= d;
      let v = 0;
      for (let j = 0; j < d; j++) v += (x[r * d + j] - mean) ** 2;
      const is = 1 / Math.sqrt(v / d + 1e-6);
      for (let j = 0; j < d; j++) {
        const want = (x[r * d + j] - mean) * is * ln.weight.data[j] + ln.bias.data[j];
        expect(Math.abs(y[r * d + j] - want)).toBeLessThan(1e-5 * (1 + Math.abs(want)));
      }
    }
    // The constant row normalizes to exactly the bias.
    for (let j = 0; j < d; j++) expect(y[4 * d + j]).toBe(ln.bias.data[j]);
  });
});

describe('TimingSignal', () => {
  test('the cached table grows and gives the signal of the formula', () => {
    const ts = new TimingSignal(8);
    ts.eval();
    ts.forward(new Tensor(new Float32Array(1 * 3 * 8), [1, 3, 8]));
    const y = ts.forward(new Tensor(new Float32Array(2 * 40 * 8), [2, 40, 8])).data;
    for (let b = 0; b < 2; b++)
      for (let t = 0; t < 40; t++)
        for (let i = 0; i < 4; i++) {
          const a = Math.fround(t * ts.invTimescales[i]);
          expect(y[(b * 40 + t) * 8 + i]).toBe(Math.fround(Math.sin(a)));
          expect(y[(b * 40 + t) * 8 + 4 + i]).toBe(Math.fround(Math.cos(a)));
        }
  });
});

describe('TransformerLayer.backward without an input gradient', () => {
  for (const lnTrains of [true, false])
    test(`gives the same parameter gradients (LoRA, LN1 ${lnTrains ? 'trained' : 'frozen'})`, () => {
      const grads = [true, false].map((inputGrad) => {
        const layer = new TransformerLayer({ dIn: 6, dModel: 8, heads: 2, dFF: 10, seed: 5 });
        for (const p of layer.parameters()) p.requiresGrad = false;
        applyLora(layer, ['q_proj', 'fc1'], { r: 2, seed: 2 });
        for (const p of layer.trainableParameters()) p.data.set(randArray(p.size, lcg(p.size)));
        layer.ln1.weight.requiresGrad = lnTrains;
        const mask = maskFromLengths([4, 2], 4);
        layer.setMask(mask);
        layer.train();
        layer.zeroGrad();
        const y = layer.forward(new Tensor(randArray(2 * 4 * 6, lcg(9)), [2, 4, 6]));
        const gi = layer.backward(new Tensor(randArray(y.size, lcg(10)), y.shape), inputGrad);
        expect(gi.size === 0).toBe(!inputGrad);
        return layer.trainableParameters().map((p) => Array.from(p.grad!));
      });
      expect(grads[0].length).toBe(lnTrains ? 5 : 4);
      expect(grads[0].every((g) => g.some((v) => v !== 0))).toBe(true);
      expect(grads[1]).toEqual(grads[0]);
    });
});

describe('TransformerLayer fused with the mean pooling', () => {
  /** A widening pre-LN layer with LoRA (nonzero) on every projection. */
  const layer = () => {
    const l = new TransformerLayer({ dIn: 6, dModel: 8, heads: 2, dFF: 10, seed: 8 });
    for (const p of l.parameters()) p.requiresGrad = false;
    applyLora(l, ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'fc1', 'fc2'], { r: 2, seed: 3 });
    for (const p of l.trainableParameters()) p.data.set(randArray(p.size, lcg(p.size + 1), 0.5));
    return l;
  };
  const batch = 3;
  const seq = 4;
  const mask = maskFromLengths([4, 2, 0], seq); // the third sequence has no real token
  const gappy = maskFromLengths([4, 2, 0], seq);
  gappy.valid.set([1, 0, 1, 1], 0); // the first sequence's real tokens are not a prefix
  const x = new Tensor(randArray(batch * seq * 6, lcg(30)), [batch, seq, 6]);
  const w = randArray(batch * 8, lcg(31));

  const run = (fused: boolean, mode: 'sum' | 'perSample', m = mask) => {
    const l = layer();
    const pool = new MeanPooling();
    l.setMask(m);
    pool.setMask(m);
    l.train();
    pool.train();
    l.setGradMode(mode);
    l.zeroGrad();
    const y = fused ? l.forwardPooled(x) : pool.forward(l.forward(x));
    const g = new Tensor(w.slice(), [batch, 8]);
    const gi = fused ? l.backwardPooled(g) : l.backward(pool.backward(g));
    const params = l.trainableParameters();
    const normsSq = new Float64Array(batch);
    if (mode === 'perSample')
      for (const [, m] of l.namedModules())
        if (isPerSampleModule(m) && m.captureBatch() >= 0) {
          m.addPerSampleNormsSq(normsSq);
          m.releaseCapture();
        }
    return {
      y: Array.from(y.data),
      gi: Array.from(gi.data),
      grads: params.map((p) => Array.from(p.grad ?? [])),
      normsSq: Array.from(normsSq),
    };
  };
  const close = (a: number[], b: number[], tol: number) => {
    expect(a.length).toBe(b.length);
    const scale = Math.max(...b.map(Math.abs));
    expect(scale).toBeGreaterThan(0);
    for (let i = 0; i < a.length; i++) expect(Math.abs(a[i] - b[i])).toBeLessThan(tol * scale);
  };

  test('output, input gradient and parameter gradients equal layer + pooling', () => {
    const ref = run(false, 'sum');
    const got = run(true, 'sum');
    close(got.y, ref.y, 1e-6);
    expect(got.y.slice(16)).toEqual(new Array(8).fill(0)); // no real token: 0
    close(got.gi, ref.gi, 1e-5);
    expect(got.grads.length).toBe(12);
    got.grads.forEach((g, i) => close(g, ref.grads[i], 1e-5));
  });

  test('the same with real tokens that are not a prefix', () => {
    const ref = run(false, 'sum', gappy);
    const got = run(true, 'sum', gappy);
    close(got.y, ref.y, 1e-6);
    close(got.gi, ref.gi, 1e-5);
    got.grads.forEach((g, i) => close(g, ref.grads[i], 1e-5));
  });

  test('per-sample squared norms equal those of layer + pooling', () => {
    const ref = run(false, 'perSample');
    const got = run(true, 'perSample');
    expect(ref.normsSq[0]).toBeGreaterThan(0);
    expect(ref.normsSq[2]).toBe(0); // no real token: no gradient
    close(got.normsSq, ref.normsSq, 1e-5);
  });
});

describe('USE-Lite passes in a workspace', () => {
  const weights = readTfjsWeights(path.join(defaultUseLiteDir(), 'model.json'));
  /** Cached layer-1 inputs of `n` examples of lengths 3..(n+2), with random hidden states. */
  const data = (n: number, seed: number): CachedPart => {
    const r = lcg(seed);
    return {
      rows: Array.from({ length: n }, (_, i) => randArray((3 + i) * 512, r)),
      y: Int32Array.from({ length: n }, (_, i) => i % 2),
      n,
    };
  };
  /** The same LoRA classifier (random nonzero adapters and head) on every call. */
  const model = () => {
    const rnd = lcg(17);
    const clf = loraClassifier(weights, 2, {
      rank: 2,
      alpha: 4,
      method: 'vanilla',
      targets: [...USE_LITE_TARGETS],
      layers: [1],
      seed: 7,
    });
    for (const p of clf.trainableParameters()) p.data.set(randArray(p.size, rnd, 0.05));
    return clf;
  };

  test('batchTensors with reuse: one buffer, padding zeroed, a new array while a capture is pending', () => {
    const clf = model();
    const long = data(4, 5); // lengths 3..6: the buffer gets dirty past the shorter rows
    const a = clf.batchTensors(long.rows, true).input;
    const short = data(2, 6);
    const b = clf.batchTensors(short.rows, true).input;
    expect(b.data.buffer).toBe(a.data.buffer);
    const fresh = clf.batchTensors(short.rows).input;
    expect(fresh.data.buffer).not.toBe(a.data.buffer);
    expect(Array.from(b.data)).toEqual(Array.from(fresh.data)); // zero padding, same rows
    clf.train();
    clf.setGradMode('perSample');
    const y = clf.forward(clf.batchInput(short.rows, true));
    clf.backward(crossEntropyLoss(y, [0, 1]).grad, false);
    const c = clf.batchTensors(short.rows, true).input;
    expect(c.data.buffer).not.toBe(a.data.buffer);
    clf.setGradMode('sum');
  });

  test('encodePrefix between a training forward and its backward leaves the gradients alone', () => {
    const ids = [
      [5, 6, 7, 8],
      [9, 10, 11],
    ];
    const grads = [false, true].map((interleave) => {
      const clf = model();
      const rows = clf.encodePrefix(ids);
      clf.train();
      clf.setGradMode('sum');
      clf.zeroGrad();
      const y = clf.forward(clf.batchInput(rows));
      if (interleave) clf.encodePrefix([[20, 21, 22, 23, 24, 25], [30]]);
      clf.setMask(clf.batchTensors(rows).mask);
      clf.backward(crossEntropyLoss(y, [0, 1]).grad, false);
      return clf.trainableParameters().map((p) => Array.from(p.grad!));
    });
    expect(grads[0].every((g) => g.some((v) => v !== 0))).toBe(true);
    expect(grads[1]).toEqual(grads[0]);
  });

  test('outputs and input gradients handed out are not overwritten by later passes', () => {
    const clf = model();
    clf.train();
    const a = data(3, 1);
    const b = data(4, 2);
    const ya = forwardRows(clf, a, [0, 1, 2]);
    const yaCopy = ya.data.slice();
    const ga = clf.backward(crossEntropyLoss(ya, [0, 1, 0]).grad);
    const gaCopy = ga.data.slice();
    const yb = forwardRows(clf, b, [0, 1, 2, 3]);
    clf.backward(crossEntropyLoss(yb, [1, 1, 0, 0]).grad);
    forwardRows(clf, b, [3, 2, 1, 0]);
    expect(Array.from(ya.data)).toEqual(Array.from(yaCopy));
    expect(Array.from(ga.data)).toEqual(Array.from(gaCopy));
    expect(clf.backward(crossEntropyLoss(yb, [1, 1, 0, 0]).grad, false).size).toBe(0);
  });

  test('the clipped sums of a pending capture survive another forward pass', () => {
    // A small budget makes the LoRA captures keep (and later re-read) the activations and
    // gradients of the pass, which live in the workspace.
    const saved = PER_SAMPLE_BUDGET.floats;
    PER_SAMPLE_BUDGET.floats = 64;
    try {
      const a = data(3, 3);
      const other = data(5, 4);
      const sums = [false, true].map((interleave) => {
        const clf = model();
        clf.train();
        clf.setGradMode('perSample');
        const y = forwardRows(clf, a, [0, 1, 2]);
        clf.backward(crossEntropyLoss(y, [1, 0, 1]).grad, false);
        if (interleave) forwardRows(clf, other, [0, 1, 2, 3, 4]); // a new pass, capture pending
        const acc = new Map<Parameter, Float64Array>();
        const factors = Float32Array.from([1, 0.5, 0.25]);
        for (const [, m] of clf.namedModules()) {
          if (!isPerSampleModule(m) || m.captureBatch() < 0) continue;
          m.accumulateClippedGrads(factors, (p) => {
            let s = acc.get(p);
            if (!s) acc.set(p, (s = new Float64Array(p.size)));
            return s;
          });
          m.releaseCapture();
        }
        return clf.trainableParameters().map((p) => Array.from(acc.get(p) ?? []));
      });
      expect(sums[0].length).toBe(14);
      expect(sums[0].every((s) => s.some((v) => v !== 0))).toBe(true);
      expect(sums[1]).toEqual(sums[0]);
    } finally {
      PER_SAMPLE_BUDGET.floats = saved;
    }
  });
});
