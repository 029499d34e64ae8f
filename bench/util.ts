/**
 * Shared benchmark helpers: a console table and JSON results under
 * bench/results/, stamped with the machine and the native capabilities.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

/** Directory the JSON results go to (bench/results at the package root). */
export const RESULTS_DIR = path.resolve(__dirname, '..', '..', 'bench', 'results');

/** Prints rows as an aligned table (keys of the first row are the columns). */
export function printTable(title: string, rows: Record<string, unknown>[]): void {
  console.log(`\n${title}`);
  if (rows.length === 0) {
    console.log('(no rows)');
    return;
  }
  const cols = Object.keys(rows[0]);
  const fmt = (v: unknown): string =>
    typeof v === 'number'
      ? Number.isInteger(v)
        ? String(v)
        : v.toPrecision(4)
      : v === undefined || v === null
        ? ''
        : typeof v === 'string'
          ? v
          : JSON.stringify(v);
  const widths = cols.map((c) => Math.max(c.length, ...rows.map((r) => fmt(r[c]).length)));
  const line = (cells: string[]) => cells.map((s, i) => s.padStart(widths[i])).join('  ');
  console.log(line(cols));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of rows) console.log(line(cols.map((c) => fmt(r[c]))));
}

/** Machine description recorded with every result file. */
export function machineInfo(): Record<string, unknown> {
  return {
    cpu: os.cpus()[0]?.model ?? 'unknown',
    cores: os.cpus().length,
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    date: new Date().toISOString(),
  };
}

/** Writes bench/results/<name>.json with the machine info and returns the path. */
export function writeResults(name: string, data: Record<string, unknown>): string {
  fs.mkdirSync(RESULTS_DIR, { recursive: true });
  const file = path.join(RESULTS_DIR, `${name}.json`);
  fs.writeFileSync(file, JSON.stringify({ machine: machineInfo(), ...data }, null, 2) + '\n');
  console.log(`wrote ${path.relative(process.cwd(), file)}`);
  return file;
}

/** Median of a list of numbers. */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/**
 * `n` values in [-1, 1) from a 32-bit linear congruential generator seeded with `seed`: the same
 * inputs in every run and every benchmark module.
 */
export function randomData(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2 ** 31 - 1;
  }
  return out;
}

/**
 * Whether the training-step benchmarks reuse what the model hands out and the loss gradient
 * (`Sequential.reuseOutputs`, `mseLoss`'s `gradInto`), as a training loop tuned for speed
 * does: on by default, `DPLORA_BENCH_REUSE_OUTPUTS=0` gives fresh arrays every step (A/B).
 */
export const REUSE_OUTPUTS = process.env.DPLORA_BENCH_REUSE_OUTPUTS !== '0';

/**
 * A loss-gradient buffer for {@link REUSE_OUTPUTS}: `mseLoss` options writing into one array
 * of `n` floats kept by the returned closure (or none: a fresh gradient every call).
 */
export function gradInto(n: number): () => { gradInto?: Float32Array } {
  if (!REUSE_OUTPUTS) return () => ({});
  const buf = new Float32Array(n);
  return () => ({ gradInto: buf });
}
