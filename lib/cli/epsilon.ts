/**
 * `dp-lora epsilon`: the (epsilon, delta) guarantee of a training run of
 * Poisson-subsampled Gaussian steps.
 */
import { Command } from 'commander';
import { PldAccountant, RdpAccountant } from '../accounting';
import {
  integerOption,
  numberOption,
  printReport,
  withAccountingOptions,
  ACCOUNTING_OPTION_BOUNDS as B,
} from './format';

interface EpsilonCliOptions {
  sampleRate: number;
  noise: number;
  steps: number;
  delta: number;
  accountant: 'rdp' | 'pld';
  json?: boolean;
}

/** Adds the `epsilon` subcommand to `program`. */
export function registerEpsilonCommand(program: Command): Command {
  const cmd = program
    .command('epsilon')
    .description('epsilon spent by K steps of the Poisson-subsampled Gaussian mechanism')
    .requiredOption(
      '--noise <z>',
      'noise multiplier (noise std / clipping norm)',
      numberOption('--noise', B.noise),
    )
    .requiredOption('--steps <k>', 'number of steps', integerOption('--steps', B.steps));
  return withAccountingOptions(cmd).action((opts: EpsilonCliOptions) =>
    printReport(epsilonReport(opts), opts.json),
  );
}

/** Computes what `dp-lora epsilon` prints. */
export function epsilonReport(opts: EpsilonCliOptions): Record<string, string | number> {
  const spec = { noiseMultiplier: opts.noise, sampleRate: opts.sampleRate };
  const base = {
    accountant: opts.accountant,
    sampleRate: opts.sampleRate,
    noiseMultiplier: opts.noise,
    steps: opts.steps,
    delta: opts.delta,
  };
  if (opts.accountant === 'rdp') {
    const acc = new RdpAccountant().step(spec, opts.steps);
    const r = acc.getEpsilonAndOrder(opts.delta);
    return { ...base, epsilon: r.epsilon, optimalOrder: r.order };
  }
  const acc = new PldAccountant().step(spec, opts.steps);
  const d = acc.getEpsilonDetails(opts.delta);
  return { ...base, epsilon: d.epsilon, epsilonRemove: d.remove ?? NaN, epsilonAdd: d.add ?? NaN };
}
