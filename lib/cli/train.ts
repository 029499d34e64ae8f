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
import * as path from 'path';
import { Command, Option } from 'commander';
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
  describeLr,
  OptionError,
  positiveInt,
  RawTrainOptions,
  resolveTrainConfig,
  TrainConfig,
} from './train_options';
import { arrayDataset } from '../trainer/private_trainer';
import { SCHEDULE_NAMES } from '../optim/schedules';
import type { RunDirectory } from '../trainer/run_dir';
import { FEATURIZER_VERSION } from '../data/featurize';
import {
  RunContext,
  TrainClock,
  TrainIo,
  announceSeed,
  loadRunMemo,
  savedRunModel,
  startTrainer,
  withTrainRun,
} from './train_run';
import { runUseLiteTrain, useLiteRawOptions } from './train_use_lite';
import { setBaseDtype } from '../nn/base_dtype';

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
  /**
   * Held-out accuracy as fractions; nonPrivateLora is null with --no-baseline. With --ema,
   * privateLora is the released average's and privateLoraLastIterate the last iterate's (else
   * null).
   */
  accuracy: {
    base: number;
    nonPrivateLora: number | null;
    privateLora: number;
    privateLoraLastIterate: number | null;
  };
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

export type { TrainIo } from './train_run';
export { publishAdapter } from './train_run';

/** Seed of the LoRA A initialization (public randomness, the same in every mode). */
export const LORA_SEED = 4242;
const BASELINE_SEED = 99;
/** The non-private LoRA reference: Adam lr 5e-3, batches of 64, >= epochs and >= 300 steps. */
const BASELINE = { lr: 5e-3, batchSize: 64, minSteps: 300 };

interface RunMemo {
  /** 'mlp' (absent in runs saved before use-lite could resume). */
  model?: string;
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

/** Runs `dp-lora train` (the MLP model) with a resolved configuration; returns the result. */
export async function runTrain(
  cfgIn: TrainConfig | undefined,
  io: TrainIo = {},
): Promise<TrainResult> {
  // every output path is checked, and the run directory locked, before any work
  return withTrainRun(io, (run, ctx) => trainInRun(cfgIn, io, run, ctx));
}

async function trainInRun(
  cfgIn: TrainConfig | undefined,
  io: TrainIo,
  run: RunDirectory | null,
  ctx: RunContext,
): Promise<TrainResult> {
  const { log, warnings, warn } = ctx;
  const savedBase = run ? run.file(BASE_FILE) : undefined;
  // --- resume: the saved configuration and ledger win (the checkpoint is verified whole,
  // including the hash of the base model the adapter was trained on)
  let resumed: RunMemo | undefined;
  if (io.resume && run) {
    const memo = loadRunMemo(run, savedBase, log).memo as unknown as RunMemo;
    if (memo.model !== undefined && memo.model !== 'mlp')
      throw new OptionError(
        `--resume ${io.resume}: the run trained --model ${String(memo.model)}, not mlp`,
      );
    resumed = memo;
  }
  const cfg: TrainConfig = resumed ? resumed.config : cfgIn!;
  if (!cfg) throw new OptionError('no configuration');

  announceSeed(cfg, ctx);

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
    setBaseDtype(m, cfg.baseDtype ?? 'fp32');
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
  setBaseDtype(model, cfg.baseDtype ?? 'fp32');
  // A new run always writes the base it starts from (a stale one was archived with its run).
  if (savedBase && !resumed) saveBaseWeights(savedBase, base, { source: baseSource });
  const clock = new TrainClock(resumed ? resumed.privateTrainingSeconds : 0);
  const session = startTrainer(
    { cfg, run, io, ctx, delta, clock, resumed: resumed !== undefined },
    {
      model,
      data: arrayDataset(task.private.X, task.private.y, dim),
      baseModelFile: savedBase,
      memo: {
        model: 'mlp',
        featurizer: FEATURIZER_VERSION,
        config: cfg,
        baseAccuracy,
        nonPrivateAccuracy,
        baseSource,
      },
    },
  );
  const trainer = session.trainer;
  const engine = trainer.engine;
  const plannedSteps = trainer.plannedSteps;
  await session.fit('private LoRA');
  const trainSeconds = clock.total();
  const samplesSeen = trainer.samples;
  // --ema: the average is released (the checkpoint keeps the last iterate to continue from).
  const lastIterate = session.releaseAverage(() => accuracy(model, task.heldout, dim));
  const privateAccuracy = accuracy(model, task.heldout, dim);
  const pc = engine.config;
  return session.finish<TrainResult>(
    {
      trainedParameters:
        'LoRA B (and A unless ffa) of fc1, fc2; head weight and bias: all clipped and noised',
      adapter: () =>
        adapterOf(
          model,
          loraSettings(cfg),
          task.public
            ? `dp-lora/mlp-${task.name === 'spam' ? 'spamassassin-public' : 'user-public'}-${shape.dim}-${shape.hidden}`
            : `dp-lora/mlp-random-${shape.dim}-${shape.hidden}`,
          { classes: task.classes, featurizer: { dim } },
        ),
      title: `dp-lora train: ${task.name === 'spam' ? 'built-in SpamAssassin task' : task.name}`,
      baseLabel: 'base model (no adaptation)',
      accuracy: {
        base: baseAccuracy,
        nonPrivate: nonPrivateAccuracy,
        private: privateAccuracy,
        privateLastIterate: lastIterate,
      },
    },
    (c) => ({
      command: 'train',
      task: task.name,
      taskDescription: task.description,
      targetEpsilon: cfg.targetEpsilon,
      epsilon: c.report.epsilon,
      delta,
      noiseMultiplier: pc.noiseMultiplier,
      maxGradNorm: pc.maxGradNorm,
      sampleRate: pc.sampleRate,
      expectedBatchSize: pc.expectedBatchSize,
      steps: engine.steps,
      plannedSteps,
      stoppedByBudget: c.stoppedByBudget,
      incomplete: c.incomplete,
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
        privateLoraLastIterate: lastIterate,
      },
      seedMode: c.report.reproducibleSeed ? 'fixed-seed' : 'os-entropy',
      reproducible: c.report.reproducibleSeed,
      rng: engine.describeRng(),
      base: { source: baseSource, cached: baseCached },
      wallTimeSeconds: c.wall,
      privateTrainingSeconds: trainSeconds,
      samplesPerSecond: trainSeconds > 0 ? samplesSeen / trainSeconds : 0,
      resumed: !!resumed,
      adapterDir: c.adapterDir,
      warnings,
    }),
    (r) => [
      [
        'LoRA',
        `${cfg.method}, rank ${cfg.rank}, alpha ${cfg.alpha}, ${describeLr(cfg)}${cfg.ema !== undefined ? `, average of the iterates (decay ${cfg.ema})` : ''}, ${cfg.epochs} epochs`,
      ],
      [
        'throughput',
        `${r.samplesPerSecond.toFixed(0)} samples/s (private training ${trainSeconds.toFixed(1)} s)`,
      ],
      ['wall time', `${r.wallTimeSeconds.toFixed(1)} s`],
    ],
  );
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
    .addOption(
      new Option(
        '--lr-schedule <s>',
        'learning-rate schedule over the planned private steps: constant (default), linear (decay to 0) or cosine',
      ).choices([...SCHEDULE_NAMES]),
    )
    .option(
      '--warmup <fraction>',
      'fraction of the planned private steps of linear warmup from 0 (default 0)',
    )
    .option(
      '--ema <decay>',
      'release an exponential moving average of the private iterates (decay per step in (0, 1), e.g. 0.95; post-processing, no privacy cost); default: the last iterate',
    )
    .option(
      '--head-lr <lr>',
      'use-lite: learning rate of the classification head (default --lr); it follows the same schedule',
    )
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
    .option(
      '--public-warm-start <epochs>',
      'use-lite: epochs of LoRA + head training WITHOUT privacy on the public data before the private run and the reference (default 3 with public data, else 0; 0 turns it off)',
    )
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
    .addOption(
      new Option(
        '--base-dtype <t>',
        'element type of the frozen base weights: fp32 (default) or bf16 (bfloat16 storage, fp32 accumulation; fast with AVX512_BF16)',
      ).choices(['fp32', 'bf16']),
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
          publicWarmStart?: string;
        },
        cmd: Command,
      ) => {
        /** The command-line flag of an option key (`maxTokens` -> `--max-tokens`). */
        const flag = (k: string) => `--${k.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase())}`;
        const maxSteps =
          opts.maxSteps !== undefined ? positiveInt('max-steps', opts.maxSteps) : undefined;
        let model = opts.model ?? 'mlp';
        if (opts.resume) {
          // The model is the saved run's; --model may only repeat it.
          const saved = savedRunModel(opts.resume);
          if (saved !== null) {
            if (cmd.getOptionValueSource('model') !== 'default' && opts.model !== saved)
              throw new OptionError(
                '--model',
                `the run in ${opts.resume} trained --model ${saved}; drop --model ${String(opts.model)}`,
              );
            model = saved;
          }
          // A resumed run keeps its configuration: any option that would change it is refused.
          const allowed = new Set([
            'resume',
            'out',
            'json',
            'progress',
            'maxSteps',
            'baseline',
            'model',
          ]);
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
              `takes the configuration from the checkpoint; drop ${conflicting.map(flag).join(', ')}`,
            );
        }
        const io: TrainIo = {
          out: opts.out,
          resume: opts.resume,
          json: opts.json,
          maxSteps,
          overwrite: opts.overwrite,
          progress: opts.progress === false ? false : undefined,
        };
        if (model === 'use-lite') {
          // The MLP's options mean nothing to use-lite: refused, not ignored.
          const mlpOnly = (['hidden', 'dim'] as const).filter((k) => opts[k] !== undefined);
          if (mlpOnly.length)
            throw new OptionError(flag(mlpOnly[0]), 'applies to --model mlp only');
          if (opts.resume) await runUseLiteTrain(undefined, undefined, io);
          else {
            const { raw, ul } = useLiteRawOptions(opts);
            await runUseLiteTrain(resolveTrainConfig(raw), ul, io);
          }
          return;
        }
        // The use-lite options mean nothing to the MLP: refused, not ignored.
        const useLiteOnly = [
          'targetModules',
          'loraLayers',
          'maxTokens',
          'publicWarmStart',
          'headLr',
        ] as const;
        const given = useLiteOnly.filter((k) => opts[k] !== undefined);
        if (given.length) throw new OptionError(flag(given[0]), 'applies to --model use-lite only');
        const cfg = opts.resume ? undefined : resolveTrainConfig(opts);
        await runTrain(cfg, io);
      },
    );
}
