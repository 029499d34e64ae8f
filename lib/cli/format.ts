/**
 * Small helpers shared by the accounting subcommands: strict number parsing
 * for options and a plain two-column table.
 */
import { OptionError } from '../errors';

/** Parses a finite number option value, naming the option in the error. */
export function numberOption(name: string): (value: string) => number {
  return (value: string) => {
    const v = Number(value);
    if (value.trim() === '' || !Number.isFinite(v)) {
      throw new OptionError(name, `must be a finite number, got '${value}'`);
    }
    return v;
  };
}

/** Parses an integer option value, naming the option in the error. */
export function integerOption(name: string): (value: string) => number {
  return (value: string) => {
    const v = Number(value);
    if (value.trim() === '' || !Number.isSafeInteger(v)) {
      throw new OptionError(name, `must be an integer, got '${value}'`);
    }
    return v;
  };
}

/** Parses an accountant kind. */
export function accountantOption(value: string): 'rdp' | 'pld' {
  if (value !== 'rdp' && value !== 'pld')
    throw new OptionError('--accountant', `must be 'rdp' or 'pld', got '${value}'`);
  return value;
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
