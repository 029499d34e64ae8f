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
import { Adam } from '../optim/adam';
import { PrivacyEngine } from '../privacy/privacy_engine';
import type { PrivacyEngineState } from '../privacy/privacy_engine';
import { PrivacyBudgetExceededError } from '../privacy/errors';
import { InvalidStateError } from '../errors';
import { accountantFromJSON } from '../accounting';
import { atomicWriteFile } from '../io/atomic';
import { saveCheckpoint, loadCheckpoint, hasCheckpoint } from '../io/checkpoint';
import { saveAdapter, PrivacyReport } from '../io/peft_adapter';
import { StTensorInput } from '../io/safetensors';
import { buildTask, TrainTask } from './train_task';
import {
  accuracy,
  baseModel,
  BaseWeights,
  gather,
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
import { extractTensors, restoreTensors } from './train_state';
import { FEATURIZER_VERSION } from '../data/featurize';

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

function fmtPct(x: number | null): string {
  return x === null || Number.isNaN(x) ? 'n/a' : `${(100 * x).toFixed(1)}%`;
}

function table(rows: Array<[string, string]>): string {
  const w = Math.max(...rows.map((r) => r[0].length));
  return rows.map(([k, v]) => `  ${k.padEnd(w)}  ${v}`).join('\n');
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

  // --- resume: the saved configuration and ledger win
  let resumed: { engine: PrivacyEngineState; memo: RunMemo } | undefined;
  let outDir = io.out;
  if (io.resume) {
    const ckRoot = path.join(io.resume, 'checkpoints');
    if (!hasCheckpoint(ckRoot))
      throw new OptionError('--resume', `${io.resume}: no checkpoint found in ${ckRoot}`);
    // The ledger must parse as an accountant ledger, else the checkpoint is refused.
    const ck = loadCheckpoint(ckRoot, { validateLedger: (l) => void accountantFromJSON(l) });
    const memo = ck.state.run as unknown as RunMemo;
    if (!memo || typeof memo !== 'object' || !memo.config)
      throw new OptionError('--resume', `${io.resume}: the checkpoint has no run configuration`);
    const engineState = restoreTensors(ck.state.engine, ck.tensors) as PrivacyEngineState;
    engineState.accountant = ck.state.ledger;
    resumed = { engine: engineState, memo };
    if (outDir && path.resolve(outDir) !== path.resolve(io.resume))
      throw new OptionError(
        '--resume',
        'continues a run in its own directory; drop --out or give the same directory',
      );
    outDir = io.resume;
    log(
      `resuming the run in ${io.resume} at step ${ck.state.step} (ledger restored: it cannot be reset)`,
    );
  }
  const cfg: TrainConfig = resumed ? resumed.memo.config : cfgIn!;
  if (!cfg) throw new InvalidStateError('internal: runTrain needs a configuration or --resume');

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
  if (resumed && resumed.memo.featurizer !== FEATURIZER_VERSION) {
    throw new OptionError(
      '--resume',
      `the run used featurizer ${resumed.memo.featurizer}, this dp-lora has ${FEATURIZER_VERSION}`,
    );
  }
  const savedBase = outDir ? path.join(outDir, BASE_FILE) : undefined;
  if (resumed && savedBase && fs.existsSync(savedBase)) {
    // A resumed run continues on exactly the base it started from.
    base = loadBaseWeights(savedBase, shape);
    baseSource = resumed.memo.baseSource;
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
    ? resumed.memo.baseAccuracy
    : accuracy(baseModel(base, false), task.heldout, dim);

  // --- non-private LoRA baseline (comparison only; never saved)
  let nonPrivateAccuracy: number | null = null;
  if (resumed) nonPrivateAccuracy = resumed.memo.nonPrivateAccuracy;
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

  // --- private LoRA
  const model = loraModel(base, loraSettings(cfg));
  const engine = new PrivacyEngine();
  const plannedSteps = Math.ceil((cfg.epochs * N) / cfg.batchSize);
  // The engine calibrates z so that exactly the planned steps spend at most --epsilon (same
  // formula for the steps), and verifies every step against that hard budget.
  const { optimizer } = engine.makePrivateWithEpsilon({
    model,
    optimizer: new Adam(model.trainableParameters(), { lr: cfg.lr }),
    dataset: N,
    batchSize: cfg.batchSize,
    targetEpsilon: cfg.targetEpsilon,
    targetDelta: delta,
    epochs: cfg.epochs,
    maxGradNorm: cfg.clip,
    maxPhysicalBatchSize: cfg.physicalBatchSize,
    accountant: cfg.accountant,
    seed: cfg.seed !== undefined ? BigInt(cfg.seed) : undefined,
    onWarning: (m) => warn(m.replace(/^dp-lora: /, '')),
  });
  if (resumed) engine.loadStateDict(resumed.engine);
  const pc = engine.config;
  log(
    `private training: ${N} examples, q = ${pc.sampleRate.toPrecision(4)}, expected batch ${cfg.batchSize}, ${plannedSteps} steps, ` +
      `noise multiplier ${pc.noiseMultiplier.toPrecision(4)}, clip ${cfg.clip}, target eps ${cfg.targetEpsilon} at delta ${delta.toExponential(2)} (${cfg.accountant})`,
  );

  if (savedBase && !fs.existsSync(savedBase)) {
    fs.mkdirSync(outDir!, { recursive: true });
    saveBaseWeights(savedBase, base, { source: baseSource });
  }
  const memoBase = {
    featurizer: FEATURIZER_VERSION,
    config: cfg,
    baseAccuracy,
    nonPrivateAccuracy,
    baseSource,
  };
  let samplesSeen = resumed ? resumed.memo.samplesSeen : 0;
  let trainSeconds = resumed ? resumed.memo.privateTrainingSeconds : 0;
  const ckRoot = outDir ? path.join(outDir, 'checkpoints') : undefined;
  const checkpoint = () => {
    if (!ckRoot) return;
    const st = engine.stateDict();
    const tensors: Record<string, StTensorInput> = {};
    const { accountant, ...rest } = st;
    const engineJson = extractTensors(rest, tensors);
    const memo: RunMemo = { ...memoBase, privateTrainingSeconds: trainSeconds, samplesSeen };
    saveCheckpoint(
      ckRoot,
      {
        step: st.step,
        ledger: accountant,
        engine: engineJson,
        run: memo as unknown as Record<string, unknown>,
      },
      tensors,
    );
  };

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
  let stoppedByBudget = false;
  let lastEpsAt = Date.now();
  let epsCostMs = 0;
  let lossEma = NaN;
  const tTrain = Date.now();
  const samplesAtStart = samplesSeen;
  const stepLimit =
    io.maxSteps !== undefined ? Math.min(plannedSteps, engine.steps + io.maxSteps) : plannedSteps;
  // Ctrl-C: finish the current step, then checkpoint and report (resume later with --resume).
  let interrupted = false;
  const onSigint = () => {
    if (interrupted) process.exit(130);
    interrupted = true;
    log(
      '\ninterrupted: finishing the current step, then saving (Ctrl-C again to abort without saving)',
    );
  };
  process.on('SIGINT', onSigint);
  try {
    while (engine.steps < stepLimit && !interrupted) {
      await new Promise((r) => setImmediate(r)); // let signals (Ctrl-C) through between steps
      let batch;
      try {
        batch = engine.nextBatch();
      } catch (e) {
        if (e instanceof PrivacyBudgetExceededError) {
          stoppedByBudget = true;
          warn(e.message);
          break;
        }
        throw e;
      }
      let lossSum = 0;
      for (const idx of batch.microBatches) {
        const { x, y } = gather(task.private, idx, dim);
        const out = model.forward(x);
        const loss = crossEntropyLoss(out, y);
        lossSum += loss.total;
        model.backward(loss.grad);
        optimizer.accumulate();
      }
      optimizer.step();
      samplesSeen += batch.indices.length;
      if (batch.indices.length > 0) {
        const l = lossSum / batch.indices.length;
        lossEma = Number.isNaN(lossEma) ? l : 0.9 * lossEma + 0.1 * l;
      }
      const now = Date.now();
      if (bar) {
        const payload: Record<string, string> = {
          loss: Number.isNaN(lossEma) ? '-' : lossEma.toFixed(4),
          rate: ((samplesSeen - samplesAtStart) / Math.max(1e-3, (now - tTrain) / 1000)).toFixed(0),
        };
        // epsilon for display: at most every max(1 s, 5x its own cost) (PLD is not free)
        if (now - lastEpsAt > Math.max(1000, 5 * epsCostMs)) {
          const t = Date.now();
          payload.eps = engine.getEpsilon().toFixed(3);
          epsCostMs = Date.now() - t;
          lastEpsAt = Date.now();
        }
        bar.update(engine.steps, payload);
      }
      if (ckRoot && engine.steps % cfg.checkpointEvery === 0) {
        trainSeconds += (Date.now() - tTrain) / 1000;
        checkpoint();
        trainSeconds -= (Date.now() - tTrain) / 1000; // counted once at the end
      }
    }
  } finally {
    process.removeListener('SIGINT', onSigint);
    trainSeconds += (Date.now() - tTrain) / 1000;
    if (bar) {
      bar.update(engine.steps, { eps: engine.getEpsilon().toFixed(3) });
      bar.stop();
    }
  }
  const epsilon = engine.getEpsilon();
  const privateAccuracy = accuracy(model, task.heldout, dim);

  // --- outputs
  const reproducible = cfg.seed !== undefined;
  const report: PrivacyReport = {
    epsilon,
    delta,
    targetEpsilon: cfg.targetEpsilon,
    noiseMultiplier: pc.noiseMultiplier,
    maxGradNorm: pc.maxGradNorm,
    sampleRate: pc.sampleRate,
    steps: engine.steps,
    accountant: pc.accountant,
    reproducibleSeed: reproducible,
    datasetSize: N,
    expectedBatchSize: pc.expectedBatchSize,
    sampling: pc.sampling,
    trainedParameters:
      'LoRA B (and A unless ffa) of fc1, fc2; head weight and bias: all clipped and noised',
  };
  let adapterDir: string | null = null;
  if (outDir) {
    checkpoint();
    adapterDir = path.join(outDir, 'adapter');
    const baseName = task.public
      ? `dp-lora/mlp-${task.name === 'spam' ? 'spamassassin-public' : 'user-public'}-${shape.dim}-${shape.hidden}`
      : `dp-lora/mlp-random-${shape.dim}-${shape.hidden}`;
    saveAdapter(
      adapterDir,
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
    table([
      [
        'epsilon spent / target',
        `${epsilon.toFixed(3)} / ${cfg.targetEpsilon} at delta ${delta.toExponential(2)} (${pc.accountant.toUpperCase()} accountant)`,
      ],
      ['noise multiplier', pc.noiseMultiplier.toPrecision(4)],
      ['clipping norm', String(pc.maxGradNorm)],
      [
        'sampling',
        `Poisson, q = ${pc.sampleRate.toPrecision(4)} (expected batch ${pc.expectedBatchSize} of ${N})`,
      ],
      [
        'steps',
        `${engine.steps} of ${plannedSteps}${stoppedByBudget ? ' (stopped: budget exhausted)' : engine.steps < plannedSteps ? ' (stopped early; continue with --resume)' : ''}`,
      ],
      [
        'randomness',
        reproducible
          ? 'FIXED SEED (reproducible, not secure if the seed is known)'
          : 'OS entropy (secure)',
      ],
    ]),
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
  return result;
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
    .option('--hidden <n>', 'hidden width of the base MLP (default 256)')
    .option('--dim <n>', 'hashed feature dimension (default 4096)')
    .option('--data <file>', 'your labelled data (.jsonl or .csv) instead of the built-in task')
    .option('--text-field <name>', 'text field/column of --data (default text)')
    .option('--label-field <name>', 'label field/column of --data (default label)')
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
        },
      ) => {
        const maxSteps =
          opts.maxSteps !== undefined ? positiveInt('max-steps', opts.maxSteps) : undefined;
        const cfg = opts.resume ? undefined : resolveTrainConfig(opts);
        if (opts.resume) {
          const given = [
            'epsilon',
            'delta',
            'epochs',
            'batchSize',
            'rank',
            'alpha',
            'method',
            'lr',
            'clip',
            'accountant',
            'data',
            'seed',
            'limit',
          ] as const;
          const conflicting = given.filter((k) => opts[k] !== undefined);
          if (conflicting.length)
            throw new OptionError(
              '--resume',
              `takes the configuration from the checkpoint; drop ${conflicting.map((k) => '--' + k.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase())).join(', ')}`,
            );
        }
        await runTrain(cfg, {
          out: opts.out,
          resume: opts.resume,
          json: opts.json,
          maxSteps,
          progress: opts.progress === false ? false : undefined,
        });
      },
    );
}
