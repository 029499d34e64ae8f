/**
 * `npm run bench`: runs every benchmark module (or those named on the command
 * line: `npm run bench -- kernels accounting`).  Each module exports `run()`.
 */
import * as fs from 'fs';
import * as path from 'path';
import { RESULTS_DIR } from './util';

const MODULES: Record<string, string> = {
  kernels: './kernels',
  noise: './noise',
  accounting: './accounting',
  training: './training',
  io: './io',
  intmode: './intmode',
  phases: './phases',
  'use-lite': './use_lite',
  /** Long (minutes to hours): only when named. */
  'use-lite-utility': './use_lite_utility',
};
/** Run by default (everything but the long utility benchmark). */
const DEFAULT = Object.keys(MODULES).filter((n) => n !== 'use-lite-utility');

/**
 * bench/results/kernels.json: the linalg and noise kernel results side by side
 * (each module also keeps its own file).
 */
function combineKernelResults(): void {
  const read = (name: string): unknown => {
    const f = path.join(RESULTS_DIR, `${name}.json`);
    return fs.existsSync(f) ? JSON.parse(fs.readFileSync(f, 'utf8')) : null;
  };
  const linalg = read('kernels-linalg');
  const noise = read('kernels-noise');
  if (!linalg && !noise) return;
  fs.writeFileSync(
    path.join(RESULTS_DIR, 'kernels.json'),
    JSON.stringify({ linalg, noise }, null, 2) + '\n',
  );
  console.log('wrote bench/results/kernels.json (linalg + noise)');
}

/**
 * Runs the named modules in turn.  A module that fails to load or throws is
 * reported and the others still run; the process then exits non-zero.
 */
async function main(): Promise<void> {
  const wanted = process.argv
    .slice(2)
    .filter((a, i, all) => !a.startsWith('--') && !all[i - 1]?.startsWith('--'));
  const names = wanted.length ? wanted : DEFAULT;
  const unknown = names.filter((n) => !MODULES[n]);
  if (unknown.length)
    throw new Error(
      `unknown benchmark '${unknown.join("', '")}' (have: ${Object.keys(MODULES).join(', ')})`,
    );
  const failed: string[] = [];
  for (const name of names) {
    try {
      const m = (await import(MODULES[name])) as { run: () => Promise<void> };
      await m.run();
    } catch (e) {
      failed.push(name);
      console.error(`benchmark '${name}' failed:`, e);
    }
  }
  if (names.includes('kernels') || names.includes('noise')) combineKernelResults();
  if (failed.length) throw new Error(`benchmark module(s) failed: ${failed.join(', ')}`);
}

main().catch((e) => {
  console.error(e instanceof Error ? e.message : e);
  process.exitCode = 1;
});
