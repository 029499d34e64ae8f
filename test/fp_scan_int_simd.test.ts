/**
 * The host-only SIMD ChaCha20 keystreams (native/kernels/rng/chacha20_avx2.cc
 * and chacha20_avx512.cc), which the exact discrete Gaussian reads on x86-64,
 * contain integer SIMD only: scripts/fp-scan.js --int-simd (integer vector
 * instructions allowed, every floating-point or FP-domain instruction still
 * a hit) passes their objects, freshly compiled with the build's flags and
 * as shipped in build/.  Controls: integer SIMD passes that mode and fails
 * the strict one; float SIMD, FP-domain moves, conversions, FMA and x87 fail
 * both.
 */
import * as fs from 'fs';
import * as path from 'path';
import { ROOT, compile as compileWith, fpScan, scanSuite, suiteTmpDir } from './helpers/fp_scan';

const { scanObject, scanDisassembly } = fpScan;
const RNG = path.join(ROOT, 'native', 'kernels', 'rng');
const INT = { intSimd: true };
const maybe = scanSuite('fp_scan_int_simd');

// The flags of binding.gyp's dplora_avx2 and dplora_avx512 targets.
const AVX2 = ['-mavx2', '-mfma'];
const AVX512 = [...AVX2, '-mavx512f', '-mavx512bw', '-mavx512dq', '-mavx512vl'];

function compile(src: string, out: string, flags: string[]): { ok: boolean; stderr: string } {
  return compileWith(src, out, ['-fPIC', ...flags], [path.join(ROOT, 'native', 'include'), RNG]);
}

/** One objdump line per instruction, as scanDisassembly reads them. */
const lines = (...insns: string[]): string => insns.map((s, i) => `  ${i}:\t${s}`).join('\n');

maybe('integer-SIMD ChaCha20 keystream units contain no floating point', () => {
  const tmp = suiteTmpDir('dplora-intsimd-');

  const units: [string, string[]][] = [
    ['chacha20_avx2.cc', AVX2],
    ['chacha20_avx512.cc', AVX512],
  ];

  for (const opt of ['-O2', '-O3']) {
    test(`freshly compiled keystream objects (${opt}) pass --int-simd and use SIMD`, () => {
      const report: string[] = [];
      for (const [f, flags] of units) {
        const obj = path.join(tmp(), `${f}${opt}.o`);
        const r = compile(path.join(RNG, f), obj, [opt, '-Wall', ...flags]);
        if (!r.ok) throw new Error(`${f} does not compile:\n${r.stderr}`);
        const hits = scanObject(obj, '', INT);
        if (hits.length) report.push(`${f}: ${hits.slice(0, 10).join('\n  ')}`);
        // The strict scan does see vector code there (the lenient one is not vacuous).
        expect(scanObject(obj).length).toBeGreaterThan(100);
      }
      expect(report).toEqual([]);
    });
  }

  test('the shipped keystream objects in build/ exist and pass --int-simd', () => {
    const objs = [
      path.join(ROOT, 'build/Release/obj.target/dplora_avx2/native/kernels/rng/chacha20_avx2.o'),
      path.join(
        ROOT,
        'build/Release/obj.target/dplora_avx512/native/kernels/rng/chacha20_avx512.o',
      ),
    ];
    const missing = objs.filter((o) => !fs.existsSync(o));
    if (missing.length)
      throw new Error(`missing ${missing.join(', ')}: build the addon (npx node-gyp rebuild)`);
    expect(objs.map((o) => scanObject(o, '', INT)).flat()).toEqual([]);
  });

  test('control: integer SIMD passes --int-simd and fails the strict scan', () => {
    const src = path.join(tmp(), 'int_simd.cc');
    fs.writeFileSync(
      src,
      [
        '#include <immintrin.h>',
        'extern "C" void mix(const __m256i *a, __m256i *o) {',
        '  __m256i x = _mm256_add_epi32(a[0], a[1]);',
        '  x = _mm256_xor_si256(x, _mm256_slli_epi32(x, 7));',
        '  o[0] = _mm256_shuffle_epi8(x, a[2]);',
        '}',
        'extern "C" void mix512(const __m512i *a, __m512i *o) {',
        '  o[0] = _mm512_rol_epi32(_mm512_add_epi32(a[0], a[1]), 16);',
        '}',
      ].join('\n'),
    );
    const obj = path.join(tmp(), 'int_simd.o');
    expect(compile(src, obj, ['-O2', ...AVX512]).ok).toBe(true);
    expect(scanObject(obj, '', INT)).toEqual([]);
    expect(scanObject(obj).join('\n')).toMatch(/vpaddd/);
  });

  test('control: float SIMD, conversions and scalar floats fail --int-simd', () => {
    const src = path.join(tmp(), 'float_simd.cc');
    fs.writeFileSync(
      src,
      [
        '#include <immintrin.h>',
        'extern "C" void scale(const __m256i *a, __m256 *o, float s) {',
        '  o[0] = _mm256_mul_ps(_mm256_cvtepi32_ps(a[0]), _mm256_set1_ps(s));',
        '}',
        'extern "C" double half(double x) { return x * 0.5; }',
        'extern "C" __m256i viaf(__m256i a) {',
        '  return _mm256_castps_si256(_mm256_xor_ps(_mm256_castsi256_ps(a), _mm256_set1_ps(1)));',
        '}',
      ].join('\n'),
    );
    const obj = path.join(tmp(), 'float_simd.o');
    expect(compile(src, obj, ['-O2', ...AVX2]).ok).toBe(true);
    const hits = scanObject(obj, '', INT).join('\n');
    expect(hits).toMatch(/vcvtdq2ps/);
    expect(hits).toMatch(/vmulps/);
    expect(hits).toMatch(/mulsd/);
    expect(hits).toMatch(/vxorps/);
  });

  test('control: the parser tells integer from FP-domain instructions', () => {
    const ok = [
      'vpaddd %ymm1,%ymm2,%ymm3',
      'vprold $0x10,%zmm1,%zmm2',
      'vpxorq %zmm1,%zmm2,%zmm3',
      'vpshufb %ymm1,%ymm2,%ymm3',
      'vpunpckldq %ymm1,%ymm2,%ymm3',
      'vperm2i128 $0x20,%ymm1,%ymm0,%ymm0',
      'vmovdqa64 %zmm1,(%rsp)',
      'vmovdqu %ymm0,(%rax)',
      'vpbroadcastd 0xc(%rdi),%ymm6',
      'vextracti64x4 $0x1,%zmm1,%ymm2',
      'vinserti128 $0x1,%xmm1,%ymm2,%ymm3',
      'movd %eax,%xmm0',
      'paddd %xmm1,%xmm0',
      'vzeroupper',
      'kmovw %k1,%eax',
    ];
    for (const i of ok) expect([i, scanDisassembly(lines(i), 'x86', INT)]).toEqual([i, []]);
    const bad = [
      'vmovapd 0x708(%rsp),%ymm14',
      'vmovaps %ymm1,%ymm2',
      'vmovups (%rax),%ymm1',
      'vxorps %xmm0,%xmm0,%xmm0',
      'vaddps %ymm1,%ymm2,%ymm3',
      'vfmadd231ps %ymm1,%ymm2,%ymm3',
      'vcvtdq2ps %ymm1,%ymm2',
      'vbroadcastss (%rax),%ymm1',
      'vinsertf128 $0x1,%xmm1,%ymm2,%ymm3',
      'vpermilps $0x1b,%ymm1,%ymm2',
      'vpermps %ymm1,%ymm2,%ymm3',
      'vpdpbf16ps %zmm1,%zmm2,%zmm3',
      'cvtsi2sd %rax,%xmm0',
      'addsd %xmm1,%xmm0',
      'pfadd %mm1,%mm0',
      'fldl 0x8(%rsp)',
    ];
    for (const i of bad) expect([i, scanDisassembly(lines(i), 'x86', INT).length]).toEqual([i, 1]);
    // Without --int-simd every vector instruction is a hit, as before.
    for (const i of ok.filter((x) => /%[xyz]mm|%k\d|^v|^k/.test(x)))
      expect([i, scanDisassembly(lines(i)).length]).toEqual([i, 1]);
  });
});
