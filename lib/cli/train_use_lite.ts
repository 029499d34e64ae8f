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
import { saveCheckpoint } from '../io/checkpoint';
import { StTensorInput } from '../io/safetensors';
import { extractTensors } from '../trainer/state';
import { fmtPct, privacyRows, table } from './summary';
import { PrivacyReport, saveAdapter } from '../io/peft_adapter';
import { Adam } from '../optim/adam';
import { PrivacyEngine } from '../privacy/privacy_engine';
import { PrivacyBudgetExceededError } from '../privacy/errors';
import { splitMail } from '../data/featurize';
import { splitSpamCorpus } from '../data/spam_corpus';
import { loadUserData } from '../data/user_data';
import { DataFormatError } from '../data/user_data';
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
  UseLiteLoraSettings,
  accuracyOf,
  checkLoraSettings,
  loraClassifier,
  privateStep,
  trainHead,
  trainNonPrivateRows,
  useLiteAdapter,
} from '../models/use_lite/finetune';
import { OptionError, RawTrainOptions, TrainConfig, defaultDelta } from './train_options';
import { cacheDir } from './train_model';

/** Options only the use-lite model has. */
export interface UseLiteOptions {
  /** PEFT target names (default all six). */
  targets: string[];
  /** Adapted layers (default [1]: layer 0 frozen and cached). */
  layers: number[];
  /** Tokens per text (default 64, at most 128). */
  maxTokens: number;
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

function userSplit(text: string): number {
  return (
    crypto
      .createHash('sha256')
      .update('dplora-user-split-v1\0')
      .update(text)
      .digest()
      .readUIntBE(0, 6) /
    2 ** 48
  );
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
  const d = loadUserData(cfg.data, cfg.textField, cfg.labelField);
  let idx = [...d.texts.keys()];
  if (cfg.limit !== undefined && idx.length > cfg.limit) idx = idx.slice(0, cfg.limit);
  const priv: number[] = [];
  const held: number[] = [];
  // Same rule as the MLP task: 25% held out by a hash of the text.
  for (const i of idx) (userSplit(d.texts[i]) < 0.25 ? held : priv).push(i);
  if (priv.length < 10 || held.length < 2)
    throw new DataFormatError(
      `${cfg.data}: too few examples (${priv.length} private, ${held.length} held out)`,
    );
  const pick = (ids: number[]): TextPart => ({
    texts: ids.map((i) => d.texts[i].replace(/\s+/g, ' ').trim()),
    y: Int32Array.from(ids.map((i) => d.labels[i])),
  });
  let pub: TextPart | undefined;
  if (cfg.publicData) {
    const p = loadUserData(cfg.publicData, cfg.textField, cfg.labelField);
    const map = p.classes.map((c) => {
      const k = d.classes.indexOf(c);
      if (k < 0)
        throw new DataFormatError(
          `${cfg.publicData}: label ${JSON.stringify(c)} is not in ${cfg.data}`,
        );
      return k;
    });
    pub = {
      texts: p.texts.map((t) => t.replace(/\s+/g, ' ').trim()),
      y: Int32Array.from(p.labels, (l) => map[l]),
    };
  }
  return {
    name: cfg.data,
    classes: d.classes,
    public: pub,
    private: pick(priv),
    heldout: pick(held),
    description:
      `${cfg.data}: private = ${priv.length}, heldout = ${held.length} (split by text hash); ` +
      (pub
        ? `public = ${cfg.publicData} (${pub.texts.length}, base head)`
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
  accuracy: { base: number | null; nonPrivateLora: number | null; privateLora: number };
  maxTokens: number;
  loraLayers: number[];
  targetModules: string[];
  seconds: { prepare: number; baseline: number; private: number; wall: number };
  adapterDir: string | null;
}

/**
 * Parses the use-lite options of `dp-lora train` and fills the use-lite
 * defaults into the raw options the shared resolver reads.
 */
export function useLiteRawOptions(
  opts: RawTrainOptions & { targetModules?: string; loraLayers?: string; maxTokens?: string },
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
    maxTokens = Number(opts.maxTokens);
    if (!Number.isInteger(maxTokens) || maxTokens < 1 || maxTokens > USE_LITE_MAX_TOKENS)
      throw new OptionError(
        `--max-tokens must be an integer in [1, ${USE_LITE_MAX_TOKENS}], got ${JSON.stringify(opts.maxTokens)}`,
      );
  }
  return {
    raw,
    ul: { targets: list(opts.targetModules) ?? d.targets, layers: layers ?? d.layers, maxTokens },
  };
}

/** Runs `dp-lora train --model use-lite`. */
export async function runUseLiteTrain(
  cfg: TrainConfig,
  ul: UseLiteOptions,
  io: { out?: string; json?: string; log?: (s: string) => void; print?: (s: string) => void } = {},
): Promise<UseLiteTrainResult> {
  const t0 = Date.now();
  const log = io.log ?? ((s: string) => process.stderr.write(s + '\n'));
  const print = io.print ?? ((s: string) => process.stdout.write(s + '\n'));
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
  if (cfg.seed)
    log(
      'REPRODUCIBLE MODE (--seed): noise and sampling come from a FIXED seed; not secure if the seed is known.',
    );

  log('loading Universal Sentence Encoder Lite and the data ...');
  const dir = defaultUseLiteDir();
  const weights = readTfjsWeights(path.join(dir, 'model.json'));
  const vocab = JSON.parse(fs.readFileSync(path.join(dir, 'vocab.json'), 'utf8')) as VocabEntry[];
  const tokenizer = new UseLiteTokenizer(vocab);
  const task = buildTextTask(cfg);
  log(task.description);
  const classes = task.classes.length;
  if (cfg.batchSize > task.private.texts.length)
    throw new OptionError(
      `--batch-size ${cfg.batchSize} exceeds the ${task.private.texts.length} private examples`,
    );
  const tok = (p: TextPart) => p.texts.map((t) => tokenizer.encode(t).slice(0, ul.maxTokens));

  // --- base head on the frozen encoder (public data, no privacy)
  let head: { weight: Float32Array; bias: Float32Array } | undefined;
  if (task.public) {
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

  // --- frozen prefix cached for private and heldout (layers below the lowest adapted one)
  const start = Math.min(...lora.layers);
  const prefixModel = loraClassifier(weights, classes, null, head, start);
  log(
    `caching the frozen encoder prefix (embedding${start > 0 ? ' + layer 0' : ''}) for ${task.private.texts.length + task.heldout.texts.length} texts ...`,
  );
  const cache = (p: TextPart): CachedPart => ({
    rows: prefixModel.encodePrefix(tok(p)),
    y: p.y,
    n: p.texts.length,
  });
  const priv = cache(task.private);
  const held = cache(task.heldout);
  const N = priv.n;
  const baseAccuracy = head ? accuracyOf(prefixModel, held) : null;
  const tPrep = (Date.now() - t0) / 1000;
  const delta = cfg.delta ?? defaultDelta(N);

  // --- non-private LoRA reference (comparison only, never saved)
  let nonPrivateAccuracy: number | null = null;
  const tb = Date.now();
  if (cfg.baseline) {
    log(`training the non-private LoRA reference (${BASELINE.epochs} epoch, comparison only) ...`);
    const m = loraClassifier(weights, classes, lora, head);
    trainNonPrivateRows(m, priv, BASELINE);
    nonPrivateAccuracy = accuracyOf(m, held);
  }
  const tBase = (Date.now() - tb) / 1000;

  // --- private LoRA + head
  const model = loraClassifier(weights, classes, lora, head);
  model.train();
  const engine = new PrivacyEngine();
  const plannedSteps = Math.ceil((cfg.epochs * N) / cfg.batchSize);
  const { optimizer } = engine.makePrivateWithEpsilon({
    model,
    optimizer: new Adam(model.trainableParameters(), { lr: cfg.lr }),
    dataset: N,
    batchSize: cfg.batchSize,
    targetEpsilon: cfg.targetEpsilon,
    targetDelta: delta,
    epochs: cfg.epochs,
    maxGradNorm: cfg.clip,
    maxPhysicalBatchSize: cfg.physicalBatchSize,
    accountant: cfg.accountant,
    seed: cfg.seed !== undefined ? BigInt(cfg.seed) : undefined,
    onWarning: (m) => log(`warning: ${m.replace(/^dp-lora: /, '')}`),
  });
  const pc = engine.config;
  log(
    `private training: ${N} examples, q = ${pc.sampleRate.toPrecision(4)}, ${plannedSteps} steps, noise multiplier ${pc.noiseMultiplier.toPrecision(4)}, clip ${cfg.clip}, target eps ${cfg.targetEpsilon} at delta ${delta.toExponential(2)}`,
  );
  // With --out, the engine state and its privacy ledger are saved (checksummed) every
  // --checkpoint-every steps and at the end, as for the MLP task.
  const ckRoot = io.out ? path.join(io.out, 'checkpoints') : undefined;
  const checkpoint = () => {
    if (!ckRoot) return;
    const { ledger, ...rest } = engine.stateDict();
    const tensors: Record<string, StTensorInput> = {};
    saveCheckpoint(
      ckRoot,
      {
        step: engine.steps,
        ledger,
        engine: extractTensors(rest, tensors),
        run: { model: 'use-lite', config: cfg, useLite: ul },
      },
      tensors,
    );
  };
  model.setGradMode('perSample');
  const tp = Date.now();
  let stoppedByBudget = false;
  let lastLog = Date.now();
  while (engine.steps < plannedSteps) {
    await new Promise((r) => setImmediate(r)); // let signals (Ctrl-C) through between steps
    try {
      privateStep(model, priv, engine, optimizer, cfg.physicalBatchSize);
    } catch (e) {
      if (e instanceof PrivacyBudgetExceededError) {
        stoppedByBudget = true;
        log(`warning: ${e.message}`);
        break;
      }
      throw e;
    }
    if (engine.steps % cfg.checkpointEvery === 0) checkpoint();
    if (Date.now() - lastLog > 10000) {
      lastLog = Date.now();
      log(`  step ${engine.steps}/${plannedSteps}, eps ${engine.getEpsilon().toFixed(3)}`);
    }
  }
  model.setGradMode('sum');
  const tPriv = (Date.now() - tp) / 1000;
  const privateAccuracy = accuracyOf(model, held);
  const epsilon = engine.getEpsilon();

  const report: PrivacyReport = {
    epsilon,
    delta,
    targetEpsilon: cfg.targetEpsilon,
    noiseMultiplier: pc.noiseMultiplier,
    maxGradNorm: pc.maxGradNorm,
    sampleRate: pc.sampleRate,
    steps: engine.steps,
    accountant: pc.accountant,
    reproducibleSeed: cfg.seed !== undefined,
    datasetSize: N,
    expectedBatchSize: pc.expectedBatchSize,
    sampling: pc.sampling,
    trainedParameters: `LoRA ${cfg.method === 'ffa' ? 'B' : 'A and B'} of ${lora.targets.join(', ')} in layer(s) ${lora.layers.join(', ')}; head weight and bias: all clipped and noised`,
  };
  let adapterDir: string | null = null;
  if (io.out) {
    checkpoint();
    adapterDir = path.join(io.out, 'adapter');
    saveAdapter(
      adapterDir,
      useLiteAdapter(model, lora, { classes: task.classes, maxTokens: ul.maxTokens }),
      report,
    );
  }
  const wall = (Date.now() - t0) / 1000;
  const result: UseLiteTrainResult = {
    command: 'train',
    model: 'use-lite',
    task: task.name,
    epsilon,
    delta,
    targetEpsilon: cfg.targetEpsilon,
    noiseMultiplier: pc.noiseMultiplier,
    steps: engine.steps,
    plannedSteps,
    accuracy: {
      base: baseAccuracy,
      nonPrivateLora: nonPrivateAccuracy,
      privateLora: privateAccuracy,
    },
    maxTokens: ul.maxTokens,
    loraLayers: lora.layers,
    targetModules: lora.targets,
    seconds: { prepare: tPrep, baseline: tBase, private: tPriv, wall },
    adapterDir,
  };
  if (io.json) atomicWriteFile(io.json, JSON.stringify(result, null, 2) + '\n');
  print(
    [
      '',
      `dp-lora train --model use-lite: ${task.name === 'spam' ? 'built-in SpamAssassin task' : task.name}`,
      '',
      '  held-out accuracy',
      table([
        ['base (frozen encoder + head on public data)', fmtPct(baseAccuracy)],
        ['LoRA, non-private (reference)', cfg.baseline ? fmtPct(nonPrivateAccuracy) : 'skipped'],
        [`LoRA, private (eps ${epsilon.toFixed(2)})`, fmtPct(privateAccuracy)],
      ]),
      '',
      '  privacy',
      table(
        privacyRows({
          engine,
          epsilon,
          targetEpsilon: cfg.targetEpsilon,
          delta,
          n: N,
          plannedSteps,
          stoppedByBudget,
          resumable: false,
        }),
      ),
      '',
      '  run',
      table([
        [
          'model',
          `USE-Lite, ${ul.maxTokens} tokens max, LoRA on ${lora.targets.join(',')} of layer(s) ${lora.layers.join(',')} (rank ${cfg.rank}, alpha ${cfg.alpha}, ${cfg.method})`,
        ],
        [
          'training',
          `lr ${cfg.lr}, ${cfg.epochs} epochs, expected batch ${cfg.batchSize}, micro-batches <= ${cfg.physicalBatchSize} bucketed by length`,
        ],
        [
          'time',
          `prepare ${tPrep.toFixed(1)} s, reference ${tBase.toFixed(1)} s, private ${tPriv.toFixed(1)} s, wall ${wall.toFixed(1)} s`,
        ],
        ...(adapterDir ? ([['adapter', adapterDir]] as Array<[string, string]>) : []),
      ]),
      '',
    ].join('\n'),
  );
  return result;
}
