/**
 * `dp-lora train`: privately fine-tune a LoRA adapter and report base / non-private LoRA /
 * private LoRA accuracy side by side, with the privacy guarantee spent.
 *
 * Steps: featurize the task -> base MLP (pretrained without privacy on public data, cached;
 * random and frozen when there is no public data) -> optional non-private LoRA baseline (a
 * comparison only, never saved) -> LoRA + head trained with DP-SGD through the
 * PrivacyEngine (Poisson sampling, per-sample clipping, Gaussian noise, accountant, hard
 * budget) -> evaluation on held-out data -> adapter (PEFT layout) + privacy_report.json +
 * checkpoints with the ledger under --out.
 */
import * as fs from 'fs';
import * as path from 'path';
import { Command, Option } from 'commander';
import * as cliProgress from 'cli-progress';
import { crossEntropyLoss } from '../nn/losses';
import { atomicWriteFile } from '../io/atomic';
import { loadCheckpoint } from '../io/checkpoint';
import { saveAdapter, PrivacyReport } from '../io/peft_adapter';
import { buildTask, TrainTask } from './train_task';
import {
  accuracy,
  baseModel,
  BaseWeights,
  loraModel,
  LoraSettings,
  pretrainedBase,
  randomBase,
  trainNonPrivate,
  adapterOf,
  pretrainEpochs,
  loadBaseWeights,
  saveBaseWeights,
} from './train_model';
import {
  defaultDelta,
  OptionError,
  positiveInt,
  RawTrainOptions,
  resolveTrainConfig,
  TrainConfig,
} from './train_options';
import { arrayDataset, PrivateTrainer } from '../trainer/private_trainer';
import { CHECKPOINTS_DIR, RunDirectory, validateOutputFile } from '../trainer/run_dir';
import { DpLoraError, ErrorCode } from '../errors';
import { FEATURIZER_VERSION } from '../data/featurize';
import { fmtPct, privacyRows, table } from './summary';
import { runUseLiteTrain, useLiteRawOptions } from './train_use_lite';

/** The frozen base model of a run, saved in --out so that the adapter can be used and resumed. */
export const BASE_FILE = 'base_model.safetensors';

/** The machine-readable result (also written by --json). */
export interface TrainResult {
  command: 'train';
  task: string;
  taskDescription: string;
  targetEpsilon: number;
  /** epsilon actually spent (at delta), from the accountant's ledger. */
  epsilon: number;
  delta: number;
  noiseMultiplier: number;
  maxGradNorm: number;
  /** Poisson sampling rate q = batchSize / privateSize. */
  sampleRate: number;
  expectedBatchSize: number;
  /** Private optimizer steps taken (the ledger's count). */
  steps: number;
  plannedSteps: number;
  /** True if the budget ran out before the planned steps (should not happen: z is calibrated). */
  stoppedByBudget: boolean;
  /** True if --max-steps ended this session early (resume with --resume). */
  incomplete: boolean;
  epochs: number;
  accountant: string;
  method: string;
  rank: number;
  alpha: number;
  lr: number;
  privateSize: number;
  heldoutSize: number;
  classes: string[];
  /** Held-out accuracy as fractions; nonPrivateLora is null with --no-baseline. */
  accuracy: { base: number; nonPrivateLora: number | null; privateLora: number };
  /** 'os-entropy' (secure default) or 'fixed-seed' (explicit reproducible mode). */
  seedMode: 'os-entropy' | 'fixed-seed';
  reproducible: boolean;
  rng: string;
  base: { source: 'public-pretrained' | 'random'; cached: boolean };
  wallTimeSeconds: number;
  privateTrainingSeconds: number;
  /** Private-training throughput: samples processed per second. */
  samplesPerSecond: number;
  resumed: boolean;
  adapterDir: string | null;
  warnings: string[];
}

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
  /** Informational lines (default: stderr). */
  log?: (line: string) => void;
  /** Final human-readable output (default: stdout). */
  print?: (text: string) => void;
}

/** Seed of the LoRA A initialization (public randomness, the same in every mode). */
export const LORA_SEED = 4242;
const BASELINE_SEED = 99;
/** The non-private LoRA reference: Adam lr 5e-3, batches of 64, >= epochs and >= 300 steps. */
const BASELINE = { lr: 5e-3, batchSize: 64, minSteps: 300 };

interface RunMemo {
  featurizer: string;
  config: TrainConfig;
  baseAccuracy: number;
  nonPrivateAccuracy: number | null;
  baseSource: 'public-pretrained' | 'random';
  privateTrainingSeconds: number;
  samplesSeen: number;
}

function loraSettings(cfg: TrainConfig): LoraSettings {
  return { rank: cfg.rank, alpha: cfg.alpha, method: cfg.method, seed: LORA_SEED };
}

/** Runs `dp-lora train` with a resolved configuration; returns the result. */
export async function runTrain(
  cfgIn: TrainConfig | undefined,
  io: TrainIo = {},
): Promise<TrainResult> {
  const t0 = Date.now();
  const log = io.log ?? ((s: string) => process.stderr.write(s + '\n'));
  const print = io.print ?? ((s: string) => process.stdout.write(s + '\n'));
  const warnings: string[] = [];
  const warn = (m: string) => {
    warnings.push(m);
    log(`warning: ${m}`);
  };

  // --- every output path is checked, and the run directory locked, before any work
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
    return await trainInRun(cfgIn, io, run, { t0, log, print, warnings, warn });
  } finally {
    run?.release();
  }
}

async function trainInRun(
  cfgIn: TrainConfig | undefined,
  io: TrainIo,
  run: RunDirectory | null,
  ctx: {
    t0: number;
    log: (s: string) => void;
    print: (s: string) => void;
    warnings: string[];
    warn: (m: string) => void;
  },
): Promise<TrainResult> {
  const { t0, log, print, warnings, warn } = ctx;
  const savedBase = run ? run.file(BASE_FILE) : undefined;
  // --- resume: the saved configuration and ledger win (the checkpoint is verified whole,
  // including the hash of the base model the adapter was trained on)
  let resumed: RunMemo | undefined;
  if (io.resume && run) {
    const ck = loadCheckpoint(path.join(run.dir, CHECKPOINTS_DIR), { baseModelFile: savedBase });
    const memo = (ck.state.run as { info?: unknown }).info as RunMemo | undefined;
    if (!memo || typeof memo !== 'object' || !memo.config)
      throw new OptionError(`--resume ${io.resume}: the checkpoint has no run configuration`);
    resumed = memo;
    log(
      `resuming the run in ${io.resume} at step ${ck.state.step} (ledger restored: it cannot be reset)`,
    );
  }
  const cfg: TrainConfig = resumed ? resumed.config : cfgIn!;
  if (!cfg) throw new OptionError('no configuration');

  if (cfg.seed) {
    const banner = `REPRODUCIBLE MODE (--seed): noise and sampling come from a FIXED seed. Anyone who learns the seed can recompute and remove the noise; use it for experiments and tests only, never to release a model trained on real private data.`;
    log('*'.repeat(78));
    log(banner);
    log('*'.repeat(78));
    warnings.push(banner);
  }

  // --- data
  log('featurizing data ...');
  const task: TrainTask = buildTask(cfg);
  log(task.description);
  const dim = task.dim;
  const N = task.private.n;
  const delta = cfg.delta ?? defaultDelta(N);
  if (cfg.batchSize > N)
    throw new OptionError('--batch-size', `${cfg.batchSize} exceeds the ${N} private examples`);

  // --- base model
  const shape = { dim, hidden: cfg.hidden, classes: task.classes.length };
  let base: BaseWeights;
  let baseCached = false;
  let baseSource: RunMemo['baseSource'];
  if (resumed && resumed.featurizer !== FEATURIZER_VERSION) {
    throw new OptionError(
      `--resume: the run used featurizer ${resumed.featurizer}, this dp-lora has ${FEATURIZER_VERSION}`,
    );
  }
  if (resumed && savedBase) {
    // A resumed run continues on exactly the base it started from (its hash was checked).
    base = loadBaseWeights(savedBase, shape);
    baseSource = resumed.baseSource;
    log(`base model loaded from ${savedBase}`);
  } else if (task.public) {
    const dataId = cfg.data
      ? `user:${path.basename(cfg.publicData ?? '')}`
      : `spam:${cfg.limit ?? 'all'}`;
    const r = pretrainedBase(shape, task.public, dataId, log);
    base = r.base;
    baseCached = r.cached;
    baseSource = 'public-pretrained';
    log(
      r.cached
        ? `base model loaded from cache ${r.file}`
        : `base model pretrained on public data (${pretrainEpochs(task.public.n)} epochs, no privacy) and cached in ${r.file}`,
    );
  } else {
    base = randomBase(shape, 1234);
    baseSource = 'random';
    warn(
      'no public data: the base MLP is randomly initialized and frozen; only the LoRA adapters and the head learn (give --public-data to pretrain it)',
    );
  }
  const baseAccuracy = resumed
    ? resumed.baseAccuracy
    : accuracy(baseModel(base, false), task.heldout, dim);

  // --- non-private LoRA baseline (comparison only; never saved)
  let nonPrivateAccuracy: number | null = null;
  if (resumed) nonPrivateAccuracy = resumed.nonPrivateAccuracy;
  else if (cfg.baseline) {
    log('training the non-private LoRA baseline (comparison only, not saved) ...');
    const m = loraModel(base, loraSettings(cfg));
    const epochs = Math.max(
      Math.ceil(cfg.epochs),
      Math.ceil((BASELINE.minSteps * BASELINE.batchSize) / N),
    );
    trainNonPrivate(m, task.private, dim, {
      epochs,
      batchSize: BASELINE.batchSize,
      lr: BASELINE.lr,
      seed: BASELINE_SEED,
    });
    nonPrivateAccuracy = accuracy(m, task.heldout, dim);
  }

  // --- private LoRA, through the library's PrivateTrainer
  const model = loraModel(base, loraSettings(cfg));
  // A new run always writes the base it starts from (a stale one was archived with its run).
  if (savedBase && !resumed) saveBaseWeights(savedBase, base, { source: baseSource });
  let trainSeconds = resumed ? resumed.privateTrainingSeconds : 0;
  const memoBase = {
    featurizer: FEATURIZER_VERSION,
    config: cfg,
    baseAccuracy,
    nonPrivateAccuracy,
    baseSource,
  };
  let tTrain = Date.now();
  const holder: { trainer?: PrivateTrainer<Int32Array> } = {};
  const runInfo = (): Record<string, unknown> => ({
    ...memoBase,
    privateTrainingSeconds: trainSeconds + (Date.now() - tTrain) / 1000,
    samplesSeen: holder.trainer?.samples ?? 0,
  });
  const common = {
    model,
    loss: crossEntropyLoss,
    data: arrayDataset(task.private.X, task.private.y, dim),
    lr: cfg.lr,
    checkpointEvery: cfg.checkpointEvery,
    baseModelFile: savedBase,
    runInfo,
    onWarning: (m: string) => warn(m.replace(/^dp-lora: /, '')),
  };
  const trainer = resumed
    ? PrivateTrainer.resume(run!, common)
    : PrivateTrainer.create({
        ...common,
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
  const plannedSteps = trainer.plannedSteps;
  if (resumed)
    log(
      `the ledger holds ${engine.steps} charged steps (steps charged after the last checkpoint stay charged)`,
    );
  const pc = engine.config;
  log(
    `private training: ${N} examples, q = ${pc.sampleRate.toPrecision(4)}, expected batch ${cfg.batchSize}, ${plannedSteps} steps, ` +
      `noise multiplier ${pc.noiseMultiplier.toPrecision(4)}, clip ${cfg.clip}, target eps ${cfg.targetEpsilon} at delta ${delta.toExponential(2)} (${pc.accountant})`,
  );

  engine.remainingSteps(); // first budget verification (accountant work) before the clock starts
  const showBar = io.progress ?? (!!process.stdout.isTTY && !!process.stderr.isTTY);
  const bar = showBar
    ? new cliProgress.SingleBar(
        {
          format:
            'private LoRA [{bar}] {value}/{total} steps | loss {loss} | eps {eps} | {rate} samples/s | ETA {eta_formatted}',
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
  tTrain = Date.now();
  const samplesAtStart = trainer.samples;
  // SIGINT (Ctrl-C) and SIGTERM: finish the current step, then checkpoint, write the adapter
  // and report, and exit with 128 + the signal number (resume later with --resume).
  const ac = new AbortController();
  let interrupted: NodeJS.Signals | null = null;
  const handlers = (['SIGINT', 'SIGTERM'] as const).map((sig) => {
    const h = () => {
      if (interrupted) process.exit(128 + (interrupted === 'SIGINT' ? 2 : 15));
      interrupted = sig;
      log(
        `\n${sig}: finishing the current step, then saving (send it again to abort without saving)`,
      );
      ac.abort();
    };
    process.on(sig, h);
    return [sig, h] as const;
  });
  let fit;
  try {
    fit = await trainer.fit({
      maxSteps: io.maxSteps,
      signal: ac.signal,
      onProgress: (p) => {
        if (p.batchSize > 0)
          lossEma = Number.isNaN(lossEma) ? p.loss : 0.9 * lossEma + 0.1 * p.loss;
        if (!bar) return;
        const now = Date.now();
        const payload: Record<string, string> = {
          loss: Number.isNaN(lossEma) ? '-' : lossEma.toFixed(4),
          rate: (
            (trainer.samples - samplesAtStart) /
            Math.max(1e-3, (now - tTrain) / 1000)
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
    trainSeconds += (Date.now() - tTrain) / 1000;
    tTrain = Date.now();
    if (bar) {
      bar.update(engine.steps, { eps: engine.getEpsilon().toFixed(3) });
      bar.stop();
    }
  }
  const stoppedByBudget = fit.stoppedByBudget;
  if (stoppedByBudget) warn(`privacy budget exhausted after ${fit.steps} steps`);
  if (interrupted) process.exitCode = interrupted === 'SIGINT' ? 130 : 143;
  const samplesSeen = trainer.samples;
  const ledgerReport = engine.report();
  const epsilon = ledgerReport.epsilon;
  const privateAccuracy = accuracy(model, task.heldout, dim);

  // --- outputs (the report is derived from the ledger)
  const reproducible = ledgerReport.reproducible;
  const report: PrivacyReport = {
    epsilon,
    delta,
    targetEpsilon: cfg.targetEpsilon,
    noiseMultiplier: pc.noiseMultiplier,
    maxGradNorm: pc.maxGradNorm,
    sampleRate: pc.sampleRate,
    steps: ledgerReport.steps,
    accountant: ledgerReport.accountant,
    reproducibleSeed: reproducible,
    private: ledgerReport.private,
    statement: ledgerReport.statement,
    runId: ledgerReport.runId,
    ledgerHead: ledgerReport.ledgerHead,
    datasetSize: N,
    expectedBatchSize: pc.expectedBatchSize,
    sampling: pc.sampling,
    trainedParameters:
      'LoRA B (and A unless ffa) of fc1, fc2; head weight and bias: all clipped and noised',
  };
  let adapterDir: string | null = null;
  if (run) {
    const baseName = task.public
      ? `dp-lora/mlp-${task.name === 'spam' ? 'spamassassin-public' : 'user-public'}-${shape.dim}-${shape.hidden}`
      : `dp-lora/mlp-random-${shape.dim}-${shape.hidden}`;
    adapterDir = publishAdapter(
      run.dir,
      engine.steps,
      adapterOf(model, loraSettings(cfg), baseName, { classes: task.classes, featurizer: { dim } }),
      report,
    );
  }
  const wall = (Date.now() - t0) / 1000;
  const result: TrainResult = {
    command: 'train',
    task: task.name,
    taskDescription: task.description,
    targetEpsilon: cfg.targetEpsilon,
    epsilon,
    delta,
    noiseMultiplier: pc.noiseMultiplier,
    maxGradNorm: pc.maxGradNorm,
    sampleRate: pc.sampleRate,
    expectedBatchSize: pc.expectedBatchSize,
    steps: engine.steps,
    plannedSteps,
    stoppedByBudget,
    incomplete: engine.steps < plannedSteps && !stoppedByBudget,
    epochs: cfg.epochs,
    accountant: pc.accountant,
    method: cfg.method,
    rank: cfg.rank,
    alpha: cfg.alpha,
    lr: cfg.lr,
    privateSize: N,
    heldoutSize: task.heldout.n,
    classes: task.classes,
    accuracy: {
      base: baseAccuracy,
      nonPrivateLora: nonPrivateAccuracy,
      privateLora: privateAccuracy,
    },
    seedMode: reproducible ? 'fixed-seed' : 'os-entropy',
    reproducible,
    rng: engine.describeRng(),
    base: { source: baseSource, cached: baseCached },
    wallTimeSeconds: wall,
    privateTrainingSeconds: trainSeconds,
    samplesPerSecond: trainSeconds > 0 ? samplesSeen / trainSeconds : 0,
    resumed: !!resumed,
    adapterDir,
    warnings,
  };
  if (io.json) atomicWriteFile(io.json, JSON.stringify(result, null, 2) + '\n');

  const lines = [
    '',
    `dp-lora train: ${task.name === 'spam' ? 'built-in SpamAssassin task' : task.name}`,
    '',
    '  held-out accuracy',
    table([
      ['base model (no adaptation)', fmtPct(baseAccuracy)],
      ['LoRA, non-private (reference)', cfg.baseline ? fmtPct(nonPrivateAccuracy) : 'skipped'],
      [`LoRA, private (eps ${epsilon.toFixed(2)})`, fmtPct(privateAccuracy)],
    ]),
    '',
    '  privacy',
    table(
      privacyRows({
        engine,
        epsilon,
        targetEpsilon: cfg.targetEpsilon,
        delta,
        n: N,
        plannedSteps,
        stoppedByBudget,
        resumable: true,
      }),
    ),
    '',
    '  run',
    table([
      [
        'LoRA',
        `${cfg.method}, rank ${cfg.rank}, alpha ${cfg.alpha}, lr ${cfg.lr}, ${cfg.epochs} epochs`,
      ],
      [
        'throughput',
        `${result.samplesPerSecond.toFixed(0)} samples/s (private training ${trainSeconds.toFixed(1)} s)`,
      ],
      ['wall time', `${wall.toFixed(1)} s`],
      ...(adapterDir ? ([['adapter', adapterDir]] as Array<[string, string]>) : []),
      ...(io.json ? ([['json', io.json]] as Array<[string, string]>) : []),
    ]),
    '',
  ];
  print(lines.join('\n'));
  if (fit.stepsThisCall === 0 && stoppedByBudget)
    throw new DpLoraError(
      ErrorCode.BudgetExceeded,
      `no private step could run within the budget (epsilon ${cfg.targetEpsilon} at delta ${delta.toExponential(2)}); nothing was trained`,
    );
  return result;
}

/**
 * Writes the adapter of step `step` to `adapters/step-N/` and then points the `adapter` link at
 * it with one atomic rename, so that `adapter` always names a complete adapter (never a moment
 * with none). The two newest adapters are kept. Returns the `adapter` path.
 */
export function publishAdapter(
  dir: string,
  step: number,
  adapter: Parameters<typeof saveAdapter>[1],
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

/** Adds `train` to the program. */
export function registerTrainCommand(program: Command): void {
  program
    .command('train')
    .description(
      'Privately fine-tune a LoRA adapter (DP-SGD with Poisson sampling, per-sample clipping and calibrated Gaussian noise). ' +
        'Without --data: the built-in SpamAssassin task (base pretrained on public mail, adapted privately to other mail).',
    )
    .option(
      '--epsilon <eps>',
      'target epsilon: the noise is calibrated so the planned steps spend at most this (default 8)',
    )
    .option('--delta <delta>', 'delta (default min(1e-5, 1/(10 N)))')
    .option('--epochs <n>', 'planned passes over the private data (default 10)')
    .option(
      '--batch-size <n>',
      'EXPECTED logical batch size; sampling rate q = batch-size / N (default 128)',
    )
    .option(
      '--physical-batch-size <n>',
      'largest micro-batch run at once (memory only; default 256)',
    )
    .option('--rank <r>', 'LoRA rank (default 8)')
    .option('--alpha <a>', 'LoRA alpha; scaling alpha/rank (default 2*rank)')
    .addOption(
      new Option(
        '--method <m>',
        'ffa (A frozen, train B) or vanilla (train A and B); default vanilla',
      ).choices(['ffa', 'vanilla']),
    )
    .option('--lr <lr>', 'Adam learning rate of the private training (default 0.01)')
    .option('--clip <C>', 'per-sample gradient clipping norm (default 1)')
    .addOption(
      new Option('--accountant <a>', 'privacy accountant (default pld)').choices(['pld', 'rdp']),
    )
    .addOption(
      new Option(
        '--model <m>',
        'mlp (hashed n-grams + MLP) or use-lite (Universal Sentence Encoder Lite with LoRA on attention and FFN)',
      )
        .choices(['mlp', 'use-lite'])
        .default('mlp'),
    )
    .option(
      '--target-modules <list>',
      'use-lite: LoRA targets (PEFT names, comma-separated; default q_proj,k_proj,v_proj,o_proj,fc1,fc2)',
    )
    .option(
      '--lora-layers <list>',
      'use-lite: layers with adapters, 0 and/or 1 (default 1; layer 0 cached)',
    )
    .option('--max-tokens <n>', 'use-lite: tokens per text, at most 128 (default 64)')
    .option('--hidden <n>', 'hidden width of the base MLP (default 256)')
    .option('--dim <n>', 'hashed feature dimension (default 4096)')
    .option('--data <file>', 'your labelled data (.jsonl or .csv) instead of the built-in task')
    .option('--text-field <name>', 'text field/column of --data (default text)')
    .option('--label-field <name>', 'label field/column of --data (default label)')
    .option(
      '--labels <a,b,c>',
      'the label set of --data, declared (it is written in the clear into the adapter); default: the --public-data labels',
    )
    .option(
      '--min-label-count <k>',
      'without --labels or --public-data, refuse labels that occur fewer than k times (default 20)',
    )
    .option(
      '--public-data <file>',
      'public data (same fields) to pretrain the base for --data (else the base is random)',
    )
    .option('--limit <n>', 'use only N examples (quick runs and tests)')
    .option('--no-baseline', 'skip the non-private LoRA reference')
    .option('--checkpoint-every <n>', 'steps between checkpoints with --out (default 50)')
    .option(
      '--out <dir>',
      'write the adapter (PEFT layout), privacy_report.json and checkpoints (with the ledger) here',
    )
    .option('--resume <dir>', 'continue the run saved in <dir> (same configuration and ledger)')
    .option(
      '--overwrite',
      'start a new run in --out even if it holds one (the old run is moved to <out>/archive/, never deleted)',
    )
    .option(
      '--seed <seed>',
      'REPRODUCIBLE MODE: fixed seed (decimal or hex) for noise and sampling; not secure if the seed is known',
    )
    .option(
      '--max-steps <n>',
      'stop after this many private steps in this session (continue later with --resume)',
    )
    .option('--json <file>', 'write the result as JSON')
    .option('--no-progress', 'no progress bar')
    .action(
      async (
        opts: RawTrainOptions & {
          out?: string;
          resume?: string;
          json?: string;
          progress?: boolean;
          maxSteps?: string;
          overwrite?: boolean;
          model?: string;
          targetModules?: string;
          loraLayers?: string;
          maxTokens?: string;
        },
        cmd: Command,
      ) => {
        if (opts.model === 'use-lite') {
          if (opts.resume)
            throw new OptionError('--resume is not supported with --model use-lite yet');
          const { raw, ul } = useLiteRawOptions(opts);
          await runUseLiteTrain(resolveTrainConfig(raw), ul, { out: opts.out, json: opts.json });
          return;
        }
        const maxSteps =
          opts.maxSteps !== undefined ? positiveInt('max-steps', opts.maxSteps) : undefined;
        if (opts.resume) {
          // A resumed run keeps its configuration: any option that would change it is refused.
          const allowed = new Set(['resume', 'out', 'json', 'progress', 'maxSteps', 'baseline']);
          const conflicting = Object.keys(opts).filter(
            (k) =>
              !allowed.has(k) &&
              (opts as Record<string, unknown>)[k] !== undefined &&
              cmd.getOptionValueSource(k) !== 'default',
          );
          if (opts.baseline === false) conflicting.push('noBaseline');
          if (conflicting.length)
            throw new OptionError(
              '--resume',
              `takes the configuration from the checkpoint; drop ${conflicting.map((k) => '--' + k.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase())).join(', ')}`,
            );
        }
        const cfg = opts.resume ? undefined : resolveTrainConfig(opts);
        await runTrain(cfg, {
          out: opts.out,
          resume: opts.resume,
          json: opts.json,
          maxSteps,
          overwrite: opts.overwrite,
          progress: opts.progress === false ? false : undefined,
        });
      },
    );
}
