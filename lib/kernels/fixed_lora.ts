/**
 * The integer-only private LoRA step (native/kernels/fixed/step.cc, C API in
 * native/include/dplora_fixed.h) from the host: {@link planIntegerLora}
 * calibrates the noise with the accountant (discrete Gaussian mechanism),
 * plans the step budget and produces the device's integer configuration
 * (int8 base with per-channel multiplier and shift, sigma^2 and the sampling
 * rate and learning rate as rationals, the step budget); {@link IntegerLora}
 * runs the very same step through the addon (the code that runs on FPU-less
 * devices, bit for bit), charges every step to a {@link PrivacyLedger} before
 * the device runs it, saves/restores its state with the ledger, and predicts.
 */
import { createHash } from 'crypto';
import { calibrateNoiseMultiplier } from '../accounting/calibrate';
import type { AccountantKind } from '../accounting/ledger';
import { PldAccountant, RdpAccountant } from '../accounting/accountant';
import { DEFAULT_PLD_PARAMETERS } from '../accounting/pld';
import { PrivacyLedger, canonicalJson } from '../accounting/privacy_ledger';
import type { LedgerChainJson, LedgerReport } from '../accounting/privacy_ledger';
import {
  DpLoraError,
  ErrorCode,
  InvalidArgumentError,
  InvalidStateError,
  PrivacyBudgetExceededError,
} from '../errors';
import { loadAddon } from '../native';
import { requireInt, requireNumber } from '../validate';
import { InitRandom } from '../nn/init';
import type { NativeAddon } from '../native_types';
import { Rng, sigmaSqRational } from './rng';

/** Integer configuration of the device step (dplora_fx_step_config). */
export interface IntegerLoraConfig {
  /** Input width (int8 features per record). */
  dIn: number;
  /** Hidden width of the base layer. */
  hidden: number;
  /** LoRA rank. */
  rank: number;
  /** Number of classes (>= 2). */
  classes: number;
  /** Frozen base, int8, [hidden][dIn]. */
  w0: Int8Array;
  /** Per-channel requantization: base_h = round(acc * w0Mult[h] / 2^w0Shift[h]) (Q fracBits). */
  w0Mult: Int32Array;
  /** Per-channel right shifts (0..62) of the requantization. */
  w0Shift: Int8Array;
  /** Fraction bits of A, B, the head and the activations. */
  fracBits: number;
  /** Clipping norm in fixed point, floor(C * 2^fracBits). */
  clipInt: number;
  /** Noise variance (z * clipInt)^2 as an exact rational. */
  sigmaSqNum: bigint;
  /** Denominator of the noise variance. */
  sigmaSqDen: bigint;
  /** Poisson sampling rate sampleNum / sampleDen (sampleDen = 2^32). */
  sampleNum: bigint;
  /** Denominator of the sampling rate (2^32). */
  sampleDen: bigint;
  /** Learning rate lrNum / lrDen. */
  lrNum: number;
  /** Denominator of the learning rate. */
  lrDen: number;
  /** round(sampleRate * datasetSize), the divisor of the noisy sum. */
  expectedBatch: number;
  /** Planned step budget: the device refuses step maxSteps + 1. */
  maxSteps: bigint;
  /** 0: squared error on the scores; 1: softmax cross-entropy. */
  loss: 0 | 1;
  /**
   * 0: SGD (param -= g lr); 1: sign descent with momentum (param -= sign(m) lr 2^f);
   * 2: momentum (m = beta m + (1 - beta) g, param -= lr m).
   */
  update: 0 | 1 | 2;
  /** Momentum betaNum / betaDen (sign-momentum only). */
  betaNum: number;
  /** Denominator of the momentum. */
  betaDen: number;
  /** 1 (default) or 2: a second frozen layer w1 with its own LoRA A2, B2. */
  layers?: 1 | 2;
  /** Second frozen layer, int8, [hidden][hidden] (layers 2). */
  w1?: Int8Array;
  /** Row scales of w1: real = w1Mult / 2^w1Shift (activations stay in Q fracBits). */
  w1Mult?: Int32Array;
  /** Right shifts of w1's row scales (16..62). */
  w1Shift?: Int8Array;
  /** Bias of the first frozen layer, Q fracBits. */
  bias0?: Int32Array;
  /** Bias of the second frozen layer, Q fracBits. */
  bias1?: Int32Array;
  /** z = (A x) >> inShift: A is in Q fracBits per 2^inShift input units (0..16). */
  inShift?: number;
  /** LoRA outputs scaled by 2^loraShift (the alpha / rank of float LoRA). */
  loraShift?: number;
  /** 1: a trainable head bias (state.headB). */
  headBias?: 0 | 1;
}

/** Trainable integer state (dplora_fx_step_state). */
export interface IntegerLoraState {
  /** LoRA A, [rank][dIn], Q fracBits per unit of int8 input. */
  a: Int32Array;
  /** LoRA B, [hidden][rank], Q fracBits. */
  b: Int32Array;
  /** Head, [classes][hidden], Q fracBits. */
  head: Int32Array;
  /** Momentum per parameter (A, B, [A2, B2], head, [headB] order), for the momentum updates. */
  m?: Int32Array;
  /** LoRA A of the second layer, [rank][hidden], Q fracBits (layers 2). */
  a2?: Int32Array;
  /** LoRA B of the second layer, [hidden][rank], Q fracBits (layers 2). */
  b2?: Int32Array;
  /** Head bias, [classes], Q fracBits (config.headBias 1). */
  headB?: Int32Array;
  /** Steps taken (the device refuses step maxSteps + 1). */
  steps: bigint;
  /** ChaCha20 stream position of the next step. */
  position: bigint;
}

/** Options of {@link planIntegerLora}. */
export interface IntegerLoraPlanOptions {
  /** Frozen base weights (float), [hidden][dIn] row-major. */
  baseWeight: Float32Array;
  /** Input width (int8 features per record). */
  dIn: number;
  /** Hidden width of the base layer. */
  hidden: number;
  /** Number of classes (>= 2). */
  classes: number;
  /** LoRA rank (1..256). */
  rank: number;
  /** Real value of one unit of the int8 input (features are round(x / inputScale)). */
  inputScale: number;
  /** Fraction bits of A, B, head and activations (default 12). */
  fracBits?: number;
  /** Clipping norm C in real units (clipInt = floor(C 2^fracBits)). */
  clipNorm: number;
  /** Privacy target: epsilon of the whole budget. */
  targetEpsilon: number;
  /** Privacy target: delta. */
  targetDelta: number;
  /** Private records (for the expected batch size). */
  datasetSize: number;
  /** Poisson sampling rate in (0, 1]; rounded to a multiple of 2^-32 (the accounted rate). */
  sampleRate: number;
  /** Planned number of steps (the device's budget). */
  steps: number;
  /** Learning rate (a rational with denominator 2^16 on the device). */
  learningRate: number;
  /**
   * 'sgd' (default): param -= learningRate * noisySum / expectedBatch;
   * 'signMomentum': momentum m (beta) of g = noisySum / expectedBatch, then
   * param -= learningRate * sign(m);
   * 'momentum': m = beta m + (1 - beta) g, param -= learningRate * m.
   */
  optimizer?: 'sgd' | 'signMomentum' | 'momentum';
  /** Momentum beta of the momentum optimizers, in [0, 1) (default 0.9; a multiple of 2^-16). */
  momentum?: number;
  /** Bias of the first frozen layer, [hidden] (float; Q fracBits on the device). */
  baseBias?: Float32Array;
  /** A second frozen layer [hidden][hidden] (+ bias) with its own LoRA (the MLP's fc2). */
  base2?: {
    /** Frozen weight [hidden][hidden], row-major. */
    weight: Float32Array;
    /** Frozen bias [hidden] (default none). */
    bias?: Float32Array;
  };
  /** Initial head [classes][hidden] (+ a trainable bias) instead of a random one. */
  head?: {
    /** Head weight [classes][hidden], row-major. */
    weight: Float32Array;
    /** Head bias [classes] (trainable; default zero). */
    bias?: Float32Array;
  };
  /** LoRA scale alpha / rank, a power of two in [1, 256] (default 1). */
  loraScale?: number;
  /** 'squared' (default) error on the scores or softmax 'crossEntropy'. */
  loss?: 'squared' | 'crossEntropy';
  /** Accountant of the calibration ('rdp' by default). */
  accountant?: AccountantKind;
  /** Public randomness for A and the head initialization. */
  initSeed?: number;
}

/** The plan: device configuration, initial state and the accounting. */
export interface IntegerLoraPlan {
  /** The device configuration. */
  config: IntegerLoraConfig;
  /** The initial trainable state. */
  state: IntegerLoraState;
  /** Calibrated noise multiplier z (sigma = z clipInt). */
  noiseMultiplier: number;
  /** Epsilon of the full budget at targetDelta (<= targetEpsilon). */
  epsilon: number;
  /** The sampling rate accounted (= sampleNum / 2^32 exactly). */
  sampleRate: number;
  /** What the ledger of an {@link IntegerLora} built from this plan records and enforces. */
  accounting: IntegerLoraAccounting;
}

/**
 * The accounting of an integer run: the ledger's genesis (accountant, delta, budget) and the
 * noise multiplier every step record carries. The device's noise variance must be at least
 * (noiseMultiplier clipInt)^2, checked exactly before each step.
 */
export interface IntegerLoraAccounting {
  /** Accountant of the ledger ('rdp': the discrete Gaussian is accounted by RDP). */
  accountant: AccountantKind;
  /** Noise multiplier z charged per step (sigma / C). */
  noiseMultiplier: number;
  /** The run's delta. */
  delta: number;
  /** The epsilon budget a step may not pass, or null for none (the step budget still holds). */
  targetEpsilon: number | null;
}

const addon = (): Pick<NativeAddon, 'fixedLoraStep' | 'fixedLoraPredict'> => loadAddon();

/**
 * Quantizes one base row to int8 (symmetric, per channel) and finds the
 * integer multiplier and shift of its requantization into Q fracBits:
 * realScale = max|w| / 127 * inputScale * 2^fracBits = mult / 2^shift with
 * mult in [2^29, 2^30).
 */
function quantizeRow(
  w: Float32Array,
  inputScale: number,
  fracBits: number,
): { q: Int8Array; mult: number; shift: number } {
  let m = 0;
  for (const v of w) {
    if (!Number.isFinite(v)) throw new InvalidArgumentError('baseWeight', 'must be finite');
    m = Math.max(m, Math.abs(v));
  }
  const q = new Int8Array(w.length);
  if (m === 0) return { q, mult: 1, shift: 62 };
  const s = m / 127;
  for (let j = 0; j < w.length; j++) q[j] = Math.max(-127, Math.min(127, Math.round(w[j] / s)));
  const real = s * inputScale * 2 ** fracBits;
  let shift = 0;
  let mult = real;
  while (mult < 2 ** 29 && shift < 62) {
    mult *= 2;
    shift++;
  }
  while (mult >= 2 ** 30 && shift > 0) {
    mult /= 2;
    shift--;
  }
  return { q, mult: Math.max(1, Math.min(2 ** 31 - 1, Math.round(mult))), shift };
}

/**
 * Plans an integer-only private LoRA fine-tuning run for a device without an
 * FPU: calibrates the discrete Gaussian noise multiplier z for
 * (targetEpsilon, targetDelta) over `steps` Poisson-sampled steps at the
 * accounted rate sampleNum / 2^32, and returns the device configuration
 * (sigma^2 = (z clipInt)^2 as an exact rational, step budget = steps), the
 * initial state (A random from the public seed, B = 0, head random) and the
 * accounting.
 */
export function planIntegerLora(opts: IntegerLoraPlanOptions): IntegerLoraPlan {
  const int = (name: string, v: unknown, min: number, max: number) =>
    requireInt(name, v, { min, max });
  const positive = (name: string, v: unknown) => requireNumber(name, v, { greaterThan: 0 });
  const dIn = int('dIn', opts.dIn, 1, 1 << 20);
  const hidden = int('hidden', opts.hidden, 1, 1 << 16);
  const classes = int('classes', opts.classes, 2, 1 << 16);
  const rank = int('rank', opts.rank, 1, 256);
  const fracBits = int('fracBits', opts.fracBits ?? 12, 1, 24);
  const inputScale = positive('inputScale', opts.inputScale);
  const clipNorm = positive('clipNorm', opts.clipNorm);
  const datasetSize = int('datasetSize', opts.datasetSize, 1, 1 << 24);
  const steps = int('steps', opts.steps, 1, 2 ** 31 - 1);
  const lr = positive('learningRate', opts.learningRate);
  const q0 = positive('sampleRate', opts.sampleRate);
  if (q0 > 1) throw new InvalidArgumentError('sampleRate', `must be <= 1, got ${q0}`);
  if (!(opts.baseWeight instanceof Float32Array) || opts.baseWeight.length !== hidden * dIn)
    throw new InvalidArgumentError('baseWeight', `must be a Float32Array of length hidden * dIn`);
  const clipInt = Math.floor(clipNorm * 2 ** fracBits);
  if (clipInt < 1 || clipInt > 2 ** 31 - 1)
    throw new InvalidArgumentError('clipNorm', 'clipNorm * 2^fracBits must be in [1, 2^31 - 1]');
  const sampleDen = 2n ** 32n;
  const sampleNum = BigInt(Math.max(1, Math.round(q0 * 2 ** 32)));
  const sampleRate = Number(sampleNum) / 2 ** 32;
  const cal = calibrateNoiseMultiplier({
    targetEpsilon: opts.targetEpsilon,
    targetDelta: opts.targetDelta,
    sampleRate,
    steps,
    mechanism: 'discreteGaussian',
    accountant: opts.accountant ?? 'rdp',
  });
  // sigma^2 rounded UP (by 2^-40 relative, far above the double rounding) so that the device's
  // noise is never below the charged z clipInt; checked exactly by noiseCovers.
  const { num: sigmaSqNum, den: sigmaSqDen } = sigmaSqRational(
    (cal.noiseMultiplier * clipInt) ** 2 * (1 + 2 ** -40),
    'sigmaSq',
  );
  const w0 = new Int8Array(hidden * dIn);
  const w0Mult = new Int32Array(hidden);
  const w0Shift = new Int8Array(hidden);
  for (let h = 0; h < hidden; h++) {
    const r = quantizeRow(opts.baseWeight.subarray(h * dIn, (h + 1) * dIn), inputScale, fracBits);
    w0.set(r.q, h * dIn);
    w0Mult[h] = r.mult;
    w0Shift[h] = r.shift;
  }
  const optimizer = opts.optimizer ?? 'sgd';
  if (opts.loss !== undefined && opts.loss !== 'squared' && opts.loss !== 'crossEntropy')
    throw new InvalidArgumentError('loss', `must be 'squared' or 'crossEntropy'`);
  if (optimizer !== 'sgd' && optimizer !== 'signMomentum' && optimizer !== 'momentum')
    throw new InvalidArgumentError('optimizer', `must be 'sgd', 'signMomentum' or 'momentum'`);
  const beta = opts.momentum ?? 0.9;
  if (typeof beta !== 'number' || !(beta >= 0 && beta < 1))
    throw new InvalidArgumentError('momentum', `must be a number in [0, 1), got ${String(beta)}`);
  const loraScale = opts.loraScale ?? 1;
  const loraShift = Math.log2(loraScale);
  if (!Number.isInteger(loraShift) || loraShift < 0 || loraShift > 8 || loraShift >= fracBits)
    throw new InvalidArgumentError(
      'loraScale',
      `must be a power of two in [1, min(256, 2^(fracBits - 1))], got ${String(loraScale)}`,
    );
  const lrDen = 1 << 16;
  const lrNum = Math.max(1, Math.round(lr * lrDen));
  const expectedBatch = Math.max(1, Math.round(sampleRate * datasetSize));
  const init = new InitRandom(opts.initSeed ?? 4242);
  const rnd = () => init.next();
  const one = 2 ** fracBits;
  // z = (A x) >> inShift with 2^-inShift ~ inputScale keeps A in about Q fracBits of real units.
  const inShift = Math.max(0, Math.min(16, Math.round(-Math.log2(inputScale))));
  // A: uniform +-1/sqrt(dIn) in real units per unit of real input.
  const aScale = (one * inputScale * 2 ** inShift) / Math.sqrt(dIn);
  const a = Int32Array.from({ length: rank * dIn }, () => Math.round((2 * rnd() - 1) * aScale));
  const config: IntegerLoraConfig = {
    dIn,
    hidden,
    rank,
    classes,
    w0,
    w0Mult,
    w0Shift,
    fracBits,
    clipInt,
    sigmaSqNum,
    sigmaSqDen,
    sampleNum,
    sampleDen,
    lrNum,
    lrDen,
    expectedBatch,
    maxSteps: BigInt(steps),
    loss: opts.loss === 'crossEntropy' ? 1 : 0,
    update: optimizer === 'sgd' ? 0 : optimizer === 'signMomentum' ? 1 : 2,
    betaNum: optimizer === 'sgd' ? 0 : Math.round(beta * 65536),
    betaDen: optimizer === 'sgd' ? 1 : 65536,
    inShift,
    loraShift,
  };
  const state: IntegerLoraState = {
    a,
    b: new Int32Array(hidden * rank),
    head: new Int32Array(0),
    steps: 0n,
    position: 0n,
  };
  if (opts.baseBias !== undefined) config.bias0 = toFixed('baseBias', opts.baseBias, hidden, one);
  if (opts.base2 !== undefined) {
    const w = opts.base2.weight;
    if (!(w instanceof Float32Array) || w.length !== hidden * hidden)
      throw new InvalidArgumentError('base2', 'weight must be a Float32Array of length hidden^2');
    config.layers = 2;
    config.w1 = new Int8Array(hidden * hidden);
    config.w1Mult = new Int32Array(hidden);
    config.w1Shift = new Int8Array(hidden);
    for (let h = 0; h < hidden; h++) {
      const r = quantizeRow(w.subarray(h * hidden, (h + 1) * hidden), 1, 0);
      if (r.shift < 16) throw new InvalidArgumentError('base2', 'weights too large (> 2^21)');
      config.w1.set(r.q, h * hidden);
      config.w1Mult[h] = r.mult;
      config.w1Shift[h] = r.shift;
    }
    if (opts.base2.bias !== undefined)
      config.bias1 = toFixed('base2', opts.base2.bias, hidden, one);
    const a2Scale = one / Math.sqrt(hidden);
    state.a2 = Int32Array.from({ length: rank * hidden }, () =>
      Math.round((2 * rnd() - 1) * a2Scale),
    );
    state.b2 = new Int32Array(hidden * rank);
  }
  if (opts.head !== undefined) {
    state.head = toFixed('head', opts.head.weight, classes * hidden, one);
    if (opts.head.bias !== undefined) {
      config.headBias = 1;
      state.headB = toFixed('head', opts.head.bias, classes, one);
    }
  } else {
    const hScale = one / Math.sqrt(hidden);
    state.head = Int32Array.from({ length: classes * hidden }, () =>
      Math.round((2 * rnd() - 1) * hScale),
    );
  }
  if (optimizer !== 'sgd') state.m = new Int32Array(parameterCount(config));
  return {
    config,
    state,
    noiseMultiplier: cal.noiseMultiplier,
    epsilon: cal.epsilon,
    sampleRate,
    accounting: {
      accountant: opts.accountant ?? 'rdp',
      noiseMultiplier: cal.noiseMultiplier,
      delta: opts.targetDelta,
      targetEpsilon: opts.targetEpsilon,
    },
  };
}

/** Number of trainable parameters of a configuration (the length of one gradient row). */
export function parameterCount(c: IntegerLoraConfig): number {
  const lora = c.rank * c.dIn + c.hidden * c.rank;
  return (
    lora +
    (c.layers === 2 ? 2 * c.hidden * c.rank : 0) +
    c.classes * c.hidden +
    (c.headBias === 1 ? c.classes : 0)
  );
}

// Float values to Q fracBits (round), each within +-(2^31 - 1).
function toFixed(name: string, v: Float32Array, n: number, one: number): Int32Array {
  if (!(v instanceof Float32Array) || v.length !== n)
    throw new InvalidArgumentError(name, `must be a Float32Array of length ${n}`);
  return Int32Array.from(v, (x) => {
    const q = Math.round(x * one);
    if (!Number.isFinite(q) || Math.abs(q) > 2 ** 31 - 1)
      throw new InvalidArgumentError(name, 'values must be finite and within the Q range');
    return q;
  });
}

/**
 * True when the device's noise variance sigmaSqNum / sigmaSqDen is at least (z clipInt)^2,
 * compared exactly (z as the exact value of its double).
 */
export function noiseCovers(c: IntegerLoraConfig, z: number): boolean {
  if (!(typeof z === 'number' && Number.isFinite(z) && z > 0)) return false;
  // z = m 2^e exactly (m an integer of at most 53 bits).
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, z);
  const bits = view.getBigUint64(0);
  const expBits = Number((bits >> 52n) & 0x7ffn);
  const frac = bits & ((1n << 52n) - 1n);
  const m = expBits === 0 ? frac : frac | (1n << 52n);
  const e = (expBits === 0 ? -1074 : expBits - 1075) * 2;
  const rhs = m * m * BigInt(c.clipInt) ** 2n * c.sigmaSqDen;
  return e >= 0 ? c.sigmaSqNum >= rhs << BigInt(e) : c.sigmaSqNum << BigInt(-e) >= rhs;
}

/** SHA-256 of a configuration's every field (typed arrays by content). */
export function configFingerprint(c: IntegerLoraConfig): string {
  const plain: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(c)) {
    if (v === undefined) continue;
    plain[k] = ArrayBuffer.isView(v)
      ? Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64')
      : typeof v === 'bigint'
        ? `${v}n`
        : v;
  }
  return createHash('sha256').update(canonicalJson(plain)).digest('hex');
}

// The accountant parameters a ledger's genesis records.
function accountantParameters(kind: AccountantKind): Record<string, unknown> {
  const acc =
    kind === 'pld' ? new PldAccountant({ ...DEFAULT_PLD_PARAMETERS }) : new RdpAccountant();
  return acc.toJSON().parameters;
}

const STATE_ARRAYS = ['a', 'b', 'a2', 'b2', 'head', 'headB', 'm'] as const;

/** A saved {@link IntegerLora}: its state, the configuration's fingerprint and its ledger. */
export interface IntegerLoraCheckpoint {
  /** Always 'dp-lora.integer-lora'. */
  format: 'dp-lora.integer-lora';
  /** Format version (1). */
  version: 1;
  /** {@link configFingerprint} of the configuration the state belongs to. */
  config: string;
  /** The trainable arrays (base64 of their int32 bytes), the step counter and stream position. */
  state: Record<string, string>;
  /** The privacy ledger: every step charged, hash-chained. */
  ledger: LedgerChainJson;
  /** SHA-256 of the canonical JSON of the other fields. */
  checksum: string;
}

function checkpointChecksum(c: Omit<IntegerLoraCheckpoint, 'checksum'>): string {
  const { format, version, config, state, ledger } = c;
  return createHash('sha256')
    .update(canonicalJson({ format, version, config, state, ledger }))
    .digest('hex');
}

/**
 * Runs the integer step of a plan on the host through the addon: the same
 * C code, bit for bit, as on the FPU-less devices. Every step is charged to a
 * {@link PrivacyLedger} (discrete Gaussian mechanism, the sampling rate and
 * clipping norm as they run) before the device updates anything.
 */
export class IntegerLora {
  /** The device configuration (shared with the plan). */
  readonly config: IntegerLoraConfig;
  /** The trainable state, updated in place by each step. */
  readonly state: IntegerLoraState;
  /** The accounting the ledger records and enforces. */
  readonly accounting: IntegerLoraAccounting;
  private ledger_: PrivacyLedger | null = null;
  private lastRng: Rng | null = null;
  private broken: string | null = null;

  /**
   * @param plan - from {@link planIntegerLora} (the state is used and updated in place)
   * @param ledger - a verified ledger to continue (used by {@link IntegerLora.restore})
   */
  constructor(
    plan: Pick<IntegerLoraPlan, 'config' | 'state' | 'accounting'>,
    ledger?: PrivacyLedger,
  ) {
    if (plan === null || typeof plan !== 'object' || plan.accounting === undefined)
      throw new InvalidArgumentError('plan', 'must be a plan from planIntegerLora (accounting)');
    this.config = plan.config;
    this.state = plan.state;
    const a = plan.accounting;
    if (!noiseCovers(this.config, a.noiseMultiplier))
      throw new InvalidArgumentError(
        'plan',
        'config.sigmaSq is below (accounting.noiseMultiplier * clipInt)^2: the ledger would understate the privacy loss',
      );
    this.accounting = { ...a };
    if (ledger !== undefined) this.ledger_ = ledger;
  }

  /** Steps left in the planned budget. */
  get stepsLeft(): bigint {
    return this.config.maxSteps - this.state.steps;
  }

  /** A verified copy of the run's ledger (null before the first step). */
  get ledger(): PrivacyLedger | null {
    return this.ledger_ ? PrivacyLedger.fromJSON(this.ledger_.toJSON()) : null;
  }

  /** The privacy report derived from the ledger (0 steps before the first). */
  report(): LedgerReport {
    if (this.ledger_) return this.ledger_.report();
    const a = this.accounting;
    return {
      runId: '',
      accountant: a.accountant,
      steps: 0,
      noiselessSteps: 0,
      private: true,
      epsilon: 0,
      delta: a.delta,
      targetEpsilon: a.targetEpsilon,
      reproducible: false,
      keySource: 'os-entropy',
      ledgerHead: '',
      statement: `(0, ${a.delta})-differentially private over 0 steps`,
    };
  }

  // The step as it will run: the rate and clipping norm from the device configuration.
  private stepSpec() {
    const c = this.config;
    return {
      mechanism: 'discreteGaussian' as const,
      noiseMultiplier: this.accounting.noiseMultiplier,
      sampleRate: Number(c.sampleNum) / Number(c.sampleDen),
      maxGradNorm: c.clipInt / 2 ** c.fracBits,
    };
  }

  // Refuses (changing nothing) a step that the ledger, the step budget or the epsilon budget
  // does not allow.
  private checkBudget(): void {
    if (this.broken !== null) throw new InvalidStateError(this.broken);
    const a = this.accounting;
    const charged = this.ledger_ ? this.ledger_.steps : 0;
    if (BigInt(charged) !== this.state.steps)
      throw new DpLoraError(
        ErrorCode.Ledger,
        `the ledger charged ${charged} steps but the device counter says ${this.state.steps}: the state was edited or rewound`,
      );
    if (!noiseCovers(this.config, a.noiseMultiplier))
      throw new InvalidStateError(
        'config.sigmaSq was lowered below (noiseMultiplier * clipInt)^2 after planning',
      );
    const spent = this.ledger_ ? this.ledger_.epsilon(a.delta) : 0;
    const refuse = (): never => {
      throw new PrivacyBudgetExceededError({
        epsilonSpent: spent,
        targetEpsilon: a.targetEpsilon ?? Infinity,
        delta: a.delta,
        stepsTaken: charged,
      });
    };
    if (this.state.steps >= this.config.maxSteps) refuse();
    if (a.targetEpsilon !== null) {
      const { mechanism, noiseMultiplier, sampleRate } = this.stepSpec();
      const acc = (this.ledger_ ?? this.emptyLedger()).accountant();
      acc.step({ mechanism, noiseMultiplier, sampleRate });
      if (acc.getEpsilon(a.delta) > a.targetEpsilon) refuse();
    }
  }

  // Charges the step (a key record first when the RNG is new), before the device runs it.
  private charge(rng: Rng): void {
    const a = this.accounting;
    const source = rng.reproducible ? 'fixed-seed' : 'os-entropy';
    if (!this.ledger_) {
      this.ledger_ = PrivacyLedger.create({
        accountant: a.accountant,
        parameters: accountantParameters(a.accountant),
        delta: a.delta,
        targetEpsilon: a.targetEpsilon,
        keySource: source,
      });
    } else if (rng !== this.lastRng) {
      this.ledger_.append({ kind: 'key', source, fromStep: this.ledger_.steps });
    }
    this.lastRng = rng;
    this.ledger_.append({ kind: 'step', ...this.stepSpec() });
  }

  /**
   * One private step over the whole private dataset x ([n][dIn] int8) with
   * labels y: Poisson sampling, per-record gradients, clip, noise, update.
   * Noise and sampling come from `rng`. Returns the sampled batch size.
   * The step is charged to the ledger first; a step past the planned step
   * budget or the epsilon budget throws a PrivacyBudgetExceededError
   * (ERR_DPLORA_BUDGET_EXCEEDED) and changes nothing; a ledger that does not
   * match the device's step counter throws ERR_DPLORA_LEDGER.
   */
  step(x: Int8Array, y: Int32Array, rng: Rng): number {
    if (!(rng instanceof Rng)) throw new InvalidArgumentError('rng', 'must be an Rng');
    if (!(x instanceof Int8Array)) throw new InvalidArgumentError('x', 'must be an Int8Array');
    if (!(y instanceof Int32Array)) throw new InvalidArgumentError('y', 'must be an Int32Array');
    if (x.length !== y.length * this.config.dIn)
      throw new InvalidArgumentError(
        'x',
        `length must be y.length * dIn = ${y.length * this.config.dIn}`,
      );
    for (let i = 0; i < y.length; i++) {
      if (y[i] < 0 || y[i] >= this.config.classes)
        throw new InvalidArgumentError('y', `y[${i}] = ${y[i]} is not a class index`);
    }
    this.checkBudget();
    this.charge(rng);
    try {
      return Rng.useStream(rng, (key, nonce, position) => {
        this.state.position = position;
        const r = addon().fixedLoraStep(this.config, this.state, key, nonce, x, y);
        this.state.steps = r.steps;
        this.state.position = r.position;
        return { result: r.batch, next: r.position };
      });
    } catch (e) {
      // The step stays charged; the model refuses further steps (its counter lags the ledger).
      this.broken = `a charged step failed on the device (${(e as Error).message}); the run cannot continue`;
      throw e;
    }
  }

  /** Predicted classes of x ([n][dIn] int8). */
  predict(x: Int8Array): Int32Array {
    if (!(x instanceof Int8Array)) throw new InvalidArgumentError('x', 'must be an Int8Array');
    return addon().fixedLoraPredict(this.config, this.state, x);
  }

  /** The state with its ledger and the configuration's fingerprint, checksummed. */
  saveState(): IntegerLoraCheckpoint {
    if (this.broken !== null) throw new InvalidStateError(this.broken);
    const st: Record<string, string> = {
      steps: this.state.steps.toString(),
      position: this.state.position.toString(),
    };
    for (const k of STATE_ARRAYS) {
      const v = this.state[k];
      if (v !== undefined)
        st[k] = Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64');
    }
    const body = {
      format: 'dp-lora.integer-lora' as const,
      version: 1 as const,
      config: configFingerprint(this.config),
      state: st,
      ledger: (this.ledger_ ?? this.emptyLedger()).toJSON(),
    };
    return { ...body, checksum: checkpointChecksum(body) };
  }

  private emptyLedger(): PrivacyLedger {
    const a = this.accounting;
    return PrivacyLedger.create({
      accountant: a.accountant,
      parameters: accountantParameters(a.accountant),
      delta: a.delta,
      targetEpsilon: a.targetEpsilon,
      keySource: 'os-entropy',
    });
  }

  /**
   * Restores a model saved by {@link IntegerLora.saveState} for the same plan. Refuses
   * (ERR_DPLORA_LEDGER) a checkpoint whose checksum, ledger chain, configuration, budget or
   * step count does not match: the ledger's steps must equal the device counter.
   * @param plan - the plan of the run (its configuration and accounting; its state is replaced)
   * @param saved - the checkpoint
   */
  static restore(
    plan: Pick<IntegerLoraPlan, 'config' | 'state' | 'accounting'>,
    saved: IntegerLoraCheckpoint,
  ): IntegerLora {
    const bad = (m: string): never => {
      throw new DpLoraError(ErrorCode.Ledger, `IntegerLora.restore: ${m}`);
    };
    if (!saved || saved.format !== 'dp-lora.integer-lora' || saved.version !== 1)
      bad('not an integer LoRA checkpoint of version 1');
    if (checkpointChecksum(saved) !== saved.checksum) bad('the checksum does not match');
    let ledger: PrivacyLedger;
    try {
      ledger = PrivacyLedger.fromJSON(saved.ledger);
    } catch (e) {
      return bad(`the ledger is broken (${(e as Error).message})`);
    }
    if (saved.config !== configFingerprint(plan.config))
      bad('the checkpoint belongs to another configuration');
    const g = ledger.genesis;
    const a = plan.accounting;
    if (g.accountant !== a.accountant || g.delta !== a.delta || g.targetEpsilon !== a.targetEpsilon)
      bad(
        `the ledger's budget (${g.accountant}, epsilon ${g.targetEpsilon}, delta ${g.delta}) is not the plan's`,
      );
    const st = saved.state;
    const steps = /^\d+$/.test(st.steps ?? '') ? BigInt(st.steps) : bad('state.steps is missing');
    if (BigInt(ledger.steps) !== steps)
      bad(`the ledger charged ${ledger.steps} steps but the state says ${st.steps}`);
    for (const r of ledger.records)
      if (
        r.kind === 'step' &&
        (r.mechanism !== 'discreteGaussian' || r.noiseMultiplier !== a.noiseMultiplier)
      )
        bad(`ledger step ${r.step} is not this plan's discrete Gaussian step`);
    const state: IntegerLoraState = {
      ...plan.state,
      steps,
      position: /^\d+$/.test(st.position ?? '') ? BigInt(st.position) : bad('state.position'),
    };
    for (const k of STATE_ARRAYS) {
      const want = plan.state[k];
      if (want === undefined) continue;
      const buf = st[k] === undefined ? bad(`state.${k} is missing`) : Buffer.from(st[k], 'base64');
      if (buf.length !== want.length * 4) bad(`state.${k} has the wrong length`);
      const v = new Int32Array(want.length);
      new Uint8Array(v.buffer).set(buf);
      state[k] = v;
    }
    return new IntegerLora({ config: plan.config, state, accounting: a }, ledger);
  }
}

/**
 * Quantizes features to the device's int8 input: round(x / inputScale),
 * saturated to [-127, 127].
 */
export function quantizeInput(x: Float32Array, inputScale: number): Int8Array {
  requireNumber('inputScale', inputScale, { greaterThan: 0 });
  const out = new Int8Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const v = Math.round(x[i] / inputScale);
    out[i] = Number.isNaN(v) ? 0 : Math.max(-127, Math.min(127, v));
  }
  return out;
}
