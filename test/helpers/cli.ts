/**
 * Drivers of `dp-lora train` for tests: in-process (stdout and stderr captured, commander errors
 * thrown) and as a child process from the TypeScript sources (for signals and kills).
 */
import { spawn } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { buildProgram } from '../../lib/cli/main';

/** Runs `dp-lora train ARGS...` in this process; resolves to what it wrote. */
export async function runTrainCli(args: string[]): Promise<{ stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const o = jest
    .spyOn(process.stdout, 'write')
    .mockImplementation((s: string | Uint8Array) => ((stdout += String(s)), true));
  const e = jest
    .spyOn(process.stderr, 'write')
    .mockImplementation((s: string | Uint8Array) => ((stderr += String(s)), true));
  try {
    const program = buildProgram();
    for (const c of [program, ...program.commands]) {
      c.exitOverride();
      c.configureOutput({ writeErr: (s) => (stderr += s), writeOut: (s) => (stdout += s) });
    }
    await program.parseAsync(['node', 'dp-lora', 'train', ...args]);
  } finally {
    o.mockRestore();
    e.mockRestore();
  }
  return { stdout, stderr };
}

/** Starts `dp-lora train ARGS...` in a child process with DPLORA_CACHE_DIR = `cacheDir`. */
export function spawnTrain(args: string[], cacheDir: string) {
  const child = path.join(__dirname, '..', 'scripts', 'train_child.js');
  const p = spawn(process.execPath, [child, ...args], {
    env: { ...process.env, DPLORA_CACHE_DIR: cacheDir },
  });
  let stderr = '';
  p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) =>
    p.on('exit', (code, signal) => res({ code, signal })),
  );
  return { p, done, stderr: () => stderr };
}

/**
 * A temporary folder for the tests of this file (removed after them), with DPLORA_CACHE_DIR
 * pointing inside it while they run; returns a getter of its path.
 */
export function useTempDir(prefix: string): () => string {
  let tmp = '';
  let oldCache: string | undefined;
  beforeAll(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
    oldCache = process.env.DPLORA_CACHE_DIR;
    process.env.DPLORA_CACHE_DIR = path.join(tmp, 'cache');
  });
  afterAll(() => {
    if (oldCache === undefined) delete process.env.DPLORA_CACHE_DIR;
    else process.env.DPLORA_CACHE_DIR = oldCache;
    fs.rmSync(tmp, { recursive: true, force: true });
  });
  return () => tmp;
}
