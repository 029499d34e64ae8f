/**
 * The two accountants: RdpAccountant (Renyi DP, MTZ 2019 + improved
 * conversion) and PldAccountant (privacy loss distributions composed by FFT;
 * the default). Both record a history of privacy events and serialize it to a
 * ledger that restores exactly.
 */
import { RdpConversion, checkDelta, rdpToEpsilon } from './conversion';
import { PrivacyEvent, StepSpec, appendEvent, groupEvents, validateStep } from './events';
import {
  AccountantKind,
  LEDGER_FORMAT_VERSION,
  LEDGER_TYPE,
  LedgerFormatError,
  LedgerJson,
  numberParam,
  parseLedger,
} from './ledger';
import {
  ComposedPld,
  DEFAULT_PLD_PARAMETERS,
  PldParameters,
  composePlds,
  composedDelta,
  composedEpsilon,
  discretizeSubsampledGaussian,
} from './pld';
import { DEFAULT_ORDERS, checkOrders, computeRdp } from './rdp';
import { InvalidArgumentError } from '../errors';
import { OPEN_UNIT, requireInt, requireNumber, requireOneOf } from '../validate';

/** Common interface of the accountants. */
export interface Accountant {
  /** Which accountant this is (`rdp` or `pld`). */
  readonly kind: AccountantKind;
  /** A copy of the recorded events. */
  readonly history: PrivacyEvent[];
  /** Records `count` steps of a (Poisson-subsampled) Gaussian mechanism. */
  step(spec: StepSpec, count?: number): this;
  /** The smallest epsilon the accountant certifies at `delta`. */
  getEpsilon(delta: number): number;
  /** The ledger (JSON-serializable). */
  toJSON(): LedgerJson;
  /** An independent copy with the same history and parameters. */
  clone(): Accountant;
}

abstract class BaseAccountant {
  protected readonly events: PrivacyEvent[] = [];
  protected version = 0;

  /** A copy of the recorded events (consecutive identical steps are merged). */
  get history(): PrivacyEvent[] {
    return this.events.map((e) => ({ ...e }));
  }

  /**
   * Records `count` compositions of the mechanism. Use sampleRate 1 for any
   * sampling that is not Poisson (shuffled or fixed-size batches get no
   * amplification).
   * @throws RangeError naming the argument for invalid values
   */
  step(spec: StepSpec, count = 1): this {
    appendEvent(this.events, validateStep(spec, count));
    this.version++;
    return this;
  }

  /** Total number of recorded steps. */
  get totalSteps(): number {
    return this.events.reduce((s, e) => s + e.steps, 0);
  }

  protected restore(history: PrivacyEvent[]): void {
    for (const e of history) this.events.push({ ...e });
    this.version++;
  }
}

/** Options of {@link RdpAccountant}. */
export interface RdpAccountantOptions {
  /** Renyi orders (> 1); default {@link DEFAULT_ORDERS}. */
  orders?: readonly number[];
  /** RDP to (eps, delta) conversion; default 'improved'. */
  conversion?: RdpConversion;
}

/**
 * Renyi-DP accountant for the Poisson-subsampled Gaussian (continuous and
 * discrete; the discrete Gaussian counts at integer orders only).
 */
export class RdpAccountant extends BaseAccountant implements Accountant {
  /** Always `rdp`. */
  readonly kind = 'rdp' as const;
  /** The RDP orders alpha tracked. */
  readonly orders: readonly number[];
  /** RDP-to-(epsilon, delta) conversion in use. */
  readonly conversion: RdpConversion;
  private cache: { version: number; rdp: Float64Array } | null = null;

  constructor(options: RdpAccountantOptions = {}) {
    super();
    const orders = options.orders ?? DEFAULT_ORDERS;
    checkOrders(orders);
    const conversion = requireOneOf('conversion', options.conversion ?? 'improved', [
      'improved',
      'classic',
    ]);
    this.orders = Object.freeze([...orders]);
    this.conversion = conversion;
  }

  /** Composed RDP at each order (Infinity where an event is not defined). */
  getRdp(): Float64Array {
    if (this.cache && this.cache.version === this.version) return this.cache.rdp;
    const total = new Float64Array(this.orders.length);
    for (const e of groupEvents(this.events)) {
      const r = computeRdp({
        sampleRate: e.sampleRate,
        noiseMultiplier: e.noiseMultiplier,
        steps: e.steps,
        orders: this.orders,
        mechanism: e.mechanism,
      });
      for (let i = 0; i < total.length; i++) total[i] += r[i];
    }
    this.cache = { version: this.version, rdp: total };
    return total;
  }

  /** Epsilon and the optimal order at `delta`. */
  getEpsilonAndOrder(delta: number): {
    /** The smallest epsilon over the orders. */
    epsilon: number;
    /** The order that gives it. */
    order: number;
  } {
    checkDelta(delta);
    if (this.events.length === 0) return { epsilon: 0, order: NaN };
    return rdpToEpsilon(this.orders, this.getRdp(), delta, { conversion: this.conversion });
  }

  /**
   * The smallest epsilon over the orders at `delta` (0 for an empty history).
   * @throws RangeError naming `delta` unless 0 < delta < 1
   */
  getEpsilon(delta: number): number {
    return this.getEpsilonAndOrder(delta).epsilon;
  }

  /** The smallest delta over the orders at `epsilon` (same conversion). */
  getDelta(epsilon: number): number {
    requireNumber('epsilon', epsilon, { min: 0, allowInfinite: true });
    if (this.events.length === 0) return 0;
    const rdp = this.getRdp();
    let best = Infinity;
    for (let i = 0; i < this.orders.length; i++) {
      const a = this.orders[i];
      if (!(rdp[i] < Infinity)) continue;
      const logDelta =
        this.conversion === 'classic'
          ? (a - 1) * (rdp[i] - epsilon)
          : (a - 1) * (rdp[i] - epsilon + Math.log1p(-1 / a)) - Math.log(a);
      best = Math.min(best, logDelta);
    }
    return Math.min(1, Math.exp(best));
  }

  /** The ledger: kind, full history, orders and conversion. */
  toJSON(): LedgerJson {
    return {
      type: LEDGER_TYPE,
      formatVersion: LEDGER_FORMAT_VERSION,
      accountant: 'rdp',
      history: this.history,
      parameters: { orders: [...this.orders], conversion: this.conversion },
    };
  }

  /** An independent copy (e.g. to check a planned step without recording it). */
  clone(): RdpAccountant {
    return RdpAccountant.fromJSON(this.toJSON());
  }

  /**
   * Restores an accountant from {@link RdpAccountant.toJSON} output (object or string).
   * @throws LedgerFormatError for malformed input
   */
  static fromJSON(json: unknown): RdpAccountant {
    const led = parseLedger(json, 'rdp');
    const p = led.parameters;
    if (!Array.isArray(p.orders))
      throw new LedgerFormatError('parameters.orders must be an array of numbers > 1');
    if (p.conversion !== 'improved' && p.conversion !== 'classic') {
      throw new LedgerFormatError(
        `parameters.conversion must be 'improved' or 'classic', got ${JSON.stringify(p.conversion)}`,
      );
    }
    let acc: RdpAccountant;
    try {
      acc = new RdpAccountant({ orders: p.orders as number[], conversion: p.conversion });
    } catch (e) {
      throw new LedgerFormatError(`parameters: ${(e as Error).message}`);
    }
    acc.restore(led.history);
    return acc;
  }
}

/** Detailed answer of {@link PldAccountant.getEpsilonDetails}. */
export interface PldEpsilonDetails {
  /** Epsilon at the requested delta (the larger of the two relations). */
  epsilon: number;
  /** 'pld', or 'rdp-fallback' when the history holds discrete-Gaussian events. */
  method: 'pld' | 'rdp-fallback';
  /** Epsilon under the remove relation (PLD only). */
  remove?: number;
  /** Epsilon under the add relation (PLD only). */
  add?: number;
  /** Grid step actually used (PLD only; larger than requested when the grid had to be coarsened). */
  gridStep?: number;
}

/** Largest grid step the PLD accountant falls back to automatically. */
const MAX_AUTO_GRID_STEP = 0.2;

/** Integer orders of the default list, used for the discrete-Gaussian fallback. */
export const INTEGER_ORDERS: readonly number[] = Object.freeze(
  DEFAULT_ORDERS.filter((a) => Number.isInteger(a)),
);

/**
 * Privacy-loss-distribution accountant (the default). Each event's privacy
 * loss is discretized pessimistically on a grid of step `gridStep` for both
 * the add and the remove relation; the history is composed by FFT and the
 * worse relation is reported, so the answer is an upper bound on the true
 * epsilon (up to the documented FFT rounding allowance, ~1e-11 in delta).
 *
 * Discrete-Gaussian events: their privacy loss distribution is not the
 * continuous one, so when the history holds any, the whole history is
 * accounted by RDP at integer orders (improved conversion), where the
 * subsampled discrete and continuous Gaussians agree exactly. The answer
 * stays a valid upper bound; {@link getEpsilonDetails} says which method ran.
 */
export class PldAccountant extends BaseAccountant implements Accountant {
  /** Always `pld`. */
  readonly kind = 'pld' as const;
  /** Grid and tail parameters of the PLD discretization. */
  readonly parameters: Readonly<PldParameters>;
  private cache: {
    version: number;
    remove: ComposedPld;
    add: ComposedPld;
    gridStep: number;
  } | null = null;

  constructor(options: Partial<PldParameters> = {}) {
    super();
    const p = { ...DEFAULT_PLD_PARAMETERS, ...options };
    requireNumber('gridStep', p.gridStep, OPEN_UNIT);
    requireNumber('tailMass', p.tailMass, { greaterThan: 0, lessThan: 1e-6 });
    requireNumber('windowTail', p.windowTail, { greaterThan: 0, lessThan: 1e-6 });
    requireInt('maxFftLength', p.maxFftLength, { min: 2, max: 2 ** 26 });
    this.parameters = Object.freeze(p);
  }

  private hasDiscrete(): boolean {
    return this.events.some((e) => e.mechanism === 'discreteGaussian');
  }

  /**
   * Composes the history. When the grid would need more than maxFftLength
   * points (very large epsilons, or tiny noise), the grid step is doubled
   * until it fits (up to MAX_AUTO_GRID_STEP): coarser grids nest the finer
   * ones, so the answer is still an upper bound, only less tight; the step
   * used is reported by getEpsilonDetails.
   */
  private composed(): { remove: ComposedPld; add: ComposedPld; gridStep: number } {
    if (this.cache && this.cache.version === this.version) return this.cache;
    const groups = groupEvents(this.events);
    let params: PldParameters = { ...this.parameters };
    for (;;) {
      try {
        const remove = groups.map((e) => ({
          pld: discretizeSubsampledGaussian(e.sampleRate, e.noiseMultiplier, 'remove', params),
          count: e.steps,
        }));
        const add = groups.map((e) => ({
          pld: discretizeSubsampledGaussian(e.sampleRate, e.noiseMultiplier, 'add', params),
          count: e.steps,
        }));
        const [r, a] = composePlds([remove, add], params);
        this.cache = { version: this.version, remove: r, add: a, gridStep: params.gridStep };
        return this.cache;
      } catch (e) {
        if (!(e instanceof InvalidArgumentError && e.argument === 'gridStep')) throw e;
        if (params.gridStep * 2 > MAX_AUTO_GRID_STEP) throw e;
        params = { ...params, gridStep: params.gridStep * 2 };
      }
    }
  }

  private rdpFallback(): RdpAccountant {
    const acc = new RdpAccountant({ orders: INTEGER_ORDERS });
    for (const e of this.events) acc.step(e, e.steps);
    return acc;
  }

  /** Epsilon with the method used and, for PLD, both relations. */
  getEpsilonDetails(delta: number): PldEpsilonDetails {
    checkDelta(delta);
    if (this.events.length === 0)
      return { epsilon: 0, method: 'pld', remove: 0, add: 0, gridStep: this.parameters.gridStep };
    if (this.hasDiscrete())
      return { epsilon: this.rdpFallback().getEpsilon(delta), method: 'rdp-fallback' };
    const { remove, add, gridStep } = this.composed();
    const er = composedEpsilon(remove, delta);
    const ea = composedEpsilon(add, delta);
    return { epsilon: Math.max(er, ea), method: 'pld', remove: er, add: ea, gridStep };
  }

  /**
   * The smallest epsilon certified at `delta` (worse of add and remove).
   * Infinity when delta is below the mass charged for truncation.
   * @throws RangeError naming `delta` unless 0 < delta < 1
   */
  getEpsilon(delta: number): number {
    return this.getEpsilonDetails(delta).epsilon;
  }

  /** delta at `epsilon` (worse of add and remove; RDP fallback for discrete Gaussians). */
  getDelta(epsilon: number): number {
    requireNumber('epsilon', epsilon, { min: 0, allowInfinite: true });
    if (this.events.length === 0) return 0;
    if (this.hasDiscrete()) return this.rdpFallback().getDelta(epsilon);
    const { remove, add } = this.composed();
    return Math.max(composedDelta(remove, epsilon), composedDelta(add, epsilon));
  }

  /** The ledger: kind, full history and the grid parameters. */
  toJSON(): LedgerJson {
    return {
      type: LEDGER_TYPE,
      formatVersion: LEDGER_FORMAT_VERSION,
      accountant: 'pld',
      history: this.history,
      parameters: { ...this.parameters },
    };
  }

  /** An independent copy (e.g. to check a planned step without recording it). */
  clone(): PldAccountant {
    return PldAccountant.fromJSON(this.toJSON());
  }

  /**
   * Restores an accountant from {@link PldAccountant.toJSON} output (object or string).
   * @throws LedgerFormatError for malformed input
   */
  static fromJSON(json: unknown): PldAccountant {
    const led = parseLedger(json, 'pld');
    const p = led.parameters;
    const keys = Object.keys(p).sort().join(',');
    if (keys !== 'gridStep,maxFftLength,tailMass,windowTail') {
      throw new LedgerFormatError(
        `parameters must have exactly gridStep, maxFftLength, tailMass, windowTail (got ${keys})`,
      );
    }
    const params: PldParameters = {
      gridStep: numberParam(p, 'gridStep', (v) => v > 0 && v < 1, 'a number in (0, 1)'),
      tailMass: numberParam(p, 'tailMass', (v) => v > 0 && v < 1e-6, 'a number in (0, 1e-6)'),
      windowTail: numberParam(p, 'windowTail', (v) => v > 0 && v < 1e-6, 'a number in (0, 1e-6)'),
      maxFftLength: numberParam(
        p,
        'maxFftLength',
        (v) => Number.isInteger(v) && v >= 2 && v <= 2 ** 26,
        'an integer in [2, 2^26]',
      ),
    };
    const acc = new PldAccountant(params);
    acc.restore(led.history);
    return acc;
  }
}

/**
 * Restores whichever accountant a ledger describes.
 * @throws LedgerFormatError for malformed input
 */
export function accountantFromJSON(json: unknown): RdpAccountant | PldAccountant {
  const led = parseLedger(json);
  return led.accountant === 'rdp' ? RdpAccountant.fromJSON(led) : PldAccountant.fromJSON(led);
}

/** Creates an empty accountant of the given kind. */
export function createAccountant(kind: AccountantKind = 'pld'): RdpAccountant | PldAccountant {
  return requireOneOf('accountant', kind, ['rdp', 'pld']) === 'rdp'
    ? new RdpAccountant()
    : new PldAccountant();
}
