/**
 * PrivacyEngine: ties a model and optimizer to Poisson sampling, clipping,
 * noise, the accountant and the hard budget, and saves/restores all of it.
 *
 *   const engine = new PrivacyEngine();
 *   const { optimizer } = engine.makePrivate({ model, optimizer: new AdamW(model.trainableParameters(), { lr }),
 *     dataset: { length: N }, batchSize: 256, noiseMultiplier: 1.0, maxGradNorm: 1.0 });
 *   for (...) { const { microBatches } = engine.nextBatch(); for (const idx of microBatches) { ...forward, loss, backward...; optimizer.accumulate(); } optimizer.step(); }
 *   engine.getEpsilon();
 */
import { PldAccountant, RdpAccountant, calibrateNoiseMultiplier } from '../accounting';
import { PrivacyLedger } from '../accounting/privacy_ledger';
import type { LedgerChainJson, LedgerRecord, LedgerReport } from '../accounting/privacy_ledger';
import { DEFAULT_PLD_PARAMETERS } from '../accounting/pld';
import { DpLoraError, ErrorCode, InvalidArgumentError, InvalidStateError } from '../errors';
import { BudgetGuard, DEFAULT_GUARD_HORIZON } from './budget_guard';
import { Rng } from '../kernels/rng';
import type { RngState } from '../kernels/rng';
import { createHash, randomBytes } from 'crypto';
import { Module } from '../nn/module';
import { recordKeyFromBytes } from '../nn/record_random';
import { Parameter } from '../nn/tensor';
import { Optimizer } from '../optim/optimizer';
import { ClippingMode, DPOptimizer } from './dp_optimizer';
import { PerSampleGradError, PrivacyBudgetExceededError } from './errors';
import { SeedLike, seedToKey } from './seed';
import {
  BatchSampler,
  PoissonSampler,
  SamplerState,
  ShuffleSampler,
  splitMicroBatches,
} from './samplers';

import type { AccountantKind, PldParameters } from '../accounting';
import {
  OPEN_UNIT,
  requireFloat32Array,
  requireInt,
  requireNumber,
  requireObject,
  requireOneOf,
} from '../validate';

type Accountant = PldAccountant | RdpAccountant;

/** Options of {@link PrivacyEngine.makePrivate}. */
export interface MakePrivateOptions {
  /** The model to train; every trainable parameter must have per-sample gradient support. */
  model: Module;
  /** Any optimizer over the model's trainable parameters (all of them). */
  optimizer: Optimizer;
  /** The training set (only its size N is used) or N itself. */
  dataset:
    | {
        /** Number of records N. */
        length: number;
      }
    | number;
  /** EXPECTED logical batch size q*N (Poisson batches have random size). */
  batchSize: number;
  /** Noise standard deviation over the clipping norm (0 makes epsilon infinite: tests only). */
  noiseMultiplier: number;
  /** Clipping norm C of each sample's whole gradient (perLayer: sqrt(sum C_k^2) by default). */
  maxGradNorm: number;
  /** Largest micro-batch processed at once (default: whole logical batch). */
  maxPhysicalBatchSize?: number;
  /** Accountant (default 'pld'). */
  accountant?: AccountantKind;
  /** PLD discretization (default DEFAULT_PLD_PARAMETERS; a coarser gridStep is faster and looser). Saved in the ledger. */
  pldParameters?: Partial<PldParameters>;
  /** delta for getEpsilon() and the budget (default 1 / N^1.1). */
  delta?: number;
  /** Hard budget: a step that would take epsilon (at delta) past it throws before any update. */
  targetEpsilon?: number;
  /**
   * Explicit opt-in to a reproducible, seeded noise/sampling stream (NOT secure
   * against an adversary who learns the seed).  Default: keyed from the OS.
   */
  seed?: SeedLike;
  /** 'flat' (default) or 'perLayer' thresholds. */
  clipping?: ClippingMode;
  /** perLayer thresholds by module path or in module order. */
  perLayerMaxGradNorm?: Record<string, number> | number[];
  /** 'poisson' (default; amplification) or 'shuffle' (fixed-size batches, accounted with sampleRate 1). */
  sampling?: 'poisson' | 'shuffle';
  /** Receives warnings (default console.warn). */
  onWarning?: (message: string) => void;
  /**
   * Called with every record appended to the privacy ledger after makePrivate (each charged
   * step, BEFORE its update is applied; each re-keying on resume). Persist it here (a run
   * directory's journal does): if it throws, the step is refused and nothing is updated.
   */
  onLedgerRecord?: (record: LedgerRecord) => void;
  /** Steps the run plans in all (the budget guard verifies that far ahead at once). */
  plannedSteps?: number;
}

/** Options of {@link PrivacyEngine.makePrivateWithEpsilon}: noiseMultiplier is calibrated. */
export interface MakePrivateWithEpsilonOptions extends Omit<
  MakePrivateOptions,
  'noiseMultiplier' | 'targetEpsilon' | 'delta'
> {
  /** Epsilon budget to calibrate the noise to (also the hard budget). */
  targetEpsilon: number;
  /** Delta of the guarantee. */
  targetDelta: number;
  /** Planned epochs: steps = ceil(epochs * N / batchSize). */
  epochs: number;
}

/** What makePrivate returns. */
export interface PrivateTraining {
  /** The model (unchanged object). */
  model: Module;
  /** The DP optimizer wrapping the given optimizer: call its step() once per logical batch. */
  optimizer: DPOptimizer;
  /** The batch sampler (Poisson by default). */
  sampler: BatchSampler;
}

/** One logical batch: its indices and the micro-batches to run. */
export interface LogicalBatch {
  /** Indices of the records in the logical batch. */
  indices: Int32Array;
  /** The same indices split into micro-batches of at most maxPhysicalBatchSize. */
  microBatches: Int32Array[];
}

/** Privacy configuration recorded in the state. */
export interface PrivacyConfig {
  /** Accountant in use. */
  accountant: AccountantKind;
  /** Noise standard deviation over the clipping norm. */
  noiseMultiplier: number;
  /** Clipping norm C. */
  maxGradNorm: number;
  /** The rate the accountant uses (Poisson: q; shuffle: 1). */
  sampleRate: number;
  /** Expected logical batch size: the noisy sum is divided by it. */
  expectedBatchSize: number;
  /** Number of private records N. */
  datasetSize: number;
  /** Delta of the reported guarantee. */
  delta: number;
  /** Hard epsilon budget, or null without one. */
  targetEpsilon: number | null;
  /** Clipping mode. */
  clipping: ClippingMode;
  /** Per-layer thresholds by module path (perLayer mode), else null. */
  perLayerMaxGradNorm: Record<string, number> | null;
  /** Batch sampling scheme. */
  sampling: 'poisson' | 'shuffle';
  /** Largest micro-batch, or null for whole logical batches. */
  maxPhysicalBatchSize: number | null;
}

/**
 * The engine's checkpoint state (version 1).  Float32Arrays hold tensors;
 * everything else is JSON-safe (the accountant ledger is its toJSON()).
 * - `params[path]`: every trainable parameter by dotted path (`layers.0.lora_A`).
 * - `optimizer.slots[path]`: the wrapped optimizer's buffers by parameter path.
 * - `rng.state`: only in reproducible (seeded) mode; otherwise the RNG is
 *   re-keyed from the OS on resume and no key is ever written.
 */
export interface PrivacyEngineState {
  /** Marks the object as privacy-engine state. */
  format: 'dp-lora.privacy-engine';
  /** State format version. */
  version: 2;
  /** Steps charged: must equal the ledger's step count. */
  step: number;
  /** Every trainable parameter by dotted path. */
  params: Record<
    string,
    {
      /** Dimensions, outermost first. */
      shape: number[];
      /** Values, row-major. */
      data: Float32Array;
    }
  >;
  /** The wrapped optimizer's state, buffers keyed by parameter path. */
  optimizer: {
    /** Optimizer kind (`'sgd'`, `'adam'`, `'adamw'`). */
    kind: string;
    /** Learning rate. */
    lr: number;
    /** Hyperparameters. */
    hyper: Record<string, number | boolean>;
    /** Optimizer steps taken. */
    step: number;
    /** State buffers by parameter path, then by name. */
    slots: Record<string, Record<string, Float32Array>>;
  };
  /** The sampler's state. */
  sampler: SamplerState;
  /** The noise RNG: how it was keyed, and its state when the ledger says the run is seeded. */
  rng: {
    /** Where the key came from (see {@link Rng.describe}). */
    description: string;
    /** The stream state, saved in fixed-seed mode only (it holds the key). */
    state?: RngState;
  };
  /** The privacy ledger (a {@link PrivacyLedger} chain): the one record of steps and spending. */
  ledger: LedgerChainJson;
  /** The privacy configuration. */
  privacy: PrivacyConfig;
  /** epsilon at privacy.delta when saved (informational; derived from the ledger). */
  epsilon: number;
}

/** Thrown when a state's parts disagree (ledger vs step, ledger vs budget, another run's ledger). */
export class LedgerMismatchError extends DpLoraError {
  /** Which parts disagree (e.g. 'ledger-steps', 'budget', 'run-id'). */
  readonly what: string;
  /**
   * @param what - a short tag of the disagreement
   * @param message - a sentence saying what disagrees with what
   */
  constructor(what: string, message: string) {
    super(ErrorCode.Ledger, message);
    this.what = what;
  }
}

function newAccountant(kind: AccountantKind, pld?: Partial<PldParameters>): Accountant {
  if (requireOneOf('accountant', kind, ['pld', 'rdp']) === 'pld')
    return new PldAccountant({ ...DEFAULT_PLD_PARAMETERS, ...(pld ?? {}) });
  return new RdpAccountant();
}

/** The number of records of `dataset` (a count or an array-like), checked. */
function datasetSize(dataset: MakePrivateOptions['dataset'], who: string): number {
  const n = typeof dataset === 'number' ? dataset : dataset?.length;
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 1)
    throw new InvalidArgumentError(
      'dataset',
      `${who}: dataset must have a positive integer length, got ${n}`,
    );
  return n;
}

/**
 * Checks that a saved state's parameters (`state.params` of a {@link PrivacyEngineState}) fit
 * `model`: a Float32Array of the right size for every trainable parameter, and none for any
 * other. Writes nothing ({@link PrivacyEngine.loadStateDict} runs it before loading).
 * @throws InvalidArgumentError naming `state.params` or the parameter that does not fit
 */
export function checkSavedParams(model: Module, params: unknown): void {
  const saved = requireObject('state.params', params) as Record<string, { data?: unknown }>;
  const named = new Map(model.namedParameters());
  const trainable = [...named].filter(([, p]) => p.requiresGrad).map(([path]) => path);
  for (const path of trainable) {
    const s = Object.prototype.hasOwnProperty.call(saved, path) ? saved[path] : undefined;
    if (!s)
      throw new InvalidArgumentError(
        'state.params',
        `no saved value for trainable parameter '${path}'`,
      );
    const name = `state.params['${path}'].data`;
    const data = requireFloat32Array(name, s.data, named.get(path)!.size);
    // A NaN or an infinity would make every loss and update of the run NaN.
    const bad = data.findIndex((x) => !Number.isFinite(x));
    if (bad >= 0)
      throw new InvalidArgumentError(
        name,
        `holds ${data[bad]} at index ${bad}, not a finite number`,
      );
  }
  for (const path of Object.keys(saved))
    if (!named.get(path)?.requiresGrad)
      throw new InvalidArgumentError(
        'state.params',
        `saved parameter '${path}' is not a trainable parameter of this model`,
      );
}

/** Owns the privacy machinery of one training run. */
export class PrivacyEngine {
  private cfg: PrivacyConfig | null = null;
  private model: Module | null = null;
  private dp: DPOptimizer | null = null;
  private sampler_: BatchSampler | null = null;
  private rng: Rng | null = null;
  /** The privacy record: steps, noise-free steps, key source and epsilon all derive from it. */
  private ledger_: PrivacyLedger | null = null;
  private guard: BudgetGuard | null = null;
  private seeded = false;
  /** Run key of the per-record randomness (dropout masks); from the seed or the OS. */
  private recordKey: Uint32Array | null = null;
  private epsCache = new Map<string, number>();
  private batchPending: LogicalBatch | null = null;
  /** Steps a calibrated run planned (makePrivateWithEpsilon). */
  private plannedSteps: number | null = null;
  private onRecord: ((r: LedgerRecord) => void) | null = null;
  private warnFn: (m: string) => void = (m) => console.warn(m);
  /** Warnings issued so far. */
  readonly warnings: string[] = [];

  private warn(m: string): void {
    this.warnings.push(m);
    this.warnFn(`dp-lora: ${m}`);
  }

  /**
   * Makes training private.  Validates every trainable parameter has
   * per-sample support (throws PerSampleGradError otherwise), switches the
   * model to per-sample mode and returns the DP optimizer and sampler.
   */
  makePrivate(o: MakePrivateOptions): PrivateTraining {
    requireObject('options', o);
    if (this.cfg)
      throw new InvalidStateError(
        'PrivacyEngine.makePrivate: this engine is already in use; create a new PrivacyEngine per training run',
      );
    if (o.onWarning) this.warnFn = o.onWarning;
    const N = datasetSize(o.dataset, 'makePrivate');
    // The expected batch size (q = batchSize / N), not necessarily an integer.
    requireNumber('batchSize', o.batchSize, { greaterThan: 0, max: N });
    requireNumber('noiseMultiplier', o.noiseMultiplier, { min: 0 });
    requireNumber('maxGradNorm', o.maxGradNorm, { greaterThan: 0 });
    if (o.maxPhysicalBatchSize !== undefined)
      requireInt('maxPhysicalBatchSize', o.maxPhysicalBatchSize, { min: 1 });
    const delta = requireNumber('delta', o.delta ?? 1 / Math.pow(N, 1.1), OPEN_UNIT);
    if (delta >= 1 / N)
      this.warn(
        `delta = ${delta} >= 1/N = ${1 / N}: such a delta allows leaking a whole record; use delta << 1/N (default 1/N^1.1)`,
      );
    if (o.targetEpsilon !== undefined)
      requireNumber('targetEpsilon', o.targetEpsilon, { greaterThan: 0 });
    if (o.noiseMultiplier === 0) {
      if (o.targetEpsilon !== undefined)
        throw new InvalidArgumentError(
          'noiseMultiplier',
          'makePrivate: noiseMultiplier = 0 gives infinite epsilon, which no targetEpsilon allows',
        );
      this.warn(
        'noiseMultiplier = 0: no noise, training is NOT differentially private (epsilon is infinite)',
      );
    }
    const accountantKind = o.accountant ?? 'pld';
    const sampling = requireOneOf('sampling', o.sampling ?? 'poisson', ['poisson', 'shuffle']);
    if (sampling === 'shuffle' && !Number.isInteger(o.batchSize))
      throw new InvalidArgumentError(
        'batchSize',
        'makePrivate: shuffle sampling needs an integer batchSize',
      );

    this.seeded = o.seed !== undefined;
    this.rng = this.seeded ? new Rng({ seed: seedToKey(o.seed!) }) : new Rng();
    if (this.seeded)
      this.warn(
        `fixed seed: noise and sampling are reproducible and NOT secure if the seed is known (${this.rng.describe()})`,
      );

    this.recordKey = recordKeyFromBytes(
      this.seeded
        ? createHash('sha256').update('dp-lora record key:').update(seedToKey(o.seed!)).digest()
        : randomBytes(16),
    );

    const sampler: BatchSampler =
      sampling === 'poisson'
        ? new PoissonSampler({ datasetSize: N, sampleRate: o.batchSize / N, rng: this.rng })
        : new ShuffleSampler({ datasetSize: N, batchSize: o.batchSize, rng: this.rng });
    if (sampling === 'shuffle')
      this.warn(
        "sampling 'shuffle' gets no amplification by subsampling: it is accounted with sampleRate 1",
      );

    const dp = new DPOptimizer(o.model, o.optimizer, {
      noiseMultiplier: o.noiseMultiplier,
      maxGradNorm: o.maxGradNorm,
      expectedBatchSize: o.batchSize,
      rng: this.rng,
      clipping: o.clipping,
      perLayerMaxGradNorm: o.perLayerMaxGradNorm,
    });
    // The step is charged to the ledger in beforeStep, before noise is drawn or anything updated.
    dp.hooks = {
      beforeStep: () => this.beforeStep(),
      batchOpen: () => this.batchPending !== null,
    };
    this.model = o.model;
    this.dp = dp;
    this.sampler_ = sampler;
    this.onRecord = o.onLedgerRecord ?? null;
    this.ledger_ = PrivacyLedger.create({
      accountant: accountantKind,
      parameters: newAccountant(accountantKind, o.pldParameters).toJSON().parameters,
      delta,
      targetEpsilon: o.targetEpsilon ?? null,
      keySource: this.seeded ? 'fixed-seed' : 'os-entropy',
    });
    this.cfg = {
      accountant: accountantKind,
      noiseMultiplier: o.noiseMultiplier,
      maxGradNorm: o.maxGradNorm,
      sampleRate: sampler.accountingSampleRate,
      expectedBatchSize: o.batchSize,
      datasetSize: N,
      delta,
      targetEpsilon: o.targetEpsilon ?? null,
      clipping: dp.clipping,
      perLayerMaxGradNorm:
        dp.clipping === 'perLayer'
          ? Object.fromEntries(dp.tracked.map((t) => [t.path, t.maxGradNorm]))
          : null,
      sampling,
      maxPhysicalBatchSize: o.maxPhysicalBatchSize ?? null,
    };
    const cfg = this.cfg;
    if (o.plannedSteps !== undefined)
      this.plannedSteps = requireInt('plannedSteps', o.plannedSteps, { min: 1 });
    if (cfg.targetEpsilon !== null)
      this.guard = new BudgetGuard(
        { targetEpsilon: cfg.targetEpsilon, targetDelta: cfg.delta },
        { noiseMultiplier: cfg.noiseMultiplier, sampleRate: cfg.sampleRate },
        () =>
          this.plannedSteps !== null && this.plannedSteps > this.steps
            ? this.plannedSteps - this.steps
            : DEFAULT_GUARD_HORIZON,
      );
    return { model: o.model, optimizer: dp, sampler };
  }

  /**
   * Like {@link makePrivate}, with the noise multiplier calibrated (PLD by
   * default) so that `epochs` of Poisson steps spend at most `targetEpsilon`
   * at `targetDelta`; the target also becomes the hard budget.
   */
  makePrivateWithEpsilon(o: MakePrivateWithEpsilonOptions): PrivateTraining {
    requireObject('options', o);
    const N = datasetSize(o.dataset, 'makePrivateWithEpsilon');
    requireNumber('targetEpsilon', o.targetEpsilon, { greaterThan: 0 });
    requireNumber('targetDelta', o.targetDelta, OPEN_UNIT);
    requireNumber('epochs', o.epochs, { greaterThan: 0 });
    requireNumber('batchSize', o.batchSize, { greaterThan: 0, max: N });
    const sampleRate = (o.sampling ?? 'poisson') === 'poisson' ? o.batchSize / N : 1;
    const steps = Math.ceil((o.epochs * N) / o.batchSize);
    const cal = calibrateNoiseMultiplier({
      targetEpsilon: o.targetEpsilon,
      targetDelta: o.targetDelta,
      sampleRate,
      steps,
      accountant: o.accountant ?? 'pld',
      pldParameters: o.pldParameters,
    });
    // The run is accounted by the accountant that calibrated it (PLD falls back to RDP for
    // very little noise, and says so).
    if (cal.fallback) {
      if (o.onWarning) this.warnFn = o.onWarning;
      this.warn(`ACCOUNTANT FALLBACK: ${cal.fallback}`);
    }
    const out = this.makePrivate({
      ...o,
      accountant: cal.accountant,
      noiseMultiplier: cal.noiseMultiplier,
      targetEpsilon: o.targetEpsilon,
      delta: o.targetDelta,
    });
    this.plannedSteps = steps;
    return out;
  }

  private need(): {
    cfg: PrivacyConfig;
    dp: DPOptimizer;
    sampler: BatchSampler;
    ledger: PrivacyLedger;
    model: Module;
    rng: Rng;
  } {
    if (!this.cfg || !this.dp || !this.sampler_ || !this.ledger_ || !this.model || !this.rng)
      throw new InvalidStateError('PrivacyEngine: call makePrivate first');
    return {
      cfg: this.cfg,
      dp: this.dp,
      sampler: this.sampler_,
      ledger: this.ledger_,
      model: this.model,
      rng: this.rng,
    };
  }

  /** The privacy configuration in force. */
  get config(): PrivacyConfig {
    return { ...this.need().cfg };
  }

  /** The DP optimizer. */
  get optimizer(): DPOptimizer {
    return this.need().dp;
  }

  /** The batch sampler. */
  get sampler(): BatchSampler {
    return this.need().sampler;
  }

  /** Steps charged to the ledger (the run's one step count, derived from the ledger). */
  get steps(): number {
    return this.ledger_ ? this.ledger_.steps : 0;
  }

  /** Whether the run is private (false once any step ran without noise). From the ledger. */
  get isPrivate(): boolean {
    return this.need().ledger.isPrivate;
  }

  /** Whether any key of the run came from a fixed seed (not secure). From the ledger. */
  get reproducible(): boolean {
    return this.need().ledger.reproducible;
  }

  /** The privacy report derived from the ledger (epsilon at `delta`, default the run's). */
  report(delta?: number): LedgerReport {
    const r = this.need().ledger.report(delta);
    return { ...r, epsilon: this.getEpsilon(delta) };
  }

  /** A copy of the privacy ledger. */
  get privacyLedger(): PrivacyLedger {
    return PrivacyLedger.fromJSON(this.need().ledger.toJSON());
  }

  /** How the noise/sampling RNG is keyed (says so when a fixed seed is in use). */
  describeRng(): string {
    return this.need().rng.describe();
  }

  /**
   * Steps verified to fit in the budget (Infinity without a target).  A lower
   * bound: when they are used up, the next step triggers a new verification,
   * so more may fit.  0 means the next step is refused.
   */
  remainingSteps(): number {
    const { ledger } = this.need();
    if (!this.guard) return Infinity;
    return this.guard.remaining(ledger);
  }

  private refuseIfExhausted(): void {
    const { cfg, ledger } = this.need();
    if (!this.guard || cfg.targetEpsilon === null) return;
    if (this.guard.remaining(ledger) < 1) {
      throw new PrivacyBudgetExceededError({
        epsilonSpent: this.getEpsilon(),
        targetEpsilon: cfg.targetEpsilon,
        delta: cfg.delta,
        stepsTaken: ledger.steps,
      });
    }
  }

  private beforeStep(): void {
    const { dp } = this.need();
    this.refuseIfExhausted();
    const b = this.batchPending;
    if (!b)
      throw new PerSampleGradError(
        'step(): no logical batch was drawn; call engine.nextBatch() once per step so the accountant records the sampling that ran',
      );
    if (
      dp.accumulatedSamples + (dp.hasPendingCapture() ? this.pendingBatchSize() : 0) !==
      b.indices.length
    ) {
      throw new PerSampleGradError(
        `step(): the logical batch has ${b.indices.length} samples but ${dp.accumulatedSamples} were accumulated; run forward/backward and optimizer.accumulate() on every micro-batch of engine.nextBatch()`,
      );
    }
    this.charge();
  }

  /**
   * Charges the step to the ledger and persists the record (onLedgerRecord) BEFORE noise is
   * drawn or any parameter changes: a step that cannot be recorded does not run, and a step
   * that fails later (non-finite gradient) stays charged.
   */
  private charge(): void {
    const { cfg, ledger } = this.need();
    const rec =
      cfg.noiseMultiplier === 0
        ? ledger.append({
            kind: 'noiseless',
            sampleRate: cfg.sampleRate,
            maxGradNorm: cfg.maxGradNorm,
          })
        : ledger.append({
            kind: 'step',
            mechanism: 'gaussian',
            noiseMultiplier: cfg.noiseMultiplier,
            sampleRate: cfg.sampleRate,
            maxGradNorm: cfg.maxGradNorm,
          });
    this.guard?.consume();
    this.batchPending = null;
    if (this.onRecord) this.onRecord(rec);
  }

  private pendingBatchSize(): number {
    const t = this.need().dp.tracked.find((x) => x.module.captureBatch() >= 0);
    return t ? t.module.captureBatch() : 0;
  }

  /**
   * Draws the next logical batch (Poisson: random size, possibly empty) and
   * splits it into micro-batches of at most maxPhysicalBatchSize.  Call once
   * per step; throws PrivacyBudgetExceededError when no step is left.
   */
  nextBatch(): LogicalBatch {
    const { sampler, cfg, dp } = this.need();
    this.refuseIfExhausted();
    if (this.batchPending)
      throw new InvalidStateError(
        'nextBatch(): the batch drawn before has not been stepped; call optimizer.step() once per nextBatch() (its sampling is what the ledger records)',
      );
    if (dp.accumulatedSamples > 0 || dp.hasPendingCapture()) {
      throw new InvalidStateError(
        'nextBatch(): the previous logical batch has accumulated gradients but no step; call optimizer.step(), or optimizer.zeroGrad() to abandon it explicitly',
      );
    }
    const indices = sampler.sample();
    const micro =
      indices.length === 0
        ? []
        : splitMicroBatches(indices, cfg.maxPhysicalBatchSize ?? indices.length);
    this.batchPending = { indices, microBatches: micro };
    // Per-record randomness for the whole batch; with several micro-batches,
    // useRecords(idx) must name each one (a size mismatch throws in forward).
    this.useRecords(indices);
    return this.batchPending;
  }

  /**
   * Drops the batch drawn by {@link nextBatch} without an update. It is charged to the ledger
   * like a step: a choice to abandon could depend on the batch's records, so abandoning and
   * drawing again is never a free way to pick batches.
   */
  abandonBatch(): void {
    const { dp } = this.need();
    if (!this.batchPending) throw new InvalidStateError('abandonBatch(): no batch is pending');
    this.refuseIfExhausted();
    dp.zeroGrad();
    this.charge();
  }

  /**
   * Tells the model which data-set records the next forward pass holds, so
   * that per-record randomness (LoRA dropout, Dropout) is keyed by (run key,
   * step, record index, layer) and never by a record's position.  nextBatch()
   * sets the whole logical batch; call this with each micro-batch's indices
   * before its forward pass when the batch is split.
   *
   * @param records - data-set indices of the micro-batch, in batch order
   */
  useRecords(records: ArrayLike<number>): void {
    const { model } = this.need();
    model.setRecordContext({ key: this.recordKey!, step: this.steps, records });
  }

  /** epsilon spent so far at `delta` (default: the engine's delta). */
  getEpsilon(delta?: number): number {
    const { cfg, ledger } = this.need();
    const d = requireNumber('delta', delta ?? cfg.delta, OPEN_UNIT);
    // PLD composition is costly: remember answers until the ledger changes.
    const key = `${ledger.head}|${d}`;
    const hit = this.epsCache.get(key);
    if (hit !== undefined) return hit;
    const eps = ledger.epsilon(d);
    if (this.epsCache.size > 16) this.epsCache.clear();
    this.epsCache.set(key, eps);
    return eps;
  }

  /** The privacy ledger's JSON (a {@link PrivacyLedger} chain). */
  ledger(): LedgerChainJson {
    return this.need().ledger.toJSON();
  }

  private paramPaths(): Map<Parameter, string> {
    return new Map(
      this.need()
        .model.namedParameters()
        .map(([path, p]) => [p, path]),
    );
  }

  /** Everything needed to resume (see {@link PrivacyEngineState}); tensors are copies. */
  stateDict(): PrivacyEngineState {
    const { cfg, dp, sampler, ledger, model, rng } = this.need();
    const paths = this.paramPaths();
    const params: PrivacyEngineState['params'] = {};
    for (const [path, p] of model.namedParameters())
      if (p.requiresGrad) params[path] = { shape: [...p.shape], data: p.data.slice() };
    const os = dp.inner.stateDict();
    const slots: Record<string, Record<string, Float32Array>> = {};
    dp.inner.params.forEach((p, i) => {
      const path = paths.get(p);
      if (path === undefined)
        throw new Error('internal: stateDict: optimizer parameter not found in the model');
      slots[path] = os.slots[i];
    });
    return {
      format: 'dp-lora.privacy-engine',
      version: 2,
      step: ledger.steps,
      params,
      optimizer: { kind: os.kind, lr: os.lr, hyper: os.hyper, step: os.step, slots },
      sampler: sampler.stateDict(),
      rng: {
        description: rng.describe(),
        state: this.seeded && rng.reproducible ? rng.getState() : undefined,
      },
      ledger: ledger.toJSON(),
      privacy: {
        ...cfg,
        perLayerMaxGradNorm: cfg.perLayerMaxGradNorm ? { ...cfg.perLayerMaxGradNorm } : null,
      },
      epsilon: this.getEpsilon(),
    };
  }

  /**
   * Restores a {@link stateDict} into an engine set up by makePrivate with the same model
   * structure. The ledger is restored (never reset) and must agree with the rest of the state:
   * its step count with `state.step` and the optimizer's, its budget and delta with this
   * engine's. `options.ledger` is a longer record of the same run (the run directory's journal:
   * steps charged after the state was saved); it must extend the state's ledger and replaces it,
   * so that a resumed run never spends less than what was released. In seeded mode the exact
   * RNG stream is restored (only when the ledger says the run is seeded and nothing was charged
   * after the state); otherwise the RNG is re-keyed from the OS. Either way a `key` record says
   * so in the ledger.
   * @throws LedgerMismatchError when the parts disagree; LedgerFormatError for a broken chain
   */
  loadStateDict(state: PrivacyEngineState, options: { ledger?: unknown } = {}): void {
    const { cfg, dp, sampler, model } = this.need();
    if (
      !state ||
      typeof state !== 'object' ||
      state.format !== 'dp-lora.privacy-engine' ||
      state.version !== 2
    )
      throw new InvalidArgumentError(
        'state',
        'not a dp-lora privacy-engine state of version 2 (format/version)',
      );
    if (state.ledger === undefined || state.ledger === null)
      throw new LedgerMismatchError(
        'ledger-missing',
        'loadStateDict: the state has no privacy ledger; refusing to resume without it',
      );
    const saved = PrivacyLedger.fromJSON(state.ledger);
    if (state.step !== saved.steps)
      throw new LedgerMismatchError(
        'ledger-steps',
        `loadStateDict: the state says step ${String(state.step)} but its ledger records ${saved.steps} steps`,
      );
    if (
      !state.optimizer ||
      typeof state.optimizer.step !== 'number' ||
      !(state.optimizer.step >= 0 && state.optimizer.step <= saved.steps)
    )
      throw new LedgerMismatchError(
        'optimizer-steps',
        `loadStateDict: the optimizer made ${String(state.optimizer?.step)} updates but the ledger charged ${saved.steps} steps`,
      );
    const g = saved.genesis;
    if (g.delta !== cfg.delta || g.targetEpsilon !== cfg.targetEpsilon)
      throw new LedgerMismatchError(
        'budget',
        `loadStateDict: the ledger's budget is epsilon ${g.targetEpsilon} at delta ${g.delta}, this engine's is ${cfg.targetEpsilon} at ${cfg.delta}; a resumed run keeps its budget`,
      );
    let ledger = saved;
    if (options.ledger !== undefined) {
      const journal =
        options.ledger instanceof PrivacyLedger
          ? PrivacyLedger.fromJSON(options.ledger.toJSON())
          : PrivacyLedger.fromJSON(options.ledger);
      if (!saved.isPrefixOf(journal))
        throw new LedgerMismatchError(
          journal.runId !== saved.runId ? 'run-id' : 'ledger-rewound',
          journal.runId !== saved.runId
            ? `loadStateDict: the ledger belongs to run ${journal.runId}, the state to run ${saved.runId}`
            : `loadStateDict: the state's ledger (${saved.steps} steps) is not a prefix of the run's ledger (${journal.steps} steps): edited or rewound`,
        );
      ledger = journal;
    }
    // An engine that has charged steps keeps them: the state must continue this engine's own
    // record (issue 10: loading an older state mid-run rewound the ledger past released steps).
    const current = this.need().ledger;
    if ((current.steps > 0 || current.noiselessSteps > 0) && !current.isPrefixOf(ledger))
      throw new LedgerMismatchError(
        'ledger-rewound',
        `loadStateDict: this engine has charged ${current.steps + current.noiselessSteps} steps that the state's ledger (${ledger.steps} steps) does not continue; loading it would rewind the privacy record (load into a new engine, or pass the longer ledger)`,
      );
    if (g.accountant !== cfg.accountant) {
      this.warn(
        `resuming a '${g.accountant}' ledger with a '${cfg.accountant}' engine; the ledger's accountant is used`,
      );
      cfg.accountant = g.accountant;
    }
    requireObject('state.privacy', state.privacy);
    for (const k of [
      'noiseMultiplier',
      'maxGradNorm',
      'sampleRate',
      'datasetSize',
      'expectedBatchSize',
      'clipping',
      'sampling',
    ] as const) {
      if (state.privacy[k] !== cfg[k])
        this.warn(
          `resume: ${k} was ${state.privacy[k]}, is now ${cfg[k]}; the ledger records both`,
        );
    }
    // Parameters.
    checkSavedParams(model, state.params);
    const named = new Map(model.namedParameters());
    const trainable = [...named].filter(([, p]) => p.requiresGrad).map(([path]) => path);
    // Optimizer.
    const paths = this.paramPaths();
    const savedSlots = requireObject('state.optimizer.slots', state.optimizer.slots);
    const slots = dp.inner.params.map((p) => {
      const path = paths.get(p)!;
      const s = Object.prototype.hasOwnProperty.call(savedSlots, path)
        ? savedSlots[path]
        : undefined;
      if (!s) throw new InvalidArgumentError('state.optimizer', `no optimizer state for '${path}'`);
      return requireObject(`state.optimizer.slots['${path}']`, s) as Record<string, Float32Array>;
    });
    // RNG: the exact stream only when the ledger says the run is seeded, this engine is seeded,
    // and no step was charged after the state (else its noise would be drawn a second time).
    // Built (and a bad saved stream refused) before anything is written.
    const exact =
      this.seeded &&
      saved.reproducible &&
      state.rng?.state !== undefined &&
      ledger.steps === saved.steps;
    const rng = exact ? Rng.fromState({ ...state.rng.state!, reproducible: true }) : new Rng();
    // The sampler and the optimizer check their states whole before writing; the sampler's is
    // put back if the optimizer's is refused, so a refused state leaves the engine as it was.
    const samplerBefore = sampler.stateDict();
    sampler.loadStateDict(state.sampler);
    try {
      dp.inner.loadStateDict({
        kind: state.optimizer.kind,
        lr: state.optimizer.lr,
        hyper: state.optimizer.hyper,
        step: state.optimizer.step,
        slots,
      });
    } catch (e) {
      sampler.loadStateDict(samplerBefore);
      throw e;
    }
    for (const path of trainable) named.get(path)!.data.set(state.params[path].data);
    if (!exact && this.seeded)
      this.warn(
        'resume: no reproducible RNG stream can be restored (none saved, or steps were charged after the checkpoint); re-keyed from the OS (the run is no longer reproducible)',
      );
    this.rng = rng;
    sampler.setRng(rng);
    dp.setRng(rng);
    dp.zeroGrad();
    this.ledger_ = ledger;
    this.guard?.reset();
    this.batchPending = null;
    const rec = ledger.append({
      kind: 'key',
      source: exact ? 'fixed-seed' : 'os-entropy',
      fromStep: ledger.steps,
    });
    if (this.onRecord) this.onRecord(rec);
  }
}
