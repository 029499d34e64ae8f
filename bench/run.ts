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
};

async function main(): Promise<void> {
  const wanted = process.argv.slice(2);
  const names = wanted.length ? wanted : Object.keys(MODULES);
  for (const name of names) {
    const mod = MODULES[name];
    if (!mod) throw new Error(`unknown benchmark '${name}' (have: ${Object.keys(MODULES).join(', ')})`);
    let m: { run: () => Promise<void> };
    try {
      m = require(mod);
    } catch (e) {
      console.log(`skipping ${name}: ${(e as Error).message.split('\n')[0]}`);
      continue;
    }
    await m.run();
  }
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
