/**
 * Options of `dp-lora train`: parsing, defaults and validation (no training here).
 */
import { OptionError, decimalNumber } from './format';
import type { BaseDtype } from '../kernels/linalg';
import { isScheduleName } from '../optim/schedules';
import type { ScheduleName } from '../optim/schedules';

export { OptionError };

/** LoRA variant. */
export type LoraMethodName = 'ffa' | 'vanilla';
/** Privacy accountant. */
export type AccountantName = 'pld' | 'rdp';

/** Fully resolved training configuration (what a checkpoint stores to resume). */
export interface TrainConfig {
  targetEpsilon: number;
  /** undefined: chosen from the private set size (see {@link defaultDelta}). */
  delta?: number;
  epochs: number;
  /** Expected logical batch size; sampleRate = batchSize / privateSize. */
  batchSize: number;
  physicalBatchSize: number;
  rank: number;
  alpha: number;
  method: LoraMethodName;
  lr: number;
  /**
   * Learning-rate schedule over the planned private steps (`--lr-schedule`, `--warmup`); absent:
   * a constant `lr` (and in runs saved before the options existed).
   */
  lrSchedule?: { name: ScheduleName; warmup: number };
  /**
   * `--ema`: decay per step of the exponential moving average of the private iterates that is
   * released (adapter and accuracy); absent: the last iterate is released.
   */
  ema?: number;
  /** `--head-lr` (use-lite): learning rate of the classification head; absent: `lr`. */
  headLr?: number;
  clip: number;
  accountant: AccountantName;
  hidden: number;
  dim: number;
  /** Mails used at most (quick runs and tests). */
  limit?: number;
  data?: string;
  publicData?: string;
  textField: string;
  labelField: string;
  /** Train the non-private LoRA baseline too (for the comparison column). */
  baseline: boolean;
  /** Explicit seed (reproducible mode) in canonical text form, or undefined (OS entropy). */
  seed?: string;
  /** Checkpoint every this many steps when --out is given. */
  checkpointEvery: number;
  /** The declared (public) label set of --data, in class order (--labels). */
  labels?: string[];
  /** Without declared labels: each label of --data must occur at least this often. */
  minLabelCount?: number;
  /**
   * Element type of the frozen base weights (`--base-dtype`); absent in runs saved before the
   * option existed, which ran fp32.
   */
  baseDtype?: BaseDtype;
}

/** Defaults of the built-in task (documented in README.md, "dp-lora train"). */
export const TRAIN_DEFAULTS = {
  targetEpsilon: 8,
  epochs: 10,
  batchSize: 128,
  physicalBatchSize: 256,
  rank: 8,
  method: 'vanilla' as LoraMethodName,
  lr: 0.01,
  clip: 1,
  accountant: 'pld' as AccountantName,
  hidden: 256,
  dim: 4096,
  textField: 'text',
  labelField: 'label',
  checkpointEvery: 50,
};

/** The learning rate and its schedule as the run summary prints them (`lr 0.01, linear, warmup 0.06`). */
export function describeLr(cfg: Pick<TrainConfig, 'lr' | 'lrSchedule'>): string {
  const s = cfg.lrSchedule;
  return s
    ? `lr ${cfg.lr}, ${s.name}${s.warmup > 0 ? `, warmup ${s.warmup}` : ''}`
    : `lr ${cfg.lr}`;
}

/** delta = min(1e-5, 1 / (10 n)): well below 1/n, the usual requirement. */
export function defaultDelta(privateSize: number): number {
  return Math.min(1e-5, 1 / (10 * privateSize));
}

/**
 * Size limits of `dp-lora train`, checked before anything is allocated: every weight matrix and
 * every featurized data set stays well inside memory and inside the length of a typed array.
 */
export const TRAIN_LIMITS = {
  /** Largest `--dim` (hashed features). */
  maxDim: 1 << 16,
  /** Largest `--hidden`. */
  maxHidden: 1 << 12,
  /** Largest weight matrix (`dim * hidden` entries): 2^24 floats, 64 MiB. */
  maxWeights: 1 << 24,
  /** Largest featurized data set (`examples * dim` entries): 2^28 floats, 1 GiB. */
  maxFeatures: 1 << 28,
  /** Largest `--batch-size` and `--physical-batch-size`. */
  maxBatch: 1 << 20,
  /** Largest `--epochs`. */
  maxEpochs: 1e6,
  /** Largest step counts (`--checkpoint-every`, `--max-steps`) and `--limit`. */
  maxCount: 2 ** 31 - 1,
};

function optionText(v: string | number): string {
  return typeof v === 'number' ? String(v) : JSON.stringify(v);
}

/**
 * Parses a positive finite number for `--name` (at most `max`); throws an {@link OptionError}
 * naming the option.
 */
export function positiveNumber(name: string, v: string | number, max = Infinity): number {
  const x = typeof v === 'number' ? v : decimalNumber(v);
  if (typeof v === 'string' && v.trim() === '')
    throw new OptionError(`--${name}`, 'needs a number');
  if (!Number.isFinite(x) || x <= 0)
    throw new OptionError(`--${name}`, `must be a positive number, got ${optionText(v)}`);
  if (x > max) throw new OptionError(`--${name}`, `must be at most ${max}, got ${optionText(v)}`);
  return x;
}

/**
 * Parses a positive integer for `--name` (at most `max`, default 2^31 - 1); throws an
 * {@link OptionError} naming the option.
 */
export function positiveInt(name: string, v: string | number, max = 2 ** 31 - 1): number {
  const x = typeof v === 'number' ? v : decimalNumber(v);
  if (typeof v === 'string' && v.trim() === '')
    throw new OptionError(`--${name}`, 'needs an integer');
  if (!Number.isSafeInteger(x) || x <= 0)
    throw new OptionError(`--${name}`, `must be a positive integer, got ${optionText(v)}`);
  if (x > max) throw new OptionError(`--${name}`, `must be at most ${max}, got ${optionText(v)}`);
  return x;
}

/** A non-empty string for `--name` (a path or a field name). */
export function optionString(name: string, v: unknown): string {
  if (typeof v !== 'string' || v.length === 0)
    throw new OptionError(`--${name}`, `needs a non-empty value, got ${JSON.stringify(v)}`);
  return v;
}

/**
 * Parses `--seed`: decimal digits (`42`), or hex with a `0x` prefix or any hex letter
 * (`0xdeadbeef`, `c0ffee`). Returns the seed as a bigint and its canonical text
 * (`0x...` lower-case hex).
 */
export function parseSeed(v: string): { value: bigint; text: string } {
  if (typeof v !== 'string') throw new OptionError('--seed', `must be a string, got ${typeof v}`);
  const s = v.trim().toLowerCase();
  let value: bigint;
  if (/^[0-9]+$/.test(s)) value = BigInt(s);
  else if (/^0x[0-9a-f]+$/.test(s)) value = BigInt(s);
  else if (/^[0-9a-f]+$/.test(s)) value = BigInt('0x' + s);
  else
    throw new OptionError(
      '--seed',
      `must be a decimal number or hex (e.g. 42 or 0xc0ffee), got ${JSON.stringify(v)}`,
    );
  if (value >= 1n << 256n) throw new OptionError('--seed', 'must fit in 256 bits');
  return { value, text: '0x' + value.toString(16) };
}

/** Raw option values as commander gives them. */
export interface RawTrainOptions {
  epsilon?: string;
  delta?: string;
  epochs?: string;
  batchSize?: string;
  physicalBatchSize?: string;
  rank?: string;
  alpha?: string;
  method?: string;
  lr?: string;
  lrSchedule?: string;
  warmup?: string;
  ema?: string;
  headLr?: string;
  clip?: string;
  accountant?: string;
  hidden?: string;
  dim?: string;
  limit?: string;
  data?: string;
  publicData?: string;
  textField?: string;
  labelField?: string;
  baseline?: boolean;
  seed?: string;
  checkpointEvery?: string;
  labels?: string;
  minLabelCount?: string;
  baseDtype?: string;
}

/** Resolves raw option strings into a validated {@link TrainConfig}. */
export function resolveTrainConfig(o: RawTrainOptions): TrainConfig {
  const d = TRAIN_DEFAULTS;
  const L = TRAIN_LIMITS;
  const dim = o.dim !== undefined ? positiveInt('dim', o.dim, L.maxDim) : d.dim;
  if (dim < 2) throw new OptionError('--dim', `must be at least 2, got ${dim}`);
  const hidden = o.hidden !== undefined ? positiveInt('hidden', o.hidden, L.maxHidden) : d.hidden;
  if (dim * hidden > L.maxWeights)
    throw new OptionError(
      '--hidden',
      `--dim * --hidden must be at most ${L.maxWeights} weights, got ${dim} * ${hidden}`,
    );
  // LoRA adapts fc1 (dim -> hidden) and fc2 (hidden -> hidden): the rank cannot exceed either side.
  const maxRank = Math.min(dim, hidden);
  const rank =
    o.rank !== undefined ? positiveInt('rank', o.rank, maxRank) : Math.min(d.rank, maxRank);
  const method = o.method ?? d.method;
  if (method !== 'ffa' && method !== 'vanilla')
    throw new OptionError('--method', `must be ffa or vanilla, got ${JSON.stringify(o.method)}`);
  const accountant = o.accountant ?? d.accountant;
  if (accountant !== 'pld' && accountant !== 'rdp')
    throw new OptionError(
      '--accountant',
      `must be pld or rdp, got ${JSON.stringify(o.accountant)}`,
    );
  let delta: number | undefined;
  if (o.delta !== undefined) {
    delta = positiveNumber('delta', o.delta);
    if (delta >= 1) throw new OptionError('--delta', `must be in (0, 1), got ${o.delta}`);
  }
  const batchSize =
    o.batchSize !== undefined ? positiveInt('batch-size', o.batchSize, L.maxBatch) : d.batchSize;
  const cfg: TrainConfig = {
    targetEpsilon: o.epsilon !== undefined ? positiveNumber('epsilon', o.epsilon) : d.targetEpsilon,
    delta,
    epochs: o.epochs !== undefined ? positiveNumber('epochs', o.epochs, L.maxEpochs) : d.epochs,
    batchSize,
    physicalBatchSize:
      o.physicalBatchSize !== undefined
        ? positiveInt('physical-batch-size', o.physicalBatchSize, L.maxBatch)
        : d.physicalBatchSize,
    rank,
    alpha: o.alpha !== undefined ? positiveNumber('alpha', o.alpha) : 2 * rank,
    method,
    lr: o.lr !== undefined ? positiveNumber('lr', o.lr) : d.lr,
    clip: o.clip !== undefined ? positiveNumber('clip', o.clip) : d.clip,
    accountant,
    hidden,
    dim,
    limit: o.limit !== undefined ? positiveInt('limit', o.limit, L.maxCount) : undefined,
    data: o.data !== undefined ? optionString('data', o.data) : undefined,
    publicData: o.publicData !== undefined ? optionString('public-data', o.publicData) : undefined,
    textField: o.textField !== undefined ? optionString('text-field', o.textField) : d.textField,
    labelField:
      o.labelField !== undefined ? optionString('label-field', o.labelField) : d.labelField,
    baseline: o.baseline !== false,
    seed: o.seed !== undefined ? parseSeed(o.seed).text : undefined,
    checkpointEvery:
      o.checkpointEvery !== undefined
        ? positiveInt('checkpoint-every', o.checkpointEvery, L.maxCount)
        : d.checkpointEvery,
  };
  if (o.labels !== undefined) {
    const l = o.labels.split(',').map((s) => s.trim());
    if (l.length < 2 || l.some((s) => s === '') || new Set(l).size !== l.length)
      throw new OptionError('--labels must list at least two distinct, non-empty labels: a,b,c');
    if (!cfg.data) throw new OptionError('--labels needs --data (the built-in task has its own)');
    cfg.labels = l;
  }
  cfg.minLabelCount =
    o.minLabelCount !== undefined ? positiveInt('min-label-count', o.minLabelCount) : 20;
  if (cfg.publicData && !cfg.data)
    throw new OptionError(
      '--public-data',
      'needs --data (the built-in task has its own public part)',
    );
  if (o.baseDtype !== undefined) {
    if (o.baseDtype !== 'fp32' && o.baseDtype !== 'bf16')
      throw new OptionError(
        '--base-dtype',
        `must be fp32 or bf16, got ${JSON.stringify(o.baseDtype)}`,
      );
    cfg.baseDtype = o.baseDtype;
  }
  if (o.lrSchedule !== undefined || o.warmup !== undefined) {
    const name = o.lrSchedule ?? 'constant';
    if (!isScheduleName(name))
      throw new OptionError(
        '--lr-schedule',
        `must be constant, linear or cosine, got ${JSON.stringify(o.lrSchedule)}`,
      );
    let warmup = 0;
    if (o.warmup !== undefined) {
      warmup = decimalNumber(o.warmup);
      if (o.warmup.trim() === '' || !(warmup >= 0 && warmup <= 1))
        throw new OptionError(
          '--warmup',
          `must be a fraction of the planned steps in [0, 1], got ${JSON.stringify(o.warmup)}`,
        );
    }
    cfg.lrSchedule = { name, warmup };
  }
  if (o.ema !== undefined) {
    const ema = decimalNumber(o.ema);
    if (o.ema.trim() === '' || !(ema > 0 && ema < 1))
      throw new OptionError(
        '--ema',
        `must be a decay per step in (0, 1), e.g. 0.95, got ${JSON.stringify(o.ema)}`,
      );
    cfg.ema = ema;
  }
  if (o.headLr !== undefined) {
    cfg.headLr = positiveNumber('head-lr', o.headLr);
    // The head steps at headLr / lr times the (scheduled) lr: that ratio must be a number.
    if (!Number.isFinite(cfg.headLr / cfg.lr))
      throw new OptionError(
        '--head-lr',
        `must be a finite multiple of --lr: ${cfg.headLr} / ${cfg.lr} overflows`,
      );
  }
  if (cfg.limit !== undefined && cfg.limit < 20)
    throw new OptionError('--limit', `must be at least 20, got ${cfg.limit}`);
  return cfg;
}
