/**
 * Shared setup of the floating-point scan suites (fixed_no_float, fp_scan_int_simd): the
 * scripts/fp-scan.js entry points, the toolchain check, compiling one translation unit and a
 * temporary folder per suite.
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

/** Scan options of scripts/fp-scan.js. */
export interface ScanOptions {
  intSimd?: boolean;
}

// A plain CommonJS script (also run by hand), without type declarations.
// eslint-disable-next-line @typescript-eslint/no-require-imports
export const fpScan = require('../../scripts/fp-scan.js') as {
  scanObject(file: string, prefix?: string, opts?: ScanOptions): string[];
  scanDisassembly(text: string, arch?: string, opts?: ScanOptions): string[];
  scanUndefined(text: string): string[];
};

/** The repository root. */
export const ROOT = path.resolve(__dirname, '..', '..');
/** The C++ compiler the suites use (the build's `CXX`, g++ otherwise). */
export const CXX = process.env.CXX || 'g++';

function has(cmd: string, args: string[]): boolean {
  return spawnSync(cmd, args, { stdio: 'ignore' }).status === 0;
}

/**
 * `describe` where the scan can run (linux-x64 with the compiler, objdump and nm), `describe.skip`
 * otherwise, with the reason printed under the suite's name.
 */
export function scanSuite(name: string): jest.Describe {
  const supported =
    process.platform === 'linux' &&
    process.arch === 'x64' &&
    has(CXX, ['--version']) &&
    has('objdump', ['--version']) &&
    has('nm', ['--version']);
  if (!supported) console.warn(`${name}: needs linux-x64 with g++, objdump and nm; skipped`);
  return supported ? describe : describe.skip;
}

/** Compiles `src` to the object `out` with `-std=c++17`, the flags and `-I` of each include folder. */
export function compile(
  src: string,
  out: string,
  flags: string[],
  includes: string[],
): { ok: boolean; stderr: string } {
  const r = spawnSync(
    CXX,
    ['-std=c++17', ...flags, ...includes.map((d) => `-I${d}`), '-c', src, '-o', out],
    { encoding: 'utf8' },
  );
  return { ok: r.status === 0, stderr: r.stderr };
}

/** A fresh temporary folder for the suite (made before all tests, removed after). */
export function suiteTmpDir(prefix: string): () => string {
  let tmp = '';
  beforeAll(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  });
  afterAll(() => {
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });
  return () => tmp;
}
