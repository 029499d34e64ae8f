/**
 * PrivateTrainer's parameter average (`average: { decay, warmup }`): it equals an exponential
 * moving average of the released parameters written out in float64; it is post-processing
 * (the last iterate and the ledger are those of the same run without it); it is saved with
 * every checkpoint and a resume continues it exactly; a resume keeps its settings; bad settings
 * and checkpoints whose average is missing or invalid are refused by name, before the model or
 * the ledger is touched.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Sequential, crossEntropyLoss } from '../lib/nn';
import { PrivateTrainer } from '../lib/trainer/private_trainer';
import type { TrainerAverage } from '../lib/trainer/private_trainer';
import { loadCheckpoint, saveCheckpoint } from '../lib/io/checkpoint';
import { tinyData, tinyModel } from './helpers/tiny_trainer';

let tmp: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dplora-trainer-avg-'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const data = tinyData(400);
const model = () => tinyModel();
/** epsilon 3 over 2 epochs, batches of 40 (20 planned steps), C = 1, RDP, a fixed seed. */
const privacy = {
  targetEpsilon: 3,
  epochs: 2,
  batchSize: 40,
  maxGradNorm: 1,
  accountant: 'rdp' as const,
  seed: 5n,
};
/** The fixed seed's warning is expected here. */
const quiet = { onWarning: () => undefined };
/** The trainer options of these tests, on `m` (default a new model). */
const options = (m = model()) => ({ ...quiet, model: m, loss: crossEntropyLoss, data, lr: 0.05 });
const values = (m: Sequential) => m.trainableParameters().map((p) => Float32Array.from(p.data));

test('the average is the EMA of the released parameters (float64 reference), with and without the ramp', async () => {
  for (const warmup of [true, false]) {
    const decay = 0.8;
    const m = model();
    const tr = PrivateTrainer.create({ ...options(m), privacy, average: { decay, warmup } });
    const ref = values(m).map((v) => Float64Array.from(v));
    let t = 0;
    await tr.fit({
      onProgress: () => {
        // The parameters after step t + 1, as released.
        const d = warmup ? Math.min(decay, (1 + t) / (10 + t)) : decay;
        values(m).forEach((w, i) => {
          for (let j = 0; j < w.length; j++) ref[i][j] = d * ref[i][j] + (1 - d) * w[j];
        });
        t++;
      },
    });
    expect(t).toBe(20);
    const avg = tr.average!;
    expect(avg.updates).toBe(20);
    expect(avg.decay).toBe(decay);
    expect(avg.warmup).toBe(warmup);
    let worst = 0;
    let moved = 0;
    ref.forEach((r, i) => {
      const a = avg.average(i);
      const w = m.trainableParameters()[i].data;
      for (let j = 0; j < r.length; j++) {
        worst = Math.max(worst, Math.abs(a[j] - r[j]));
        moved = Math.max(moved, Math.abs(a[j] - w[j]));
      }
    });
    // float32 accumulation over 20 updates of values of order 1: far below 1e-5.
    expect(worst).toBeLessThan(1e-5);
    // ... and it is not the last iterate (the check above would pass for it otherwise).
    expect(moved).toBeGreaterThan(1e-3);
    tr.close();
  }
});

test('the average is post-processing: the last iterate and the ledger are those of the same run without it', async () => {
  const run = async (average?: TrainerAverage) => {
    const m = model();
    const tr = PrivateTrainer.create({ ...options(m), privacy, average });
    await tr.fit();
    // The ledger's records without the run's random id and the hash chain built on it.
    const records = (tr.engine.privacyLedger.toJSON() as { records: object[] }).records.map((r) =>
      JSON.stringify(r, (k, v: unknown) => (['runId', 'hash', 'prev'].includes(k) ? 0 : v)),
    );
    const out = { params: values(m), records, epsilon: tr.engine.getEpsilon() };
    expect(tr.average === null).toBe(average === undefined);
    tr.close();
    return out;
  };
  const plain = await run();
  const averaged = await run({ decay: 0.9 });
  expect(averaged.params).toEqual(plain.params);
  expect(averaged.records).toEqual(plain.records);
  expect(averaged.records.filter((r) => r.includes('"kind":"step"'))).toHaveLength(20);
  expect(averaged.epsilon).toBe(plain.epsilon);
});

test('a checkpoint saves the average and a resume continues it exactly; a resume keeps its settings', async () => {
  const average = { decay: 0.7 };
  // One process.
  const whole = PrivateTrainer.create({ ...options(), privacy, average });
  await whole.fit();
  const want = whole.average!.stateDict();
  whole.close();
  // Three processes, with the run directory.
  const dir = path.join(tmp, 'resume');
  const a = PrivateTrainer.create({ ...options(), privacy, average, runDir: dir });
  await a.fit({ maxSteps: 6 });
  a.close();
  const b = PrivateTrainer.resume(dir, options()); // settings from the run
  expect(b.average!.decay).toBe(0.7);
  expect(b.average!.updates).toBe(6);
  await b.fit({ maxSteps: 5 });
  b.close();
  const c = PrivateTrainer.resume(dir, { ...options(), average }); // the same settings are fine
  const r = await c.fit();
  expect(r.steps).toBe(20);
  const got = c.average!.stateDict();
  c.close();
  expect(got.updates).toBe(20);
  got.averages.forEach((v, i) => expect(v).toEqual(want.averages[i]));
  // Other settings are refused by name; so is an average for a run that keeps none.
  for (const other of [{ decay: 0.9 }, { decay: 0.7, warmup: false }])
    expect(() => PrivateTrainer.resume(dir, { ...options(), average: other })).toThrow(
      /average: is .* a resumed run keeps its average/,
    );
  const plainDir = path.join(tmp, 'no-average');
  const p = PrivateTrainer.create({ ...options(), privacy, runDir: plainDir });
  await p.fit({ maxSteps: 2 });
  p.close();
  expect(() => PrivateTrainer.resume(plainDir, { ...options(), average })).toThrow(
    /average: is .*, the run being resumed has null/,
  );
  const q = PrivateTrainer.resume(plainDir, options());
  expect(q.average).toBeNull();
  q.close();
});

test('bad average settings are typed errors naming the field, before any run directory', () => {
  for (const [average, re] of [
    [{ decay: 1 }, /average\.decay: must be a number in \[0, 1\), got 1/],
    [{ decay: -0.1 }, /average\.decay/],
    [{ decay: NaN }, /average\.decay: .*got NaN/],
    [{ decay: '0.9' }, /average\.decay/],
    [{}, /average\.decay/],
    [{ decay: 0.9, warmup: 1 }, /average\.warmup: must be a boolean/],
    [{ decay: 0.9, ramp: true }, /average\.ramp: is not an average field/],
    [null, /average/],
  ] as const) {
    const dir = path.join(tmp, 'bad-average');
    const create = (runDir?: string) =>
      PrivateTrainer.create({ ...options(), privacy, average: average as never, runDir });
    expect(() => create(dir)).toThrow(re);
    let code = 'no error';
    try {
      create();
    } catch (e) {
      code = (e as { code?: string }).code ?? 'untyped';
    }
    expect(code).toBe('ERR_DPLORA_INVALID_ARGUMENT');
    expect(fs.existsSync(dir)).toBe(false);
  }
});

test('a checkpoint whose average is missing, non-finite or mis-sized is refused before the model or the journal is touched', async () => {
  const dir = path.join(tmp, 'tampered');
  const a = PrivateTrainer.create({ ...options(), privacy, average: { decay: 0.8 }, runDir: dir });
  await a.fit({ maxSteps: 3 });
  a.close();
  const root = path.join(dir, 'checkpoints');
  const original = loadCheckpoint(root);
  const journal = fs.readFileSync(path.join(dir, 'ledger.jsonl'));
  type Run = { average: { updates: number; averages: Array<{ $tensor: string }> } };
  const run = original.state.run as Run;
  const key = run.average.averages[0].$tensor;
  const t0 = original.tensors.get(key)!;
  const entries = (key2: string, data: Float32Array) =>
    new Map<string, unknown>([...original.tensors, [key2, { data, shape: [data.length] }]]);
  const cases: Array<[string, unknown, Map<string, unknown>, RegExp]> = [
    [
      'missing',
      { ...original.state, run: { ...run, average: undefined } },
      original.tensors,
      /keeps a parameter average but its checkpoint holds none/,
    ],
    [
      'NaN',
      original.state,
      entries(
        key,
        Float32Array.from(t0.data as Float32Array, (v, j) => (j ? v : NaN)),
      ),
      /parameter average is invalid .*averages\[0\]/,
    ],
    [
      'short',
      original.state,
      entries(key, (t0.data as Float32Array).slice(1)),
      /parameter average is invalid .*averages\[0\]/,
    ],
  ];
  for (const [, state, tensors, re] of cases) {
    saveCheckpoint(root, state as never, Object.fromEntries(tensors) as never);
    const m = model();
    const before = values(m);
    let err: unknown = null;
    try {
      PrivateTrainer.resume(dir, options(m));
    } catch (e) {
      err = e;
    }
    expect(String(err)).toMatch(re);
    expect((err as { code?: string }).code).toBe('ERR_DPLORA_CHECKPOINT');
    expect(values(m)).toEqual(before); // nothing loaded into the model
    expect(fs.readFileSync(path.join(dir, 'ledger.jsonl'))).toEqual(journal);
  }
  // The checkpoint as it was still resumes, with its average.
  saveCheckpoint(root, original.state, Object.fromEntries(original.tensors));
  const ok = PrivateTrainer.resume(dir, options());
  expect(ok.average!.updates).toBe(3);
  ok.close();
});
