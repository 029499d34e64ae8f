/**
 * End to end: `dp-lora train` on a slice of the built-in corpus (--limit), in-process.
 * Checks the privacy numbers against the budget, accuracy against the majority-class rate,
 * the JSON keys, that the saved adapter reproduces the reported accuracy, and that --resume
 * continues the same ledger (never resets it).
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { buildProgram } from '../lib/cli/main';
import { loadAdapter, loadPrivacyReport } from '../lib/io/peft_adapter';
import { loadCheckpoint } from '../lib/io/checkpoint';
import { buildSpamTask } from '../lib/cli/train_task';
import { accuracy, loadAdapterInto, loraModel, pretrainedBase } from '../lib/cli/train_model';

const SMALL = ['--limit', '1200', '--dim', '512', '--hidden', '32', '--epochs', '8', '--batch-size', '64'];

let tmp: string;
let oldCache: string | undefined;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dplora-cli-'));
  oldCache = process.env.DPLORA_CACHE_DIR;
  process.env.DPLORA_CACHE_DIR = path.join(tmp, 'cache');
});
afterAll(() => {
  if (oldCache === undefined) delete process.env.DPLORA_CACHE_DIR;
  else process.env.DPLORA_CACHE_DIR = oldCache;
  fs.rmSync(tmp, { recursive: true, force: true });
});

async function run(args: string[]): Promise<{ stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const o = jest.spyOn(process.stdout, 'write').mockImplementation((s: any) => ((stdout += String(s)), true));
  const e = jest.spyOn(process.stderr, 'write').mockImplementation((s: any) => ((stderr += String(s)), true));
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

function majorityRate(y: Int32Array): number {
  const c = new Map<number, number>();
  for (const v of y) c.set(v, (c.get(v) ?? 0) + 1);
  return Math.max(...c.values()) / y.length;
}

describe('dp-lora train (end to end)', () => {
  test('trains privately within budget, beats chance, writes a loadable adapter and JSON', async () => {
    const out = path.join(tmp, 'run');
    const json = path.join(tmp, 'result.json');
    const { stdout, stderr } = await run([...SMALL, '--seed', '0x5eed', '--out', out, '--json', json]);
    const r = JSON.parse(fs.readFileSync(json, 'utf8'));
    for (const k of ['targetEpsilon', 'epsilon', 'delta', 'noiseMultiplier', 'maxGradNorm', 'sampleRate', 'steps', 'accountant', 'accuracy', 'seedMode', 'reproducible', 'wallTimeSeconds', 'samplesPerSecond']) {
      expect(r).toHaveProperty(k);
    }
    expect(r.targetEpsilon).toBe(8);
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
    for (const v of Object.values(r.accuracy) as number[]) expect(v).toBeLessThanOrEqual(1);

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
    const { base, cached } = pretrainedBase({ dim: 512, hidden: 32, classes: 2 }, task.public!, 'spam:1200');
    expect(cached).toBe(true);
    const m = loraModel(base, { rank: 8, alpha: 16, method: 'vanilla', seed: 1 });
    loadAdapterInto(m, a);
    expect(accuracy(m, task.heldout, 512)).toBe(r.accuracy.privateLora);

    // The checkpoint holds the ledger of every step.
    const ck = loadCheckpoint(path.join(out, 'checkpoints'));
    expect(ck.state.step).toBe(r.steps);
    expect(ck.state.ledger).toBeTruthy();
  });

  test('--max-steps then --resume continues the same ledger to the same budget', async () => {
    const out = path.join(tmp, 'resumable');
    const j1 = path.join(tmp, 'r1.json');
    const j2 = path.join(tmp, 'r2.json');
    await run([...SMALL, '--no-baseline', '--out', out, '--json', j1, '--max-steps', '20', '--checkpoint-every', '7']);
    const r1 = JSON.parse(fs.readFileSync(j1, 'utf8'));
    expect(r1.steps).toBe(20);
    expect(r1.incomplete).toBe(true);
    expect(r1.epsilon).toBeLessThan(r1.targetEpsilon);
    expect(r1.seedMode).toBe('os-entropy');
    expect(loadCheckpoint(path.join(out, 'checkpoints')).state.step).toBe(20);

    const { stderr } = await run(['--resume', out, '--json', j2]);
    expect(stderr).toMatch(/resuming the run .* at step 20/);
    const r2 = JSON.parse(fs.readFileSync(j2, 'utf8'));
    expect(r2.resumed).toBe(true);
    expect(r2.steps).toBe(r1.plannedSteps);
    expect(r2.noiseMultiplier).toBe(r1.noiseMultiplier);
    // More steps on the same ledger spend more epsilon, still within the budget.
    expect(r2.epsilon).toBeGreaterThan(r1.epsilon);
    expect(r2.epsilon).toBeLessThanOrEqual(r2.targetEpsilon + 1e-9);

    // A checkpoint whose ledger was removed cannot be resumed.
    const ckDir = loadCheckpoint(path.join(out, 'checkpoints')).dir;
    const sp = path.join(ckDir, 'state.json');
    const doc = JSON.parse(fs.readFileSync(sp, 'utf8'));
    delete doc.state.ledger;
    fs.writeFileSync(sp, JSON.stringify(doc));
    await expect(run(['--resume', out])).rejects.toThrow(/ledger is missing/);
  });

  test('option errors name the option', async () => {
    await expect(run(['--epsilon', '-1'])).rejects.toThrow(/--epsilon must be a positive number/);
    await expect(run(['--seed', 'xyz'])).rejects.toThrow(/--seed must be/);
    await expect(run(['--resume', path.join(tmp, 'nothing')])).rejects.toThrow(/no checkpoint/);
    await expect(run(['--resume', path.join(tmp, 'run'), '--epsilon', '3'])).rejects.toThrow(/drop --epsilon/);
    await expect(run(['--method', 'bad'])).rejects.toThrow(/Allowed choices are ffa, vanilla/);
  });
});
