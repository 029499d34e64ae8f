/**
 * `dp-lora epsilon`: the (epsilon, delta) guarantee of a training run of
 * Poisson-subsampled Gaussian steps.
 */
import { Command } from 'commander';
import { PldAccountant, RdpAccountant } from '../accounting';
import {
  accountantOption,
  formatTable,
  integerOption,
  numberOption,
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
  return program
    .command('epsilon')
    .description('epsilon spent by K steps of the Poisson-subsampled Gaussian mechanism')
    .requiredOption(
      '--sample-rate <q>',
      'Poisson sampling rate in (0, 1] (1 for non-Poisson sampling)',
      numberOption('--sample-rate', B.sampleRate),
    )
    .requiredOption(
      '--noise <z>',
      'noise multiplier (noise std / clipping norm)',
      numberOption('--noise', B.noise),
    )
    .requiredOption('--steps <k>', 'number of steps', integerOption('--steps', B.steps))
    .requiredOption('--delta <d>', 'target delta in (0, 1)', numberOption('--delta', B.delta))
    .option('--accountant <kind>', "'pld' (default, tighter) or 'rdp'", accountantOption, 'pld')
    .option('--json', 'print JSON instead of a table')
    .action((opts: EpsilonCliOptions) => {
      const report = epsilonReport(opts);
      process.stdout.write(
        opts.json ? JSON.stringify(report) + '\n' : formatTable(Object.entries(report)),
      );
    });
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
  if (d.fallback) {
    // Loud, like `dp-lora noise`: the epsilon printed is RDP's (a valid, looser bound).
    process.stderr.write(`dp-lora: ACCOUNTANT FALLBACK: ${d.fallback}\n`);
    return { ...base, epsilon: d.epsilon, method: d.method, fallback: d.fallback };
  }
  return { ...base, epsilon: d.epsilon, epsilonRemove: d.remove ?? NaN, epsilonAdd: d.add ?? NaN };
}
