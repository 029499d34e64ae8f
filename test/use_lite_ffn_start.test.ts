/**
 * Training that starts in the feed-forward sub-block (`startBlock: 'ffn'`): the attention
 * sub-block of the first trained layer joins the cached frozen prefix. Checked against the
 * whole-layer path on the real USE-Lite (same adapters): the cached rows, the logits, the
 * per-sample norms and clipped sums, a one-example loop; the sensitivity property for crafted
 * records; the layer-level split against the whole layer (finite differences for the input
 * gradient); misuse refused with typed errors.
 */
import * as path from 'path';
import { Parameter, Tensor } from '../lib/nn';
import { InvalidArgumentError } from '../lib/errors';
import { applyLora } from '../lib/nn/lora_targets';
import { TransformerLayer } from '../lib/nn/transformer_layer';
import { maskFromLengths } from '../lib/nn/sequence_mask';
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
const labels = [1, 0, 0, 1, 0, 0];

function ffnLora(layers: number[]): UseLiteLoraSettings {
  return { rank: 2, alpha: 4, method: 'vanilla', targets: ['fc1', 'fc2'], layers, seed: 7 };
}

/** Adapters on fc1/fc2 with nonzero B and a random head; the same weights for a given seed. */
function model(layers: number[], block: 'attention' | 'ffn', seed = 3): UseLiteClassifier {
  const rnd = lcg(seed);
  const head = { weight: randArray(2 * 512, rnd, 0.5), bias: randArray(2, rnd, 0.1) };
  const clf = loraClassifier(weights, 2, ffnLora(layers), head, undefined, block);
  for (const p of clf.trainableParameters())
    if (p.shape.length === 2 && p.data.every((v) => v === 0))
      p.data.set(randArray(p.size, rnd, 0.05));
  return clf;
}

function part(clf: UseLiteClassifier, ts: string[], ys: number[]): CachedPart {
  return {
    rows: clf.encodePrefix(ts.map((t) => use.tokenize(t).slice(0, 128))),
    y: Int32Array.from(ys),
    n: ts.length,
  };
}

function maxRelErr(got: ArrayLike<number>, want: ArrayLike<number>): number {
  let e = 0;
  let m = 0;
  for (let i = 0; i < want.length; i++) {
    e = Math.max(e, Math.abs(got[i] - want[i]));
    m = Math.max(m, Math.abs(want[i]));
  }
  return e / m;
}

/** Per-sample squared norms and the clipped sum (given factors) of one batch forward/backward. */
function perSample(clf: UseLiteClassifier, data: CachedPart, factors: Float32Array) {
  const params = clf.trainableParameters();
  clf.train();
  clf.setGradMode('perSample');
  const out = forwardRows(clf, data, [...Array(data.n).keys()]);
  clf.backward(crossEntropyLoss(out, Array.from(data.y)).grad, false);
  const normsSq = new Float64Array(data.n);
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
  return { normsSq, sum: flatParams(params, (p) => acc.get(p) ?? null), out: out.data.slice() };
}

describe("startBlock 'ffn' equals the whole-layer path on USE-Lite", () => {
  for (const layers of [[1], [0, 1]]) {
    test(`fc1/fc2 adapters on layer(s) ${layers.join(',')}`, () => {
      const whole = model(layers, 'attention');
      const ffn = model(layers, 'ffn');
      expect(ffn.startBlock).toBe('ffn');
      expect(whole.startBlock).toBe('attention');
      const dWhole = part(whole, texts, labels);
      const dFfn = part(ffn, texts, labels);
      // The cached rows: the attention sub-block's output, width 512, one row per real token.
      dFfn.rows.forEach((r, i) => {
        const tokens = use.tokenize(texts[i]).length;
        expect(r.length).toBe(tokens * 512);
      });
      // extendPrefix turns the whole-layer cache into this one (without the tokenizer).
      const extended = ffn.extendPrefix(dWhole.rows);
      extended.forEach((r, i) => expect(maxRelErr(r, dFfn.rows[i])).toBeLessThan(1e-5));

      const factors = Float32Array.from([1, 0.5, 2, 0, 0.25, 1]);
      const a = perSample(whole, dWhole, factors);
      const b = perSample(ffn, dFfn, factors);
      expect(maxRelErr(b.out, a.out)).toBeLessThan(1e-4);
      for (let i = 0; i < texts.length; i++) {
        expect(a.normsSq[i]).toBeGreaterThan(1e-6);
        expect(Math.abs(b.normsSq[i] - a.normsSq[i])).toBeLessThan(1e-3 * a.normsSq[i]);
      }
      expect(maxRelErr(b.sum, a.sum)).toBeLessThan(1e-3);

      // And against a one-example loop on the ffn model itself (sum mode, no padding).
      const params = ffn.trainableParameters();
      ffn.train();
      ffn.setGradMode('sum');
      const want = new Float64Array(b.sum.length);
      for (let i = 0; i < texts.length; i++) {
        ffn.zeroGrad();
        const out = forwardRows(ffn, dFfn, [i]);
        ffn.backward(crossEntropyLoss(out, [dFfn.y[i]]).grad, false);
        const g = flatParams(params, (p) => p.grad);
        const n = g.reduce((s, v) => s + v * v, 0);
        expect(Math.abs(b.normsSq[i] - n)).toBeLessThan(1e-3 * n);
        for (let j = 0; j < g.length; j++) want[j] += factors[i] * g[j];
      }
      ffn.zeroGrad();
      expect(maxRelErr(b.sum, want)).toBeLessThan(1e-3);
    });
  }

  test('a whole private step gives the same update as the whole-layer path', () => {
    const steps = (['attention', 'ffn'] as const).map((block) => {
      const clf = model([1], block, 11);
      const d = part(clf, texts, labels);
      return noiseFreePrivateGradient(clf, d, { maxGradNorm: 0.05, physical: 4, seed: 5 });
    });
    expect(steps[0].some((v) => v !== 0)).toBe(true);
    expect(maxRelErr(steps[1], steps[0])).toBeLessThan(1e-3);
  });
});

describe("sensitivity with startBlock 'ffn': one record moves the summed update by at most C", () => {
  const crafted: Array<[string, string, number]> = [
    ['the longest input (128 tokens)', 'Buy now! '.repeat(60), 1],
    ['one piece repeated', Array(200).fill('spam').join(' '), 0],
    ['unknown characters only', '\t\t\t\u0007\u0008', 1],
    ['empty text', '', 0],
  ];
  for (const [what, text, label] of crafted) {
    test(what, () => {
      const C = 1e-3; // every record is clipped: the crafted one moves the sum by ~C exactly
      const base = model([1], 'ffn', 5);
      const dAll = part(base, [...texts, text], [...labels, label]);
      const d1: CachedPart = { rows: dAll.rows.slice(0, 6), y: dAll.y.slice(0, 6), n: 6 };
      const sums = [d1, dAll].map((d) => {
        const clf = model([1], 'ffn', 5);
        const g = noiseFreePrivateGradient(clf, d, { maxGradNorm: C, physical: 3, seed: 99 });
        return g.map((v) => v * d.n);
      });
      let dist = 0;
      for (let j = 0; j < sums[0].length; j++) dist += (sums[1][j] - sums[0][j]) ** 2;
      dist = Math.sqrt(dist);
      expect(dist).toBeLessThanOrEqual(C * (1 + 1e-5));
      // The empty text has no token: only the head sees it (a constant embedding).
      expect(dist).toBeGreaterThan(0.99 * C);
    });
  }
});

describe('TransformerLayer split into attentionBlock and forwardFfn', () => {
  const [B, T, D, H, F] = [2, 5, 8, 2, 16];
  function layer(): TransformerLayer {
    return new TransformerLayer({ dIn: D, dModel: D, heads: H, dFF: F, seed: 21 });
  }
  const rnd = lcg(8);
  const x = new Tensor(randArray(B * T * D, rnd, 1), [B, T, D]);
  const mask = maskFromLengths([5, 3], T);

  test('forwardFfn(attentionBlock(x)) = forward(x); pooled too', () => {
    const l = layer();
    l.eval();
    l.setMask(mask);
    const y = l.forward(x).data.slice();
    const h = l.attentionBlock(x);
    const y2 = l.forwardFfn(h).data;
    // padding rows of the whole layer's output are not defined by the mask: compare real rows
    for (let b = 0; b < B; b++)
      for (let t = 0; t < T; t++)
        if (mask.valid[b * T + t])
          for (let k = 0; k < D; k++)
            expect(y2[(b * T + t) * D + k]).toBeCloseTo(y[(b * T + t) * D + k], 5);
    const p = l.forwardPooled(x).data.slice();
    const p2 = l.forwardFfnPooled(l.attentionBlock(x)).data;
    expect(maxRelErr(p2, p)).toBeLessThan(1e-5);
  });

  for (const pooled of [false, true]) {
    test(`input gradient of ${pooled ? 'forwardFfnPooled' : 'forwardFfn'} by finite differences`, () => {
      const l = layer();
      l.setMask(mask);
      l.eval();
      const h = l.attentionBlock(x);
      const hd = h.data.slice();
      const outW = randArray(pooled ? B * D : B * T * D, lcg(9), 1);
      const loss = (hv: Float32Array): number => {
        const ht = new Tensor(hv, [B, T, D]);
        const y = (pooled ? l.forwardFfnPooled(ht) : l.forwardFfn(ht)).data;
        let s = 0;
        for (let i = 0; i < y.length; i++) {
          // padding rows of forwardFfn's output are h itself: the loss reads real rows only
          const real = pooled || mask.valid[Math.floor(i / D)] === 1;
          if (real) s += outW[i] * y[i];
        }
        return s;
      };
      l.train();
      const ht = new Tensor(hd.slice(), [B, T, D]);
      const y = pooled ? l.forwardFfnPooled(ht) : l.forwardFfn(ht);
      const g = new Float32Array(y.size);
      for (let i = 0; i < g.length; i++)
        g[i] = pooled || mask.valid[Math.floor(i / D)] === 1 ? outW[i] : 0;
      const gt = new Tensor(g, y.shape);
      const gh = (pooled ? l.backwardPooled(gt) : l.backward(gt)).data.slice();
      l.eval();
      const eps = 1e-2;
      let checked = 0;
      for (let i = 0; i < hd.length; i += 3) {
        if (!mask.valid[Math.floor(i / D)]) continue;
        const hp = hd.slice();
        const hm = hd.slice();
        hp[i] += eps;
        hm[i] -= eps;
        const fd = (loss(hp) - loss(hm)) / (2 * eps);
        expect(Math.abs(gh[i] - fd)).toBeLessThan(2e-3 * (1 + Math.abs(fd)));
        checked++;
      }
      expect(checked).toBeGreaterThan(10);
    });
  }

  test('a post-LN layer refuses the split', () => {
    const l = new TransformerLayer({ dIn: D, dModel: D, heads: H, dFF: F, norm: 'post' });
    expect(() => l.attentionBlock(x)).toThrow(InvalidArgumentError);
    expect(() => l.forwardFfn(x)).toThrow(/post-LN/);
  });
});

describe("misuse of startBlock 'ffn' is refused with typed errors", () => {
  test('an adapter in the cached attention sub-block', () => {
    const bad = new UseLiteClassifier(buildUseLiteEncoder(weights), {
      classes: 2,
      startLayer: 1,
      startBlock: 'ffn',
    });
    applyLora(bad, ['q_proj'], { r: 2 }, (p) => p.startsWith('encoder.layers.1.'));
    expect(() => bad.checkFrozenPrefix()).toThrow(InvalidArgumentError);
    expect(() => bad.checkFrozenPrefix()).toThrow(/startBlock.*q_proj|q_proj.*startBlock/s);
    expect(() =>
      loraClassifier(
        weights,
        2,
        { ...ffnLora([1]), targets: ['fc1', 'v_proj'] },
        undefined,
        undefined,
        'ffn',
      ),
    ).toThrow(/attention sub-block/);
  });

  test('an unknown block, a start past the last layer, bad rows', () => {
    const enc = buildUseLiteEncoder(weights);
    expect(
      () =>
        new UseLiteClassifier(enc, {
          classes: 2,
          startLayer: 1,
          startBlock: 'mlp' as unknown as 'ffn',
        }),
    ).toThrow(/startBlock/);
    expect(
      () => new UseLiteClassifier(enc, { classes: 2, startLayer: 2, startBlock: 'ffn' }),
    ).toThrow(/startBlock/);
    const clf = new UseLiteClassifier(enc, { classes: 2, startLayer: 1, startBlock: 'ffn' });
    expect(() => clf.extendPrefix([new Float32Array(511)])).toThrow(/rows/);
    expect(() => clf.extendPrefix([[1, 2] as unknown as Float32Array])).toThrow(
      InvalidArgumentError,
    );
  });
});
