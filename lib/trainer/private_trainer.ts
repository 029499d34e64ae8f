/**
 * PrivateTrainer: a whole private training run as a library call, on the caller's own model,
 * loss and arrays: Poisson sampling, per-sample clipping and noise (PrivacyEngine), the hard
 * budget, the privacy ledger, checkpoints in a locked run directory, resume, progress and
 * cancellation.
 *
 * ```ts
 * const trainer = PrivateTrainer.create({
 *   model, loss: crossEntropyLoss, data: arrayDataset(x, y, features),
 *   privacy: { targetEpsilon: 8, epochs: 5, batchSize: 64, maxGradNorm: 1 },
 *   runDir: 'runs/a',
 * });
 * const result = await trainer.fit({ signal, onProgress: (p) => console.log(p.step) });
 * trainer.close();
 * ```
 */
import { PrivacyEngine, checkSavedParams } from '../privacy/privacy_engine';
import type { PrivacyEngineState } from '../privacy/privacy_engine';
import { PrivacyBudgetExceededError } from '../privacy/errors';
import type { SeedLike } from '../privacy/seed';
import type { LedgerReport } from '../accounting/privacy_ledger';
import type { AccountantKind, PldParameters } from '../accounting';
import { Adam } from '../optim/adam';
import { WeightAverage } from '../optim/weight_average';
import { isScheduleName, namedSchedule } from '../optim/schedules';
import type { Schedule, ScheduleName } from '../optim/schedules';
import type { Optimizer } from '../optim/optimizer';
import type { Module } from '../nn/module';
import { Tensor } from '../nn/tensor';
import type { Parameter } from '../nn/tensor';
import {
  saveCheckpoint,
  loadCheckpoint,
  hasCheckpoint,
  fileSha256,
  sha256,
} from '../io/checkpoint';
import type { StTensorInput } from '../io/safetensors';
import { extractTensors, restoreTensors } from './state';
import { CHECKPOINTS_DIR, JOURNAL_FILE, RunDirectory } from './run_dir';
import {
  CheckpointError,
  DpLoraError,
  ErrorCode,
  InvalidArgumentError,
  InvalidStateError,
} from '../errors';
import { isMaskedModule } from '../nn/sequence_mask';
import { requireInstance, requireInt, requireObject } from '../validate';
import type { SequenceMask } from '../nn/sequence_mask';
import * as fs from 'fs';
import * as path from 'path';

/** The training data: its size and how to build the inputs and targets of some rows. */
export interface TrainerDataset<T> {
  /** Number of records N. */
  readonly size: number;
  /** The model input and loss target of the records `indices` (in that order). */
  batch(indices: Int32Array): {
    /** The model input of the records, one row per index (e.g. [indices.length, features]). */
    input: Tensor;
    /** The loss target of the records, in the same order. */
    target: T;
    /**
     * For padded sequences: which positions are real tokens. The trainer hands it to the
     * model's `setMask` (a {@link MaskedModule}) before the forward pass and clears it after.
     */
    mask?: SequenceMask;
  };
  /**
   * Optional: how a logical batch is cut into micro-batches of at most `maxSize` records
   * (e.g. sorted by length so that padding is small). Must return a partition of `indices`
   * (every record exactly once; the trainer checks it): the noise is still added once per
   * logical batch, and per-record randomness is keyed by the record indices, never by their
   * order. Default: consecutive slices.
   */
  microBatches?(indices: Int32Array, maxSize: number): Int32Array[];
}

/**
 * SHA-256 identifying a frozen base model: of the file itself for one file; for several files
 * (e.g. a TF.js model.json, its weight shards and a vocabulary), of the lines
 * `<sha256 of the file>  <file name>` in the order given.
 */
export function baseModelSha256(files: string | readonly string[]): string {
  if (typeof files === 'string') return fileSha256(files);
  const list: readonly unknown[] = Array.isArray(files) ? (files as readonly unknown[]) : [];
  if (list.length === 0 || list.some((f) => typeof f !== 'string' || f.length === 0))
    throw new InvalidArgumentError('baseModelFile', 'must be a path or a non-empty list of paths');
  const paths = list as readonly string[];
  for (const f of paths)
    if (!fs.existsSync(f))
      throw new CheckpointError(`${f}: the base model file is missing`, 'base-model');
  return sha256(paths.map((f) => `${fileSha256(f)}  ${path.basename(f)}\n`).join(''));
}

/**
 * Loads and verifies the latest checkpoint of a run directory (see `loadCheckpoint`), and with
 * `baseModelFile` checks that the base model's hash ({@link baseModelSha256}) is the one the
 * checkpoint recorded. With `keepForResume`, the verified checkpoint is also kept for the next
 * call on the same run directory and base files (the resume that follows), which then returns it
 * without reading the files again.
 * @throws CheckpointError (code ERR_DPLORA_CHECKPOINT) naming the part that disagrees
 */
export function loadRunCheckpoint(
  run: RunDirectory,
  baseModelFile?: string | readonly string[],
  keepForResume = false,
): ReturnType<typeof loadCheckpoint> {
  // The CLI verifies the checkpoint for its run memo (keepForResume) just before
  // PrivateTrainer.resume reads it on the same locked run directory: the next read with the
  // same base files takes that verified copy, once, instead of reading and hashing it all again.
  const key = JSON.stringify(baseModelFile ?? null);
  const kept = verifiedOnce.get(run);
  verifiedOnce.delete(run);
  if (kept && kept.key === key && !keepForResume) return kept.ck;
  const ck = readRunCheckpoint(run, baseModelFile);
  if (keepForResume) verifiedOnce.set(run, { key, ck });
  return ck;
}

const verifiedOnce = new WeakMap<
  RunDirectory,
  { key: string; ck: ReturnType<typeof loadCheckpoint> }
>();

function readRunCheckpoint(
  run: RunDirectory,
  baseModelFile?: string | readonly string[],
): ReturnType<typeof loadCheckpoint> {
  const ck = loadCheckpoint(path.join(run.dir, CHECKPOINTS_DIR), {
    baseModelFile: typeof baseModelFile === 'string' ? baseModelFile : undefined,
  });
  if (baseModelFile !== undefined && typeof baseModelFile !== 'string') {
    const h = baseModelSha256(baseModelFile);
    if (h !== ck.manifest.baseModelSha256)
      throw new CheckpointError(
        `${path.dirname(String(baseModelFile[0]))}: the base model is not the one this checkpoint was trained on (SHA-256 of its ${baseModelFile.length} files ${h.slice(0, 12)}..., recorded ${String(ck.manifest.baseModelSha256).slice(0, 12)}...)`,
        'base-model',
      );
  }
  return ck;
}

/** Checks that a micro-batch split is a partition of the logical batch. */
function checkPartition(indices: Int32Array, micro: Int32Array[], maxSize: number): void {
  const want = Int32Array.from(indices).sort();
  const got = new Int32Array(want.length);
  let k = 0;
  for (const m of micro) {
    if (
      !(m instanceof Int32Array) ||
      m.length === 0 ||
      m.length > maxSize ||
      k + m.length > got.length
    )
      throw new InvalidArgumentError(
        'data.microBatches',
        `must cut the batch into non-empty Int32Arrays of at most ${maxSize} records covering it exactly`,
      );
    got.set(m, k);
    k += m.length;
  }
  got.sort();
  if (k !== want.length || got.some((v, i) => v !== want[i]))
    throw new InvalidArgumentError(
      'data.microBatches',
      'must return every record of the logical batch exactly once',
    );
}

/**
 * A {@link TrainerDataset} over row-major arrays: `x` holds `features` numbers per record,
 * `y` one target per record (class indices for cross-entropy).
 */
export function arrayDataset<Y extends Int32Array | Float32Array>(
  x: Float32Array,
  y: Y,
  features: number,
): TrainerDataset<Y> {
  if (!(x instanceof Float32Array)) throw new InvalidArgumentError('x', 'must be a Float32Array');
  if (!(y instanceof Int32Array || y instanceof Float32Array))
    throw new InvalidArgumentError('y', 'must be an Int32Array or a Float32Array');
  if (!Number.isSafeInteger(features) || features < 1)
    throw new InvalidArgumentError('features', `must be an integer >= 1, got ${features}`);
  if (x.length !== y.length * features)
    throw new InvalidArgumentError(
      'x',
      `must hold y.length * features = ${y.length * features} numbers, got ${x.length}`,
    );
  return {
    size: y.length,
    batch(indices: Int32Array) {
      const bx = new Float32Array(indices.length * features);
      const by = new (y.constructor as { new (n: number): Y })(indices.length);
      for (let i = 0; i < indices.length; i++) {
        const r = indices[i];
        bx.set(x.subarray(r * features, (r + 1) * features), i * features);
        by[i] = y[r];
      }
      return { input: new Tensor(bx, [indices.length, features]), target: by };
    },
  };
}

/** The privacy settings of a run. */
export interface TrainerPrivacy {
  /** Hard budget: epsilon at `delta` never exceeds it. */
  targetEpsilon: number;
  /** delta (default 1 / N^1.1). */
  delta?: number;
  /** Planned passes over the data: steps = ceil(epochs * N / batchSize). */
  epochs: number;
  /** EXPECTED logical batch size (Poisson sampling rate batchSize / N). */
  batchSize: number;
  /** Per-sample clipping norm C. */
  maxGradNorm: number;
  /** Noise multiplier; by default calibrated so the planned steps spend at most the target. */
  noiseMultiplier?: number;
  /** Largest micro-batch run at once (memory only). */
  physicalBatchSize?: number;
  /** 'pld' (default) or 'rdp'. */
  accountant?: AccountantKind;
  /** PLD discretization (default: the accountant's). */
  pldParameters?: Partial<PldParameters>;
  /** REPRODUCIBLE MODE (not secure if the seed is known); default: keyed from the OS. */
  seed?: SeedLike;
}

/** Progress of {@link PrivateTrainer.fit}, after each step. */
export interface TrainerProgress {
  /** Steps charged so far (the ledger's count). */
  step: number;
  /** Steps the run plans in all: ceil(epochs * N / batchSize). */
  plannedSteps: number;
  /** Records in this step's batch. */
  batchSize: number;
  /** Mean per-record loss of this step's batch (NaN for an empty batch). */
  loss: number;
  /** epsilon spent so far (computed on demand: PLD is not free). */
  epsilon(): number;
}

/** Options of {@link PrivateTrainer.create}. */
export interface PrivateTrainerOptions<T> {
  /** Any model whose trainable parameters all support per-sample gradients. */
  model: Module;
  /** Per-sample loss: its `grad` is the gradient of the SUM of the per-sample losses. */
  loss: (
    output: Tensor,
    target: T,
  ) => {
    /** SUM of the per-sample losses of the batch. */
    total: number;
    /** Gradient of `total` w.r.t. `output` (same shape as `output`). */
    grad: Tensor;
  };
  /** The training data (its size N sets the sampling rate batchSize / N). */
  data: TrainerDataset<T>;
  /** The privacy settings: budget, delta, epochs, batch size, clipping norm, noise. */
  privacy: TrainerPrivacy;
  /** The optimizer over the trainable parameters (default Adam with `lr`). */
  optimizer?: (params: Parameter[]) => Optimizer;
  /** Learning rate of the default optimizer (default 0.01). */
  lr?: number;
  /**
   * Learning-rate schedule over the run's planned steps (default: none, the optimizer's `lr` is
   * left as it is). Before each step the optimizer's `lr` is set to its value when the run was
   * created times the schedule's multiplier at the run's step count (the ledger's), so a
   * resumed run continues the schedule. Saved with the run (with that base lr): a resume takes
   * both from there.
   */
  lrSchedule?: TrainerLrSchedule;
  /**
   * Keep an exponential moving average of the trainable parameters ({@link WeightAverage}),
   * folded in after every step, saved with every checkpoint and restored on resume; read it
   * with {@link PrivateTrainer.average}. It reads only the released parameters, so it is
   * post-processing: no privacy cost, the ledger is unchanged. Saved with the run: a resume
   * keeps it.
   */
  average?: TrainerAverage;
  /** Run directory (journal, checkpoints, lock); a path or an opened {@link RunDirectory}. */
  runDir?: string | RunDirectory;
  /** Start over in a run directory that holds a run, archiving the old one. */
  overwrite?: boolean;
  /** Steps between checkpoints (default 50). */
  checkpointEvery?: number;
  /**
   * The frozen base model's file, or files (e.g. a TF.js model.json, its shards and a
   * vocabulary): their hash (SHA-256 over the files in order) is recorded in every checkpoint and
   * resume refuses a base whose hash differs.
   */
  baseModelFile?: string | readonly string[];
  /** Anything the caller wants back on resume (JSON, or a function giving it), saved with every checkpoint. */
  runInfo?: Record<string, unknown> | (() => Record<string, unknown>);
  /** Warnings (default console.warn). */
  onWarning?: (message: string) => void;
}

/** A learning-rate schedule by name (see `namedSchedule`): JSON, saved with the run. */
export interface TrainerLrSchedule {
  /** 'constant', 'linear' (decay to 0 at the planned steps) or 'cosine' (to 0). */
  name: ScheduleName;
  /** Fraction of the planned steps of linear warmup from 0 (default 0). */
  warmup?: number;
}

/** The parameter average of a run (see {@link PrivateTrainerOptions.average}): JSON, saved with the run. */
export interface TrainerAverage {
  /** Decay per step, in [0, 1): average = decay * average + (1 - decay) * parameters. */
  decay: number;
  /** Ramp the decay in as min(decay, (1 + t) / (10 + t)) at update t (default true). */
  warmup?: boolean;
}

/** Options of {@link PrivateTrainer.resume}: the privacy settings come from the run. */
export type ResumeTrainerOptions<T> = Omit<
  PrivateTrainerOptions<T>,
  'privacy' | 'runDir' | 'overwrite' | 'average'
> & {
  /** If given, must equal the saved settings (a resumed run cannot change them). */
  privacy?: Partial<TrainerPrivacy>;
  /** If given, must equal the saved schedule (a resumed run keeps its schedule). */
  lrSchedule?: TrainerLrSchedule;
  /**
   * If given, must equal the saved average's settings (a resumed run keeps its average); null:
   * the run must keep none.
   */
  average?: TrainerAverage | null;
};

/** What {@link PrivateTrainer.fit} returns. */
export interface FitResult {
  /** Steps charged in all (the ledger's count). */
  steps: number;
  /** Steps charged by this call. */
  stepsThisCall: number;
  /** Steps the run plans in all. */
  plannedSteps: number;
  /** epsilon spent so far, at the run's delta. */
  epsilon: number;
  /** The budget refused a step before the planned steps were done. */
  stoppedByBudget: boolean;
  /** The signal aborted the run (a checkpoint was saved when there is a run directory). */
  aborted: boolean;
  /** Fewer steps than planned (resume to continue). */
  incomplete: boolean;
  /** The privacy report derived from the run's ledger. */
  report: LedgerReport;
}

interface SavedTrainer {
  privacy: Omit<TrainerPrivacy, 'seed'> & { noiseMultiplier: number; delta: number };
  seed: { type: string; value: string } | null;
  plannedSteps: number;
  datasetSize: number;
  samplesSeen: number;
  /** Absent in runs saved before schedules existed, and in runs without one. */
  lrSchedule?: { name: ScheduleName; warmup: number };
  /**
   * The optimizer's lr when the run was created, which the schedule multiplies (a resumed
   * optimizer's lr is the last step's, restored from the checkpoint). Absent in runs saved
   * before it existed (they have no schedule either).
   */
  baseLr?: number;
  /** The parameter average's settings; absent in runs without one. */
  average?: { decay: number; warmup: boolean };
}

/**
 * Throws, naming option `name`, unless the setting given to a resume (checked, defaults filled
 * in) equals the run's saved one (absent: none).
 */
function keepsSetting(name: string, given: unknown, saved: unknown, what: string): void {
  if (showSetting(given) !== showSetting(saved ?? null))
    throw new InvalidArgumentError(
      name,
      `is ${showSetting(given)}, the run being resumed has ${showSetting(saved ?? null)}; a resumed run keeps its ${what}`,
    );
}

/** Checks a {@link TrainerAverage}; returns it with the warmup filled in. */
function checkAverage(v: unknown): { decay: number; warmup: boolean } {
  const o = requireObject('average', v);
  for (const k of Object.keys(o))
    if (k !== 'decay' && k !== 'warmup')
      throw new InvalidArgumentError(`average.${k}`, 'is not an average field (decay, warmup)');
  const decay = o.decay;
  if (typeof decay !== 'number' || !(decay >= 0 && decay < 1))
    throw new InvalidArgumentError(
      'average.decay',
      `must be a number in [0, 1), got ${typeof decay === 'number' ? String(decay) : showSetting(decay)}`,
    );
  const warmup = o.warmup ?? true;
  if (typeof warmup !== 'boolean')
    throw new InvalidArgumentError(
      'average.warmup',
      `must be a boolean, got ${showSetting(warmup)}`,
    );
  return { decay, warmup };
}

/** Checks a {@link TrainerLrSchedule}; returns it with the warmup filled in. */
function checkSchedule(v: unknown): { name: ScheduleName; warmup: number } {
  const o = requireObject('lrSchedule', v);
  for (const k of Object.keys(o))
    if (k !== 'name' && k !== 'warmup')
      throw new InvalidArgumentError(`lrSchedule.${k}`, 'is not a schedule field (name, warmup)');
  const name = o.name;
  if (!isScheduleName(name))
    throw new InvalidArgumentError(
      'lrSchedule.name',
      `must be 'constant', 'linear' or 'cosine', got ${showSetting(name)}`,
    );
  const warmup = o.warmup ?? 0;
  if (typeof warmup !== 'number' || !(warmup >= 0 && warmup <= 1))
    throw new InvalidArgumentError(
      'lrSchedule.warmup',
      `must be a fraction in [0, 1], got ${showSetting(warmup)}`,
    );
  return { name, warmup };
}

function encodeSeed(s: SeedLike | undefined): SavedTrainer['seed'] {
  if (s === undefined) return null;
  if (s instanceof Uint8Array) return { type: 'bytes', value: Buffer.from(s).toString('hex') };
  return { type: typeof s, value: String(s) };
}

/** The seed {@link encodeSeed} saved (checked: an InvalidArgumentError naming `seed` otherwise). */
function decodeSeed(s: SavedTrainer['seed']): SeedLike | undefined {
  if (s === null) return undefined;
  const { type, value } = requireObject('seed', s);
  if (typeof value !== 'string')
    throw new InvalidArgumentError('seed.value', `must be a string, got ${showSetting(value)}`);
  if (type === 'bytes' && /^(?:[0-9a-f]{2})*$/.test(value))
    return Uint8Array.from(Buffer.from(value, 'hex'));
  if (type === 'bigint' && /^-?[0-9]+$/.test(value)) return BigInt(value);
  if (type === 'number' && value.trim() !== '' && Number.isFinite(Number(value)))
    return Number(value);
  if (type === 'string') return value;
  throw new InvalidArgumentError('seed', `is not a saved seed: ${showSetting(s)}`);
}

function showSetting(v: unknown): string {
  if (v instanceof Uint8Array) return Buffer.from(v).toString('hex');
  if (typeof v === 'bigint') return v.toString();
  return JSON.stringify(v) ?? 'undefined';
}

function positive(name: string, v: unknown, integer = false): number {
  if (
    typeof v !== 'number' ||
    !Number.isFinite(v) ||
    !(v > 0) ||
    (integer && !Number.isSafeInteger(v))
  )
    throw new InvalidArgumentError(
      name,
      `must be a finite number > 0${integer ? ' (an integer)' : ''}, got ${String(v)}`,
    );
  return v;
}

/** A private training run on the caller's model, loss and data. */
export class PrivateTrainer<T> {
  /** The privacy engine (its ledger is the run's privacy record). */
  readonly engine: PrivacyEngine;
  /** Steps the run plans. */
  readonly plannedSteps: number;
  private samplesSeen = 0;
  private closed = false;
  private baseSha: string | undefined;

  private constructor(
    private readonly o: PrivateTrainerOptions<T> | ResumeTrainerOptions<T>,
    private readonly saved: SavedTrainer,
    engine: PrivacyEngine,
    private readonly run: RunDirectory | null,
    average: WeightAverage | null = null,
  ) {
    this.engine = engine;
    this.plannedSteps = saved.plannedSteps;
    this.samplesSeen = saved.samplesSeen;
    this.baseLr = saved.baseLr ?? engine.optimizer.lr; // no baseLr: a run saved without schedule
    if (saved.lrSchedule) {
      const { name, warmup } = saved.lrSchedule;
      this.schedule = namedSchedule(name, warmup, saved.plannedSteps);
    }
    this.avg =
      average ??
      (saved.average ? new WeightAverage(o.model.trainableParameters(), saved.average) : null);
  }

  /** The parameter average (null: the run keeps none). */
  private readonly avg: WeightAverage | null;

  /**
   * The run's parameter average ({@link PrivateTrainerOptions.average}), null when it keeps
   * none. Evaluate with `average.withAverage(() => ...)`, or release it with `average.copyTo()`
   * once training is over. It is the live object: a `save()` or `fit()` inside `withAverage`, or
   * after `copyTo()`, checkpoints and continues from the averaged values instead of the last
   * iterate (no privacy cost, but another trajectory).
   */
  get average(): WeightAverage | null {
    return this.avg;
  }

  /** The optimizer's learning rate when the run was created (the schedule multiplies it). */
  private readonly baseLr: number;
  /** The saved schedule over the planned steps, if any. */
  private readonly schedule: Schedule | null = null;

  /** The run's learning-rate schedule (`null`: none; the optimizer's lr is left alone). */
  get lrSchedule(): TrainerLrSchedule | null {
    return this.saved.lrSchedule ? { ...this.saved.lrSchedule } : null;
  }

  /** Checks the options shared by create and resume (`resuming`: `average` may be null). */
  private static validate<T>(o: ResumeTrainerOptions<T>, resuming: boolean): void {
    if (!o || typeof o !== 'object') throw new InvalidArgumentError('options', 'must be an object');
    if (!o.model || typeof o.model.forward !== 'function')
      throw new InvalidArgumentError('model', 'must be a dp-lora Module');
    if (typeof o.loss !== 'function') throw new InvalidArgumentError('loss', 'must be a function');
    if (!o.data || typeof o.data.batch !== 'function')
      throw new InvalidArgumentError('data', 'must be a TrainerDataset (see arrayDataset)');
    positive('data.size', o.data.size, true);
    if (o.checkpointEvery !== undefined) positive('checkpointEvery', o.checkpointEvery, true);
    if (o.lr !== undefined) positive('lr', o.lr);
    if (o.lrSchedule !== undefined) checkSchedule(o.lrSchedule);
    if (o.average !== undefined && !(resuming && o.average === null)) checkAverage(o.average);
  }

  private static build<T>(
    o: ResumeTrainerOptions<T>,
    p: SavedTrainer['privacy'] & { seed?: SeedLike },
    calibrate: boolean,
    plannedSteps: number,
    run: RunDirectory | null,
  ): PrivacyEngine {
    const engine = new PrivacyEngine();
    const params = o.model.trainableParameters();
    const optimizer = o.optimizer ? o.optimizer(params) : new Adam(params, { lr: o.lr ?? 0.01 });
    const common = {
      model: o.model,
      optimizer,
      dataset: o.data.size,
      batchSize: p.batchSize,
      maxGradNorm: p.maxGradNorm,
      maxPhysicalBatchSize: p.physicalBatchSize,
      accountant: p.accountant,
      pldParameters: p.pldParameters,
      seed: p.seed,
      onWarning: o.onWarning,
      onLedgerRecord: run
        ? (r: Parameters<RunDirectory['appendRecord']>[0]) => run.appendRecord(r)
        : undefined,
    };
    if (calibrate)
      engine.makePrivateWithEpsilon({
        ...common,
        targetEpsilon: p.targetEpsilon,
        targetDelta: p.delta,
        epochs: p.epochs,
      });
    else
      engine.makePrivate({
        ...common,
        noiseMultiplier: p.noiseMultiplier,
        targetEpsilon: p.targetEpsilon,
        delta: p.delta,
        plannedSteps,
      });
    return engine;
  }

  /**
   * Starts a new run. With `runDir`, the directory is validated and locked first, and the
   * journal and a step-0 checkpoint are written before this returns.
   */
  static create<T>(o: PrivateTrainerOptions<T>): PrivateTrainer<T> {
    PrivateTrainer.validate(o, false);
    const pr = o.privacy;
    if (!pr || typeof pr !== 'object')
      throw new InvalidArgumentError('privacy', 'must be an object');
    const N = o.data.size;
    positive('privacy.targetEpsilon', pr.targetEpsilon);
    positive('privacy.epochs', pr.epochs);
    positive('privacy.batchSize', pr.batchSize);
    if (pr.batchSize > N)
      throw new InvalidArgumentError(
        'privacy.batchSize',
        `${pr.batchSize} exceeds the ${N} records`,
      );
    positive('privacy.maxGradNorm', pr.maxGradNorm);
    const delta = pr.delta ?? 1 / Math.pow(N, 1.1);
    const plannedSteps = Math.ceil((pr.epochs * N) / pr.batchSize);
    if (!Number.isSafeInteger(plannedSteps) || plannedSteps > 2 ** 31)
      throw new InvalidArgumentError('privacy.epochs', `plans ${plannedSteps} steps, too many`);
    const run =
      o.runDir === undefined
        ? null
        : o.runDir instanceof RunDirectory
          ? o.runDir
          : RunDirectory.open(o.runDir, { mode: 'new', overwrite: o.overwrite });
    try {
      const calibrate = pr.noiseMultiplier === undefined;
      const engine = PrivateTrainer.build(
        o,
        { ...pr, delta, noiseMultiplier: pr.noiseMultiplier ?? NaN },
        calibrate,
        plannedSteps,
        run,
      );
      const saved: SavedTrainer = {
        privacy: {
          targetEpsilon: pr.targetEpsilon,
          delta,
          epochs: pr.epochs,
          batchSize: pr.batchSize,
          maxGradNorm: pr.maxGradNorm,
          noiseMultiplier: engine.config.noiseMultiplier,
          physicalBatchSize: pr.physicalBatchSize,
          accountant: engine.config.accountant,
          pldParameters: pr.pldParameters,
        },
        seed: encodeSeed(pr.seed),
        plannedSteps,
        datasetSize: N,
        samplesSeen: 0,
        baseLr: engine.optimizer.lr,
        ...(o.lrSchedule !== undefined ? { lrSchedule: checkSchedule(o.lrSchedule) } : {}),
        ...(o.average !== undefined ? { average: checkAverage(o.average) } : {}),
      };
      const t = new PrivateTrainer<T>(o, saved, engine, run);
      if (run) {
        run.startJournal(engine.privacyLedger);
        t.save();
      }
      return t;
    } catch (e) {
      if (run && !(o.runDir instanceof RunDirectory)) run.release();
      throw e;
    }
  }

  /**
   * Resumes the run saved in `runDir` on the same model structure, loss and data. The privacy
   * settings, the budget and the ledger come from the run; steps charged after the last
   * checkpoint (in the journal) stay charged. Parts that disagree are refused with a typed error.
   */
  static resume<T>(runDir: string | RunDirectory, o: ResumeTrainerOptions<T>): PrivateTrainer<T> {
    PrivateTrainer.validate(o, true);
    const run =
      runDir instanceof RunDirectory ? runDir : RunDirectory.open(runDir, { mode: 'resume' });
    try {
      const journal = run.readJournal();
      const ckRoot = path.join(run.dir, CHECKPOINTS_DIR);
      if (!hasCheckpoint(ckRoot))
        throw new InvalidArgumentError('resume', `${run.dir} holds no checkpoint to resume from`);
      if (!journal)
        throw new DpLoraError(
          ErrorCode.Ledger,
          `${run.dir}: the privacy journal (${JOURNAL_FILE}) is missing; refusing to resume without the run's full ledger`,
        );
      const ck = loadRunCheckpoint(run, o.baseModelFile);
      const raw = (ck.state.run as { trainer?: SavedTrainer }).trainer;
      if (!raw || typeof raw !== 'object' || !raw.privacy)
        throw new InvalidArgumentError(
          'resume',
          `${run.dir}: the checkpoint has no trainer settings`,
        );
      // The run's counters and seed, checked before anything is built, loaded or written.
      const saved: SavedTrainer = { ...raw };
      let seed: SeedLike | undefined;
      try {
        seed = decodeSeed(saved.seed);
        requireInt('plannedSteps', saved.plannedSteps, { min: 1, max: 2 ** 31 });
        requireInt('samplesSeen', saved.samplesSeen, { min: 0 });
      } catch (e) {
        throw new CheckpointError(
          `${run.dir}: the checkpoint's trainer settings are invalid (${(e as Error).message})`,
        );
      }
      if (o.data.size !== saved.datasetSize)
        throw new InvalidArgumentError(
          'data',
          `has ${o.data.size} records, the run was trained on ${saved.datasetSize}`,
        );
      for (const [k, v] of Object.entries(o.privacy ?? {})) {
        if (v === undefined) continue;
        const was = k === 'seed' ? seed : (saved.privacy as Record<string, unknown>)[k];
        if (showSetting(v) !== showSetting(was))
          throw new InvalidArgumentError(
            `privacy.${k}`,
            `is ${showSetting(v)}, the run being resumed has ${showSetting(was)}; a resumed run keeps its settings`,
          );
      }
      // The saved schedule and its base lr: what the checkpoint says must make sense.
      if (saved.lrSchedule !== undefined || saved.baseLr !== undefined) {
        try {
          // With its defaults filled in: the schedule is built from these.
          if (saved.lrSchedule !== undefined) saved.lrSchedule = checkSchedule(saved.lrSchedule);
          if (
            typeof saved.baseLr !== 'number' ||
            !Number.isFinite(saved.baseLr) ||
            !(saved.baseLr > 0)
          )
            throw new InvalidArgumentError('baseLr', `is ${showSetting(saved.baseLr)}`);
        } catch (e) {
          throw new CheckpointError(
            `${run.dir}: the checkpoint's learning-rate settings are invalid (${(e as Error).message})`,
          );
        }
      }
      // A resumed run keeps its lr: the optimizer's state (lr included) comes from the checkpoint.
      if (
        o.lr !== undefined &&
        o.optimizer === undefined && // `lr` is the default optimizer's only
        saved.baseLr !== undefined &&
        o.lr !== saved.baseLr
      )
        throw new InvalidArgumentError(
          'lr',
          `is ${o.lr}, the run being resumed was created with ${saved.baseLr}; a resumed run keeps its lr`,
        );
      if (o.lrSchedule !== undefined)
        keepsSetting('lrSchedule', checkSchedule(o.lrSchedule), saved.lrSchedule, 'schedule');
      if (saved.average !== undefined) {
        try {
          saved.average = checkAverage(saved.average);
        } catch (e) {
          throw new CheckpointError(
            `${run.dir}: the checkpoint's average settings are invalid (${(e as Error).message})`,
          );
        }
      }
      if (o.average !== undefined)
        keepsSetting(
          'average',
          o.average === null ? null : checkAverage(o.average),
          saved.average,
          'average',
        );
      const state = restoreTensors(ck.state.engine, ck.tensors) as PrivacyEngineState;
      if (!state || typeof state !== 'object')
        throw new CheckpointError(`${run.dir}: the checkpoint has no privacy-engine state`);
      // The saved average, checked whole before the engine or the model is touched.
      let average: WeightAverage | null = null;
      const a = (ck.state.run as { average?: unknown }).average;
      if (saved.average === undefined && a !== undefined)
        throw new CheckpointError(
          `${run.dir}: the checkpoint holds a parameter average but the run's settings keep none`,
        );
      if (saved.average !== undefined) {
        if (!a || typeof a !== 'object')
          throw new CheckpointError(
            `${run.dir}: the run keeps a parameter average but its checkpoint holds none`,
          );
        average = new WeightAverage(o.model.trainableParameters(), saved.average);
        try {
          average.loadStateDict(
            restoreTensors(a, ck.tensors) as { updates: number; averages: Float32Array[] },
          );
          // One update per applied step: never more than the steps the ledger charged.
          if (average.updates > ck.state.step)
            throw new InvalidArgumentError(
              'state.updates',
              `is ${average.updates}, more than the ${ck.state.step} steps of the checkpoint`,
            );
        } catch (e) {
          if (e instanceof CheckpointError) throw e;
          // A model that does not fit the saved parameters either is the caller's mistake (the
          // same error as for a run without an average), not a broken average.
          checkSavedParams(o.model, state.params);
          throw new CheckpointError(
            `${run.dir}: the checkpoint's parameter average is invalid (${(e as Error).message})`,
          );
        }
      }
      const engine = PrivateTrainer.build(
        o,
        { ...saved.privacy, seed },
        false,
        saved.plannedSteps,
        run,
      );
      state.ledger = ck.state.ledger.toJSON();
      run.continueJournal();
      engine.loadStateDict(state, { ledger: journal });
      const info = (ck.state.run as { info?: Record<string, unknown> }).info ?? {};
      const trainer = new PrivateTrainer<T>(
        { ...o, runInfo: o.runInfo ?? info },
        saved,
        engine,
        run,
        average,
      );
      // loadRunCheckpoint has just hashed the base and found the recorded hash: keep it.
      if (o.baseModelFile !== undefined) trainer.baseSha = ck.manifest.baseModelSha256 ?? undefined;
      return trainer;
    } catch (e) {
      if (!(runDir instanceof RunDirectory)) run.release();
      throw e;
    }
  }

  /** The run directory, if any. */
  get runDirectory(): RunDirectory | null {
    return this.run;
  }

  /** Records processed so far (all sessions). */
  get samples(): number {
    return this.samplesSeen;
  }

  /**
   * Trains until the planned steps are done, the budget refuses a step, `maxSteps` steps were
   * taken in this call, or `signal` aborts; then saves a checkpoint (with a run directory).
   * Every step is charged to the ledger (and journaled) before its update is applied.
   */
  async fit(
    opts: {
      maxSteps?: number;
      signal?: AbortSignal;
      onProgress?: (p: TrainerProgress) => void;
    } = {},
  ): Promise<FitResult> {
    if (this.closed) throw new InvalidStateError('fit: the trainer is closed');
    if (opts === null || typeof opts !== 'object')
      throw new InvalidArgumentError('opts', 'fit: must be an options object');
    if (opts.maxSteps !== undefined) positive('maxSteps', opts.maxSteps, true);
    const engine = this.engine;
    const every = this.o.checkpointEvery ?? 50;
    const start = engine.steps;
    const limit =
      opts.maxSteps !== undefined
        ? Math.min(this.plannedSteps, start + opts.maxSteps)
        : this.plannedSteps;
    let stoppedByBudget = false;
    let aborted = false;
    while (engine.steps < limit) {
      await new Promise((r) => setImmediate(r)); // let signals and other work through
      if (opts.signal?.aborted) {
        aborted = true;
        break;
      }
      // The schedule is a function of the step count only: public, and continued on resume.
      if (this.schedule) engine.optimizer.lr = this.baseLr * this.schedule(engine.steps);
      let batch;
      try {
        batch = engine.nextBatch();
      } catch (e) {
        if (e instanceof PrivacyBudgetExceededError) {
          stoppedByBudget = true;
          break;
        }
        throw e;
      }
      let lossSum = 0;
      const model = this.o.model;
      try {
        for (const idx of this.microBatches(batch)) {
          engine.useRecords(idx); // per-record randomness is keyed by these records' indices
          const { input, target, mask } = this.o.data.batch(idx);
          this.setMask(mask);
          const out = model.forward(input);
          const l = this.lossOf(out, target);
          lossSum += l.total;
          model.backward(l.grad, false); // the input is data: no gradient needed
          engine.optimizer.accumulate();
        }
      } finally {
        this.setMask(undefined);
      }
      engine.optimizer.step();
      this.avg?.update(); // post-processing of the released parameters
      this.samplesSeen += batch.indices.length;
      if (opts.onProgress)
        opts.onProgress({
          step: engine.steps,
          plannedSteps: this.plannedSteps,
          batchSize: batch.indices.length,
          loss: batch.indices.length ? lossSum / batch.indices.length : NaN,
          epsilon: () => engine.getEpsilon(),
        });
      if (this.run && engine.steps % every === 0) this.save();
    }
    if (this.run) this.save();
    const steps = engine.steps;
    return {
      steps,
      stepsThisCall: steps - start,
      plannedSteps: this.plannedSteps,
      epsilon: engine.getEpsilon(),
      stoppedByBudget,
      aborted,
      incomplete: steps < this.plannedSteps && !stoppedByBudget,
      report: engine.report(),
    };
  }

  /** The micro-batches of a logical batch: the dataset's split (checked) or the engine's. */
  private microBatches(batch: { indices: Int32Array; microBatches: Int32Array[] }): Int32Array[] {
    const data = this.o.data;
    if (!data.microBatches || batch.indices.length === 0) return batch.microBatches;
    const max = this.saved.privacy.physicalBatchSize ?? batch.indices.length;
    const micro = data.microBatches(batch.indices, max);
    checkPartition(batch.indices, micro, max);
    return micro;
  }

  /** Hands a padding mask to the model (undefined: clears it if the model takes masks). */
  /** Calls the user's loss and checks what it returned (a typed error naming `loss`). */
  private lossOf(out: Tensor, target: T): { total: number; grad: Tensor } {
    const l: unknown = this.o.loss(out, target);
    const r = requireObject('loss(output, target)', l);
    const total = r.total; // may be non-finite: such a step is refused by the optimizer
    if (typeof total !== 'number')
      throw new InvalidArgumentError(
        'loss(output, target).total',
        `must be a number, got ${typeof total}`,
      );
    const grad = requireInstance('loss(output, target).grad', r.grad, Tensor);
    if (grad.size !== out.size)
      throw new InvalidArgumentError(
        'loss(output, target).grad',
        `must have the output's shape [${out.shape.join(', ')}], got [${grad.shape.join(', ')}]`,
      );
    return { total, grad };
  }

  private setMask(mask: SequenceMask | undefined): void {
    const m = this.o.model;
    if (isMaskedModule(m)) m.setMask(mask ?? null);
    else if (mask)
      throw new InvalidArgumentError(
        'data',
        'returned a padding mask but the model has no setMask (it is not a MaskedModule)',
      );
  }

  /**
   * Mean per-record loss on `data` (eval mode), and the accuracy when the model outputs one
   * score per class and the targets are class indices.
   */
  evaluate(
    data: TrainerDataset<T>,
    chunk = 512,
  ): {
    /** Mean per-record loss (NaN for empty data). */
    loss: number;
    /** Fraction in [0, 1] of records whose top score is their class; null if not a classifier. */
    accuracy: number | null;
  } {
    if (!data || typeof data.batch !== 'function')
      throw new InvalidArgumentError('data', 'must be a TrainerDataset');
    positive('chunk', chunk, true);
    const m = this.o.model;
    const wasTraining = m.training;
    m.eval();
    let loss = 0;
    let correct = 0;
    let classified = true;
    try {
      for (let s = 0; s < data.size; s += chunk) {
        const idx = new Int32Array(Math.min(chunk, data.size - s)).map((_, i) => s + i);
        const { input, target, mask } = data.batch(idx);
        this.setMask(mask);
        const out = m.forward(input);
        loss += this.lossOf(out, target).total;
        const k = out.features;
        if (!(target instanceof Int32Array) || out.size !== idx.length * k) classified = false;
        else
          for (let i = 0; i < idx.length; i++) {
            let best = 0;
            for (let j = 1; j < k; j++) if (out.data[i * k + j] > out.data[i * k + best]) best = j;
            if (best === target[i]) correct++;
          }
      }
    } finally {
      this.setMask(undefined);
      if (wasTraining) m.train();
    }
    return {
      loss: data.size ? loss / data.size : NaN,
      accuracy: classified && data.size ? correct / data.size : null,
    };
  }

  /** Saves a checkpoint now (needs a run directory); returns its folder. */
  save(): string {
    if (!this.run) throw new InvalidStateError('save: this trainer has no run directory');
    const st = this.engine.stateDict();
    const tensors: Record<string, StTensorInput> = {};
    const { ledger, ...rest } = st;
    const engineJson = extractTensors(rest, tensors);
    const average = this.avg ? extractTensors(this.avg.stateDict(), tensors, 'average') : undefined;
    return saveCheckpoint(
      path.join(this.run.dir, CHECKPOINTS_DIR),
      {
        step: st.step,
        ledger,
        engine: engineJson,
        run: {
          trainer: { ...this.saved, samplesSeen: this.samplesSeen },
          info: this.runInfo,
          ...(average !== undefined ? { average } : {}),
        },
        baseModelSha256: this.baseHash(),
      },
      tensors,
    );
  }

  /** The base model's hash (computed once: the base is frozen for the whole run). */
  private baseHash(): string | null {
    const f = this.o.baseModelFile;
    if (f === undefined) return null;
    if (this.baseSha === undefined) this.baseSha = baseModelSha256(f);
    return this.baseSha;
  }

  /** The caller's runInfo as saved in the run (after a resume: the saved one). */
  get runInfo(): Record<string, unknown> {
    const r = this.o.runInfo;
    return typeof r === 'function' ? r() : (r ?? {});
  }

  /** Releases the run directory's lock (the trainer cannot fit afterwards). */
  close(): void {
    this.closed = true;
    this.run?.release();
  }
}
