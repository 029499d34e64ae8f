/**
 * `dp-lora noise`: the smallest noise multiplier meeting an (epsilon, delta)
 * target for a given sampling rate and training length.
 */
import { Command } from 'commander';
import { calibrateNoiseMultiplier } from '../accounting';
import {
  OptionError,
  integerOption,
  numberOption,
  printReport,
  withAccountingOptions,
  ACCOUNTING_OPTION_BOUNDS as B,
} from './format';

interface NoiseCliOptions {
  epsilon: number;
  delta: number;
  sampleRate: number;
  epochs?: number;
  steps?: number;
  accountant: 'rdp' | 'pld';
  json?: boolean;
}

/** Adds the `noise` subcommand to `program`. */
export function registerNoiseCommand(program: Command): Command {
  const cmd = program
    .command('noise')
    .description('smallest noise multiplier meeting a target (epsilon, delta)')
    .requiredOption('--epsilon <e>', 'target epsilon (> 0)', numberOption('--epsilon', B.epsilon))
    .option(
      '--epochs <e>',
      'training epochs (steps = ceil(epochs / sample rate))',
      numberOption('--epochs', B.epochs),
    )
    .option('--steps <k>', 'number of steps', integerOption('--steps', B.steps));
  return withAccountingOptions(cmd).action((opts: NoiseCliOptions) => {
    if ((opts.epochs === undefined) === (opts.steps === undefined)) {
      throw new OptionError('--steps', 'give exactly one of --epochs and --steps');
    }
    const r = calibrateNoiseMultiplier({
      targetEpsilon: opts.epsilon,
      targetDelta: opts.delta,
      sampleRate: opts.sampleRate,
      steps: opts.steps,
      epochs: opts.epochs,
      accountant: opts.accountant,
    });
    const report = {
      accountant: r.accountant,
      targetEpsilon: opts.epsilon,
      delta: opts.delta,
      sampleRate: opts.sampleRate,
      steps: r.steps,
      noiseMultiplier: r.noiseMultiplier,
      epsilon: r.epsilon,
      ...(r.fallback ? { fallback: r.fallback } : {}),
    };
    if (r.fallback) process.stderr.write(`dp-lora: ACCOUNTANT FALLBACK: ${r.fallback}\n`);
    printReport(report, opts.json);
  });
}
