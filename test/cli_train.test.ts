/**
 * End to end: `dp-lora train` on a slice of the built-in corpus (--limit), in-process.
 * Checks the privacy numbers against the budget, accuracy against the majority-class rate,
 * the JSON keys, that the saved adapter reproduces the reported accuracy, and that --resume
 * continues the same ledger (never resets it).
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { useTempDir, runTrainCli as run } from './helpers/cli';
import { loadAdapter, loadPrivacyReport } from '../lib/io/peft_adapter';
import { loadCheckpoint } from '../lib/io/checkpoint';
import { buildSpamTask } from '../lib/cli/train_task';
import {
  accuracy,
  loadAdapterInto,
  loadBaseWeights,
  loraModel,
  pretrainedBase,
  saveBaseWeights,
  randomBase,
  adapterOf,
} from '../lib/cli/train_model';
import { LORA_SEED, publishAdapter } from '../lib/cli/train';
import { LoraLinear } from '../lib/nn/lora_linear';
import { expectCodeAsync } from './helpers/errors';

const SMALL = [
  '--accountant',
  'rdp',
  '--limit',
  '1200',
  '--dim',
  '512',
  '--hidden',
  '32',
  '--epochs',
  '8',
  '--batch-size',
  '64',
];

const tmpDir = useTempDir('dplora-cli-');

function majorityRate(y: Int32Array): number {
  const c = new Map<number, number>();
  for (const v of y) c.set(v, (c.get(v) ?? 0) + 1);
  return Math.max(...c.values()) / y.length;
}

describe('dp-lora train (end to end)', () => {
  test('trains privately within budget, beats chance, writes a loadable adapter and JSON', async () => {
    const out = path.join(tmpDir(), 'run');
    const json = path.join(tmpDir(), 'result.json');
    const { stdout, stderr } = await run([
      ...SMALL,
      '--seed',
      '0x5eed',
      '--out',
      out,
      '--json',
      json,
    ]);
    const r = JSON.parse(fs.readFileSync(json, 'utf8'));
    for (const k of [
      'targetEpsilon',
      'epsilon',
      'delta',
      'noiseMultiplier',
      'maxGradNorm',
      'sampleRate',
      'steps',
      'accountant',
      'accuracy',
      'seedMode',
      'reproducible',
      'wallTimeSeconds',
      'samplesPerSecond',
    ]) {
      expect(r).toHaveProperty(k);
    }
    expect(r.targetEpsilon).toBe(8);
    expect(r.accountant).toBe('rdp');
    expect(r.epsilon).toBeGreaterThan(0);
    expect(r.epsilon).toBeLessThanOrEqual(r.targetEpsilon + 1e-9);
    expect(r.delta).toBeLessThan(1 / r.privateSize);
    expect(r.noiseMultiplier).toBeGreaterThan(0.3);
    expect(r.steps).toBe(r.plannedSteps);
    expect(r.steps).toBe(Math.ceil((8 * r.privateSize) / 64));
    expect(r.sampleRate).toBeCloseTo(64 / r.privateSize, 12);
    expect(r.seedMode).toBe('fixed-seed');
    expect(r.reproducible).toBe(true);
    expect(stderr).toMatch(/REPRODUCIBLE MODE/);
    expect(stdout).toMatch(/LoRA, private/);
    expect(stdout).toMatch(/FIXED SEED/);

    const task = buildSpamTask({ dim: 512, limit: 1200 });
    expect(r.heldoutSize).toBe(task.heldout.n);
    const chance = majorityRate(task.heldout.y);
    // Heldout has ~160 mails: 0.08 above the majority rate is > 2.5 binomial sd.
    expect(r.accuracy.privateLora).toBeGreaterThan(chance + 0.08);
    expect(r.accuracy.nonPrivateLora).toBeGreaterThan(chance + 0.08);
    expect(r.accuracy.privateLoraLastIterate).toBeNull(); // no --ema: the last iterate is released
    for (const v of Object.values<number | null>(r.accuracy))
      if (v !== null) expect(v).toBeLessThanOrEqual(1);

    // The adapter is loadable and reproduces the reported private accuracy exactly.
    const a = loadAdapter(path.join(out, 'adapter'));
    expect(a.config.peft_type).toBe('LORA');
    expect(a.config.r).toBe(8);
    expect(a.loras.map((l) => l.path)).toEqual(['fc1', 'fc2']);
    expect(Object.keys(a.extra).sort()).toEqual(['head.bias', 'head.weight']);
    const rep = loadPrivacyReport(path.join(out, 'adapter'))!;
    expect(rep.epsilon).toBe(r.epsilon);
    expect(rep.steps).toBe(r.steps);
    expect(rep.reproducibleSeed).toBe(true);
    const { base, cached } = pretrainedBase(
      { dim: 512, hidden: 32, classes: 2 },
      task.public!,
      'spam:1200',
    );
    expect(cached).toBe(true);
    const m = loraModel(base, { rank: 8, alpha: 16, method: 'vanilla', seed: 1 });
    loadAdapterInto(m, a);
    expect(accuracy(m, task.heldout, 512)).toBe(r.accuracy.privateLora);

    // The checkpoint holds the ledger of every step.
    const ck = loadCheckpoint(path.join(out, 'checkpoints'));
    expect(ck.state.step).toBe(r.steps);
    expect(ck.state.ledger).toBeTruthy();

    // Fixed seed = reproducible: the same seed gives a bit-identical adapter; the seed is not in the JSON.
    const out2 = path.join(tmpDir(), 'run-again');
    await run([...SMALL, '--seed', '0x5eed', '--no-baseline', '--out', out2]);
    const w1 = fs.readFileSync(path.join(out, 'adapter', 'adapter_model.safetensors'));
    const w2 = fs.readFileSync(path.join(out2, 'adapter', 'adapter_model.safetensors'));
    expect(w2.equals(w1)).toBe(true);
    expect(fs.readFileSync(json, 'utf8')).not.toMatch(/5eed/i);
  });

  test('--max-steps then --resume continues the same ledger to the same budget', async () => {
    const out = path.join(tmpDir(), 'resumable');
    const j1 = path.join(tmpDir(), 'r1.json');
    const j2 = path.join(tmpDir(), 'r2.json');
    await run([
      ...SMALL,
      '--no-baseline',
      '--out',
      out,
      '--json',
      j1,
      '--max-steps',
      '20',
      '--checkpoint-every',
      '7',
      '--lr-schedule',
      'linear',
      '--warmup',
      '0.1',
    ]);
    const r1 = JSON.parse(fs.readFileSync(j1, 'utf8'));
    expect(r1.steps).toBe(20);
    expect(r1.incomplete).toBe(true);
    expect(r1.epsilon).toBeLessThan(r1.targetEpsilon);
    expect(r1.seedMode).toBe('os-entropy');
    expect(r1.accountant).toBe('rdp');
    expect(loadCheckpoint(path.join(out, 'checkpoints')).state.step).toBe(20);

    // The schedule is part of the run: --resume continues it and refuses another.
    await expect(run(['--resume', out, '--lr-schedule', 'cosine'])).rejects.toThrow(
      /drop --lr-schedule/,
    );
    const { stdout: out2, stderr } = await run(['--resume', out, '--json', j2]);
    expect(out2).toMatch(/lr 0\.01, linear, warmup 0\.1,/);
    expect(stderr).toMatch(/resuming the run .* at step 20/);
    expect(stderr).toMatch(/base model loaded from .*base_model\.safetensors/);
    const r2 = JSON.parse(fs.readFileSync(j2, 'utf8'));
    expect(r2.resumed).toBe(true);
    expect(r2.steps).toBe(r1.plannedSteps);
    expect(r2.noiseMultiplier).toBe(r1.noiseMultiplier);
    // More steps on the same ledger spend more epsilon, still within the budget.
    expect(r2.epsilon).toBeGreaterThan(r1.epsilon);
    expect(r2.epsilon).toBeLessThanOrEqual(r2.targetEpsilon + 1e-9);

    // A checkpoint whose ledger was removed, or edited, cannot be resumed.
    const ckDir = loadCheckpoint(path.join(out, 'checkpoints')).dir;
    const lp = path.join(ckDir, 'ledger.json');
    const good = fs.readFileSync(lp);
    fs.rmSync(lp);
    await expect(run(['--resume', out])).rejects.toThrow(/missing ledger\.json/);
    const edited = JSON.parse(good.toString());
    edited.records[2].noiseMultiplier *= 2;
    fs.writeFileSync(lp, JSON.stringify(edited));
    await expect(run(['--resume', out])).rejects.toThrow(/ledger/);
    fs.writeFileSync(lp, good);
    // A different base model next to the checkpoint (a stale one in a reused folder) is refused.
    const basePath = path.join(out, 'base_model.safetensors');
    const goodBase = fs.readFileSync(basePath);
    const other = loadBaseWeights(basePath, { dim: 512, hidden: 32, classes: 2 });
    other.tensors['fc1.weight'][0] += 1;
    saveBaseWeights(basePath, other);
    await expect(run(['--resume', out])).rejects.toThrow(/base model is not the one/);
    fs.writeFileSync(basePath, goodBase);
    // A run directory in use by another live training is refused.
    fs.writeFileSync(
      path.join(out, 'run.lock'),
      JSON.stringify({ pid: process.pid, host: os.hostname() }),
    );
    await expect(run(['--resume', out])).rejects.toThrow(/in use by another training/);
    fs.rmSync(path.join(out, 'run.lock'));
    // Starting a new run there is refused without --overwrite.
    await expect(run([...SMALL, '--out', out])).rejects.toThrow(/already holds a run/);
  });

  test('steps charged after the last checkpoint stay charged on resume (journal)', async () => {
    const out = path.join(tmpDir(), 'killed');
    await run([
      ...SMALL,
      '--no-baseline',
      '--out',
      out,
      '--max-steps',
      '20',
      '--checkpoint-every',
      '7',
    ]);
    // As if killed after step 20 was charged and applied but before its checkpoint: the latest
    // checkpoint is step 14, the journal holds 20 steps.
    fs.writeFileSync(
      path.join(out, 'checkpoints', 'latest.json'),
      JSON.stringify({ dir: 'step-00000014', step: 14 }),
    );
    const j = path.join(tmpDir(), 'killed.json');
    const { stderr } = await run(['--resume', out, '--json', j, '--max-steps', '5']);
    expect(stderr).toMatch(/at step 14/);
    expect(stderr).toMatch(/ledger holds 20 charged steps/);
    const r = JSON.parse(fs.readFileSync(j, 'utf8'));
    expect(r.steps).toBe(25);
    const journal = fs
      .readFileSync(path.join(out, 'ledger.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(journal.filter((x) => x.kind === 'step')).toHaveLength(25);
  });

  test('option errors name the option', async () => {
    await expect(run(['--epsilon', '-1'])).rejects.toThrow(/--epsilon: must be a positive number/);
    await expect(run(['--seed', 'xyz'])).rejects.toThrow(/--seed: must be/);
    await expect(run(['--resume', path.join(tmpDir(), 'nothing')])).rejects.toThrow(
      /no checkpoint/,
    );
    expect(fs.existsSync(path.join(tmpDir(), 'nothing'))).toBe(false);
    await expect(run(['--resume', path.join(tmpDir(), 'run'), '--epsilon', '3'])).rejects.toThrow(
      /drop --epsilon/,
    );
    // Options --resume cannot honour are refused, not ignored.
    await expect(
      run(['--resume', path.join(tmpDir(), 'run'), '--hidden', '64', '--checkpoint-every', '3']),
    ).rejects.toThrow(/drop --hidden, --checkpoint-every/);
    await expect(run(['--resume', path.join(tmpDir(), 'run'), '--overwrite'])).rejects.toThrow(
      /--overwrite/,
    );
    await expect(run(['--method', 'bad'])).rejects.toThrow(/Allowed choices are ffa, vanilla/);
    // The use-lite options mean nothing to the MLP: refused, not ignored.
    await expect(run(['--max-tokens', '16'])).rejects.toThrow(
      /--max-tokens: applies to --model use-lite only/,
    );
    await expect(run(['--public-warm-start', '2'])).rejects.toThrow(
      /--public-warm-start: applies to --model use-lite only/,
    );
    await expect(run(['--model', 'use-lite', '--hidden', '64'])).rejects.toThrow(
      /--hidden: applies to --model mlp only/,
    );
  });

  // Regression: `--rank 1e9` used to end in "Invalid typed array length"; `--rank 0` said
  // "positive number" for an integer option. Each now fails before any work, naming the option.
  test.each([
    [['--rank', '1e9'], '--rank', /--rank: must be at most 256/],
    [['--rank', '0'], '--rank', /--rank: must be a positive integer, got "0"/],
    [['--rank', '2.5'], '--rank', /positive integer/],
    [['--dim', '64', '--hidden', '32', '--rank', '33'], '--rank', /at most 32/],
    [['--hidden', '1e6'], '--hidden', /at most 4096/],
    [['--dim', '65536', '--hidden', '4096'], '--hidden', /at most 16777216 weights/],
    [['--dim', '1'], '--dim', /at least 2/],
    [['--batch-size', '1e12'], '--batch-size', /at most/],
    [['--physical-batch-size', 'NaN'], '--physical-batch-size', /positive integer/],
    [['--epochs', '1e300'], '--epochs', /at most/],
    [['--checkpoint-every', '-1'], '--checkpoint-every', /positive integer/],
    [['--max-steps', '1.5'], '--max-steps', /positive integer/],
    [['--data', ''], '--data', /non-empty/],
    [['--limit', '3'], '--limit', /at least 20/],
  ])('%p is an InvalidArgumentError naming the option', async (args, option, re) => {
    await expectCodeAsync(run(args), 'ERR_DPLORA_INVALID_ARGUMENT', {
      argument: option,
      message: re,
    });
  });
});

describe('dp-lora train --data', () => {
  /** Synthetic labelled texts: class words plus shared filler, deterministic. */
  function synth(n: number, seed: number): Array<{ text: string; label: string }> {
    const words: Record<string, string[]> = {
      good: ['great', 'excellent', 'lovely', 'superb', 'delight', 'wonderful'],
      bad: ['awful', 'terrible', 'broken', 'refund', 'worst', 'horrible'],
    };
    const filler = [
      'the',
      'item',
      'arrived',
      'today',
      'and',
      'it',
      'was',
      'quite',
      'really',
      'box',
      'price',
      'shop',
    ];
    let s = seed;
    const r = () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0), s / 2 ** 32);
    const out = [];
    for (let i = 0; i < n; i++) {
      const label = r() < 0.5 ? 'good' : 'bad';
      const w: string[] = [];
      for (let k = 0; k < 12; k++)
        w.push(
          r() < 0.25 ? words[label][Math.floor(r() * 6)] : filler[Math.floor(r() * filler.length)],
        );
      out.push({ text: `${w.join(' ')}, "quoted" ${i}`, label });
    }
    return out;
  }
  const csv = (rows: Array<{ text: string; label: string }>) =>
    'label,review\n' +
    rows.map((x) => `${x.label},"${x.text.replace(/"/g, '""')}"`).join('\r\n') +
    '\n';
  const TINY = [
    '--accountant',
    'rdp',
    '--dim',
    '256',
    '--hidden',
    '16',
    '--epochs',
    '10',
    '--batch-size',
    '32',
    '--text-field',
    'review',
  ];

  test('CSV with a public file: pretrained base, private adapter above chance', async () => {
    const data = path.join(tmpDir(), 'reviews.csv');
    const pub = path.join(tmpDir(), 'public.csv');
    fs.writeFileSync(data, csv(synth(400, 1)));
    fs.writeFileSync(pub, csv(synth(300, 2)));
    const json = path.join(tmpDir(), 'user.json');
    await run([...TINY, '--data', data, '--public-data', pub, '--json', json, '--no-baseline']);
    const r = JSON.parse(fs.readFileSync(json, 'utf8'));
    expect(r.classes).toEqual(['bad', 'good']);
    expect(r.base.source).toBe('public-pretrained');
    expect(r.privateSize + r.heldoutSize).toBe(400);
    expect(r.accuracy.nonPrivateLora).toBeNull();
    expect(r.epsilon).toBeLessThanOrEqual(8 + 1e-9);
    // ~100 heldout examples, classes near 50/50: 0.7 is > 4 sd above chance.
    expect(r.accuracy.privateLora).toBeGreaterThan(0.7);
  });

  test('JSONL without public data: random frozen base, said so; bad fields are clear errors', async () => {
    const data = path.join(tmpDir(), 'reviews.jsonl');
    fs.writeFileSync(
      data,
      synth(300, 3)
        .map((x) => JSON.stringify({ review: x.text, label: x.label }))
        .join('\n'),
    );
    const json = path.join(tmpDir(), 'user2.json');
    const out = path.join(tmpDir(), 'ffa-run');
    const { stderr } = await run([
      ...TINY,
      '--data',
      data,
      '--json',
      json,
      '--no-baseline',
      '--method',
      'ffa',
      '--out',
      out,
    ]);
    const r = JSON.parse(fs.readFileSync(json, 'utf8'));
    expect(r.base.source).toBe('random');
    expect(r.method).toBe('ffa');
    // FFA: A stays at its (public) initialization, B and the head were trained.
    const a = loadAdapter(path.join(out, 'adapter'));
    expect(a.config.dplora?.method).toBe('ffa');
    const fresh = loraModel(
      loadBaseWeights(path.join(out, 'base_model.safetensors'), {
        dim: 256,
        hidden: 16,
        classes: 2,
      }),
      { rank: 8, alpha: 16, method: 'ffa', seed: LORA_SEED },
    );
    const fc1 = fresh.fc1 as LoraLinear;
    expect(Buffer.from(a.loras[0].loraA.buffer).equals(Buffer.from(fc1.loraA.buffer))).toBe(true);
    expect(a.loras[0].loraB.some((v) => v !== 0)).toBe(true);
    expect(stderr).not.toMatch(/private LoRA \[/); // no progress bar when output is not a terminal
    expect(stderr).toMatch(/randomly initialized and frozen/);
    expect(r.warnings.join('\n')).toMatch(/no public data/);
    await expect(run([...TINY, '--data', data, '--label-field', 'stars'])).rejects.toThrow(
      /no field "stars".*--label-field/,
    );
  });

  test('labels are public: a rare undeclared label is refused, never written out', async () => {
    const rows = synth(300, 5);
    rows[7].label = 'patient-4711-diagnosis';
    const data = path.join(tmpDir(), 'rare.csv');
    fs.writeFileSync(data, csv(rows));
    const out = path.join(tmpDir(), 'rare-run');
    let err: Error | undefined;
    try {
      await run([...TINY, '--data', data, '--out', out, '--no-baseline']);
    } catch (e) {
      err = e as Error;
    }
    expect(err?.message).toMatch(/fewer than 20 times.*--labels/);
    expect(err?.message).not.toMatch(/4711/);
    expect(fs.existsSync(path.join(out, 'adapter'))).toBe(false);
    // Declared labels: the rare value is accepted only if declared, in the declared order.
    await expect(
      run([...TINY, '--data', data, '--labels', 'good,bad', '--no-baseline']),
    ).rejects.toThrow(/not among the declared labels/);
    const json = path.join(tmpDir(), 'declared.json');
    await run([
      ...TINY,
      '--data',
      data,
      '--labels',
      'good,bad,patient-4711-diagnosis',
      '--no-baseline',
      '--json',
      json,
      '--epochs',
      '1',
    ]);
    expect(JSON.parse(fs.readFileSync(json, 'utf8')).classes).toEqual([
      'good',
      'bad',
      'patient-4711-diagnosis',
    ]);
  });
});

test('the adapter is a link switched atomically to the newest complete adapter', () => {
  const dir = fs.mkdtempSync(path.join(tmpDir(), 'publish-'));
  const m = loraModel(
    {
      shape: { dim: 8, hidden: 4, classes: 2 },
      tensors: randomBase({ dim: 8, hidden: 4, classes: 2 }, 1).tensors,
    },
    { rank: 2, alpha: 4, method: 'vanilla', seed: 1 },
  );
  const data = adapterOf(m, { rank: 2, alpha: 4, method: 'vanilla', seed: 1 }, 'base', {});
  const report = {
    epsilon: 1,
    delta: 1e-5,
    noiseMultiplier: 1,
    maxGradNorm: 1,
    sampleRate: 0.1,
    steps: 1,
    accountant: 'rdp',
    reproducibleSeed: false,
  };
  for (const step of [1, 2, 3]) publishAdapter(dir, step, data, { ...report, steps: step });
  const link = path.join(dir, 'adapter');
  expect(fs.lstatSync(link).isSymbolicLink()).toBe(true);
  expect(fs.readlinkSync(link)).toBe(path.join('adapters', 'step-00000003'));
  expect(loadPrivacyReport(link)!.steps).toBe(3);
  expect(fs.readdirSync(path.join(dir, 'adapters')).sort()).toEqual([
    'step-00000002',
    'step-00000003',
  ]);
  expect(fs.readdirSync(dir).filter((d) => d.includes('.tmp-'))).toEqual([]);
});
