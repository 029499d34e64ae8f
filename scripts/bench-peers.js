#!/usr/bin/env node
// `npm run bench:peers`: runs the side-by-side benchmark (PyTorch + Opacus vs dp-lora, one
// DP-SGD step, every config in a fresh process) from this checkout.  It installs nothing:
// it finds the harness (DPLORA_PEERS_HARNESS, else shared/bench/side_by_side in this
// repository or a folder above it), checks that Debian's python3 can import torch (and says
// what to install when it cannot), builds dist/ if it is missing, and writes
// side_by_side.{json,md} and side_by_side.logs/ under bench/results/peers/.
// Every variable of the harness passes through (SHAPES, ROUNDS, THREADS, MODES, ...).
'use strict';
const fs = require('fs');
const path = require('path');
const { spawnSync } = require('child_process');

const repo = path.resolve(__dirname, '..');
const python = process.env.PYTHON || '/usr/bin/python3';

function findHarness() {
  if (process.env.DPLORA_PEERS_HARNESS) return path.resolve(process.env.DPLORA_PEERS_HARNESS);
  for (let dir = repo; ; dir = path.dirname(dir)) {
    const cand = path.join(dir, 'shared', 'bench', 'side_by_side');
    if (fs.existsSync(path.join(cand, 'side_by_side.sh'))) return cand;
    if (path.dirname(dir) === dir) return null;
  }
}

function fail(msg) {
  process.stderr.write(`bench:peers: ${msg}\n`);
  process.exit(1);
}

const harness = findHarness();
if (!harness) {
  fail(
    'the side-by-side harness was not found: set DPLORA_PEERS_HARNESS to the folder holding ' +
      'side_by_side.sh (shared/bench/side_by_side next to the repository)',
  );
}
const torch = spawnSync(python, ['-c', 'import torch, numpy, scipy; print(torch.__version__)'], {
  encoding: 'utf8',
});
if (torch.status !== 0) {
  fail(
    `${python} cannot import torch, numpy and scipy. Install Debian's packages (nothing is ` +
      'pip-installed):\n  apt-get update && apt-get install -y python3-numpy python3-scipy ' +
      'python3-torch python3-mpmath\n(or point PYTHON at an interpreter that has torch 1.13+)',
  );
}
if (!fs.existsSync(path.join(repo, 'dist', 'lib', 'index.js'))) {
  const c = spawnSync('npm', ['run', 'compile'], { cwd: repo, stdio: 'inherit' });
  if (c.status !== 0) fail('npm run compile failed');
}
const out = process.env.OUT_DIR || path.join(repo, 'bench', 'results', 'peers');
fs.mkdirSync(out, { recursive: true });
process.stdout.write(
  `harness ${harness}\ntorch ${torch.stdout.trim()} (${python}); results in ${path.relative(repo, out)}/\n`,
);
const env = { ...process.env, DPLORA_ROOT: repo, OUT_DIR: out, PYTHON: python };
const r = spawnSync('bash', [path.join(harness, 'side_by_side.sh')], { env, stdio: 'inherit' });
process.exit(r.status === null ? 1 : r.status);
