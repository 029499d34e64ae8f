/* Runs `dp-lora train ARGS...` from the TypeScript sources (test/cli_signals.test.ts). */
'use strict';
const path = require('path');
const root = path.resolve(__dirname, '..', '..');
require('./ts_hook')(root);
const { buildProgram } = require(path.join(root, 'lib', 'cli', 'main.ts'));
buildProgram()
  .parseAsync(['node', 'dp-lora', 'train', ...process.argv.slice(2)])
  .catch((err) => {
    process.stderr.write(`dp-lora: ${err.message}\n`);
    process.exitCode = 1;
  });
