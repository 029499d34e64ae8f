/**
 * `dp-lora train` and its run directory from outside (issue 10, section 2), in child
 * processes: SIGTERM (like Ctrl-C) finishes the step, checkpoints, writes the adapter and exits
 * 143; output paths are checked before any work.
 */
import { spawnTrain } from './helpers/cli';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { loadCheckpoint } from '../lib/io/checkpoint';

let tmp: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dplora-signals-'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const start = (args: string[]) => spawnTrain(args, path.join(tmp, 'cache'));

const SMALL = ['--accountant', 'rdp', '--limit', '1200', '--dim', '512', '--hidden', '32'];

test('SIGTERM checkpoints, writes the adapter and exits 143', async () => {
  const out = path.join(tmp, 'run');
  const c = start([...SMALL, '--epochs', '400', '--no-baseline', '--out', out, '--no-progress']);
  // Wait until private training has started, then ask it to stop.
  for (let i = 0; i < 1200 && !/private training:/.test(c.stderr()); i++)
    await new Promise((r) => setTimeout(r, 100));
  await new Promise((r) => setTimeout(r, 500));
  c.p.kill('SIGTERM');
  const { code, signal } = await c.done;
  expect({ code, signal }).toEqual({ code: 143, signal: null });
  expect(c.stderr()).toMatch(/SIGTERM: finishing the current step/);
  const ck = loadCheckpoint(path.join(out, 'checkpoints'));
  const journalSteps = fs
    .readFileSync(path.join(out, 'ledger.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .filter((l) => (JSON.parse(l) as { kind: string }).kind === 'step').length;
  expect(ck.state.step).toBe(journalSteps);
  expect(ck.state.step).toBeGreaterThan(0);
  expect(fs.existsSync(path.join(out, 'adapter', 'adapter_model.safetensors'))).toBe(true);
  expect(fs.existsSync(path.join(out, 'run.lock'))).toBe(false);
}, 240_000);

test('an unusable --json or --out is refused before any work', async () => {
  for (const args of [
    ['--json', '/proc/nope/result.json'],
    ['--out', '/proc/x'],
  ]) {
    const c = start([...SMALL, ...args]);
    const { code } = await c.done;
    expect(code).toBe(1);
    expect(c.stderr()).toMatch(/(--json|--out): .*special file system/);
    expect(c.stderr()).not.toMatch(/featurizing/);
  }
}, 120_000);
