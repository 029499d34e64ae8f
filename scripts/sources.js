#!/usr/bin/env node
// Lists kernel sources of one kind for binding.gyp (gyp has no globs), found
// recursively under native/kernels/ (one folder per kernel family) and chosen
// by suffix.  Kinds: base (portable C++), avx2, avx512, avx512bf16, neon (the *_avx2.cc,
// *_avx512.cc, *_avx512bf16.cc, *_neon.cc files), intonly (the translation units under any
// `intonly/` folder, compiled so that no floating-point register is usable),
// and includes (every folder holding a header, for include_dirs).
'use strict';
const fs = require('fs');
const path = require('path');

const repo = path.join(__dirname, '..');
const root = path.join(repo, 'native', 'kernels');
const kind = process.argv[2];

// Every file under dir, as paths relative to the repository, sorted.
const walk = (dir) =>
  fs.existsSync(dir)
    ? fs
        .readdirSync(dir, { withFileTypes: true })
        .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
        .flatMap((e) => (e.isDirectory() ? walk(path.join(dir, e.name)) : [path.join(dir, e.name)]))
    : [];
const rel = (f) => path.relative(repo, f).split(path.sep).join('/');
const files = walk(root).map(rel);
// Float-free units: native/kernels/intonly/ (kernels) and native/kernels/fixed/ (integer-mode
// entry points and the integer LoRA step), compiled so that no floating-point register is usable.
const isIntOnly = (f) => {
  const parts = f.split('/');
  return parts.includes('intonly') || parts[2] === 'fixed';
};
const isaOf = (f) => (/_(avx2|avx512|avx512bf16|neon)\.cc$/.exec(f) || [null, 'base'])[1];

let out;
if (kind === 'includes') {
  const dirs = files.filter((f) => f.endsWith('.h')).map((f) => path.posix.dirname(f));
  out = [...new Set(['native/kernels', ...dirs])].sort();
} else if (kind === 'intonly') {
  out = files.filter((f) => f.endsWith('.cc') && isIntOnly(f));
} else if (['base', 'avx2', 'avx512', 'avx512bf16', 'neon'].includes(kind)) {
  out = files.filter((f) => f.endsWith('.cc') && !isIntOnly(f) && isaOf(f) === kind);
} else {
  process.stderr.write(`sources.js: unknown kind ${kind}\n`);
  process.exit(2);
}
process.stdout.write(out.join(' '));
