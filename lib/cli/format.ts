/**
 * Small helpers shared by the accounting subcommands: strict number parsing
 * for options and a plain two-column table.
 */
import type { Command } from 'commander';
import { InvalidArgumentError } from '../errors';

/** A bad command-line option value; {@link DpLoraError.argument} is the option, e.g. `--rank`. */
export class OptionError extends InvalidArgumentError {
  /**
   * @param option - the option as typed, with its dashes (e.g. `--rank`); or, with no
   *   `message`, a whole message that starts with the option (`"--resume needs ..."`), from
   *   which the option is taken
   * @param message - what is wrong and what is accepted (the option is prefixed)
   */
  constructor(option: string, message?: string, cause?: unknown) {
    if (message === undefined) {
      const m = /^(--[a-z][a-z0-9-]*)\b[: ]?\s*(.*)$/s.exec(option);
      super(m ? m[1] : '(options)', m ? option : option, cause);
    } else {
      super(option, message, cause);
    }
  }
}

/** Bounds of a numeric option: `[min, max]`, with `min` optionally exclusive. */
export interface OptionBounds {
  /** Smallest accepted value. */
  min?: number;
  /** `min` itself is refused (e.g. `> 0`). */
  minExclusive?: boolean;
  /** Largest accepted value. */
  max?: number;
  /** `max` itself is refused (e.g. `< 1`). */
  maxExclusive?: boolean;
}

function checkOptionBounds(name: string, v: number, value: string, b: OptionBounds): number {
  const lo = b.min === undefined ? '' : `${b.minExclusive ? '>' : '>='} ${b.min}`;
  const hi = b.max === undefined ? '' : `${b.maxExclusive ? '<' : '<='} ${b.max}`;
  const want = [lo, hi].filter(Boolean).join(' and ');
  const belowMin = b.min !== undefined && (b.minExclusive ? v <= b.min : v < b.min);
  const aboveMax = b.max !== undefined && (b.maxExclusive ? v >= b.max : v > b.max);
  if (belowMin || aboveMax) throw new OptionError(name, `must be ${want}, got '${value}'`);
  return v;
}

/**
 * `Number(text)` for decimal notation only (`5`, `-0.5`, `1e-5`, surrounding blanks allowed);
 * NaN for anything else `Number` would also take: `0x10`, `0b11`, `0o7`, `Infinity`, `''`.
 */
export function decimalNumber(text: string): number {
  return /^\s*[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?\s*$/i.test(text) ? Number(text) : NaN;
}

/** Parses a finite number option value within `bounds`, naming the option in the error. */
export function numberOption(name: string, bounds: OptionBounds = {}): (value: string) => number {
  return (value: string) => {
    const v = decimalNumber(value);
    if (value.trim() === '' || !Number.isFinite(v)) {
      throw new OptionError(name, `must be a finite number, got '${value}'`);
    }
    return checkOptionBounds(name, v, value, bounds);
  };
}

/** Parses an integer option value within `bounds`, naming the option in the error. */
export function integerOption(name: string, bounds: OptionBounds = {}): (value: string) => number {
  return (value: string) => {
    const v = decimalNumber(value);
    if (value.trim() === '' || !Number.isSafeInteger(v)) {
      throw new OptionError(name, `must be an integer, got '${value}'`);
    }
    return checkOptionBounds(name, v, value, bounds);
  };
}

/** Bounds shared by the accounting subcommands' options. */
export const ACCOUNTING_OPTION_BOUNDS = {
  sampleRate: { min: 0, minExclusive: true, max: 1 },
  noise: { min: 0, minExclusive: true },
  delta: { min: 0, minExclusive: true, max: 1, maxExclusive: true },
  epsilon: { min: 0, minExclusive: true },
  epochs: { min: 0, minExclusive: true },
  /** Up to 2^31 - 1 steps. */
  steps: { min: 1, max: 2 ** 31 - 1 },
} satisfies Record<string, OptionBounds>;

/** Parses an accountant kind. */
export function accountantOption(value: string): 'rdp' | 'pld' {
  if (value !== 'rdp' && value !== 'pld')
    throw new OptionError('--accountant', `must be 'rdp' or 'pld', got '${value}'`);
  return value;
}

/**
 * Adds the options the accounting subcommands (`epsilon`, `noise`) share, after their own:
 * `--delta`, `--sample-rate`, `--accountant` and `--json`.
 */
export function withAccountingOptions(cmd: Command): Command {
  const B = ACCOUNTING_OPTION_BOUNDS;
  return cmd
    .requiredOption('--delta <d>', 'target delta in (0, 1)', numberOption('--delta', B.delta))
    .requiredOption(
      '--sample-rate <q>',
      'Poisson sampling rate in (0, 1] (1 for non-Poisson sampling)',
      numberOption('--sample-rate', B.sampleRate),
    )
    .option('--accountant <kind>', "'pld' (default, tighter) or 'rdp'", accountantOption, 'pld')
    .option('--json', 'print JSON instead of a table');
}

/** Writes a subcommand's report to stdout: one JSON line, or an aligned table. */
export function printReport(report: Record<string, string | number>, json?: boolean): void {
  process.stdout.write(json ? JSON.stringify(report) + '\n' : formatTable(Object.entries(report)));
}

/** Formats [label, value] rows as an aligned two-column table. */
export function formatTable(rows: [string, string | number][]): string {
  const w = Math.max(...rows.map(([k]) => k.length));
  return (
    rows
      .map(([k, v]) => `${k.padEnd(w)}  ${typeof v === 'number' ? formatNumber(v) : v}`)
      .join('\n') + '\n'
  );
}

/** Numbers with 7 significant digits (integers as they are). */
export function formatNumber(v: number): string {
  if (Number.isInteger(v)) return String(v);
  if (!Number.isFinite(v)) return String(v);
  return Number(v.toPrecision(7)).toString();
}
