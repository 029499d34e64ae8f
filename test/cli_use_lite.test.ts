/**
 * `dp-lora train --model use-lite` end to end on a small slice (reproducible
 * seed), `--data FILE`, and `dp-lora predict` with the saved adapter: the
 * adapter reproduces the private model's held-out accuracy exactly.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { runUseLiteTrain, useLiteRawOptions } from '../lib/cli/train_use_lite';
import { resolveTrainConfig } from '../lib/cli/train_options';
import { predictWithAdapter } from '../lib/cli/predict';
import { heldoutPredictions } from './helpers/use_lite_cli';
import { loadCheckpoint } from '../lib/io/checkpoint';
import { parseSafetensors } from '../lib/io/safetensors';

jest.setTimeout(600000);

let tmp: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dplora-use-'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const silent = { log: () => undefined, print: () => undefined };

test('built-in task: base / non-private / private accuracy, budget respected, adapter reproduces accuracy', async () => {
  const { raw, ul } = useLiteRawOptions({
    limit: '160',
    seed: '7',
    epochs: '1',
    batchSize: '16',
    maxTokens: '24',
  });
  const out = path.join(tmp, 'spam');
  const r = await runUseLiteTrain(resolveTrainConfig(raw), ul, { ...silent, out });
  expect(r.epsilon).toBeLessThanOrEqual(8);
  expect(r.steps).toBe(r.plannedSteps);
  expect(r.accuracy.base).toBeGreaterThan(0.5);
  expect(r.accuracy.nonPrivateLora).not.toBeNull();
  // The built-in task has public mails: the public warm start ran (default 3 epochs).
  expect(r.publicWarmStartEpochs).toBe(3);
  expect(r.accuracy.publicWarmStart).toBeGreaterThan(0.5);
  expect(r.loraLayers).toEqual([1]);
  const report = JSON.parse(
    fs.readFileSync(path.join(out, 'adapter', 'privacy_report.json'), 'utf8'),
  ) as { epsilon: number; steps: number };
  expect(report.epsilon).toBe(r.epsilon);
  expect(report.steps).toBe(r.steps);
  // the ledger is saved with the checkpoint and matches the report
  const ck = loadCheckpoint(path.join(out, 'checkpoints'));
  expect(ck.state.step).toBe(r.steps);
  expect(ck.state.ledger).toBeTruthy();
  // predict with the saved adapter on the same held-out mails
  const { acc, preds } = heldoutPredictions(out);
  expect(acc).toBeCloseTo(r.accuracy.privateLora, 10);
  for (const p of preds) expect(p.probabilities.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
});

test('adapters on fc1/fc2 only: the attention sub-block is cached too, and predict agrees', async () => {
  const { raw, ul } = useLiteRawOptions({
    limit: '160',
    seed: '7',
    epochs: '1',
    batchSize: '16',
    maxTokens: '24',
    targetModules: 'fc1,fc2',
    publicWarmStart: '1',
  });
  const out = path.join(tmp, 'spam-ffn');
  const lines: string[] = [];
  const r = await runUseLiteTrain(resolveTrainConfig(raw), ul, {
    ...silent,
    log: (m: string) => lines.push(m),
    out,
  });
  expect(lines.some((l) => l.includes('layer 0 + the attention of layer 1'))).toBe(true);
  expect(r.steps).toBe(r.plannedSteps);
  expect(r.accuracy.base).toBeGreaterThan(0.5);
  const { acc } = heldoutPredictions(out);
  expect(acc).toBeCloseTo(r.accuracy.privateLora, 10);
});

test('--data FILE with LoRA on both layers and chosen targets', async () => {
  const file = path.join(tmp, 'd.csv');
  const rows = ['text,label'];
  for (let i = 0; i < 60; i++) {
    rows.push(`"I loved this film, wonderful acting number ${i}",pos`);
    rows.push(`"Terrible boring movie, waste of time number ${i}",neg`);
  }
  fs.writeFileSync(file, rows.join('\n') + '\n');
  const { raw, ul } = useLiteRawOptions({
    data: file,
    seed: '3',
    epochs: '1',
    batchSize: '16',
    loraLayers: '0,1',
    targetModules: 'q_proj,v_proj',
    maxTokens: '16',
    baseline: false,
  });
  const out = path.join(tmp, 'user');
  const r = await runUseLiteTrain(resolveTrainConfig(raw), ul, { ...silent, out });
  expect(r.accuracy.base).toBeNull(); // no public data: no base head
  expect(r.accuracy.nonPrivateLora).toBeNull();
  expect(r.publicWarmStartEpochs).toBe(0); // ... and no warm start
  expect(r.accuracy.publicWarmStart).toBeNull();
  expect(r.loraLayers).toEqual([0, 1]);
  const cfg = JSON.parse(
    fs.readFileSync(path.join(out, 'adapter', 'adapter_config.json'), 'utf8'),
  ) as { target_modules: string[] };
  expect(cfg.target_modules).toEqual(['q_proj', 'v_proj']);
  const preds = predictWithAdapter(path.join(out, 'adapter'), ['great film', 'awful film']);
  expect(preds.map((p) => ['neg', 'pos'].includes(p.label))).toEqual([true, true]);
});

test('the private run starts from the public warm start, which reads no private record', async () => {
  const csv = (file: string, pos: string, neg: string, n: number) => {
    const rows = ['text,label'];
    for (let i = 0; i < n; i++) rows.push(`"${pos} ${i}",pos`, `"${neg} ${i}",neg`);
    fs.writeFileSync(file, rows.join('\n') + '\n');
    return file;
  };
  const pub = csv(
    path.join(tmp, 'pub.csv'),
    'I loved this film, wonderful acting',
    'Terrible boring movie',
    40,
  );
  const privA = csv(
    path.join(tmp, 'a.csv'),
    'Great story and a fine cast',
    'Dull plot and bad lines',
    60,
  );
  const privB = csv(path.join(tmp, 'b.csv'), 'What a joy to watch', 'I walked out early', 45);
  /** The trainable weights of the step-0 checkpoint (before any private step). */
  const start = async (data: string, name: string, warm?: string) => {
    const { raw, ul } = useLiteRawOptions({
      data,
      publicData: pub,
      publicWarmStart: warm,
      seed: '3',
      epochs: '1',
      batchSize: '16',
      maxTokens: '16',
      baseline: false,
    });
    const out = path.join(tmp, name);
    const r = await runUseLiteTrain(resolveTrainConfig(raw), ul, { ...silent, out });
    const file = path.join(out, 'checkpoints', 'step-00000000', 'tensors.safetensors');
    const { tensors } = parseSafetensors(fs.readFileSync(file));
    const params = [...tensors].filter(([k]) => k.startsWith('params.'));
    expect(params.length).toBe(14); // 6 LoRA pairs of layer 1, head weight and bias
    return { r, params: new Map(params.map(([k, v]) => [k, Array.from(v.data as Float32Array)])) };
  };
  const a = await start(privA, 'warm-a');
  const b = await start(privB, 'warm-b');
  expect(a.r.publicWarmStartEpochs).toBe(3);
  // Other private records, same public data: the same starting point, bit for bit.
  for (const [k, v] of a.params) expect(b.params.get(k)).toEqual(v);
  // And it is the warm start, not the plain initialization (LoRA B starts at zero without it).
  const cold = await start(privA, 'cold-a', '0');
  expect(cold.r.publicWarmStartEpochs).toBe(0);
  expect(cold.r.accuracy.publicWarmStart).toBeNull();
  const bKey = 'params.encoder.layers.1.ffn.fc1.lora_B.data';
  expect(cold.params.get(bKey)!.every((x) => x === 0)).toBe(true);
  expect(a.params.get(bKey)!.some((x) => x !== 0)).toBe(true);
});

test('bad options are errors naming the option', () => {
  expect(() => useLiteRawOptions({ loraLayers: '2' })).toThrow(/--lora-layers/);
  expect(() => useLiteRawOptions({ maxTokens: '500' })).toThrow(/--max-tokens/);
  // The public warm start: on by default with public data, off without; never on --data alone.
  expect(useLiteRawOptions({}).ul.publicWarmStart).toBe(3);
  expect(useLiteRawOptions({ publicWarmStart: '0' }).ul.publicWarmStart).toBe(0);
  expect(useLiteRawOptions({ data: 'x.csv' }).ul.publicWarmStart).toBe(0);
  expect(
    useLiteRawOptions({ data: 'x.csv', publicData: 'p.csv', publicWarmStart: '5' }).ul
      .publicWarmStart,
  ).toBe(5);
  expect(() => useLiteRawOptions({ data: 'x.csv', publicWarmStart: '2' })).toThrow(
    /--public-warm-start: needs public data/,
  );
  for (const bad of ['-1', '1.5', '', 'x', '1e9'])
    expect(() => useLiteRawOptions({ publicWarmStart: bad })).toThrow(/--public-warm-start/);
  const { raw, ul } = useLiteRawOptions({ targetModules: 'query' });
  return expect(runUseLiteTrain(resolveTrainConfig(raw), ul, silent)).rejects.toThrow(
    /targetModules/,
  );
});

test('--data labels are public for use-lite too: a rare undeclared label is refused before training', async () => {
  const file = path.join(tmp, 'rare.csv');
  const rows = ['text,label'];
  for (let i = 0; i < 40; i++) rows.push(`"fine text ${i}",good`, `"poor text ${i}",bad`);
  rows.push('"one person only",patient-4711-diagnosis');
  fs.writeFileSync(file, rows.join('\n') + '\n');
  const opts = { data: file, epochs: '1', batchSize: '8', maxTokens: '8', baseline: false };
  const { raw, ul } = useLiteRawOptions(opts);
  const out = path.join(tmp, 'rare');
  const err = await runUseLiteTrain(resolveTrainConfig(raw), ul, { ...silent, out }).catch(
    (e: Error & { code?: string }) => e,
  );
  expect(err).toMatchObject({ code: 'ERR_DPLORA_DATA_FORMAT' });
  expect((err as Error).message).toMatch(/occur fewer than 20 times/);
  expect((err as Error).message).not.toMatch(/4711/); // the rare value is never echoed
  expect(fs.existsSync(path.join(out, 'adapter'))).toBe(false);
  // Declared, it is accepted and written as declared.
  const d = useLiteRawOptions({ ...opts, labels: 'good,bad,patient-4711-diagnosis' });
  const r = await runUseLiteTrain(resolveTrainConfig(d.raw), d.ul, {
    ...silent,
    out: path.join(tmp, 'declared'),
    maxSteps: 1,
  });
  expect(r.steps).toBe(1);
  const cfg = JSON.parse(
    fs.readFileSync(path.join(tmp, 'declared', 'adapter', 'adapter_config.json'), 'utf8'),
  ) as { dplora: { classes: string[] } };
  expect(cfg.dplora.classes).toEqual(['good', 'bad', 'patient-4711-diagnosis']);
  // The run resumes only on data with its number of private records (the accounted sampling
  // rate) and its classes; no hash of the private content is kept in the run directory.
  const more = Array.from({ length: 20 }, (_, i) => `"more text ${i}",${i % 2 ? 'good' : 'bad'}`);
  fs.writeFileSync(file, [...rows, ...more].join('\n') + '\n'); // some land in the private part
  await expect(
    runUseLiteTrain(undefined, undefined, { ...silent, resume: path.join(tmp, 'declared') }),
  ).rejects.toThrow(/--resume: the private data .* does not have the records and classes/);
  const saved = fs
    .readdirSync(path.join(tmp, 'declared'), { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => fs.readFileSync(path.join(e.parentPath ?? e.path, e.name)).toString('latin1'))
    .join('\n');
  expect(saved).not.toMatch(/privateDataSha256/);
  expect(saved).toMatch(/privateRecords/);
});
