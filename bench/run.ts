/**
 * `npm run bench`: runs every benchmark module (or those named on the command
 * line: `npm run bench -- kernels accounting`).  Each module exports `run()`.
 */
const MODULES: Record<string, string> = {
  kernels: './kernels',
  noise: './noise',
  accounting: './accounting',
  training: './training',
  io: './io',
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
  const fs = require('fs') as typeof import('fs');
  const path = require('path') as typeof import('path');
  const { RESULTS_DIR } = require('./util') as typeof import('./util');
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

async function main(): Promise<void> {
  const wanted = process.argv
    .slice(2)
    .filter((a, i, all) => !a.startsWith('--') && !all[i - 1]?.startsWith('--'));
  const names = wanted.length ? wanted : DEFAULT;
  for (const name of names) {
    const mod = MODULES[name];
    if (!mod)
      throw new Error(`unknown benchmark '${name}' (have: ${Object.keys(MODULES).join(', ')})`);
    let m: { run: () => Promise<void> };
    try {
      m = require(mod);
    } catch (e) {
      console.log(`skipping ${name}: ${(e as Error).message.split('\n')[0]}`);
      continue;
    }
    await m.run();
  }
  if (names.includes('kernels') || names.includes('noise')) combineKernelResults();
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
