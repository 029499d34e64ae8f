/**
 * What every `dp-lora train` model shares around its PrivateTrainer: output paths checked and
 * the run directory locked before any work, the saved run memo on `--resume`, the fit with
 * SIGINT/SIGTERM checkpointing and a progress bar, and the closing outputs (privacy report from
 * the ledger, adapter published atomically, --json, the printed summary).
 */
import * as fs from 'fs';
import * as path from 'path';
import * as cliProgress from 'cli-progress';
import { atomicWriteFile } from '../io/atomic';
import { loadCheckpoint } from '../io/checkpoint';
import { AdapterData, PrivacyReport, saveAdapter } from '../io/peft_adapter';
import type { FitResult, ResumeTrainerOptions, TrainerDataset } from '../trainer/private_trainer';
import type { Module } from '../nn/module';
import type { Parameter } from '../nn/tensor';
import type { Optimizer } from '../optim/optimizer';
import { crossEntropyLoss } from '../nn/losses';
import { PrivateTrainer, loadRunCheckpoint } from '../trainer/private_trainer';
import { CHECKPOINTS_DIR, RunDirectory, validateOutputFile } from '../trainer/run_dir';
import { CheckpointError, DpLoraError, ErrorCode, InvalidArgumentError } from '../errors';
import type { PrivacyEngine } from '../privacy/privacy_engine';
import { fmtPct, privacyRows, table } from './summary';
import { OptionError } from './train_options';
import type { TrainConfig } from './train_options';

/** Where a run writes (all optional). */
export interface TrainIo {
  out?: string;
  resume?: string;
  json?: string;
  /** Show a progress bar (default: when stdout and stderr are TTYs). */
  progress?: boolean;
  /** Stop after this many private steps in this session (the run can be resumed). */
  maxSteps?: number;
  /** Start a new run in `out` even if it holds one (the old run is archived, never deleted). */
  overwrite?: boolean;
  /** Stops the private training after the current step (checkpointed; resume later). */
  signal?: AbortSignal;
  /** Informational lines (default: stderr). */
  log?: (line: string) => void;
  /** Final human-readable output (default: stdout). */
  print?: (text: string) => void;
}

/** Logging and warnings of one run. */
export interface RunContext {
  t0: number;
  log: (s: string) => void;
  print: (s: string) => void;
  warnings: string[];
  warn: (m: string) => void;
}

/**
 * Checks every output path and opens (locks) the run directory before any work, runs `body`,
 * and releases the directory whatever happens.
 */
export async function withTrainRun<R>(
  io: TrainIo,
  body: (run: RunDirectory | null, ctx: RunContext) => Promise<R>,
): Promise<R> {
  const log = io.log ?? ((s: string) => process.stderr.write(s + '\n'));
  const warnings: string[] = [];
  const ctx: RunContext = {
    t0: Date.now(),
    log,
    print: io.print ?? ((s: string) => process.stdout.write(s + '\n')),
    warnings,
    warn: (m: string) => {
      warnings.push(m);
      log(`warning: ${m}`);
    },
  };
  if (io.json) validateOutputFile(io.json, '--json');
  if (io.resume && io.out && path.resolve(io.out) !== path.resolve(io.resume))
    throw new OptionError(
      '--resume continues a run in its own directory; drop --out or give the same directory',
    );
  if (io.resume && io.overwrite)
    throw new OptionError('--overwrite starts a new run; it cannot be combined with --resume');
  const outDir = io.resume ?? io.out;
  const run = outDir
    ? RunDirectory.open(outDir, {
        mode: io.resume ? 'resume' : 'new',
        overwrite: io.overwrite,
        log,
        argument: io.resume ? '--resume' : '--out',
      })
    : null;
  try {
    return await body(run, ctx);
  } finally {
    run?.release();
  }
}

/**
 * The memo (`runInfo`) saved with the latest checkpoint of the run being resumed; the whole
 * checkpoint is verified first, including the base model's hash when `baseModelFile` is given.
 */
export function loadRunMemo(
  run: RunDirectory,
  baseModelFile: string | readonly string[] | undefined,
  log: (s: string) => void,
): { memo: Record<string, unknown>; step: number } {
  const ck = loadRunCheckpoint(run, baseModelFile, true);
  const memo = (ck.state.run as { info?: unknown }).info;
  if (!memo || typeof memo !== 'object' || !(memo as { config?: unknown }).config)
    throw new OptionError(`--resume ${run.dir}: the checkpoint has no run configuration`);
  log(
    `resuming the run in ${run.dir} at step ${ck.state.step} (ledger restored: it cannot be reset)`,
  );
  return { memo: memo as Record<string, unknown>, step: ck.state.step };
}

/**
 * The model a saved run trained (`'mlp'` or `'use-lite'`), read from its latest checkpoint;
 * null when the directory holds no readable checkpoint (the resume itself then says why).
 */
export function savedRunModel(dir: string): string | null {
  try {
    const ck = loadCheckpoint(path.join(dir, CHECKPOINTS_DIR));
    const memo = (ck.state.run as { info?: { model?: unknown } }).info;
    if (!memo || typeof memo !== 'object') return null;
    return typeof memo.model === 'string' ? memo.model : 'mlp';
  } catch {
    return null;
  }
}

/** Seconds of private training, over every session of a run. */
export class TrainClock {
  private since: number | null = null;
  constructor(private seconds = 0) {}
  /** Starts (or restarts) the clock. */
  start(): void {
    this.since = Date.now();
  }
  /** Stops the clock, adding the time since start. */
  stop(): void {
    if (this.since !== null) this.seconds += (Date.now() - this.since) / 1000;
    this.since = null;
  }
  /** Seconds so far. */
  total(): number {
    return this.seconds + (this.since !== null ? (Date.now() - this.since) / 1000 : 0);
  }
}

/**
 * Runs `trainer.fit` with a progress bar (on a TTY) and SIGINT/SIGTERM handling: the first
 * signal finishes the current step, then the trainer checkpoints; a second exits at once.
 */
async function fitWithSignals<T>(
  trainer: PrivateTrainer<T>,
  io: TrainIo,
  ctx: RunContext,
  clock: TrainClock,
  label: string,
): Promise<{ fit: FitResult; interrupted: NodeJS.Signals | null }> {
  const engine = trainer.engine;
  const plannedSteps = trainer.plannedSteps;
  engine.remainingSteps(); // first budget verification (accountant work) before the clock starts
  const showBar = io.progress ?? (!!process.stdout.isTTY && !!process.stderr.isTTY);
  const bar = showBar
    ? new cliProgress.SingleBar(
        {
          format: `${label} [{bar}] {value}/{total} steps | loss {loss} | eps {eps} | {rate} samples/s | ETA {eta_formatted}`,
          hideCursor: true,
          etaBuffer: 50,
        },
        cliProgress.Presets.shades_classic,
      )
    : null;
  bar?.start(plannedSteps, engine.steps, {
    loss: '-',
    eps: engine.getEpsilon().toFixed(3),
    rate: '-',
  });
  let lastEpsAt = Date.now();
  let epsCostMs = 0;
  let lossEma = NaN;
  let lastLog = Date.now();
  const samplesAtStart = trainer.samples;
  const ac = new AbortController();
  const onAbort = () => ac.abort();
  io.signal?.addEventListener('abort', onAbort);
  if (io.signal?.aborted) ac.abort();
  let interrupted: NodeJS.Signals | null = null;
  const handlers = (['SIGINT', 'SIGTERM'] as const).map((sig) => {
    const h = () => {
      if (interrupted) process.exit(128 + (interrupted === 'SIGINT' ? 2 : 15));
      interrupted = sig;
      ctx.log(
        `\n${sig}: finishing the current step, then saving (send it again to abort without saving)`,
      );
      ac.abort();
    };
    process.on(sig, h);
    return [sig, h] as const;
  });
  clock.start();
  const tStart = Date.now();
  let fit: FitResult;
  try {
    fit = await trainer.fit({
      maxSteps: io.maxSteps,
      signal: ac.signal,
      onProgress: (p) => {
        if (p.batchSize > 0)
          lossEma = Number.isNaN(lossEma) ? p.loss : 0.9 * lossEma + 0.1 * p.loss;
        const now = Date.now();
        if (!bar) {
          if (now - lastLog > 10000) {
            lastLog = now;
            ctx.log(`  step ${p.step}/${plannedSteps}, eps ${p.epsilon().toFixed(3)}`);
          }
          return;
        }
        const payload: Record<string, string> = {
          loss: Number.isNaN(lossEma) ? '-' : lossEma.toFixed(4),
          rate: (
            (trainer.samples - samplesAtStart) /
            Math.max(1e-3, (now - tStart) / 1000)
          ).toFixed(0),
        };
        // epsilon for display: at most every max(1 s, 5x its own cost) (PLD is not free)
        if (now - lastEpsAt > Math.max(1000, 5 * epsCostMs)) {
          payload.eps = p.epsilon().toFixed(3);
          epsCostMs = Date.now() - now;
          lastEpsAt = Date.now();
        }
        bar.update(p.step, payload);
      },
    });
  } finally {
    for (const [sig, h] of handlers) process.removeListener(sig, h);
    io.signal?.removeEventListener('abort', onAbort);
    clock.stop();
    if (bar) {
      bar.update(engine.steps, { eps: engine.getEpsilon().toFixed(3) });
      bar.stop();
    }
  }
  if (fit.stoppedByBudget) ctx.warn(`privacy budget exhausted after ${fit.steps} steps`);
  if (interrupted) process.exitCode = interrupted === 'SIGINT' ? 130 : 143;
  return { fit, interrupted };
}

/** The privacy report saved with the adapter: every privacy figure comes from the ledger. */
export function privacyReportOf(
  engine: PrivacyEngine,
  o: { delta: number; targetEpsilon: number; datasetSize: number; trainedParameters: string },
): PrivacyReport {
  const lr = engine.report();
  const pc = engine.config;
  return {
    epsilon: lr.epsilon,
    delta: o.delta,
    targetEpsilon: o.targetEpsilon,
    noiseMultiplier: pc.noiseMultiplier,
    maxGradNorm: pc.maxGradNorm,
    sampleRate: pc.sampleRate,
    steps: lr.steps,
    accountant: lr.accountant,
    reproducibleSeed: lr.reproducible,
    private: lr.private,
    statement: lr.statement,
    runId: lr.runId,
    ledgerHead: lr.ledgerHead,
    datasetSize: o.datasetSize,
    expectedBatchSize: pc.expectedBatchSize,
    sampling: pc.sampling,
    trainedParameters: o.trainedParameters,
  };
}

/**
 * Writes the adapter of step `step` to `adapters/step-N/` and then points the `adapter` link at
 * it with one atomic rename, so that `adapter` always names a complete adapter (never a moment
 * with none). The two newest adapters are kept. Returns the `adapter` path.
 */
export function publishAdapter(
  dir: string,
  step: number,
  adapter: AdapterData,
  report: PrivacyReport,
): string {
  const name = `step-${String(step).padStart(8, '0')}`;
  const store = path.join(dir, 'adapters');
  saveAdapter(path.join(store, name), adapter, report);
  const link = path.join(dir, 'adapter');
  const tmp = path.join(dir, `.adapter.tmp-${process.pid}-${Date.now().toString(16)}`);
  fs.symlinkSync(path.join('adapters', name), tmp, 'junction');
  fs.renameSync(tmp, link);
  const old = fs
    .readdirSync(store)
    .filter((d) => /^step-\d{8}$/.test(d))
    .sort();
  for (const d of old.slice(0, Math.max(0, old.length - 2)))
    if (d !== name) fs.rmSync(path.join(store, d), { recursive: true, force: true });
  return link;
}

/** The run around a model's private phase (see {@link startTrainer}). */
export interface SessionContext {
  cfg: TrainConfig;
  run: RunDirectory | null;
  io: TrainIo;
  ctx: RunContext;
  delta: number;
  /** Private training time over all sessions (saved with every checkpoint). */
  clock: TrainClock;
  /** Continue the run saved in `run` (else a new run). */
  resumed: boolean;
}

/** The model's part of {@link startTrainer}. */
export interface SessionModel {
  model: Module;
  data: TrainerDataset<Int32Array>;
  /** The frozen base model's file(s), whose hash every checkpoint records. */
  baseModelFile: string | readonly string[] | undefined;
  /** What a resume needs besides the trainer's own state (the model's settings, accuracies). */
  memo: Record<string, unknown>;
  /** The optimizer over the trainable parameters (default: Adam with the configuration's lr). */
  optimizer?: (params: Parameter[]) => Optimizer;
}

/** What {@link TrainSession.finish} needs from a model. */
export interface FinishSpec {
  /** Which parameters were trained (for the report). */
  trainedParameters: string;
  /** The adapter to publish (called only with a run directory). */
  adapter: () => AdapterData;
  /** Title line of the summary. */
  title: string;
  /** Label of the base model's accuracy row. */
  baseLabel: string;
  /** A row after the base's: the starting point the private run and the reference share. */
  warmStart?: {
    /** Its label. */
    label: string;
    /** Its held-out accuracy (null: not known). */
    accuracy: number | null;
  };
  /**
   * Held-out accuracy of the base, the non-private reference (null: skipped) and the private
   * model (with `--ema`: the average's, and the last iterate's in `privateLastIterate`).
   */
  accuracy: {
    base: number | null;
    nonPrivate: number | null;
    private: number;
    privateLastIterate?: number | null;
  };
}

/** What every model's result shares, handed to the model's result builder. */
export interface FinishCommon {
  report: PrivacyReport;
  adapterDir: string | null;
  wall: number;
  stoppedByBudget: boolean;
  incomplete: boolean;
}

/** One session of a model's private phase: its trainer, fit and closing outputs. */
export class TrainSession {
  private fitResult: FitResult | null = null;

  constructor(
    /** The trainer (new or resumed). */
    readonly trainer: PrivateTrainer<Int32Array>,
    private readonly s: SessionContext,
  ) {}

  /**
   * With `--ema`: measures the last iterate with `evaluate`, then writes the run's parameter
   * average into the model, which is what the run releases (the adapter and the private
   * accuracy). Call after {@link TrainSession.fit} (its checkpoint keeps the last iterate).
   * Returns the last iterate's measure, or null without an average.
   */
  releaseAverage<M>(evaluate: () => M): M | null {
    const avg = this.trainer.average;
    if (!avg) return null;
    const last = evaluate();
    avg.copyTo();
    return last;
  }

  /** Trains with signals handled and progress shown (see the module comment). */
  async fit(label: string): Promise<FitResult> {
    const { fit } = await fitWithSignals(this.trainer, this.s.io, this.s.ctx, this.s.clock, label);
    this.fitResult = fit;
    return fit;
  }

  /**
   * The shared closing part of a run: the privacy report (from the ledger), the adapter
   * published atomically, --json and the printed summary. Throws if no step could run.
   */
  finish<R>(
    spec: FinishSpec,
    result: (common: FinishCommon) => R,
    runRows: (r: R) => Array<[string, string]>,
  ): R {
    const { run, io, ctx, cfg, delta } = this.s;
    const fit = this.fitResult;
    if (!fit) throw new Error('internal: TrainSession.finish before fit');
    const engine = this.trainer.engine;
    const n = engine.config.datasetSize;
    const report = privacyReportOf(engine, {
      delta,
      targetEpsilon: cfg.targetEpsilon,
      datasetSize: n,
      trainedParameters: spec.trainedParameters,
    });
    const adapterDir = run ? publishAdapter(run.dir, engine.steps, spec.adapter(), report) : null;
    const stoppedByBudget = fit.stoppedByBudget;
    const r = result({
      report,
      adapterDir,
      wall: (Date.now() - ctx.t0) / 1000,
      stoppedByBudget,
      incomplete: engine.steps < fit.plannedSteps && !stoppedByBudget,
    });
    if (io.json) atomicWriteFile(io.json, JSON.stringify(r, null, 2) + '\n');
    const acc = spec.accuracy;
    ctx.print(
      [
        '',
        spec.title,
        '',
        '  held-out accuracy',
        table([
          [spec.baseLabel, fmtPct(acc.base)],
          ...(spec.warmStart
            ? [[spec.warmStart.label, fmtPct(spec.warmStart.accuracy)] as [string, string]]
            : []),
          ['LoRA, non-private (reference)', cfg.baseline ? fmtPct(acc.nonPrivate) : 'skipped'],
          [
            `LoRA, private (eps ${report.epsilon.toFixed(2)})${cfg.ema !== undefined ? `, average (--ema ${cfg.ema})` : ''}`,
            fmtPct(acc.private),
          ],
          ...(cfg.ema !== undefined
            ? [
                ['LoRA, private, last iterate', fmtPct(acc.privateLastIterate ?? null)] as [
                  string,
                  string,
                ],
              ]
            : []),
        ]),
        '',
        '  privacy',
        table(
          privacyRows({
            engine,
            epsilon: report.epsilon,
            targetEpsilon: cfg.targetEpsilon,
            delta,
            n,
            plannedSteps: fit.plannedSteps,
            stoppedByBudget,
            resumable: true,
          }),
        ),
        '',
        '  run',
        table([
          ...runRows(r),
          ...(adapterDir ? ([['adapter', adapterDir]] as Array<[string, string]>) : []),
          ...(io.json ? ([['json', io.json]] as Array<[string, string]>) : []),
        ]),
        '',
      ].join('\n'),
    );
    if (fit.stepsThisCall === 0 && stoppedByBudget)
      throw new DpLoraError(
        ErrorCode.BudgetExceeded,
        `no private step could run within the budget (epsilon ${cfg.targetEpsilon} at delta ${delta.toExponential(2)}); nothing was trained`,
      );
    return r;
  }
}

/**
 * A PrivateTrainer with cross-entropy and the configuration's learning rate and checkpoint
 * interval: new (privacy settings from `cfg`), or the run being resumed (settings, ledger and
 * state from its checkpoint). Logs the private phase's opening lines.
 */
export function startTrainer(s: SessionContext, m: SessionModel): TrainSession {
  const { cfg, run, delta, ctx } = s;
  const holder: { trainer?: PrivateTrainer<Int32Array> } = {};
  const common: ResumeTrainerOptions<Int32Array> = {
    model: m.model,
    loss: crossEntropyLoss,
    data: m.data,
    lr: cfg.lr,
    lrSchedule: cfg.lrSchedule,
    optimizer: m.optimizer,
    checkpointEvery: cfg.checkpointEvery,
    baseModelFile: m.baseModelFile,
    runInfo: () => ({
      ...m.memo,
      privateTrainingSeconds: s.clock.total(),
      samplesSeen: holder.trainer?.samples ?? 0,
    }),
    onWarning: (w: string) => ctx.warn(w.replace(/^dp-lora: /, '')),
  };
  const average = cfg.ema !== undefined ? { decay: cfg.ema } : undefined;
  const trainer = s.resumed
    ? resumeTrainer(run!, { ...common, average: average ?? null })
    : PrivateTrainer.create({
        ...common,
        average,
        runDir: run ?? undefined,
        privacy: {
          targetEpsilon: cfg.targetEpsilon,
          delta,
          epochs: cfg.epochs,
          batchSize: cfg.batchSize,
          maxGradNorm: cfg.clip,
          physicalBatchSize: cfg.physicalBatchSize,
          accountant: cfg.accountant,
          seed: cfg.seed !== undefined ? BigInt(cfg.seed) : undefined,
        },
      });
  holder.trainer = trainer;
  const engine = trainer.engine;
  if (s.resumed)
    ctx.log(
      `the ledger holds ${engine.steps} charged steps (steps charged after the last checkpoint stay charged)`,
    );
  const pc = engine.config;
  ctx.log(
    `private training: ${m.data.size} examples, q = ${pc.sampleRate.toPrecision(4)}, expected batch ${cfg.batchSize}, ${trainer.plannedSteps} steps, ` +
      `noise multiplier ${pc.noiseMultiplier.toPrecision(4)}, clip ${cfg.clip}, target eps ${cfg.targetEpsilon} at delta ${delta.toExponential(2)} (${pc.accountant})`,
  );
  return new TrainSession(trainer, s);
}

/**
 * Resumes the run's trainer. The saved run memo (`--ema`, what the summary reports) and the
 * trainer's own settings (the average it keeps and releases) must agree: `options.average` is
 * the memo's, null without `--ema`, and a trainer state that disagrees is a broken checkpoint.
 */
function resumeTrainer(
  run: RunDirectory,
  options: ResumeTrainerOptions<Int32Array>,
): PrivateTrainer<Int32Array> {
  try {
    return PrivateTrainer.resume(run, options);
  } catch (e) {
    if (e instanceof InvalidArgumentError && e.argument === 'average')
      throw new CheckpointError(
        `${run.dir}: the run's settings (${options.average ? `--ema ${options.average.decay}` : 'no --ema'}) and its trainer state disagree on the parameter average (${e.message})`,
      );
    throw e;
  }
}

/** The REPRODUCIBLE MODE banner (logged and kept among the warnings) when `cfg.seed` is set. */
export function announceSeed(cfg: TrainConfig, ctx: RunContext): void {
  if (!cfg.seed) return;
  const banner = `REPRODUCIBLE MODE (--seed): noise and sampling come from a FIXED seed. Anyone who learns the seed can recompute and remove the noise; use it for experiments and tests only, never to release a model trained on real private data.`;
  ctx.log('*'.repeat(78));
  ctx.log(banner);
  ctx.log('*'.repeat(78));
  ctx.warnings.push(banner);
}
