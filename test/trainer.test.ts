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
import { Linear, LoraLinear, ReLU, Sequential, Tensor, crossEntropyLoss } from '../lib/nn';
import { maskFromLengths } from '../lib/nn/sequence_mask';
import type { SequenceMask } from '../lib/nn/sequence_mask';
import { PrivateTrainer, arrayDataset, loadRunCheckpoint } from '../lib/trainer/private_trainer';
import { loadCheckpoint, saveCheckpoint } from '../lib/io/checkpoint';
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

/** The privacy options of these tests: epsilon 3 over `epochs`, batches of 40, C = 1, RDP. */
const privacyOf = <T extends object>(epochs: number, extra?: T) => ({
  targetEpsilon: 3,
  epochs,
  batchSize: 40,
  maxGradNorm: 1,
  accountant: 'rdp' as const,
  ...extra,
});

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
  const privacy = privacyOf(2);
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

test("an lr schedule sets each step's lr from the run's step count; a resume continues it and keeps it", async () => {
  const t = task();
  const dir = path.join(tmp, 'schedule');
  const privacy = privacyOf(2); // 400 records, batches of 40: 20 planned steps
  const base = 0.02;
  const lrs: number[] = [];
  const record = (tr: { engine: { optimizer: { lr: number } } }) => (p: { step: number }) => {
    expect(p.step).toBe(lrs.length + 1);
    lrs.push(tr.engine.optimizer.lr);
  };
  const lrSchedule = { name: 'linear' as const, warmup: 0.25 };
  const a = PrivateTrainer.create({
    model: t.model(),
    loss: crossEntropyLoss,
    data: t.data,
    privacy,
    lr: base,
    lrSchedule,
    runDir: dir,
  });
  expect(a.plannedSteps).toBe(20);
  expect(a.lrSchedule).toEqual(lrSchedule);
  await a.fit({ maxSteps: 7, onProgress: record(a) });
  a.close();
  // A resume takes the schedule from the run (none given here) ...
  const b = PrivateTrainer.resume(dir, {
    model: t.model(),
    loss: crossEntropyLoss,
    data: t.data,
    lr: base,
  });
  expect(b.lrSchedule).toEqual(lrSchedule);
  const r = await b.fit({ onProgress: record(b) });
  b.close();
  expect(r.steps).toBe(20);
  // Written out: 5 warmup steps (round(0.25 * 20)) rising to base, then a linear decay over the
  // other 15 that would reach 0 at step 20.
  const want = Array.from({ length: 20 }, (_, s) =>
    s < 5 ? (base * (s + 1)) / 5 : base * (1 - (s - 5) / 15),
  );
  expect(lrs).toHaveLength(20);
  lrs.forEach((v, s) => expect(v).toBeCloseTo(want[s], 12));
  // ... and refuses a different one, naming it.
  for (const other of [{ name: 'cosine' as const }, { name: 'linear' as const, warmup: 0.1 }])
    expect(() =>
      PrivateTrainer.resume(dir, {
        model: t.model(),
        loss: crossEntropyLoss,
        data: t.data,
        lrSchedule: other,
      }),
    ).toThrow(/lrSchedule: is .* a resumed run keeps its schedule/);
  // Without a schedule the optimizer's lr is left alone.
  const c = PrivateTrainer.create({
    model: t.model(),
    loss: crossEntropyLoss,
    data: t.data,
    privacy: privacyOf(0.3),
    lr: base,
  });
  expect(c.lrSchedule).toBeNull();
  const flat: number[] = [];
  await c.fit({ onProgress: () => flat.push(c.engine.optimizer.lr) });
  expect(flat.length).toBe(3);
  expect(flat.every((v) => v === base)).toBe(true);
});

test("a resume keeps the run's lr; a checkpoint whose lr settings are invalid is refused, not run at the restored lr", async () => {
  const t = task();
  const dir = path.join(tmp, 'schedule-lr');
  const mk = () => ({ model: t.model(), loss: crossEntropyLoss, data: t.data });
  const a = PrivateTrainer.create({
    ...mk(),
    privacy: privacyOf(1),
    lr: 0.02,
    lrSchedule: { name: 'linear' },
    runDir: dir,
  });
  await a.fit({ maxSteps: 2 });
  a.close();
  expect(() => PrivateTrainer.resume(dir, { ...mk(), lr: 0.5 })).toThrow(
    /lr: is 0\.5, the run being resumed was created with 0\.02/,
  );
  PrivateTrainer.resume(dir, { ...mk(), lr: 0.02 }).close(); // the same lr is fine
  // A checkpoint written with a schedule but no valid base lr (a buggy or foreign writer; the
  // manifest is consistent) is refused by name.
  const root = path.join(dir, 'checkpoints');
  for (const baseLr of [null, -1, 'x']) {
    const ck = loadCheckpoint(root);
    const run = ck.state.run as { trainer: Record<string, unknown> };
    saveCheckpoint(
      root,
      { ...ck.state, run: { ...run, trainer: { ...run.trainer, baseLr } } },
      Object.fromEntries(ck.tensors),
    );
    expect(() => PrivateTrainer.resume(dir, mk())).toThrow(
      /learning-rate settings are invalid \(baseLr/,
    );
  }
});

test('a bad lr schedule is a typed error naming the field, before any run directory or step', () => {
  const t = task();
  for (const [lrSchedule, re] of [
    [{ name: 'step' }, /lrSchedule\.name/],
    [{ name: 'linear', warmup: 1.5 }, /lrSchedule\.warmup/],
    [{ name: 'linear', warmup: NaN }, /lrSchedule\.warmup/],
    [
      { name: 'linear', warmupFraction: 0.5 },
      /lrSchedule\.warmupFraction: is not a schedule field/,
    ],
    [null, /lrSchedule/],
  ] as const) {
    const dir = path.join(tmp, 'bad-schedule');
    const create = (runDir?: string) =>
      PrivateTrainer.create({
        model: t.model(),
        loss: crossEntropyLoss,
        data: t.data,
        privacy: privacyOf(1),
        lrSchedule: lrSchedule as never,
        runDir,
      });
    expect(() => create(dir)).toThrow(re);
    expect(codeOf(() => create())).toBe('ERR_DPLORA_INVALID_ARGUMENT');
    expect(fs.existsSync(dir)).toBe(false);
  }
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
    const privacy = privacyOf(1);
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

describe('dataset hooks: micro-batch split and padding mask', () => {
  const privacy = privacyOf(1, { seed: 11n });
  const params = (m: Sequential) => m.trainableParameters().flatMap((p) => Array.from(p.data));

  test('noise once per logical batch: any split of the batch gives the same update', async () => {
    const t = task();
    const plain = t.model();
    const a = PrivateTrainer.create({
      model: plain,
      loss: crossEntropyLoss,
      onWarning: () => undefined,
      data: t.data,
      privacy,
    });
    await a.fit({ maxSteps: 4 });
    // Same seed, the batch cut into reversed micro-batches of at most 3 records.
    const split = t.model();
    const cuts: number[] = [];
    const data = {
      ...t.data,
      microBatches(indices: Int32Array, maxSize: number): Int32Array[] {
        const r = Array.from(indices).reverse();
        const out: Int32Array[] = [];
        for (let s = 0; s < r.length; s += maxSize)
          out.push(Int32Array.from(r.slice(s, s + maxSize)));
        cuts.push(out.length);
        return out;
      },
    };
    const b = PrivateTrainer.create({
      model: split,
      loss: crossEntropyLoss,
      onWarning: () => undefined,
      data,
      privacy: { ...privacy, physicalBatchSize: 3 },
    });
    await b.fit({ maxSteps: 4 });
    expect(cuts.length).toBe(4);
    expect(cuts.every((c) => c > 3)).toBe(true); // really split
    const pa = params(plain);
    const pb = params(split);
    const moved = pa.some((v, i) => v !== params(t.model())[i]);
    expect(moved).toBe(true);
    for (let i = 0; i < pa.length; i++) expect(pb[i]).toBeCloseTo(pa[i], 5);
    expect(b.engine.steps).toBe(a.engine.steps);
  });

  test('a split that is not a partition of the batch is refused, naming data.microBatches', async () => {
    const t = task();
    for (const bad of [
      (i: Int32Array) => [i.subarray(1)], // drops a record
      (i: Int32Array) => [i, i.subarray(0, 1)], // repeats one
      (i: Int32Array) => [Array.from(i) as unknown as Int32Array], // not an Int32Array
    ]) {
      const tr = PrivateTrainer.create({
        model: t.model(),
        loss: crossEntropyLoss,
        onWarning: () => undefined,
        data: { ...t.data, microBatches: bad },
        privacy,
      });
      await expect(tr.fit({ maxSteps: 1 })).rejects.toMatchObject({
        code: 'ERR_DPLORA_INVALID_ARGUMENT',
        argument: 'data.microBatches',
      });
    }
  });

  test('a padding mask reaches a MaskedModule before its forward and is cleared after', async () => {
    const t = task();
    const seen: string[] = [];
    class Masked extends Sequential {
      setMask(m: SequenceMask | null): void {
        seen.push(m ? `mask ${m.batch}` : 'clear');
      }
      forward(x: Tensor): Tensor {
        seen.push(`forward ${x.shape[0]}`);
        return super.forward(x);
      }
    }
    const inner = t.model();
    const model = new Masked(...(inner.children().map(([, m]) => m) as [Linear]));
    const data = {
      size: t.data.size,
      batch(idx: Int32Array) {
        const b = t.data.batch(idx);
        return { ...b, mask: maskFromLengths(new Array<number>(idx.length).fill(1), 1) };
      },
    };
    const tr = PrivateTrainer.create({
      model,
      loss: crossEntropyLoss,
      onWarning: () => undefined,
      data,
      privacy,
    });
    await tr.fit({ maxSteps: 2 });
    const fw = seen.filter((s) => s.startsWith('forward'));
    expect(fw.length).toBeGreaterThanOrEqual(2);
    for (let i = 0; i < seen.length; i++)
      if (seen[i].startsWith('forward')) expect(seen[i - 1]).toBe(`mask ${seen[i].split(' ')[1]}`);
    expect(seen[seen.length - 1]).toBe('clear');
    // A mask for a model that cannot take one is an error naming the data.
    const plain = PrivateTrainer.create({
      model: t.model(),
      loss: crossEntropyLoss,
      onWarning: () => undefined,
      data,
      privacy,
    });
    await expect(plain.fit({ maxSteps: 1 })).rejects.toMatchObject({
      code: 'ERR_DPLORA_INVALID_ARGUMENT',
      argument: 'data',
    });
  });
});

test('a loss that returns no gradient tensor, or one of the wrong shape, is refused by name (was a TypeError)', async () => {
  const t = task();
  const privacy = { targetEpsilon: 3, epochs: 1, batchSize: 40, maxGradNorm: 1 };
  for (const bad of [
    () => ({ total: 1, grad: null }),
    () => ({ total: '1', grad: new Tensor(new Float32Array(2), [1, 2]) }),
    () => ({ total: 1, grad: new Tensor(new Float32Array(2), [1, 2]) }),
    () => null,
  ]) {
    const tr = PrivateTrainer.create({
      model: t.model(),
      loss: bad as never,
      data: t.data,
      privacy: { ...privacy, accountant: 'rdp' },
      onWarning: () => undefined,
    });
    await expect(tr.fit({ maxSteps: 1 })).rejects.toMatchObject({
      code: 'ERR_DPLORA_INVALID_ARGUMENT',
      message: expect.stringContaining('loss(output, target)') as string,
    });
    tr.close();
  }
});

test('a checkpoint verified for the CLI run memo is reused once by the resume that follows', async () => {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const checkpoint = require('../lib/io/checkpoint') as typeof import('../lib/io/checkpoint');
  const t = task();
  const dir = path.join(tmp, 'verified-once');
  const a = PrivateTrainer.create({
    model: t.model(),
    loss: crossEntropyLoss,
    data: t.data,
    privacy: privacyOf(1),
    runDir: dir,
  });
  await a.fit({ maxSteps: 2 });
  a.close();
  const spy = jest.spyOn(checkpoint, 'loadCheckpoint');
  try {
    const run = RunDirectory.open(dir, { mode: 'resume' });
    const memo = loadRunCheckpoint(run, undefined, true);
    expect(spy).toHaveBeenCalledTimes(1);
    const b = PrivateTrainer.resume(run, {
      model: t.model(),
      loss: crossEntropyLoss,
      data: t.data,
    });
    expect(spy).toHaveBeenCalledTimes(1); // the resume took the verified copy
    expect(b.engine.steps).toBe(memo.state.step);
    // Taken once: a later read verifies the files again.
    loadRunCheckpoint(run);
    expect(spy).toHaveBeenCalledTimes(2);
    // Kept for other base files than the next read asks for: read again, not reused.
    loadRunCheckpoint(run, undefined, true);
    expect(() => loadRunCheckpoint(run, path.join(tmp, 'no-such-base'))).toThrow(/base model/);
    expect(spy).toHaveBeenCalledTimes(4);
    b.close();
  } finally {
    spy.mockRestore();
  }
});
