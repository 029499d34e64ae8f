/**
 * Re-sealed checkpoints (edited, then written again with the library's own `saveCheckpoint`, so
 * every checksum holds) against `PrivateTrainer.resume`, field by field. Each edit below was
 * found by a sweep over every leaf of the checkpoint; each is now refused with a typed error
 * before the model's parameters or the journal are touched:
 * - the trainer's saved seed, planned steps and records seen (a TypeError / SyntaxError /
 *   RangeError from the seed, a run of no steps, a garbage `samples` count, or a schedule built
 *   after the journal was appended to);
 * - non-finite parameters or optimizer buffers, a negative Adam second moment, an lr beyond the
 *   float32 range (NaN weights at the first step);
 * - a broken saved RNG stream in a seeded run (refused after the parameters were written);
 * - any refused state while the journal ends in a torn record (the journal was cut first).
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Sequential, crossEntropyLoss } from '../lib/nn';
import { PrivateTrainer } from '../lib/trainer/private_trainer';
import type { PrivateTrainerOptions } from '../lib/trainer/private_trainer';
import { loadCheckpoint, saveCheckpoint } from '../lib/io/checkpoint';
import type { StTensorInput } from '../lib/io/safetensors';
import { tinyData, tinyModel } from './helpers/tiny_trainer';

let tmp: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dplora-ck-fields-'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const data = tinyData(200);
const model = () => tinyModel();
const options = (m = model()) => ({
  onWarning: () => undefined,
  model: m,
  loss: crossEntropyLoss,
  data,
  lr: 0.05,
});
const values = (m: Sequential) => m.trainableParameters().map((p) => Array.from(p.data));
const privacy = { targetEpsilon: 3, epochs: 2, batchSize: 20, maxGradNorm: 1, accountant: 'rdp' };

type Extra = Partial<PrivateTrainerOptions<Int32Array>>;
const bases = new Map<string, string>();

/** A 3-step run (made once per name) copied to a fresh directory for one edit. */
async function copyOf(name: string, extra: Extra = {}): Promise<string> {
  let base = bases.get(name);
  if (!base) {
    base = path.join(tmp, `base-${name}`);
    const t = PrivateTrainer.create({
      ...options(),
      privacy: { ...privacy, accountant: 'rdp' },
      runDir: base,
      ...extra,
    });
    await t.fit({ maxSteps: 3 });
    t.close();
    bases.set(name, base);
  }
  const dir = fs.mkdtempSync(path.join(tmp, `${name}-`));
  fs.cpSync(base, dir, { recursive: true });
  return dir;
}

type Json = Record<string, any>;

/** Edits the checkpoint of `dir` (its state.json parts and tensors) and re-seals it. */
function reseal(dir: string, edit: (s: { run: Json; engine: Json }, t: Json) => void): void {
  const root = path.join(dir, 'checkpoints');
  const ck = loadCheckpoint(root);
  const st = structuredClone({ run: ck.state.run as Json, engine: ck.state.engine as Json });
  const tensors: Record<string, StTensorInput> = {};
  for (const [k, v] of ck.tensors)
    tensors[k] = { data: Float32Array.from(v.data as Float32Array), shape: v.shape };
  edit(st, tensors);
  saveCheckpoint(root, { ...ck.state, run: st.run, engine: st.engine }, tensors);
}

/** Resumes `dir`; the error (null: resumed), and whether the model or the journal changed. */
function tryResume(dir: string) {
  const m = model();
  const before = JSON.stringify(values(m));
  const jf = path.join(dir, 'ledger.jsonl');
  const journal = fs.readFileSync(jf);
  let err: (Error & { code?: string }) | null = null;
  try {
    PrivateTrainer.resume(dir, options(m)).close();
  } catch (e) {
    err = e as Error & { code?: string };
  }
  return {
    err,
    touched:
      err !== null &&
      (JSON.stringify(values(m)) !== before || !fs.readFileSync(jf).equals(journal)),
  };
}

function expectRefused(dir: string, code: string, message: RegExp): void {
  const r = tryResume(dir);
  expect(`${r.err?.code} ${r.err?.message}`).toMatch(new RegExp(`^${code} .*${message.source}`));
  expect(r.touched).toBe(false);
}

test("the trainer's saved seed, planned steps and records seen are checked before anything is touched", async () => {
  const cases: Array<[string, Extra, (t: Json) => void, RegExp]> = [
    [
      'seeded',
      { privacy: { ...privacy, seed: 5n } as never },
      (t) => delete t.seed,
      /seed: must be an object/,
    ],
    [
      'seeded',
      { privacy: { ...privacy, seed: 5n } as never },
      (t) => (t.seed.value = 'x'),
      /seed: is not a saved seed/,
    ],
    [
      'seeded',
      { privacy: { ...privacy, seed: 5n } as never },
      (t) => (t.seed.value = 0.5),
      /seed\.value: must be a string/,
    ],
    [
      'seeded',
      { privacy: { ...privacy, seed: 5n } as never },
      (t) => (t.seed = { type: 'bytes', value: 7 }),
      /seed\.value/,
    ],
    ['plain', {}, (t) => delete t.plannedSteps, /plannedSteps: must be an integer/],
    ['plain', {}, (t) => (t.plannedSteps = 0), /plannedSteps/],
    ['plain', {}, (t) => (t.samplesSeen = 'x'), /samplesSeen: must be an integer/],
    ['plain', {}, (t) => (t.samplesSeen = -5), /samplesSeen/],
    ['plain', {}, (t) => (t.samplesSeen = 2.5), /samplesSeen/],
    // With a schedule, the schedule was built after the engine was loaded and the journal
    // appended to: a missing plannedSteps or a null warmup threw there.
    [
      'scheduled',
      { lrSchedule: { name: 'linear', warmup: 0.1 } },
      (t) => delete t.plannedSteps,
      /plannedSteps/,
    ],
  ];
  for (const [name, extra, edit, message] of cases) {
    const dir = await copyOf(name, extra);
    reseal(dir, (s) => edit(s.run.trainer));
    expectRefused(
      dir,
      'ERR_DPLORA_CHECKPOINT',
      new RegExp(`the checkpoint's trainer settings are invalid \\(${message.source}`),
    );
  }
  // A null warmup is the default (0), as for a new run: the resumed run continues.
  const dir = await copyOf('scheduled', { lrSchedule: { name: 'linear', warmup: 0.1 } });
  reseal(dir, (s) => (s.run.trainer.lrSchedule.warmup = null));
  const t = PrivateTrainer.resume(dir, options());
  expect(t.lrSchedule).toEqual({ name: 'linear', warmup: 0 });
  expect((await t.fit({ maxSteps: 1 })).steps).toBe(4);
  expect(t.samples).toBeGreaterThan(0);
  t.close();
});

test('non-finite parameters or optimizer buffers, a negative second moment or an lr beyond float32 are refused', async () => {
  const cases: Array<[(s: { run: Json; engine: Json }, t: Json) => void, RegExp]> = [
    [
      (_s, t) => (t['params.0.lora_A.data'].data[0] = NaN),
      /state\.params\['0\.lora_A'\]\.data: holds NaN at index 0/,
    ],
    [
      (_s, t) => (t['params.2.bias.data'].data[1] = -Infinity),
      /state\.params\['2\.bias'\]\.data: holds -Infinity at index 1/,
    ],
    [
      (_s, t) => (t['optimizer.slots.0.lora_B.m'].data[2] = Infinity),
      /state\.slots\[\d\]\.m: holds Infinity at index 2/,
    ],
    [
      (_s, t) => (t['optimizer.slots.2.weight.v'].data[0] = NaN),
      /state\.slots\[\d\]\.v: holds NaN at index 0/,
    ],
    [
      (_s, t) => t['optimizer.slots.2.weight.v'].data.fill(-1),
      /state\.slots\[\d\]\.v: holds -1 at index 0/,
    ],
    [(s) => (s.engine.optimizer.lr = 1e300), /state\.lr: must be/],
  ];
  for (const [edit, message] of cases) {
    const dir = await copyOf('plain');
    reseal(dir, edit);
    expectRefused(dir, 'ERR_DPLORA_INVALID_ARGUMENT', message);
  }
});

test("a seeded run's broken RNG stream is refused before the parameters are written", async () => {
  const seeded: Extra = { privacy: { ...privacy, seed: 5n } as never };
  const edits: Array<[(r: Json) => void, RegExp]> = [
    [(r) => (r.state.key = 'zz'), /state\.key/],
    [(r) => (r.state.position = -1), /state\.position/],
    [(r) => (r.state.version = 2), /state\.version/],
    [(r) => (r.state = 'x'), /state/],
  ];
  for (const [edit, message] of edits) {
    const dir = await copyOf('seeded', seeded);
    reseal(dir, (s) => edit(s.engine.rng));
    expectRefused(dir, 'ERR_DPLORA_INVALID_ARGUMENT', message);
  }
});

test('a refused resume leaves a journal that ends in a torn record as it was', async () => {
  for (const edit of [
    (s: { engine: Json }) => (s.engine.optimizer.kind = 'sgd'),
    (s: { engine: Json }) => (s.engine.sampler.kind = 'shuffle'),
  ]) {
    const dir = await copyOf('plain');
    reseal(dir, edit);
    fs.appendFileSync(path.join(dir, 'ledger.jsonl'), '{"kind":"st');
    expectRefused(dir, 'ERR_DPLORA_INVALID_ARGUMENT', /state/);
  }
  // Without the edit, the torn record is dropped when the resumed run appends to the journal.
  const dir = await copyOf('plain');
  const jf = path.join(dir, 'ledger.jsonl');
  const whole = fs.readFileSync(jf, 'utf8');
  fs.appendFileSync(jf, '{"kind":"st');
  const t = PrivateTrainer.resume(dir, options());
  t.close();
  const text = fs.readFileSync(jf, 'utf8');
  expect(text.startsWith(whole)).toBe(true);
  expect(text.slice(whole.length)).toMatch(/^\{"kind":"key".*\}\n$/);
});
