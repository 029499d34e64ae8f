/**
 * The run's privacy record: an append-only hash chain of events, from which steps, epsilon and
 * the privacy report are derived.
 */
import { createHash, randomBytes } from 'crypto';
import { PldAccountant, RdpAccountant } from './accountant';
import { appendEvent } from './events';
import type { PrivacyEvent } from './events';
import { LEDGER_FORMAT_VERSION, LEDGER_TYPE, LedgerFormatError } from './ledger';
import type { AccountantKind, LedgerJson } from './ledger';
import { InvalidArgumentError } from '../errors';
import { requireObject } from '../validate';

// ---------------------------------------------------------------------------------------------
// The run's privacy record: an append-only hash chain of events.
// ---------------------------------------------------------------------------------------------

/** Tag of a serialized {@link PrivacyLedger}. */
export const LEDGER_CHAIN_TYPE = 'dp-lora-privacy-ledger-chain';

/** Current chain format version. */
export const LEDGER_CHAIN_VERSION = 1;

/** How a run's noise and sampling key was made. `fixed-seed` makes the run reproducible (not secure). */
export type KeySource = 'os-entropy' | 'fixed-seed';

/** Fields shared by every ledger record. */
export interface RecordBase {
  /** Position in the chain (0 for the genesis record). */
  seq: number;
  /** Hash of the previous record ('' for the genesis record). */
  prev: string;
  /** SHA-256 (hex) of this record's canonical JSON without `hash`. */
  hash: string;
}

/** First record: what the run is and how it is accounted. */
export interface GenesisRecord extends RecordBase {
  /** Record tag: always `'genesis'`. */
  kind: 'genesis';
  /** Random id of the run (128 bits, hex); a ledger from another run has another id. */
  runId: string;
  /** Which accountant the run's epsilon is computed with (`'rdp'` or `'pld'`). */
  accountant: AccountantKind;
  /** The accountant's parameters (its toJSON().parameters). */
  parameters: Record<string, unknown>;
  /** The run's delta, in (0, 1): the default of {@link PrivacyLedger.epsilon} and the report. */
  delta: number;
  /** The hard budget, or null for none. */
  targetEpsilon: number | null;
}

/** The noise/sampling RNG was keyed (at the start and at every resume). */
export interface KeyRecord extends RecordBase {
  /** Record tag: always `'key'`. */
  kind: 'key';
  /** How the key was made: from OS entropy, or from a fixed seed (reproducible, not secure). */
  source: KeySource;
  /** Which step the key applies from (the number of steps already charged). */
  fromStep: number;
}

/** One released update of a private (noised) step, charged before it is applied. */
export interface StepRecord extends RecordBase {
  /** Record tag: always `'step'`. */
  kind: 'step';
  /** 1-based index of the step among all charged steps. */
  step: number;
  /** The noise distribution: `'gaussian'` or `'discreteGaussian'`. */
  mechanism: PrivacyEvent['mechanism'];
  /** Noise standard deviation divided by the clipping norm (sigma / C), > 0. */
  noiseMultiplier: number;
  /** Poisson sampling rate of the step's batch, in (0, 1] (1 for non-Poisson sampling). */
  sampleRate: number;
  /** Per-sample L2 clipping norm C, > 0. */
  maxGradNorm: number;
}

/** A step that ran WITHOUT noise: the run is no longer private (epsilon infinite). */
export interface NoiselessRecord extends RecordBase {
  /** Record tag: always `'noiseless'`. */
  kind: 'noiseless';
  /** 1-based index of the step among all charged steps (noised and noise-free share one count). */
  step: number;
  /** Sampling rate of the step's batch, in (0, 1]. */
  sampleRate: number;
  /** Per-sample L2 clipping norm C, > 0. */
  maxGradNorm: number;
}

/** Any ledger record. */
export type LedgerRecord = GenesisRecord | KeyRecord | StepRecord | NoiselessRecord;

/** A record before it is chained (no seq, prev, hash). */
export type LedgerEntry =
  | Omit<GenesisRecord, keyof RecordBase>
  | Omit<KeyRecord, keyof RecordBase>
  | Omit<StepRecord, keyof RecordBase | 'step'>
  | Omit<NoiselessRecord, keyof RecordBase | 'step'>;

/** Serialized form of a {@link PrivacyLedger}. */
export interface LedgerChainJson {
  /** Format tag: always {@link LEDGER_CHAIN_TYPE}. */
  type: typeof LEDGER_CHAIN_TYPE;
  /** Chain format version (currently 1; other versions are rejected on load). */
  formatVersion: number;
  /** The records in chain order, genesis first, then the first key record. */
  records: LedgerRecord[];
}

/** JSON with object keys sorted at every level (the form that is hashed). */
export function canonicalJson(v: unknown): string {
  if (v === null || typeof v !== 'object') {
    if (typeof v === 'number' && !Number.isFinite(v))
      throw new LedgerFormatError(`non-finite number ${v} cannot be recorded`);
    return JSON.stringify(v);
  }
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  const o = v as Record<string, unknown>;
  return `{${Object.keys(o)
    .filter((k) => o[k] !== undefined)
    .sort()
    .map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`)
    .join(',')}}`;
}

/** SHA-256 (hex) of a record without its `hash` field. */
export function recordHash(r: Omit<LedgerRecord, 'hash'> & { hash?: string }): string {
  const rest: Record<string, unknown> = { ...r };
  delete rest.hash;
  return createHash('sha256').update(canonicalJson(rest)).digest('hex');
}

const RECORD_KEYS: Record<LedgerRecord['kind'], string> = {
  genesis: 'accountant,delta,hash,kind,parameters,prev,runId,seq,targetEpsilon',
  key: 'fromStep,hash,kind,prev,seq,source',
  step: 'hash,kind,maxGradNorm,mechanism,noiseMultiplier,prev,sampleRate,seq,step',
  noiseless: 'hash,kind,maxGradNorm,prev,sampleRate,seq,step',
};

/** Throws unless `x` is a finite number in the range `ok` accepts. */
function checkNumber(x: unknown, ok: (v: number) => boolean, where: string, what: string): number {
  if (typeof x !== 'number' || !Number.isFinite(x) || !ok(x))
    throw new LedgerFormatError(`${where} must be ${what}, got ${JSON.stringify(x)}`);
  return x;
}

/**
 * The single privacy record of a training run: an append-only hash chain. Every released update
 * is a `step` record (sampling rate, noise multiplier, clipping norm, step index), charged BEFORE
 * the update is applied; a step without noise is a `noiseless` record (the run is then reported
 * "not private"); every keying of the noise RNG is a `key` record (a fixed seed anywhere makes the
 * run reproducible and not secure). Steps, epsilon and the report are derived from the records
 * and from nothing else; each record carries the hash of the one before it, so a record cannot be
 * removed, reordered or edited without breaking the chain, and a ledger that is a prefix of
 * another is recognised as such ({@link PrivacyLedger.isPrefixOf}).
 *
 * The chain detects accidental damage, mix-ups between runs and edits of part of a run; it is not
 * a signature: whoever can rewrite every file of a run directory can rewrite a whole chain.
 */
export class PrivacyLedger {
  private readonly recs: LedgerRecord[] = [];
  private stepCount = 0;
  private noiseless = 0;
  private seeded = false;
  private live: ReturnType<PrivacyLedger['makeAccountant']> | null = null;

  private constructor() {}

  /**
   * Starts the chain of a new run.
   * @param o - accountant kind and parameters, delta, the budget (or null) and how the RNG was keyed
   */
  static create(o: {
    accountant: AccountantKind;
    parameters: Record<string, unknown>;
    delta: number;
    targetEpsilon: number | null;
    keySource: KeySource;
    runId?: string;
  }): PrivacyLedger {
    const l = new PrivacyLedger();
    l.append({
      kind: 'genesis',
      runId: o.runId ?? randomBytes(16).toString('hex'),
      accountant: o.accountant,
      parameters: JSON.parse(JSON.stringify(o.parameters)) as Record<string, unknown>,
      delta: o.delta,
      targetEpsilon: o.targetEpsilon,
    });
    l.append({ kind: 'key', source: o.keySource, fromStep: 0 });
    return l;
  }

  /**
   * Rebuilds a ledger from its JSON (or its records), verifying every hash, link, sequence
   * number and step index; throws {@link LedgerFormatError} naming the first bad record.
   */
  static fromJSON(input: unknown): PrivacyLedger {
    let obj = input;
    if (typeof input === 'string') {
      try {
        obj = JSON.parse(input);
      } catch (e) {
        throw new LedgerFormatError(`not valid JSON (${(e as Error).message})`);
      }
    }
    let records: unknown;
    if (Array.isArray(obj)) records = obj;
    else {
      if (obj === null || typeof obj !== 'object')
        throw new LedgerFormatError('expected a ledger object');
      const o = obj as Record<string, unknown>;
      if (o.type !== LEDGER_CHAIN_TYPE)
        throw new LedgerFormatError(
          `field 'type' must be '${LEDGER_CHAIN_TYPE}', got ${JSON.stringify(o.type)}`,
        );
      if (o.formatVersion !== LEDGER_CHAIN_VERSION)
        throw new LedgerFormatError(
          `unsupported formatVersion ${JSON.stringify(o.formatVersion)} (this version reads ${LEDGER_CHAIN_VERSION})`,
        );
      records = o.records;
    }
    if (!Array.isArray(records) || records.length < 2)
      throw new LedgerFormatError('a ledger needs at least its genesis and key records');
    const l = new PrivacyLedger();
    records.forEach((r: unknown, i: number) => l.verifyAndPush(r, i));
    return l;
  }

  private verifyAndPush(r: unknown, i: number): void {
    const where = `records[${i}]`;
    if (r === null || typeof r !== 'object' || Array.isArray(r))
      throw new LedgerFormatError(`${where} must be an object`);
    const o = r as Record<string, unknown>;
    const kind = o.kind as LedgerRecord['kind'];
    if (!(kind in RECORD_KEYS))
      throw new LedgerFormatError(`${where}.kind is unknown: ${JSON.stringify(o.kind)}`);
    if (Object.keys(o).sort().join(',') !== RECORD_KEYS[kind])
      throw new LedgerFormatError(`${where} (${kind}) must have exactly ${RECORD_KEYS[kind]}`);
    if (o.seq !== i) throw new LedgerFormatError(`${where}.seq must be ${i}, got ${String(o.seq)}`);
    const prev = i === 0 ? '' : this.recs[i - 1].hash;
    if (o.prev !== prev)
      throw new LedgerFormatError(`${where} does not link to the record before it (chain broken)`);
    if (typeof o.hash !== 'string' || o.hash !== recordHash(o as unknown as LedgerRecord))
      throw new LedgerFormatError(`${where} does not match its hash (edited or corrupted)`);
    if ((i === 0) !== (kind === 'genesis'))
      throw new LedgerFormatError(`${where}: the genesis record must come first and only once`);
    if (i === 1 && kind !== 'key')
      throw new LedgerFormatError(`${where}: the second record must say how the key was made`);
    this.checkFields(o, where);
    this.push(o as unknown as LedgerRecord);
  }

  private checkFields(o: Record<string, unknown>, where: string): void {
    switch (o.kind) {
      case 'genesis':
        if (typeof o.runId !== 'string' || !/^[0-9a-f]{32}$/.test(o.runId))
          throw new LedgerFormatError(`${where}.runId must be 32 hex digits`);
        if (o.accountant !== 'rdp' && o.accountant !== 'pld')
          throw new LedgerFormatError(`${where}.accountant must be 'rdp' or 'pld'`);
        if (o.parameters === null || typeof o.parameters !== 'object')
          throw new LedgerFormatError(`${where}.parameters must be an object`);
        checkNumber(o.delta, (v) => v > 0 && v < 1, `${where}.delta`, 'in (0, 1)');
        if (o.targetEpsilon !== null)
          checkNumber(o.targetEpsilon, (v) => v > 0, `${where}.targetEpsilon`, '> 0 or null');
        return;
      case 'key':
        if (o.source !== 'os-entropy' && o.source !== 'fixed-seed')
          throw new LedgerFormatError(`${where}.source must be 'os-entropy' or 'fixed-seed'`);
        if (o.fromStep !== this.stepCount)
          throw new LedgerFormatError(`${where}.fromStep must be ${this.stepCount}`);
        return;
      default:
        if (o.step !== this.stepCount + 1)
          throw new LedgerFormatError(
            `${where}.step must be ${this.stepCount + 1}, got ${String(o.step)}`,
          );
        checkNumber(o.sampleRate, (v) => v > 0 && v <= 1, `${where}.sampleRate`, 'in (0, 1]');
        checkNumber(o.maxGradNorm, (v) => v > 0, `${where}.maxGradNorm`, '> 0');
        if (o.kind === 'step') {
          checkNumber(o.noiseMultiplier, (v) => v > 0, `${where}.noiseMultiplier`, '> 0');
          if (o.mechanism !== 'gaussian' && o.mechanism !== 'discreteGaussian')
            throw new LedgerFormatError(`${where}.mechanism is unknown`);
        }
    }
  }

  private push(r: LedgerRecord): void {
    this.recs.push(r);
    if (r.kind === 'step') {
      this.stepCount++;
      if (this.live)
        this.live.step({
          noiseMultiplier: r.noiseMultiplier,
          sampleRate: r.sampleRate,
          mechanism: r.mechanism,
        });
    } else if (r.kind === 'noiseless') {
      this.stepCount++;
      this.noiseless++;
    } else if (r.kind === 'key' && r.source === 'fixed-seed') this.seeded = true;
  }

  /**
   * Appends a record (chained to the last one) and returns it. Step indices are assigned here.
   * @param e - the record's content
   */
  append(e: LedgerEntry): LedgerRecord {
    requireObject('e', e);
    const seq = this.recs.length;
    const prev = seq === 0 ? '' : this.recs[seq - 1].hash;
    const body = (
      e.kind === 'step' || e.kind === 'noiseless'
        ? { ...e, step: this.stepCount + 1, seq, prev }
        : { ...e, seq, prev }
    ) as Omit<LedgerRecord, 'hash'>;
    const rec = { ...body, hash: recordHash(body) } as LedgerRecord;
    // Validate through the same path as a loaded ledger, so both accept exactly the same records.
    this.verifyAndPush(rec, seq);
    return { ...rec };
  }

  /** The genesis record (run id, accountant, delta, budget). */
  get genesis(): GenesisRecord {
    return { ...(this.recs[0] as GenesisRecord) };
  }

  /** The run's id (from the genesis record). */
  get runId(): string {
    return (this.recs[0] as GenesisRecord).runId;
  }

  /** Steps charged (noised and noise-free): the run's one step count. */
  get steps(): number {
    return this.stepCount;
  }

  /** Steps that ran without noise; any makes the run not private. */
  get noiselessSteps(): number {
    return this.noiseless;
  }

  /** False when any step ran without noise (epsilon is then infinite). */
  get isPrivate(): boolean {
    return this.noiseless === 0;
  }

  /** True when any key of the run came from a fixed seed (reproducible, NOT secure). */
  get reproducible(): boolean {
    return this.seeded;
  }

  /** Hash of the last record: names the whole history. */
  get head(): string {
    return this.recs[this.recs.length - 1].hash;
  }

  /** Number of records. */
  get length(): number {
    return this.recs.length;
  }

  /** Copies of the records. */
  get records(): LedgerRecord[] {
    return this.recs.map((r) => ({ ...r }));
  }

  /** Whether this ledger's records are the first records of `other` (same run, not rewound). */
  isPrefixOf(other: PrivacyLedger): boolean {
    if (!(other instanceof PrivacyLedger))
      throw new InvalidArgumentError('other', 'isPrefixOf: must be a PrivacyLedger');
    if (this.recs.length > other.recs.length) return false;
    return this.recs.every((r, i) => other.recs[i].hash === r.hash);
  }

  private makeAccountant(): RdpAccountant | PldAccountant {
    const g = this.recs[0] as GenesisRecord;
    const history: PrivacyEvent[] = [];
    for (const r of this.recs)
      if (r.kind === 'step')
        appendEvent(history, {
          mechanism: r.mechanism,
          noiseMultiplier: r.noiseMultiplier,
          sampleRate: r.sampleRate,
          steps: 1,
        });
    const json: LedgerJson = {
      type: LEDGER_TYPE,
      formatVersion: LEDGER_FORMAT_VERSION,
      accountant: g.accountant,
      history,
      parameters: g.parameters,
    };
    return g.accountant === 'rdp' ? RdpAccountant.fromJSON(json) : PldAccountant.fromJSON(json);
  }

  /** An accountant holding exactly the ledger's noised steps (a fresh copy). */
  accountant(): RdpAccountant | PldAccountant {
    if (!this.live) this.live = this.makeAccountant();
    return this.live.clone();
  }

  /** epsilon spent at `delta` (default: the run's delta); Infinity if any step had no noise. */
  epsilon(delta?: number): number {
    const d = delta ?? (this.recs[0] as GenesisRecord).delta;
    if (!this.isPrivate) return Infinity;
    if (this.stepCount === 0) return 0;
    if (!this.live) this.live = this.makeAccountant();
    return this.live.getEpsilon(d);
  }

  /** The privacy report derived from the records. */
  report(delta?: number): LedgerReport {
    const g = this.recs[0] as GenesisRecord;
    const d = delta ?? g.delta;
    return {
      runId: g.runId,
      accountant: g.accountant,
      steps: this.stepCount,
      noiselessSteps: this.noiseless,
      private: this.isPrivate,
      epsilon: this.epsilon(d),
      delta: d,
      targetEpsilon: g.targetEpsilon,
      reproducible: this.seeded,
      keySource: this.seeded ? 'fixed-seed' : 'os-entropy',
      ledgerHead: this.head,
      statement: this.isPrivate
        ? `(${this.epsilon(d)}, ${d})-differentially private over ${this.stepCount} steps`
        : `NOT PRIVATE: ${this.noiseless} of ${this.stepCount} steps ran without noise`,
    };
  }

  /** The JSON form (verified again by {@link PrivacyLedger.fromJSON}). */
  toJSON(): LedgerChainJson {
    return {
      type: LEDGER_CHAIN_TYPE,
      formatVersion: LEDGER_CHAIN_VERSION,
      records: this.records,
    };
  }
}

/** What {@link PrivacyLedger.report} returns. */
export interface LedgerReport {
  /** The run's id (128 bits, hex), from the genesis record. */
  runId: string;
  /** Which accountant computed `epsilon` (`'rdp'` or `'pld'`). */
  accountant: AccountantKind;
  /** Steps charged, noised and noise-free together. */
  steps: number;
  /** Steps that ran without noise; any makes the run not private. */
  noiselessSteps: number;
  /** False when any step ran without noise. */
  private: boolean;
  /** epsilon spent at `delta`: 0 before any step, Infinity when the run is not private. */
  epsilon: number;
  /** The delta `epsilon` is reported at (the run's delta unless another was asked for). */
  delta: number;
  /** The run's hard epsilon budget, or null for none. */
  targetEpsilon: number | null;
  /** True when any key of the run came from a fixed seed (reproducible, NOT secure). */
  reproducible: boolean;
  /** `'fixed-seed'` when any key of the run came from a fixed seed, else `'os-entropy'`. */
  keySource: KeySource;
  /** Hash of the ledger's last record, naming the whole history the report was derived from. */
  ledgerHead: string;
  /** One-line summary: the (epsilon, delta) guarantee, or why the run is NOT PRIVATE. */
  statement: string;
}
