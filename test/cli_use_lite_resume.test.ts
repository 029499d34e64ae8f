/**
 * `dp-lora train --model use-lite` in a run directory (issue 10 section 2, issue 11): the run
 * goes through PrivateTrainer, so its directory has every guarantee of the MLP one. A run
 * stopped by --max-steps, by SIGTERM or by SIGKILL is continued with `--resume`: the ledger's
 * step count is intact (steps journaled before the kill stay charged, never re-run with fresh
 * noise for free), the chain verifies, and the finished run spends exactly the planned budget
 * (checked against the RDP formula for the planned steps). A tampered checkpoint part, a
 * different base model (USE-Lite files), a live lock and conflicting options are refused with
 * typed errors; --overwrite archives the old run.
 */
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { useTempDir, runTrainCli as run, spawnTrain } from './helpers/cli';
import { SMALL_USE_LITE } from './helpers/use_lite_cli';
import { runUseLiteTrain } from '../lib/cli/train_use_lite';
import { loadCheckpoint } from '../lib/io/checkpoint';
import { PrivacyLedger } from '../lib/accounting/privacy_ledger';
import { DEFAULT_ORDERS, computeRdp } from '../lib/accounting/rdp';
import { rdpToEpsilon } from '../lib/accounting/conversion';
import { defaultUseLiteDir } from '../lib/models/use_lite/model';
import { expectCodeAsync } from './helpers/errors';

jest.setTimeout(600_000);

const tmpDir = useTempDir('dplora-use-resume-');

/** A small use-lite run (see {@link SMALL_USE_LITE}). */
const SMALL = SMALL_USE_LITE;
/** {@link SMALL} for one epoch, written to `out`. */
const oneEpoch = (out: string): string[] => [...SMALL, '--epochs', '1', '--out', out];

interface Rec {
  kind: string;
  sampleRate?: number;
  noiseMultiplier?: number;
}
function journal(dir: string): Rec[] {
  const text = fs.readFileSync(path.join(dir, 'ledger.jsonl'), 'utf8');
  const lines = text.split('\n');
  lines.pop(); // after the last newline: empty, or a record cut by a kill (never applied)
  return lines.map((l) => JSON.parse(l) as Rec);
}
const stepsOf = (recs: Rec[]) => recs.filter((r) => r.kind === 'step').length;

interface Result {
  steps: number;
  plannedSteps: number;
  epsilon: number;
  targetEpsilon: number;
  delta: number;
  noiseMultiplier: number;
  incomplete: boolean;
  resumed: boolean;
  adapterDir: string | null;
}
const readJson = (f: string) => JSON.parse(fs.readFileSync(f, 'utf8')) as Result;

/** epsilon of `steps` Poisson-subsampled Gaussian steps, straight from the RDP formulas. */
function rdpEpsilon(q: number, z: number, steps: number, delta: number): number {
  const rdp = computeRdp({ sampleRate: q, noiseMultiplier: z, steps, orders: DEFAULT_ORDERS });
  return rdpToEpsilon(DEFAULT_ORDERS, rdp, delta).epsilon;
}

/** The full ledger of the run in `dir`, verified (hash chain), and the latest checkpoint. */
function verified(dir: string) {
  const ledger = PrivacyLedger.fromJSON(journal(dir));
  const ck = loadCheckpoint(path.join(dir, 'checkpoints'));
  expect(ck.state.ledger.isPrefixOf(ledger)).toBe(true);
  return { ledger, ck };
}

test('--max-steps then --resume: same ledger, planned budget spent exactly, base hash recorded', async () => {
  const out = path.join(tmpDir(), 'a');
  const j1 = path.join(tmpDir(), 'a1.json');
  const j2 = path.join(tmpDir(), 'a2.json');
  await run([...oneEpoch(out), '--json', j1, '--max-steps', '3', '--checkpoint-every', '2']);
  const r1 = readJson(j1);
  expect(r1.steps).toBe(3);
  expect(r1.incomplete).toBe(true);
  expect(r1.plannedSteps).toBeGreaterThan(3);
  const first = verified(out);
  expect(first.ck.state.step).toBe(3);
  expect(first.ledger.steps).toBe(3);
  // The manifest records the base: the hash of the USE-Lite files (model.json, shards, vocab),
  // computed here independently from the package's files.
  const dir = defaultUseLiteDir();
  const m = JSON.parse(fs.readFileSync(path.join(dir, 'model.json'), 'utf8')) as {
    weightsManifest: Array<{ paths: string[] }>;
  };
  const files = ['model.json', ...m.weightsManifest.flatMap((g) => g.paths), 'vocab.json'];
  expect(files.length).toBeGreaterThanOrEqual(9);
  const lines = files
    .map(
      (f) =>
        `${crypto
          .createHash('sha256')
          .update(fs.readFileSync(path.join(dir, f)))
          .digest('hex')}  ${path.basename(f)}\n`,
    )
    .join('');
  expect(first.ck.manifest.baseModelSha256).toBe(
    crypto.createHash('sha256').update(lines).digest('hex'),
  );

  // --resume alone knows the model from the checkpoint.
  const { stderr } = await run(['--resume', out, '--json', j2, '--no-progress']);
  expect(stderr).toMatch(/resuming the run .* at step 3/);
  expect(stderr).toMatch(/the ledger holds 3 charged steps/);
  const r2 = readJson(j2);
  expect(r2.resumed).toBe(true);
  expect(r2.incomplete).toBe(false);
  expect(r2.steps).toBe(r1.plannedSteps);
  expect(r2.noiseMultiplier).toBe(r1.noiseMultiplier);
  const { ledger, ck } = verified(out);
  expect(ledger.runId).toBe(first.ledger.runId);
  expect(first.ledger.isPrefixOf(ledger)).toBe(true);
  expect(ledger.steps).toBe(r1.plannedSteps);
  expect(ck.state.step).toBe(r1.plannedSteps);
  // Exactly the planned budget: the epsilon of plannedSteps steps at the run's (q, z).
  const steps = journal(out).filter((r) => r.kind === 'step');
  const q = steps[0].sampleRate!;
  expect(steps.every((s) => s.sampleRate === q && s.noiseMultiplier === r1.noiseMultiplier)).toBe(
    true,
  );
  const want = rdpEpsilon(q, r1.noiseMultiplier, r1.plannedSteps, r2.delta);
  expect(r2.epsilon).toBeCloseTo(want, 9);
  expect(r2.epsilon).toBeLessThanOrEqual(r2.targetEpsilon);
  // The adapter and its report come from the finished ledger.
  const report = JSON.parse(
    fs.readFileSync(path.join(out, 'adapter', 'privacy_report.json'), 'utf8'),
  ) as { steps: number; epsilon: number; runId: string; ledgerHead: string };
  expect(report.steps).toBe(r1.plannedSteps);
  expect(report.runId).toBe(ledger.runId);
  expect(report.ledgerHead).toBe(ledger.head);

  // --- refusals on this finished run directory
  // conflicting options, and a different --model
  await expect(run(['--resume', out, '--max-tokens', '32'])).rejects.toThrow(/drop --max-tokens/);
  await expect(run(['--resume', out, '--model', 'mlp'])).rejects.toThrow(
    /trained --model use-lite/,
  );
  // a live lock: ERR_DPLORA_RUN_LOCKED, for a resume and for a new run alike
  fs.writeFileSync(
    path.join(out, 'run.lock'),
    JSON.stringify({ pid: process.pid, host: os.hostname() }),
  );
  await expectCodeAsync(run(['--resume', out]), 'ERR_DPLORA_RUN_LOCKED');
  await expectCodeAsync(run([...SMALL, '--out', out]), 'ERR_DPLORA_RUN_LOCKED');
  fs.rmSync(path.join(out, 'run.lock'));
  // a new run over it without --overwrite
  await expectCodeAsync(run([...SMALL, '--out', out]), 'ERR_DPLORA_INVALID_ARGUMENT', {
    message: /already holds a run/,
  });
  // a tampered checkpoint part
  const tensors = path.join(ck.dir, 'tensors.safetensors');
  const good = fs.readFileSync(tensors);
  const bad = Buffer.from(good);
  bad[bad.length - 3] ^= 0x40;
  fs.writeFileSync(tensors, bad);
  await expectCodeAsync(run(['--resume', out]), 'ERR_DPLORA_CHECKPOINT', {
    message: /tensors\.safetensors: does not match the manifest/,
  });
  fs.writeFileSync(tensors, good);
  expect(fs.existsSync(path.join(out, 'run.lock'))).toBe(false); // released after each refusal
});

test('a different base model (USE-Lite files) is refused; the same files elsewhere are accepted', async () => {
  const out = path.join(tmpDir(), 'b');
  await run([...oneEpoch(out), '--max-steps', '2']);
  // A copy of the model folder with one weight flipped.
  const src = defaultUseLiteDir();
  const copy = path.join(tmpDir(), 'use-lite-copy');
  fs.cpSync(src, copy, { recursive: true });
  const m = JSON.parse(fs.readFileSync(path.join(copy, 'model.json'), 'utf8')) as {
    weightsManifest: Array<{ paths: string[] }>;
  };
  const shard = path.join(copy, m.weightsManifest[0].paths[0]);
  const orig = fs.readFileSync(shard);
  const changed = Buffer.from(orig);
  changed[1000] ^= 0x01;
  fs.writeFileSync(shard, changed);
  const silent = { log: () => undefined, print: () => undefined };
  await expectCodeAsync(
    runUseLiteTrain(undefined, undefined, { ...silent, resume: out, modelDir: copy }),
    'ERR_DPLORA_CHECKPOINT',
    { message: /base model is not the one this checkpoint was trained on/ },
  );
  expect(stepsOf(journal(out))).toBe(2); // nothing was charged
  // The same bytes in another folder are the same base: the resume runs.
  fs.writeFileSync(shard, orig);
  const r = await runUseLiteTrain(undefined, undefined, {
    ...silent,
    resume: out,
    modelDir: copy,
    maxSteps: 1,
  });
  expect(r.resumed).toBe(true);
  expect(r.steps).toBe(3);
  expect(PrivacyLedger.fromJSON(journal(out)).steps).toBe(3);
});

test('--overwrite archives the old run (its ledger kept) and starts a new ledger', async () => {
  const out = path.join(tmpDir(), 'b');
  const old = PrivacyLedger.fromJSON(journal(out));
  const j = path.join(tmpDir(), 'b2.json');
  await run([...oneEpoch(out), '--max-steps', '1', '--overwrite', '--json', j]);
  const archived = fs.readdirSync(path.join(out, 'archive'));
  expect(archived).toHaveLength(1);
  expect(archived[0]).toContain(old.runId);
  const kept = fs
    .readFileSync(path.join(out, 'archive', archived[0], 'ledger.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as unknown);
  expect(PrivacyLedger.fromJSON(kept).head).toBe(old.head);
  const now = PrivacyLedger.fromJSON(journal(out));
  expect(now.runId).not.toBe(old.runId);
  expect(now.steps).toBe(1);
  expect(readJson(j).resumed).toBe(false);
});

/**
 * Starts a use-lite run into `out` in a child process, with one checkpoint at step 0 only
 * (--checkpoint-every is large), and waits until `n` steps are journaled.
 */
async function startAndWait(out: string, n: number) {
  const c = spawnTrain(
    [...SMALL, '--epochs', '6', '--out', out, '--checkpoint-every', '100000'],
    path.join(tmpDir(), 'cache'),
  );
  for (let i = 0; i < 6000; i++) {
    try {
      if (stepsOf(journal(out)) >= n) return c;
    } catch {
      /* no journal yet */
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`no ${n} steps journaled; stderr:\n${c.stderr()}`);
}

test('SIGKILL mid-run: resume keeps every journaled step charged and finishes the planned budget', async () => {
  const out = path.join(tmpDir(), 'killed');
  // One checkpoint at step 0 only (--checkpoint-every is large): every step the process takes
  // before the kill is journaled after that checkpoint.
  const c = await startAndWait(out, 3);
  c.p.kill('SIGKILL');
  const { signal } = await c.done;
  expect(signal).toBe('SIGKILL');
  const before = journal(out);
  const charged = stepsOf(before);
  expect(charged).toBeGreaterThanOrEqual(3);
  expect(loadCheckpoint(path.join(out, 'checkpoints')).state.step).toBe(0);
  expect(fs.existsSync(path.join(out, 'run.lock'))).toBe(true); // stale: its process is gone

  const j = path.join(tmpDir(), 'killed.json');
  const { stderr } = await run(['--resume', out, '--json', j, '--max-steps', '2']);
  expect(stderr).toMatch(/taking over a stale lock/);
  expect(stderr).toMatch(/at step 0/);
  expect(stderr).toMatch(new RegExp(`the ledger holds ${charged} charged steps`));
  const r = readJson(j);
  // The steps journaled before the kill stay charged: this session adds exactly 2.
  expect(r.steps).toBe(charged + 2);
  const after = journal(out);
  expect(JSON.stringify(after.slice(0, before.length))).toBe(JSON.stringify(before));
  const ledger = PrivacyLedger.fromJSON(after);
  expect(ledger.steps).toBe(charged + 2);

  // Finish: the whole run charged exactly plannedSteps steps and spends the planned budget.
  const j2 = path.join(tmpDir(), 'killed2.json');
  await run(['--resume', out, '--json', j2]);
  const r2 = readJson(j2);
  expect(r2.steps).toBe(r2.plannedSteps);
  const fin = verified(out);
  expect(fin.ledger.steps).toBe(r2.plannedSteps);
  expect(fin.ledger.runId).toBe(ledger.runId);
  const q = after.find((x) => x.kind === 'step')!.sampleRate!;
  expect(r2.epsilon).toBeCloseTo(rdpEpsilon(q, r2.noiseMultiplier, r2.plannedSteps, r2.delta), 9);
  expect(r2.epsilon).toBeLessThanOrEqual(r2.targetEpsilon);
});

test('SIGTERM: finishes the step, checkpoints what the journal holds, writes the adapter, exits 143', async () => {
  const out = path.join(tmpDir(), 'term');
  const c = await startAndWait(out, 2);
  c.p.kill('SIGTERM');
  const { code, signal } = await c.done;
  expect({ code, signal }).toEqual({ code: 143, signal: null });
  expect(c.stderr()).toMatch(/SIGTERM: finishing the current step/);
  const { ledger, ck } = verified(out);
  expect(ck.state.step).toBe(ledger.steps);
  expect(ck.state.step).toBeGreaterThanOrEqual(2);
  const report = JSON.parse(
    fs.readFileSync(path.join(out, 'adapter', 'privacy_report.json'), 'utf8'),
  ) as { steps: number; ledgerHead: string };
  expect(report.steps).toBe(ledger.steps);
  expect(report.ledgerHead).toBe(ledger.head);
  expect(fs.existsSync(path.join(out, 'run.lock'))).toBe(false);
});
