/**
 * `dp-lora audit`: the one-run empirical privacy audit (Steinke, Nasr and
 * Jagielski 2023) of a private training run at a claimed epsilon, on the
 * built-in task or on `--data`.  Writes a JSON report; never writes an adapter.
 */
import * as fs from 'fs';
import { Command } from 'commander';
import {
  AuditData,
  AuditPlant,
  AuditResult,
  CanaryKind,
  builtinAuditData,
  runAudit,
} from '../audit';
import { featurize } from '../data/featurize';
import { loadUserData } from '../data/user_data';
import { requireOneOf } from '../validate';
import { formatTable, integerOption, numberOption } from './format';

interface AuditCliOptions {
  epsilon: number;
  delta: number;
  canaries: number;
  kind: CanaryKind;
  plant: AuditPlant;
  steps: number;
  sampleRate: number;
  data?: string;
  textField: string;
  labelField: string;
  limit?: number;
  dim: number;
  seed?: string;
  progress: boolean;
  json: string;
}

function choice<T extends string>(name: string, allowed: readonly T[]): (v: string) => T {
  return (v: string) => requireOneOf(name, v, allowed);
}

/** The records of a `--data` file as audit data (every record is trained on). */
export function userAuditData(
  file: string,
  o: Pick<AuditCliOptions, 'textField' | 'labelField' | 'limit' | 'dim'>,
): AuditData {
  const d = loadUserData(file, o.textField, o.labelField);
  let n = d.texts.length;
  if (o.limit !== undefined) n = Math.min(n, o.limit);
  return {
    X: featurize(d.texts.slice(0, n), { dim: o.dim }),
    y: Int32Array.from(d.labels).slice(0, n),
    n,
    dim: o.dim,
    classes: d.classes.length,
  };
}

/** Runs the audit the options describe and writes the JSON report. */
export function runAuditCommand(opts: AuditCliOptions): AuditResult {
  const data = opts.data ? userAuditData(opts.data, opts) : builtinAuditData(opts.limit, opts.dim);
  const showBar = opts.progress && !!process.stderr.isTTY;
  const result = runAudit({
    epsilon: opts.epsilon,
    delta: opts.delta,
    canaries: opts.canaries,
    kind: opts.kind,
    plant: opts.plant,
    steps: opts.steps,
    sampleRate: opts.sampleRate,
    data,
    seed: opts.seed,
    onProgress: showBar
      ? (s, total) => process.stderr.write(`\raudit: step ${s}/${total}${s === total ? '\n' : ''}`)
      : undefined,
  });
  const report = {
    ...result,
    ...(result.testAid
      ? {
          warning: `TEST AID: --plant ${result.plant} broke the mechanism on purpose; the claimed epsilon is false for this run and no adapter was written`,
        }
      : {}),
    data: opts.data ?? 'built-in SpamAssassin task (private part)',
  };
  fs.writeFileSync(opts.json, JSON.stringify(report, null, 2) + '\n');
  return result;
}

/** Adds the `audit` subcommand to `program`. */
export function registerAuditCommand(program: Command): Command {
  return program
    .command('audit')
    .description(
      'one-run empirical privacy audit (Steinke-Nasr-Jagielski 2023): a 95% lower bound on the epsilon of a private training run',
    )
    .requiredOption(
      '--epsilon <e>',
      'claimed epsilon (the noise is calibrated to it)',
      numberOption('--epsilon'),
    )
    .requiredOption('--json <file>', 'write the JSON report to this file')
    .option('--delta <d>', 'claimed delta', numberOption('--delta'), 1e-5)
    .option('--canaries <m>', 'number of canaries', integerOption('--canaries'), 1000)
    .option(
      '--kind <k>',
      "'gradient' (white-box Dirac canaries, default) or 'input' (canary records)",
      choice('--kind', ['gradient', 'input'] as const),
      'gradient',
    )
    .option(
      '--plant <p>',
      "TEST AID: 'no-noise' or 'no-clip' break the mechanism on purpose to show the audit's power; 'none' (default) audits the real mechanism",
      choice('--plant', ['none', 'no-noise', 'no-clip'] as const),
      'none',
    )
    .option('--steps <k>', 'training steps', integerOption('--steps'), 100)
    .option('--sample-rate <q>', 'Poisson sampling rate', numberOption('--sample-rate'), 0.06)
    .option(
      '--data <file>',
      'audit on this CSV/JSONL file (like train) instead of the built-in task',
    )
    .option('--text-field <name>', 'text field of --data', 'text')
    .option('--label-field <name>', 'label field of --data', 'label')
    .option('--limit <n>', 'use at most n records', integerOption('--limit'))
    .option('--dim <n>', 'hashed feature dimension', integerOption('--dim'), 4096)
    .option('--seed <s>', 'fixed seed (reproducible, NOT secure); default OS entropy')
    .option('--no-progress', 'no progress line')
    .action((opts: AuditCliOptions) => {
      const r = runAuditCommand(opts);
      const rows: [string, string | number][] = [
        ['claimedEpsilon', r.claimedEpsilon],
        ['epsilonLowerBound (95%)', r.epsilonLowerBound],
        ['canaries', r.canaries],
        ['guesses', r.guesses],
        ['correct', r.correct],
        ['kind', r.kind],
        ['plant', r.testAid ? `${r.plant} (TEST AID: mechanism broken on purpose)` : r.plant],
        ['seconds', r.seconds],
      ];
      process.stdout.write(formatTable(rows));
    });
}
