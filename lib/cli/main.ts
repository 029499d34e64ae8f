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

if (require.main === module) {
  buildProgram()
    .parseAsync(process.argv)
    .catch((err: unknown) => {
      process.stderr.write(`dp-lora: ${(err as Error).message}\n`);
      process.exitCode = 1;
    });
}
