#!/usr/bin/env node
/**
 * The `dp-lora` command line: `train` (the main job), `predict`, `epsilon`, `noise`, `audit`.
 * Each subcommand lives in its own file and registers itself here.
 */
import { Command } from 'commander';
import { registerTrainCommand } from './train';
import { registerEpsilonCommand } from './epsilon';
import { registerNoiseCommand } from './noise';
import { registerPredictCommand } from './predict';
import { registerAuditCommand } from './audit';
import { DpLoraError } from '../errors';

/** Builds the command-line program (exported for tests). */
export function buildProgram(): Command {
  const program = new Command();
  program
    .name('dp-lora')
    .description(
      'Differentially private LoRA fine-tuning, privacy accounting and noise calibration',
    );
  registerTrainCommand(program);
  registerEpsilonCommand(program);
  registerNoiseCommand(program);
  registerPredictCommand(program);
  registerAuditCommand(program);
  return program;
}

/**
 * The one line the CLI prints for a failure: the message, and for a dp-lora error its stable
 * code, e.g. `dp-lora: --rank: must be at most 256, got "1e9" [ERR_DPLORA_INVALID_ARGUMENT]`.
 */
export function formatCliError(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return err instanceof DpLoraError ? `dp-lora: ${message} [${err.code}]` : `dp-lora: ${message}`;
}

if (require.main === module) {
  buildProgram()
    .parseAsync(process.argv)
    .catch((err: unknown) => {
      process.stderr.write(formatCliError(err) + '\n');
      process.exitCode = 1;
    });
}
