#!/usr/bin/env node
// Scans object files or linked executables for floating-point code, on any
// host, for x86-64, AArch64, 32-bit ARM and RISC-V:
//  - instructions and registers in the disassembly (x87/MMX/SSE/AVX/AVX-512;
//    AArch64 FP/SIMD: s/d/h/q/b and v registers, scvtf/fcvt*/fmov...;
//    ARM VFP/NEON (v* mnemonics, s/d/q registers, vmrs/vmsr, coprocessors
//    10/11) and FPA; RISC-V F/D/Q/Zfh: f* mnemonics except fence, f
//    registers, fcsr/frm/fflags);
//  - undefined symbols of soft-float helpers and libm (nm -u): the libgcc
//    names (__add/sub/mul/div/neg/cmp/eq/ne/lt/le/gt/ge/unord [sdtxhb]f*,
//    __float*, __fix*, __extend*, __trunc*, __pow*), every ARM EABI helper
//    __aeabi_d* / __aeabi_f* / __aeabi_[ui]2[fd] / __aeabi_l2[fd] /
//    __aeabi_ul2[fd] / __aeabi_h2f / __aeabi_f2h, and libm entry points;
//  - build attributes: ARM Tag_FP_arch / Tag_ABI_VFP_args / Tag_Advanced_SIMD,
//    RISC-V float ABI in e_flags or an F/D/Q extension in the arch string.
// Tools: objdump/nm/readelf of the target (set OBJDUMP, NM, READELF, or
// pass --tool-prefix=riscv64-linux-gnu-); the host's binutils otherwise.
// With --int-simd (x86-64 only) integer SIMD is allowed: the SSE2/AVX2/
// AVX-512 integer instructions (p*/vp* other than the FP-domain ones, the
// integer moves, inserts, extracts, shuffles and broadcasts, vzeroupper,
// the mask-register k* instructions) on xmm/ymm/zmm/k registers; every
// floating-point or FP-domain instruction (vmovaps, vxorps, vbroadcastss,
// vinsertf128, cvt*, vfmadd*, x87, ...) is still a hit.  This is how the
// host-only SIMD ChaCha20 keystream units are proven float-free
// (test/fp_scan_int_simd.test.ts).
// Used by test/fixed_no_float.test.ts and scripts/nofpu-tests.sh:
//   node scripts/fp-scan.js [--tool-prefix=P] [--int-simd] file.o ...   (exit 1 on hits)
'use strict';
const { execFileSync } = require('child_process');

// ---------------------------------------------------------------- x86-64
const X86_REGISTER = /%(?:[xyz]mm\d+|st(?:\(\d\))?|mm\d|k[0-7])\b/;
const X86_MNEMONIC =
  /^(?:f[a-z0-9]*|v(?!err|erw)[a-z0-9]*|cvt[a-z0-9]*|(?:add|sub|mul|div|sqrt|min|max|rcp|rsqrt|cmp|comi|ucomi|round|and|andn|or|xor|mov|movap|movup|movh|movl|movmsk|shuf|unpckh|unpckl|blend|dp|hadd|hsub)(?:ss|sd|ps|pd)|[ls]dmxcsr|emms|femms|ldmxcsr|stmxcsr|pf[a-z0-9]*)$/;
// Integer SIMD (allowed with --int-simd): p*/vp* integer operations except
// the FP-domain permutes and anything ending in a float type (ps pd ss sd
// ph, bf16), 3DNow! (pf*); integer moves, inserts, extracts, shuffles,
// broadcasts; vzeroupper/vzeroall; mask-register instructions.
const X86_INT_SIMD =
  /^(?:v?p(?!f)[a-z0-9]*|v?movdq[au](?:8|16|32|64)?|v?mov[dq]|vmovntdqa?|movntdqa?|v?lddqu|v(?:inserti|extracti)(?:128|32x4|64x2|32x8|64x4)|vshufi(?:32x4|64x2)|valign[dq]|vperm2i128|vbroadcasti(?:128|32x2|32x4|64x2|32x8|64x4)|vzeroupper|vzeroall|k[a-z]+)$/;
const X86_FP_TYPE = /(?:ps|pd|ss|sd|ph|sh|bf16|bf8|hf8)$/;

/** True for an integer-SIMD (or plain integer) x86 instruction. */
function x86IntSimd(mnemonic) {
  return X86_INT_SIMD.test(mnemonic) && !X86_FP_TYPE.test(mnemonic);
}

// --------------------------------------------------------------- AArch64
// FP/SIMD registers as operands (b0-b31 etc. are only FP/SIMD registers in
// AArch64 assembly), vector arrangements, and FP-only mnemonics.
const A64_REGISTER =
  /(?:^|[\s,[{])(?:[bhsdq](?:[12]?\d|3[01])|v(?:[12]?\d|3[01])(?:\.\d*[bhsdq])?)(?=$|[\s,\]}])/;
const A64_MNEMONIC =
  /^(?:[su]cvtf|fcvt[a-z]*|fmov|fadd[a-z]*|fsub|fmul[a-z]*|fdiv|fsqrt|fabs|fneg|fmadd|fmsub|fnmadd|fnmsub|fmax[a-z]*|fmin[a-z]*|fcmp[a-z]*|fccmp[a-z]*|fcsel|frint[a-z]*|frecp[a-z]*|frsqrt[a-z]*|fjcvtzs|bfcvt[a-z]*|mrs\s.*fpcr|msr\s.*fp[cs]r)$/;
// ----------------------------------------------------------------- ARM32
const ARM_MNEMONIC =
  /^(?:v[a-z][a-z0-9.]*|f(?:ldm|stm|ld[sd]|st[sd]|mrx|mxr|mrs|mstat|add|sub|mul|div|cpy|neg|abs|sqrt|cmp|cvt|sito|uito|tosi|toui|mdrr|mrrd|msr)[a-z0-9]*|(?:ldf|stf|lfm|sfm|adf|suf|muf|dvf|mvf|mnf|abs|rnd|sqt|flt|fix|wfs|rfs|cmf|cnf)[a-z]{0,3})$/;
// Coprocessor instructions on the FPA (1, 2) or VFP/NEON (10, 11) coprocessors.
const ARM_COPROC = /^(?:cdp|ldc|stc|mcr|mrc|mcrr|mrrc)2?l?[a-z]{0,2}$/;
const ARM_FP_COPROC = /^(?:p|cp)?(?:1|2|10|11),?$/;
const ARM_REGISTER =
  /(?:^|[\s,{])(?:[sdq](?:[12]?\d|3[01])|fpscr|fpexc|fpsid|mvfr[012]|p1[01]|cp1[01])(?=$|[\s,}\]!])/;
// ---------------------------------------------------------------- RISC-V
const RV_MNEMONIC = /^f(?!ence)[a-z0-9.]*$|^(?:c\.)?f(?:ld|sd|lw|sw|ldsp|sdsp|lwsp|swsp)$/;
const RV_REGISTER =
  /(?:^|[\s,(])(?:f(?:[12]?\d|3[01])|ft(?:[0-9]|1[01])|fs(?:[0-9]|1[01])|fa[0-7]|fcsr|frm|fflags)(?=$|[\s,)])/;

// Software floating point (libgcc, ARM EABI run-time ABI) and libm.
const FP_SYMBOL = new RegExp(
  '^(?:' +
    [
      '__(?:add|sub|mul|div|neg|cmp|eq|ne|lt|le|gt|ge|unord|float(?:un)?|fix(?:uns)?|extend|trunc|pow[a-z]*)[a-z]*(?:sf|df|tf|xf|hf|bf)\\d?(?:i\\d)?',
      '__fix[a-z0-9]*',
      '__float[a-z0-9]*',
      '__aeabi_(?:[df][a-z0-9]*|[iu]2[df]|[iu]l2[df]|l2[df]|h2f[a-z]*|f2h[a-z]*|d2h[a-z]*)',
      '__(?:riscv|arm)_[a-z_]*(?:fp|float)[a-z_]*',
      '(?:sqrt|cbrt|exp|exp2|expm1|log|log2|log10|log1p|logb|pow|sin|cos|tan|asin|acos|atan|atan2|sinh|cosh|tanh|asinh|acosh|atanh|floor|ceil|round|lround|llround|rint|lrint|llrint|nearbyint|trunc|fma|fmod|remainder|remquo|frexp|ldexp|scalbn|scalbln|modf|hypot|erf|erfc|lgamma|tgamma|fabs|fmin|fmax|fdim|copysign|nan|nextafter|ilogb)[fl]?',
      '(?:__)?(?:fe(?:get|set|clear|raise|test|hold|update)[a-z]*|isnan|isinf|finite|signbit)[fl]?',
    ].join('|') +
    ')(?:@.*)?$',
);

const X86_PREFIXES = new Set(
  'rep repz repnz repe repne lock notrack bnd data16 addr32 cs ds es ss fs gs'.split(' '),
);

function archOf(objdumpHeader) {
  const m = /architecture:\s*([^,\s]+)/.exec(objdumpHeader || '');
  const a = m ? m[1] : 'i386:x86-64';
  if (/aarch64/.test(a)) return 'aarch64';
  if (/^arm/.test(a)) return 'arm';
  if (/riscv/.test(a)) return 'riscv';
  return 'x86';
}

/**
 * Floating-point hits in `objdump -d` text: one string per offending line.
 * `arch` is 'x86' (default), 'aarch64', 'arm' or 'riscv'; `opts.intSimd`
 * (x86 only) allows integer SIMD instructions and registers.
 */
function scanDisassembly(text, arch = 'x86', opts = {}) {
  const hits = [];
  for (const line of text.split('\n')) {
    // objdump -d --no-show-raw-insn: "  1f:\tmnemonic operands"
    const parts = line.split('\t');
    if (parts.length < 2 || !/^\s*[0-9a-f]+:$/.test(parts[0])) continue;
    let insn = parts.slice(1).join(' ').trim();
    // Branch targets ("f6 <.L38>": an address, not a register), comments.
    insn = insn.replace(/(?:0x)?[0-9a-f]+\s*<[^>]*>/g, '').replace(/\s*[;@#<].*$/, '');
    if (!insn) continue;
    const tokens = insn.split(/\s+/);
    let i = 0;
    if (arch === 'x86') while (i < tokens.length - 1 && X86_PREFIXES.has(tokens[i])) i++;
    const mnemonic = tokens[i];
    const operands = tokens.slice(i + 1).join(' ');
    let bad = false;
    if (arch === 'x86') {
      bad = X86_REGISTER.test(insn) || X86_MNEMONIC.test(mnemonic);
      if (bad && opts.intSimd && x86IntSimd(mnemonic)) bad = false;
    } else if (arch === 'aarch64')
      bad = A64_REGISTER.test(operands) || A64_MNEMONIC.test(mnemonic) || /fp[cs]r/.test(operands);
    else if (arch === 'arm')
      bad =
        ARM_MNEMONIC.test(mnemonic) ||
        ARM_REGISTER.test(operands) ||
        (ARM_COPROC.test(mnemonic) && ARM_FP_COPROC.test(tokens[i + 1] || ''));
    else if (arch === 'riscv') bad = RV_MNEMONIC.test(mnemonic) || RV_REGISTER.test(operands);
    if (bad) hits.push(line.trim());
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

/** Floating-point build attributes in `readelf -A -h` text for `arch`. */
function scanAttributes(text, arch) {
  const hits = [];
  if (arch === 'arm') {
    for (const l of text.split('\n')) {
      if (/Tag_(?:FP_arch|ABI_VFP_args|Advanced_SIMD_arch|MVE_arch|FP_HP_extension)\s*:/.test(l))
        hits.push(l.trim());
      if (/Flags:.*hard-float/.test(l)) hits.push(l.trim());
    }
  } else if (arch === 'riscv') {
    for (const l of text.split('\n')) {
      if (/Flags:.*(?:single|double|quad)-float ABI/.test(l)) hits.push(l.trim());
      const m = /Tag_RISCV_arch:\s*"?([a-z0-9_]+)/.exec(l);
      if (!m) continue;
      const [base, ...exts] = m[1].split('_');
      const letters = base.replace(/^rv\d+/, '').replace(/\d+p\d+/g, '');
      if (
        /[fdqg]/.test(letters) ||
        exts.some((e) => /^(?:f|d|q|zfh|zfhmin|zfa|zfinx|zdinx|zhinx)\d/.test(e))
      )
        hits.push(l.trim());
    }
  }
  return [...new Set(hits)];
}

function tool(prefix, name) {
  const env = { objdump: 'OBJDUMP', nm: 'NM', readelf: 'READELF' }[name];
  return process.env[env] || `${prefix}${name}`;
}

/**
 * All hits in one object file or executable; `opts.intSimd` allows integer
 * SIMD (x86-64).
 */
function scanObject(file, prefix = '', opts = {}) {
  const run = (n, args) =>
    execFileSync(tool(prefix, n), [...args, file], { encoding: 'utf8', maxBuffer: 1 << 28 });
  const arch = archOf(run('objdump', ['-f']));
  const dis = run('objdump', ['-d', '--no-show-raw-insn']);
  const und = run('nm', ['-u']);
  let attr = '';
  if (arch === 'arm' || arch === 'riscv') attr = run('readelf', ['-A', '-h']);
  return [
    ...scanDisassembly(dis, arch, opts).map((h) => `insn: ${h}`),
    ...scanUndefined(und).map((s) => `symbol: ${s}`),
    ...scanAttributes(attr, arch).map((s) => `attribute: ${s}`),
  ];
}

module.exports = {
  scanDisassembly,
  scanUndefined,
  scanAttributes,
  scanObject,
  x86IntSimd,
  FP_SYMBOL,
};

if (require.main === module) {
  let prefix = '';
  let bad = 0;
  const opts = { intSimd: process.argv.includes('--int-simd') };
  for (const f of process.argv.slice(2)) {
    if (f === '--int-simd') continue;
    if (f.startsWith('--tool-prefix=')) {
      prefix = f.slice('--tool-prefix='.length);
      continue;
    }
    const hits = scanObject(f, prefix, opts);
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
