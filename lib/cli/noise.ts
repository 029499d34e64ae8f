/**
 * `dp-lora noise`: the smallest noise multiplier meeting an (epsilon, delta)
 * target for a given sampling rate and training length.
 */
import { Command } from 'commander';
import { calibrateNoiseMultiplier } from '../accounting';
import { OptionError } from './format';
import {
  accountantOption,
  formatTable,
  integerOption,
  numberOption,
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
  return program
    .command('noise')
    .description('smallest noise multiplier meeting a target (epsilon, delta)')
    .requiredOption('--epsilon <e>', 'target epsilon (> 0)', numberOption('--epsilon', B.epsilon))
    .requiredOption('--delta <d>', 'target delta in (0, 1)', numberOption('--delta', B.delta))
    .requiredOption(
      '--sample-rate <q>',
      'Poisson sampling rate in (0, 1] (1 for non-Poisson sampling)',
      numberOption('--sample-rate', B.sampleRate),
    )
    .option(
      '--epochs <e>',
      'training epochs (steps = ceil(epochs / sample rate))',
      numberOption('--epochs', B.epochs),
    )
    .option('--steps <k>', 'number of steps', integerOption('--steps', B.steps))
    .option('--accountant <kind>', "'pld' (default, tighter) or 'rdp'", accountantOption, 'pld')
    .option('--json', 'print JSON instead of a table')
    .action((opts: NoiseCliOptions) => {
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
      process.stdout.write(
        opts.json ? JSON.stringify(report) + '\n' : formatTable(Object.entries(report)),
      );
    });
}
