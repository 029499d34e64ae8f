#!/usr/bin/env node
// Scans object files for floating-point code: x87/MMX/SSE/AVX/AVX-512
// registers or instructions in `objdump -d`, and undefined references to
// soft-float helpers or libm in `nm -u`.  Used by test/fixed_no_float.test.ts
// and runnable by hand: node scripts/fp-scan.js file.o ...  (exit 1 on hits)
'use strict';
const { execFileSync } = require('child_process');

// Registers that only floating-point / vector code uses.
const FP_REGISTER = /%(?:[xyz]mm\d+|st(?:\(\d\))?|mm\d|k[0-7])\b/;
// Mnemonics: x87 (f...), AVX (v... except verr/verw), SSE scalar/packed
// arithmetic and conversions, MXCSR access, MMX state.
const FP_MNEMONIC =
  /^(?:f[a-z0-9]*|v(?!err|erw)[a-z0-9]*|cvt[a-z0-9]*|(?:add|sub|mul|div|sqrt|min|max|rcp|rsqrt|cmp|comi|ucomi|round|and|andn|or|xor|mov|movap|movup|movh|movl|movmsk|shuf|unpckh|unpckl|blend|dp|hadd|hsub)(?:ss|sd|ps|pd)|[ls]dmxcsr|emms|femms|ldmxcsr|stmxcsr|pf[a-z0-9]*)$/;
// Software floating point (libgcc) and libm entry points.
const FP_SYMBOL =
  /^(?:__(?:add|sub|mul|div|neg|cmp|eq|ne|lt|le|gt|ge|unord|float(?:un)?|fix(?:uns)?|extend|trunc|pow[a-z]*)[a-z]*(?:sf|df|tf|xf|hf|bf)\d?(?:i\d)?|(?:sqrt|cbrt|exp|exp2|expm1|log|log2|log10|log1p|pow|sin|cos|tan|asin|acos|atan|atan2|sinh|cosh|tanh|floor|ceil|round|lround|llround|rint|lrint|nearbyint|trunc|fma|fmod|frexp|ldexp|hypot|erf|erfc|lgamma|tgamma)[fl]?)(?:@.*)?$/;

const PREFIXES = new Set([
  'rep',
  'repz',
  'repnz',
  'repe',
  'repne',
  'lock',
  'notrack',
  'bnd',
  'data16',
  'addr32',
  'cs',
  'ds',
  'es',
  'ss',
  'fs',
  'gs',
]);

/** Floating-point hits in `objdump -d` text: one string per offending line. */
function scanDisassembly(text) {
  const hits = [];
  for (const line of text.split('\n')) {
    // objdump -d --no-show-raw-insn: "  1f:\tmnemonic operands"
    const parts = line.split('\t');
    if (parts.length < 2 || !/^\s*[0-9a-f]+:$/.test(parts[0])) continue;
    const insn = parts.slice(1).join(' ').trim();
    if (!insn) continue;
    const tokens = insn.split(/\s+/);
    let i = 0;
    while (i < tokens.length - 1 && PREFIXES.has(tokens[i])) i++;
    const mnemonic = tokens[i];
    if (FP_REGISTER.test(insn) || FP_MNEMONIC.test(mnemonic)) hits.push(line.trim());
  }
  return hits;
}

/** Floating-point helper symbols among `nm -u` output lines. */
function scanUndefined(text) {
  return text
    .split('\n')
    .map((l) => l.trim().split(/\s+/).pop())
    .filter((s) => s && FP_SYMBOL.test(s));
}

/** All hits in one object file (objdump and nm must be on PATH). */
function scanObject(file) {
  const dis = execFileSync('objdump', ['-d', '--no-show-raw-insn', file], {
    encoding: 'utf8',
    maxBuffer: 1 << 28,
  });
  const und = execFileSync('nm', ['-u', file], { encoding: 'utf8' });
  return [
    ...scanDisassembly(dis).map((h) => `insn: ${h}`),
    ...scanUndefined(und).map((s) => `symbol: ${s}`),
  ];
}

module.exports = { scanDisassembly, scanUndefined, scanObject };

if (require.main === module) {
  let bad = 0;
  for (const f of process.argv.slice(2)) {
    const hits = scanObject(f);
    if (hits.length) {
      bad++;
      console.log(`${f}: ${hits.length} floating-point hit(s)`);
      for (const h of hits.slice(0, 20)) console.log(`  ${h}`);
    } else {
      console.log(`${f}: no floating point`);
    }
  }
  process.exit(bad ? 1 : 0);
}
