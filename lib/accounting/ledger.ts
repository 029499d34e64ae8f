/**
 * The privacy ledger's serialized form and its validation. A ledger holds the
 * accountant kind, the complete event history and the accountant parameters,
 * so that a restored accountant answers exactly as the original did.
 */
import type { PrivacyEvent } from './events';
import { validateStep } from './events';
import { LedgerFormatError } from '../errors';
export { LedgerFormatError };

/** Current ledger format version. */
export const LEDGER_FORMAT_VERSION = 1;

/** Tag identifying a dp-lora privacy ledger. */
export const LEDGER_TYPE = 'dp-lora-privacy-ledger';

/** Accountant kinds. */
export type AccountantKind = 'rdp' | 'pld';

/** JSON form of an accountant. */
export interface LedgerJson {
  /** Marks the JSON as a dp-lora privacy ledger. */
  type: typeof LEDGER_TYPE;
  /** Ledger format version. */
  formatVersion: number;
  /** The accountant that reads it (`rdp` or `pld`). */
  accountant: AccountantKind;
  /** Every recorded event, in order. */
  history: PrivacyEvent[];
  /** The accountant's parameters (orders, PLD grid, conversion). */
  parameters: Record<string, unknown>;
}

/**
 * Parses (if given a string) and validates a ledger. Every field is checked;
 * nothing is defaulted, so a damaged ledger can never silently reset the
 * history.
 */
export function parseLedger(input: unknown, expected?: AccountantKind): LedgerJson {
  let obj: unknown = input;
  if (typeof input === 'string') {
    try {
      obj = JSON.parse(input);
    } catch (e) {
      throw new LedgerFormatError(`not valid JSON (${(e as Error).message})`);
    }
  }
  if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) {
    throw new LedgerFormatError('expected a JSON object');
  }
  const o = obj as Record<string, unknown>;
  if (o.type !== LEDGER_TYPE)
    throw new LedgerFormatError(
      `field 'type' must be '${LEDGER_TYPE}', got ${JSON.stringify(o.type)}`,
    );
  if (o.formatVersion !== LEDGER_FORMAT_VERSION) {
    throw new LedgerFormatError(
      `unsupported formatVersion ${JSON.stringify(o.formatVersion)} (this version reads ${LEDGER_FORMAT_VERSION})`,
    );
  }
  if (o.accountant !== 'rdp' && o.accountant !== 'pld') {
    throw new LedgerFormatError(
      `field 'accountant' must be 'rdp' or 'pld', got ${JSON.stringify(o.accountant)}`,
    );
  }
  if (expected && o.accountant !== expected) {
    throw new LedgerFormatError(
      `this ledger belongs to a '${o.accountant}' accountant, not '${expected}'`,
    );
  }
  if (!Array.isArray(o.history)) throw new LedgerFormatError("field 'history' must be an array");
  const history: PrivacyEvent[] = o.history.map((e: unknown, i: number) => {
    if (e === null || typeof e !== 'object')
      throw new LedgerFormatError(`history[${i}] must be an object`);
    const r = e as Record<string, unknown>;
    const keys = Object.keys(r).sort().join(',');
    if (keys !== 'mechanism,noiseMultiplier,sampleRate,steps') {
      throw new LedgerFormatError(
        `history[${i}] must have exactly mechanism, noiseMultiplier, sampleRate, steps (got ${keys})`,
      );
    }
    try {
      return validateStep(
        {
          mechanism: r.mechanism as PrivacyEvent['mechanism'],
          noiseMultiplier: r.noiseMultiplier as number,
          sampleRate: r.sampleRate as number,
        },
        r.steps as number,
        `history[${i}]`,
      );
    } catch (err) {
      throw new LedgerFormatError((err as Error).message);
    }
  });
  if (o.parameters === null || typeof o.parameters !== 'object' || Array.isArray(o.parameters)) {
    throw new LedgerFormatError("field 'parameters' must be an object");
  }
  return {
    type: LEDGER_TYPE,
    formatVersion: LEDGER_FORMAT_VERSION,
    accountant: o.accountant,
    history,
    parameters: o.parameters as Record<string, unknown>,
  };
}

/** Reads a required finite number parameter. */
export function numberParam(
  params: Record<string, unknown>,
  name: string,
  check: (v: number) => boolean,
  what: string,
): number {
  const v = params[name];
  if (typeof v !== 'number' || !Number.isFinite(v) || !check(v)) {
    throw new LedgerFormatError(`parameters.${name} must be ${what}, got ${JSON.stringify(v)}`);
  }
  return v;
}
