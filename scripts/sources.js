#!/usr/bin/env node
// Lists kernel sources of one kind for binding.gyp (gyp has no globs).
// Kinds: base (portable C++), avx2, avx512, neon, intonly (integer-only
// translation units, compiled so that no floating-point register is usable).
'use strict';
const fs = require('fs');
const path = require('path');

const root = path.join(__dirname, '..', 'native', 'kernels');
const kind = process.argv[2];
const list = (dir) =>
  fs.existsSync(dir)
    ? fs
        .readdirSync(dir)
        .filter((f) => f.endsWith('.cc'))
        .sort()
    : [];
const isaOf = (f) => (/_(avx2|avx512|neon)\.cc$/.exec(f) || [null, 'base'])[1];

let files;
if (kind === 'intonly')
  files = ['intonly', 'fixed'].flatMap((d) =>
    list(path.join(root, d)).map((f) => `native/kernels/${d}/${f}`),
  );
else
  files = list(root)
    .filter((f) => isaOf(f) === kind)
    .map((f) => `native/kernels/${f}`);
process.stdout.write(files.join(' '));
