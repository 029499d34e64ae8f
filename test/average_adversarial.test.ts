/**
 * Adversarial checks of the parameter average (`PrivateTrainer` option `average`) and of
 * `--head-lr`:
 * - a checkpoint whose average claims more updates than the steps it was saved at, or that
 *   holds an average its run's settings do not keep, is refused (ERR_DPLORA_CHECKPOINT) before
 *   the model or the journal is touched;
 * - a resume with a model that does not fit the run gets the same error whether or not the run
 *   keeps an average (the caller's model is named, the checkpoint is not blamed);
 * - an engine state without parameters, or a checkpoint without one, is a typed error, not a
 *   TypeError;
 * - a head learning rate whose ratio to lr overflows is refused by name (library and CLI).
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Sequential, crossEntropyLoss } from '../lib/nn';
import { PrivateTrainer } from '../lib/trainer/private_trainer';
import type { TrainerAverage } from '../lib/trainer/private_trainer';
import { loadCheckpoint, saveCheckpoint } from '../lib/io/checkpoint';
import { HeadLrAdam } from '../lib/models/use_lite/finetune';
import { resolveTrainConfig } from '../lib/cli/train_options';
import { tinyData, tinyModel } from './helpers/tiny_trainer';

let tmp: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dplora-avg-adv-'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const data = tinyData(400);
const model = tinyModel;
const privacy = {
  targetEpsilon: 3,
  epochs: 2,
  batchSize: 40,
  maxGradNorm: 1,
  accountant: 'rdp' as const,
  seed: 5n,
};
const options = (m = model()) => ({
  onWarning: () => undefined,
  model: m,
  loss: crossEntropyLoss,
  data,
  lr: 0.05,
});
const values = (m: Sequential) => m.trainableParameters().map((p) => Float32Array.from(p.data));

/** A run in `tmp/name` of `steps` steps, with the average given. */
async function makeRun(name: string, average?: TrainerAverage, steps = 3): Promise<string> {
  const dir = path.join(tmp, name);
  const t = PrivateTrainer.create({ ...options(), privacy, average, runDir: dir });
  await t.fit({ maxSteps: steps });
  t.close();
  return dir;
}

/** Resumes `dir` with `m`; returns the error (null: resumed), and whether the model or journal changed. */
function tryResume(dir: string, m = model()) {
  const before = values(m);
  const journal = fs.readFileSync(path.join(dir, 'ledger.jsonl'));
  let err: (Error & { code?: string }) | null = null;
  try {
    PrivateTrainer.resume(dir, options(m)).close();
  } catch (e) {
    err = e as Error & { code?: string };
  }
  return {
    err,
    modelChanged: err !== null && JSON.stringify(values(m)) !== JSON.stringify(before),
    journalChanged: !fs.readFileSync(path.join(dir, 'ledger.jsonl')).equals(journal),
  };
}

test('an average that claims more updates than the checkpoint has steps is refused before anything is touched', async () => {
  const dir = await makeRun('updates', { decay: 0.8 });
  const root = path.join(dir, 'checkpoints');
  const original = loadCheckpoint(root);
  type Run = { average: { updates: number } };
  const run = original.state.run as Run;
  expect(run.average.updates).toBe(3);
  const tensors = Object.fromEntries(original.tensors);
  for (const updates of [4, 1000, 2 ** 53 - 1]) {
    saveCheckpoint(
      root,
      { ...original.state, run: { ...run, average: { ...run.average, updates } } },
      tensors,
    );
    const r = tryResume(dir);
    expect(r.err?.code).toBe('ERR_DPLORA_CHECKPOINT');
    expect(String(r.err)).toMatch(
      new RegExp(
        `parameter average is invalid .*state\\.updates: is ${updates}, more than the 3 steps`,
      ),
    );
    expect(r.modelChanged).toBe(false);
    expect(r.journalChanged).toBe(false);
  }
  // Fewer updates than steps (a step charged whose update was never applied) are fine.
  saveCheckpoint(
    root,
    { ...original.state, run: { ...run, average: { ...run.average, updates: 2 } } },
    tensors,
  );
  expect(tryResume(dir).err).toBeNull();
});

test('a checkpoint holding an average that its run settings do not keep is refused', async () => {
  const dir = await makeRun('dropped', { decay: 0.8 });
  const root = path.join(dir, 'checkpoints');
  const original = loadCheckpoint(root);
  const run = original.state.run as { trainer: Record<string, unknown> };
  const { average, ...trainer } = run.trainer;
  expect(average).toEqual({ decay: 0.8, warmup: true });
  saveCheckpoint(
    root,
    { ...original.state, run: { ...run, trainer } },
    Object.fromEntries(original.tensors),
  );
  const r = tryResume(dir);
  expect(r.err?.code).toBe('ERR_DPLORA_CHECKPOINT');
  expect(String(r.err)).toMatch(/holds a parameter average but the run's settings keep none/);
  expect(r.modelChanged).toBe(false);
  expect(r.journalChanged).toBe(false);
});

test('a model that does not fit the run is named the same way with and without an average', async () => {
  const averaged = await makeRun('fit-avg', { decay: 0.8 });
  const plain = await makeRun('fit-plain');
  for (const other of [() => model(3), () => model(2, 'ffa')]) {
    const a = tryResume(averaged, other());
    const p = tryResume(plain, other());
    expect(p.err?.code).toBe('ERR_DPLORA_INVALID_ARGUMENT');
    expect(a.err?.code).toBe(p.err?.code);
    expect(a.err?.message).toBe(p.err?.message);
    expect(a.err?.message).toMatch(/^state\.params/);
    expect(a.modelChanged).toBe(false);
    expect(a.journalChanged).toBe(false);
  }
  // The right model still resumes, with its average.
  const ok = PrivateTrainer.resume(averaged, options());
  expect(ok.average!.updates).toBe(3);
  ok.close();
});

test('an engine state without parameters, or none at all, is a typed error', async () => {
  const dir = await makeRun('no-params', { decay: 0.8 });
  const root = path.join(dir, 'checkpoints');
  const original = loadCheckpoint(root);
  saveCheckpoint(
    root,
    { ...original.state, engine: { ...(original.state.engine as object), params: undefined } },
    Object.fromEntries(original.tensors),
  );
  const r = tryResume(dir);
  expect(r.err?.code).toBe('ERR_DPLORA_INVALID_ARGUMENT');
  expect(String(r.err)).toMatch(/state\.params: must be an object/);
  expect(r.modelChanged).toBe(false);
  // ... and a checkpoint without an engine state at all is refused as a broken checkpoint.
  saveCheckpoint(
    root,
    { ...original.state, engine: undefined },
    Object.fromEntries(original.tensors),
  );
  const none = tryResume(dir);
  expect(none.err?.code).toBe('ERR_DPLORA_CHECKPOINT');
  expect(String(none.err)).toMatch(/the checkpoint has no privacy-engine state/);
  expect(none.modelChanged).toBe(false);
  expect(none.journalChanged).toBe(false);
});

test('a head learning rate whose ratio to lr overflows is refused by name', () => {
  const ps = model().trainableParameters();
  const head = [ps[ps.length - 1]];
  const code = (f: () => unknown) => {
    try {
      f();
    } catch (e) {
      return `${(e as { code?: string }).code ?? 'untyped'} ${(e as Error).message}`;
    }
    return 'no error';
  };
  expect(code(() => new HeadLrAdam(ps, head, { lr: 1e-310, headLr: 1 }))).toMatch(
    /^ERR_DPLORA_INVALID_ARGUMENT headLr: must be a finite multiple of lr/,
  );
  expect(code(() => new HeadLrAdam(ps, head, { lr: 1e-300, headLr: 1e300 }))).toMatch(
    /^ERR_DPLORA_INVALID_ARGUMENT headLr/,
  );
  expect(code(() => new HeadLrAdam(ps, null as never, { lr: 0.1, headLr: 1 }))).toMatch(
    /^ERR_DPLORA_INVALID_ARGUMENT head: must be an array/,
  );
  expect(new HeadLrAdam(ps, head, { lr: 0.002, headLr: 0.02 }).headRatio).toBeCloseTo(10, 12);
  // The CLI says so before any work, naming --head-lr.
  expect(() => resolveTrainConfig({ lr: '1e-300', headLr: '1e300' })).toThrow(
    /--head-lr: must be a finite multiple of --lr/,
  );
  expect(resolveTrainConfig({ lr: '1e-3', headLr: '1e3' }).headLr).toBe(1e3);
});

test('a resume given average null refuses a run that keeps one, before anything is touched', async () => {
  const averaged = await makeRun('null-avg', { decay: 0.8 });
  const plain = await makeRun('null-plain');
  const m = model();
  const before = values(m);
  const journal = fs.readFileSync(path.join(averaged, 'ledger.jsonl'));
  let err: (Error & { code?: string; argument?: string }) | null = null;
  try {
    PrivateTrainer.resume(averaged, { ...options(m), average: null }).close();
  } catch (e) {
    err = e as Error & { code?: string; argument?: string };
  }
  expect(err?.code).toBe('ERR_DPLORA_INVALID_ARGUMENT');
  expect(err?.argument).toBe('average');
  expect(err?.message).toMatch(/^average: is null, the run being resumed has .*"decay":0\.8/);
  expect(values(m)).toEqual(before);
  expect(fs.readFileSync(path.join(averaged, 'ledger.jsonl')).equals(journal)).toBe(true);
  // A run without an average resumes with null, and keeps none.
  const ok = PrivateTrainer.resume(plain, { ...options(), average: null });
  expect(ok.average).toBeNull();
  ok.close();
});
