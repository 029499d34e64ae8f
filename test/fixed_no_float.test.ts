/**
 * No floating point after the quantizer: every integer-only translation unit
 * (native/kernels/intonly/*.cc: ChaCha20, the discrete Gaussian, the
 * fixed-point clipping) is compiled here with the build's flags
 * (-mgeneral-regs-only, at -O2 and -O3) and the objects that shipped in
 * build/ are taken too; each is disassembled and must contain no x87, MMX,
 * SSE, AVX or AVX-512 register or instruction, and no reference to
 * soft-float helpers or libm.  -mgeneral-regs-only is the first guard, this
 * scan the second.  Controls show the scan (and the flag) do catch floats.
 */
import { execFileSync, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { ROOT, compile as compileWith, fpScan, scanSuite, suiteTmpDir } from './helpers/fp_scan';

const { scanObject, scanDisassembly, scanUndefined } = fpScan;
const INTONLY = path.join(ROOT, 'native', 'kernels', 'intonly');
const maybe = scanSuite('fixed_no_float');

// Every kernel folder holding a header (one folder per family), as the builds use.
const KERNEL_INCLUDES = spawnSync('node', [path.join(ROOT, 'scripts', 'sources.js'), 'includes'], {
  encoding: 'utf8',
})
  .stdout.split(/\s+/)
  .filter(Boolean);

function compile(src: string, out: string, flags: string[]): { ok: boolean; stderr: string } {
  return compileWith(src, out, flags, [
    path.join(ROOT, 'native', 'include'),
    ...KERNEL_INCLUDES.map((d) => path.join(ROOT, d)),
  ]);
}

maybe('integer-only translation units contain no floating point', () => {
  const tmp = suiteTmpDir('dplora-nofloat-');

  const sources = fs.existsSync(INTONLY)
    ? fs
        .readdirSync(INTONLY)
        .filter((f) => f.endsWith('.cc'))
        .sort()
    : [];

  test('the integer-only sources are the noise and fixed-point kernels', () => {
    expect(sources).toEqual(
      expect.arrayContaining(['chacha20.cc', 'discrete_gaussian.cc', 'fixed_clip.cc']),
    );
  });

  for (const opt of ['-O2', '-O3']) {
    test(`freshly compiled objects (${opt} -mgeneral-regs-only) pass the scan`, () => {
      expect(sources.length).toBeGreaterThan(0);
      const report: string[] = [];
      for (const f of sources) {
        const obj = path.join(tmp(), `${f}${opt}.o`);
        const r = compile(path.join(INTONLY, f), obj, [opt, '-mgeneral-regs-only', '-Wall']);
        if (!r.ok) throw new Error(`${f} does not compile with -mgeneral-regs-only:\n${r.stderr}`);
        const hits = scanObject(obj);
        if (hits.length) report.push(`${f}: ${hits.slice(0, 10).join('\n  ')}`);
      }
      expect(report).toEqual([]);
    });
  }

  // The addon's own objects must exist and be scanned: a scan of nothing proves nothing. The
  // suite needs the built addon anyway (`npx node-gyp rebuild`); only where the platform cannot
  // build (not linux-x64 with g++, objdump and nm) is the whole suite skipped, with the reason
  // printed above.
  test('the objects in build/ exist (one per integer-only source) and pass the scan', () => {
    const dirs = [
      path.join(ROOT, 'build', 'Release', 'obj.target', 'dplora_intonly'),
      path.join(ROOT, 'build-native'),
      path.join(ROOT, 'build-asan'),
      path.join(ROOT, 'build-nofloat'),
    ];
    const objs: string[] = [];
    const walk = (d: string) => {
      if (!fs.existsSync(d)) return;
      for (const e of fs.readdirSync(d, { withFileTypes: true })) {
        const p = path.join(d, e.name);
        if (e.isDirectory()) walk(p);
        else if (/\.o$/.test(p) && p.includes(`${path.sep}intonly${path.sep}`)) objs.push(p);
      }
    };
    dirs.forEach(walk);
    if (!fs.existsSync(dirs[0]))
      throw new Error(
        `no integer-only objects in ${dirs[0]}: build the addon first (npx node-gyp rebuild)`,
      );
    const built = new Set(
      objs.filter((o) => o.startsWith(dirs[0])).map((o) => path.basename(o, '.o') + '.cc'),
    );
    expect(sources.length).toBeGreaterThan(0);
    expect(sources.filter((f) => !built.has(f))).toEqual([]); // every source has its object
    const report: string[] = [];
    for (const o of objs) {
      // Sanitizer builds instrument with runtime calls but still no FP.
      const hits = scanObject(o);
      if (hits.length) report.push(`${o}: ${hits.slice(0, 10).join('\n  ')}`);
    }
    expect(report).toEqual([]);
  });

  test('control: the scan detects floating point in an ordinary object', () => {
    const src = path.join(tmp(), 'float_control.cc');
    fs.writeFileSync(
      src,
      'extern "C" int scaled(int a, float s) { return (int)(a * s); }\nextern "C" double root(double x) { return __builtin_sqrt(x) + 1.0; }\n',
    );
    const obj = path.join(tmp(), 'float_control.o');
    const r = compile(src, obj, ['-O2']);
    expect(r.ok).toBe(true);
    const hits = scanObject(obj);
    expect(hits.length).toBeGreaterThan(0);
    expect(hits.join('\n')).toMatch(/xmm/);
  });

  test('control: -mgeneral-regs-only refuses floating point at compile time', () => {
    const src = path.join(tmp(), 'float_refused.cc');
    fs.writeFileSync(
      src,
      'extern "C" int scaled(int a) { float s = 1.5f; return (int)(a * s); }\n',
    );
    const r = compile(src, path.join(tmp(), 'float_refused.o'), ['-O2', '-mgeneral-regs-only']);
    expect(r.ok).toBe(false);
    expect(r.stderr).toMatch(/SSE|x87|floating/i);
  });

  test('control: the parser flags x87, AVX-512 mask, soft-float and libm lines', () => {
    expect(scanDisassembly('   0:\tfldl   0x8(%rsp)\n   4:\tmov    %rax,%rbx')).toHaveLength(1);
    expect(scanDisassembly('   0:\tkmovw  %k1,%eax')).toHaveLength(1);
    expect(scanDisassembly('   0:\tvpaddd %ymm1,%ymm2,%ymm3')).toHaveLength(1);
    expect(
      scanDisassembly(
        '   0:\trep stos %rax,%es:(%rdi)\n   3:\tmovsl  %ds:(%rsi),%es:(%rdi)\n   5:\timul   %rdx,%rax',
      ),
    ).toHaveLength(0);
    expect(
      scanUndefined(
        '                 U __mulsf3\n                 U memcpy\n                 U sqrt\n                 U __udivti3',
      ),
    ).toEqual(['__mulsf3', 'sqrt']);
    // A real disassembly of integer code is clean.
    const intSrc = path.join(tmp(), 'int_control.cc');
    fs.writeFileSync(
      intSrc,
      'extern "C" unsigned long mix(unsigned long a, unsigned long b) { return (a * b) ^ (a >> 7); }\n',
    );
    const obj = path.join(tmp(), 'int_control.o');
    expect(compile(intSrc, obj, ['-O2']).ok).toBe(true);
    expect(scanObject(obj)).toEqual([]);
    expect(execFileSync('objdump', ['-d', obj], { encoding: 'utf8' })).toMatch(/imul|mul/);
  });
});
