/**
 * PrivateTrainer (issue 10, section 3) and run directories (section 2): the README example runs;
 * fit/evaluate/save/resume, progress and AbortSignal; the lock, stale locks, reuse refused
 * without overwrite (the old run archived, never deleted), stray temporaries cleaned.
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { example } from '../examples/private_trainer';
import { PrivacyLedger } from '../lib/accounting/privacy_ledger';
import { Linear, LoraLinear, ReLU, Sequential, crossEntropyLoss } from '../lib/nn';
import { PrivateTrainer, arrayDataset } from '../lib/trainer/private_trainer';
import { RunDirectory } from '../lib/trainer/run_dir';

let tmp: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dplora-trainer-'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    return (e as { code?: string }).code ?? (e as Error).name;
  }
  return 'no error';
}

const task = () => {
  const n = 400;
  const f = 6;
  const x = new Float32Array(n * f);
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    y[i] = i % 2;
    for (let j = 0; j < f; j++) x[i * f + j] = Math.cos(i * 1.7 + j) + (j === 0 ? 2 * y[i] - 1 : 0);
  }
  const model = () =>
    new Sequential(
      new LoraLinear(new Linear(f, 8, { seed: 1 }), { r: 2, alpha: 4, seed: 2 }),
      new ReLU(),
      new Linear(8, 2, { seed: 3 }),
    );
  return { data: arrayDataset(x, y, f), model };
};

test('the README example trains privately and learns', async () => {
  const dir = path.join(tmp, 'example');
  const log = jest.spyOn(console, 'log').mockImplementation(() => undefined);
  try {
    const { result, accuracy } = await example(dir);
    expect(result.steps).toBe(result.plannedSteps);
    expect(result.steps).toBe(Math.ceil((3 * 2000) / 100));
    expect(result.epsilon).toBeLessThanOrEqual(4);
    expect(result.report.private).toBe(true);
    // Two balanced classes: 0.75 is far above chance for 2000 records.
    expect(accuracy).toBeGreaterThan(0.75);
    expect(fs.existsSync(path.join(dir, 'run.lock'))).toBe(false); // released
  } finally {
    log.mockRestore();
  }
});

test('fit stops on abort and maxSteps; resume continues the same ledger; progress is reported', async () => {
  const t = task();
  const dir = path.join(tmp, 'resume');
  const privacy = {
    targetEpsilon: 3,
    epochs: 2,
    batchSize: 40,
    maxGradNorm: 1,
    accountant: 'rdp' as const,
  };
  const a = PrivateTrainer.create({
    model: t.model(),
    loss: crossEntropyLoss,
    data: t.data,
    privacy,
    runDir: dir,
  });
  const steps: number[] = [];
  const ac = new AbortController();
  const r1 = await a.fit({
    signal: ac.signal,
    onProgress: (p) => {
      steps.push(p.step);
      if (p.step === 4) ac.abort();
    },
  });
  expect(r1.aborted).toBe(true);
  expect(r1.steps).toBe(4);
  expect(steps).toEqual([1, 2, 3, 4]);
  a.close();
  const b = PrivateTrainer.resume(dir, { model: t.model(), loss: crossEntropyLoss, data: t.data });
  expect(b.engine.steps).toBe(4);
  const r2 = await b.fit({ maxSteps: 3 });
  expect(r2.steps).toBe(7);
  expect(r2.stepsThisCall).toBe(3);
  b.close();
  // A resumed run keeps its settings: a different budget is refused, naming it.
  expect(() =>
    PrivateTrainer.resume(dir, {
      model: t.model(),
      loss: crossEntropyLoss,
      data: t.data,
      privacy: { targetEpsilon: 30 },
    }),
  ).toThrow(/privacy\.targetEpsilon/);
  const c = PrivateTrainer.resume(dir, { model: t.model(), loss: crossEntropyLoss, data: t.data });
  const r3 = await c.fit();
  c.close();
  expect(r3.steps).toBe(r3.plannedSteps);
  const journal = fs
    .readFileSync(path.join(dir, 'ledger.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as unknown);
  const ledger = PrivacyLedger.fromJSON(journal);
  expect(ledger.steps).toBe(r3.plannedSteps);
  expect(r3.epsilon).toBe(ledger.epsilon());
  // Without its journal (steps charged after the checkpoint could be lost) a run is not resumed.
  fs.renameSync(path.join(dir, 'ledger.jsonl'), path.join(dir, 'gone.jsonl'));
  expect(() =>
    PrivateTrainer.resume(dir, { model: t.model(), loss: crossEntropyLoss, data: t.data }),
  ).toThrow(/journal .* is missing/);
});

describe('run directories', () => {
  test('one process at a time: a live lock is refused, a stale one taken over', () => {
    const dir = path.join(tmp, 'locked');
    const a = RunDirectory.open(dir, { mode: 'new' });
    expect(codeOf(() => RunDirectory.open(dir, { mode: 'new' }))).toBe('ERR_DPLORA_RUN_LOCKED');
    a.release();
    // A lock left by a process that is gone (same host): taken over, and said so.
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], {
      encoding: 'utf8',
    });
    fs.writeFileSync(
      path.join(dir, 'run.lock'),
      JSON.stringify({ pid: Number(dead.stdout), host: os.hostname() }),
    );
    const lines: string[] = [];
    const b = RunDirectory.open(dir, { mode: 'new', log: (l) => lines.push(l) });
    expect(lines.join('\n')).toMatch(/stale lock/);
    b.release();
    // Another host's lock cannot be checked: refused.
    fs.writeFileSync(path.join(dir, 'run.lock'), JSON.stringify({ pid: 1, host: 'elsewhere' }));
    expect(codeOf(() => RunDirectory.open(dir, { mode: 'new' }))).toBe('ERR_DPLORA_RUN_LOCKED');
    fs.rmSync(path.join(dir, 'run.lock'));
  });

  test('a directory holding a run is not reused without overwrite; overwrite archives it', async () => {
    const t = task();
    const dir = path.join(tmp, 'reuse');
    const privacy = {
      targetEpsilon: 3,
      epochs: 1,
      batchSize: 40,
      maxGradNorm: 1,
      accountant: 'rdp' as const,
    };
    const mk = (overwrite?: boolean) =>
      PrivateTrainer.create({
        model: t.model(),
        loss: crossEntropyLoss,
        data: t.data,
        privacy,
        runDir: dir,
        overwrite,
      });
    const a = mk();
    await a.fit({ maxSteps: 3 });
    a.close();
    const old = fs.readFileSync(path.join(dir, 'ledger.jsonl'));
    expect(() => mk()).toThrow(/already holds a run/);
    expect(fs.readFileSync(path.join(dir, 'ledger.jsonl')).equals(old)).toBe(true);
    // Stray temporaries of a killed process are cleaned when the directory is opened.
    fs.mkdirSync(path.join(dir, 'checkpoints', '.step-00000009.tmp-99999-abcd1234'));
    const b = mk(true);
    b.close();
    const archived = fs.readdirSync(path.join(dir, 'archive'));
    expect(archived).toHaveLength(1);
    const kept = path.join(dir, 'archive', archived[0]);
    expect(fs.readFileSync(path.join(kept, 'ledger.jsonl')).equals(old)).toBe(true);
    expect(fs.readdirSync(path.join(kept, 'checkpoints')).some((d) => d.includes('.tmp-'))).toBe(
      false,
    );
    // The new run starts its own ledger.
    expect(fs.readFileSync(path.join(dir, 'ledger.jsonl')).equals(old)).toBe(false);
  });
});
