/**
 * `dp-lora train --ema DECAY` and `--head-lr LR` (use-lite). With a fixed seed:
 * - `--ema` is post-processing: the run's last iterate is exactly the run without it (same
 *   accuracy, same epsilon and steps); what is released (the adapter, the private accuracy) is
 *   the average saved with the checkpoint, tensor for tensor, and `predict` with that adapter
 *   reproduces the reported accuracy;
 * - `--head-lr` equal to `--lr` gives exactly the plain run's adapter; another value changes
 *   the head, is recorded with the optimizer in the checkpoint, and a run stopped by
 *   --max-steps and resumed ends exactly where the uninterrupted run ends (average included);
 * - bad values are refused naming the option; --head-lr with the MLP and any change of either
 *   on --resume are refused;
 * - a re-sealed checkpoint whose run memo drops --ema while its trainer keeps the average is
 *   refused on --resume (the summary would not say that an average is released).
 */
import * as fs from 'fs';
import * as path from 'path';
import { useTempDir, runTrainCli as run } from './helpers/cli';
import { resolveTrainConfig } from '../lib/cli/train_options';
import { SMALL_USE_LITE, heldoutPredictions } from './helpers/use_lite_cli';
import { loadCheckpoint, saveCheckpoint } from '../lib/io/checkpoint';
import { loadAdapter } from '../lib/io/peft_adapter';
import { restoreTensors } from '../lib/trainer/state';

jest.setTimeout(600_000);

const tmpDir = useTempDir('dplora-ema-');

/** A small reproducible use-lite run ({@link SMALL_USE_LITE}): one epoch, no warm start, seed 7. */
const SMALL = [...SMALL_USE_LITE, '--epochs', '1', '--public-warm-start', '0', '--seed', '7'];

interface Result {
  steps: number;
  plannedSteps: number;
  epsilon: number;
  incomplete: boolean;
  accuracy: { privateLora: number; privateLoraLastIterate: number | null };
}

/** Runs `dp-lora train` with `args`, writing to `out`; returns its --json result. */
async function train(out: string, ...args: string[]): Promise<Result> {
  const json = `${out}.json`;
  await run([...args, '--out', out, '--json', json]);
  return JSON.parse(fs.readFileSync(json, 'utf8')) as Result;
}

/** The adapter's trained tensors (LoRA pairs and head) by name. */
function adapterTensors(out: string): Map<string, Float32Array> {
  const a = loadAdapter(path.join(out, 'adapter'));
  const m = new Map<string, Float32Array>();
  for (const l of a.loras) {
    m.set(`${l.path}.A`, l.loraA);
    m.set(`${l.path}.B`, l.loraB);
  }
  for (const [k, v] of Object.entries(a.extra)) m.set(k, v.data);
  return m;
}

const bytes = (v: Float32Array) =>
  Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('hex');

/** The latest checkpoint's parameter average and last-iterate parameters (byte strings). */
function checkpointState(out: string) {
  const ck = loadCheckpoint(path.join(out, 'checkpoints'));
  const run = ck.state.run as { average?: unknown };
  const average = run.average
    ? (restoreTensors(run.average, ck.tensors) as { updates: number; averages: Float32Array[] })
    : null;
  const engine = restoreTensors(ck.state.engine, ck.tensors) as {
    params: Record<string, { data: Float32Array }>;
    optimizer: { hyper: Record<string, number> };
  };
  return {
    step: ck.state.step,
    average,
    last: Object.values(engine.params).map((p) => bytes(p.data)),
    hyper: engine.optimizer.hyper,
  };
}

test('--ema releases the average (adapter and accuracy); the last iterate is the run without it', async () => {
  const plain = await train(path.join(tmpDir(), 'plain'), ...SMALL);
  expect(plain.accuracy.privateLoraLastIterate).toBeNull();
  const out = path.join(tmpDir(), 'ema');
  const ema = await train(out, ...SMALL, '--ema', '0.8');
  expect(ema.steps).toBe(plain.steps);
  expect(ema.steps).toBe(ema.plannedSteps);
  expect(ema.epsilon).toBe(plain.epsilon);
  expect(ema.accuracy.privateLoraLastIterate).toBe(plain.accuracy.privateLora);
  // The checkpoint keeps the last iterate (to continue from) and the average, folded in once
  // per step; every tensor of the adapter is one of the average's, and they are not all the
  // last iterate's.
  const st = checkpointState(out);
  expect(st.average!.updates).toBe(ema.steps);
  const averages = new Set(st.average!.averages.map(bytes));
  const released = [...adapterTensors(out).values()].map(bytes);
  expect(released.length).toBe(st.average!.averages.length);
  for (const t of released) expect(averages.has(t)).toBe(true);
  expect(released.filter((t) => st.last.includes(t)).length).toBeLessThan(released.length);
  // predict with the released adapter reproduces the reported (average's) accuracy.
  const { acc } = heldoutPredictions(out);
  expect(acc).toBeCloseTo(ema.accuracy.privateLora, 10);
});

test('--head-lr: equal to --lr it is the plain run; another value moves the head, is saved, and survives --resume', async () => {
  const plainOut = path.join(tmpDir(), 'plain-h');
  await train(plainOut, ...SMALL, '--lr', '0.002');
  const sameOut = path.join(tmpDir(), 'same-h');
  await train(sameOut, ...SMALL, '--lr', '0.002', '--head-lr', '0.002');
  const plain = adapterTensors(plainOut);
  const same = adapterTensors(sameOut);
  expect([...same.keys()]).toEqual([...plain.keys()]);
  for (const [k, v] of plain) expect(same.get(k)).toEqual(v);

  // Head lr 10x, with an average: one process, and the same run stopped after 4 steps and resumed.
  const args = [...SMALL, '--lr', '0.002', '--head-lr', '0.02', '--ema', '0.8'];
  const wholeOut = path.join(tmpDir(), 'whole-h');
  const whole = await train(wholeOut, ...args);
  const fast = adapterTensors(wholeOut);
  expect(fast.get('head.weight')).not.toEqual(plain.get('head.weight'));
  expect(checkpointState(wholeOut).hyper.headRatio).toBeCloseTo(10, 12);
  const splitOut = path.join(tmpDir(), 'split-h');
  const first = await train(splitOut, ...args, '--max-steps', '4');
  expect(first.incomplete).toBe(true);
  expect(checkpointState(splitOut).average!.updates).toBe(4);
  // A resumed run keeps both settings: changing either is refused.
  for (const change of [
    ['--head-lr', '0.01'],
    ['--ema', '0.9'],
  ])
    await expect(run(['--resume', splitOut, ...change])).rejects.toThrow(
      new RegExp(`drop ${change[0]}`),
    );
  const json = `${splitOut}-resumed.json`;
  await run(['--resume', splitOut, '--json', json, '--no-progress']);
  const resumed = JSON.parse(fs.readFileSync(json, 'utf8')) as Result;
  expect(resumed.steps).toBe(whole.steps);
  expect(resumed.accuracy).toEqual(whole.accuracy);
  const split = adapterTensors(splitOut);
  for (const [k, v] of fast) expect(split.get(k)).toEqual(v);
});

test('bad --ema and --head-lr values are refused naming the option; --head-lr is use-lite only', async () => {
  expect(resolveTrainConfig({ ema: '0.95' }).ema).toBe(0.95);
  expect(resolveTrainConfig({}).ema).toBeUndefined();
  for (const bad of ['1', '0', '-0.5', '', ' ', 'x', 'NaN', 'Infinity'])
    expect(() => resolveTrainConfig({ ema: bad })).toThrow(/--ema/);
  expect(resolveTrainConfig({ headLr: '0.03' }).headLr).toBe(0.03);
  for (const bad of ['0', '-1', 'x', ''])
    expect(() => resolveTrainConfig({ headLr: bad })).toThrow(/--head-lr/);
  await expect(run(['--limit', '200', '--head-lr', '0.01', '--no-progress'])).rejects.toThrow(
    /--head-lr: applies to --model use-lite only/,
  );
});

test('a checkpoint whose memo drops --ema while the trainer keeps the average is refused on --resume', async () => {
  const out = path.join(tmpDir(), 'memo-ema');
  // A small MLP run (1200 mails, 512 features) stopped after 2 steps.
  const mlp = ['--limit', '1200', '--dim', '512', '--hidden', '32', '--batch-size', '64'];
  await run([
    ...mlp,
    '--ema',
    '0.9',
    '--max-steps',
    '2',
    '--no-baseline',
    '--out',
    out,
    '--no-progress',
  ]);
  const root = path.join(out, 'checkpoints');
  const ck = loadCheckpoint(root);
  const runState = ck.state.run as { info: { config: Record<string, unknown> } };
  expect(runState.info.config.ema).toBe(0.9);
  const { ema, ...config } = runState.info.config;
  expect(ema).toBe(0.9);
  saveCheckpoint(
    root,
    { ...ck.state, run: { ...runState, info: { ...runState.info, config } } },
    Object.fromEntries(ck.tensors),
  );
  const journal = fs.readFileSync(path.join(out, 'ledger.jsonl'));
  await expect(run(['--resume', out, '--no-progress'])).rejects.toMatchObject({
    code: 'ERR_DPLORA_CHECKPOINT',
    message: expect.stringMatching(
      /settings \(no --ema\) and its trainer state disagree on the parameter average/,
    ),
  });
  expect(fs.readFileSync(path.join(out, 'ledger.jsonl')).equals(journal)).toBe(true);
});
