/**
 * PackedMatrix.multiplyWithInit: a second (narrow) product written as the C init of a packed
 * product, block of rows by block of rows.  Checked bitwise against the two-call form it
 * replaces (the init product with beta, then the main product with beta = 1), against a
 * float64 reference, on every ISA path and thread count, with odd sizes, offsets into shared
 * buffers and strided init operands; and the LoRA layer that uses it gives bitwise the same
 * forward output and input gradient as with the fusion off.
 */
import { LoraLinear, Linear, Tensor } from '../lib';
import { PackedMatrix, sgemm } from '../lib/api/kernels';
import { FUSION } from '../lib/nn/ops';
import { forEachConfig } from './reference/linalg_configs';
import { offsetView, randomF32, refSgemm, rng } from './reference/linalg_ref';

const bits = (x: Float32Array) => new Uint32Array(x.buffer, x.byteOffset, x.length);

/** The first index where x and y differ bitwise, or -1. */
function firstDiff(x: Float32Array, y: Float32Array): number {
  const a = bits(x);
  const b = bits(y);
  if (a.length !== b.length) return 0;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i;
  return -1;
}
const EPS = 2 ** -24;

describe('PackedMatrix.multiplyWithInit', () => {
  it('equals the init product followed by the packed product, bit for bit, and the float64 reference', () => {
    const rand = rng(77);
    forEachConfig((isa, threads) => {
      for (const [m, n, k, k2] of [
        [1, 1, 1, 1],
        [13, 33, 5, 9],
        [97, 100, 70, 1],
        [150, 65, 130, 64],
        [40, 768, 3, 17],
      ]) {
        for (const transB of [false, true]) {
          const beta = m % 2 === 0 ? 0.5 : 0;
          const alpha = -0.75;
          const alpha2 = 1.25;
          const lda2 = k2 + (m % 3);
          const b = randomF32(rand, k * n);
          const base = PackedMatrix.pack(b, { k, n, transB });
          const b2 = randomF32(rand, k2 * n);
          const init = PackedMatrix.pack(b2, { k: k2, n, transB: !transB });
          const a = offsetView(randomF32(rand, m * k), 1);
          const a2 = offsetView(randomF32(rand, (m - 1) * lda2 + k2), 3);
          const c0 = offsetView(randomF32(rand, m * n), 5);
          const fused = offsetView(c0, 5);
          base.multiplyWithInit(
            a,
            fused,
            { m, n, k, alpha, beta },
            { a: a2, b: init, alpha: alpha2, lda: lda2 },
          );
          // Two calls: the init with beta, then the main product with beta = 1.
          const two = offsetView(c0, 5);
          sgemm(a2, b2, two, { m, n, k: k2, alpha: alpha2, beta, lda: lda2, transB: !transB });
          base.multiply(a, two, { m, n, k, alpha, beta: 1 });
          const what = `${isa} x${threads} ${m}x${n}x${k} k2=${k2} transB=${transB}`;
          expect([what, firstDiff(fused, two)]).toEqual([what, -1]);
          // float64: beta c0 + alpha2 a2 b2 + alpha a b.
          const ri = refSgemm(a2, b2, c0, {
            m,
            n,
            k: k2,
            alpha: alpha2,
            beta,
            lda: lda2,
            transB: !transB,
          });
          const rm = refSgemm(a, b, new Float32Array(m * n), { m, n, k, alpha, transB });
          for (let i = 0; i < m * n; i++) {
            const want = ri.c[i] + rm.c[i];
            const tol = (k + k2 + 6) * EPS * (ri.scale[i] + rm.scale[i]) + 1e-30;
            if (!(Math.abs(fused[i] - want) <= tol))
              throw new Error(`${what} at ${i}: ${fused[i]} vs ${want}`);
          }
        }
      }
    });
  });

  it('gives bit-identical results with 1 and 2 threads', () => {
    const rand = rng(78);
    const [m, n, k, k2] = [400, 100, 96, 9];
    const base = PackedMatrix.pack(randomF32(rand, k * n), { k, n });
    const b2 = randomF32(rand, k2 * n);
    const a = randomF32(rand, m * k);
    const a2 = randomF32(rand, m * k2);
    let first: Uint32Array | null = null;
    forEachConfig((_isa, threads) => {
      const init = PackedMatrix.pack(b2, { k: k2, n });
      const c = base.multiplyWithInit(a, new Float32Array(m * n), { m, n, k }, { a: a2, b: init });
      if (threads === 1) first = bits(c).slice();
      else expect(bits(c)).toEqual(first);
    });
  });

  it('validates the init operand', () => {
    const rand = rng(79);
    const base = PackedMatrix.pack(randomF32(rand, 8 * 16), { k: 8, n: 16 });
    const a = randomF32(rand, 4 * 8);
    const c = new Float32Array(4 * 16);
    const o = { m: 4, n: 16, k: 8 };
    const wide = PackedMatrix.pack(randomF32(rand, 65 * 16), { k: 65, n: 16 });
    expect(() => base.multiplyWithInit(a, c, o, { a: randomF32(rand, 4 * 65), b: wide })).toThrow(
      /init.k/,
    );
    const otherN = PackedMatrix.pack(randomF32(rand, 2 * 15), { k: 2, n: 15 });
    expect(() => base.multiplyWithInit(a, c, o, { a: randomF32(rand, 8), b: otherN })).toThrow(
      /init/,
    );
    const small = PackedMatrix.pack(randomF32(rand, 2 * 16), { k: 2, n: 16 });
    expect(() => base.multiplyWithInit(a, c, o, { a: randomF32(rand, 7), b: small })).toThrow(
      /init.a/,
    );
    const bf = PackedMatrix.pack(randomF32(rand, 8 * 16), { k: 8, n: 16, dtype: 'bf16' });
    expect(() => bf.multiplyWithInit(a, c, o, { a: randomF32(rand, 8), b: small })).toThrow(/fp32/);
    expect(() =>
      base.multiplyWithInit(a, c, o, { a: randomF32(rand, 8), b: small, lda: 1 }),
    ).toThrow(/init.lda/);
  });
});

describe('LoraLinear with the adapter term in the packed base pass', () => {
  const minRows = FUSION.packedInitMinRows;
  beforeEach(() => {
    FUSION.packedInitMinRows = 0; // the small shapes below run the fused pass too
  });
  afterEach(() => {
    FUSION.packedInit = true;
    FUSION.packedInitMinRows = minRows;
  });

  it('forward output and input gradient are bitwise those of the unfused C init', () => {
    for (const [r, bias, rows] of [
      [1, true, 7],
      [8, true, 130],
      [63, true, 33],
      [64, true, 20], // k = r + 1 = 65: not fused
      [64, false, 20],
    ] as Array<[number, boolean, number]>) {
      const inF = 70;
      const outF = 80;
      const run = (packed: boolean) => {
        FUSION.packedInit = packed;
        const lin = new Linear(inF, outF, { trainable: false, seed: 3, bias });
        const l = new LoraLinear(lin, { r, alpha: 2 * r, seed: 4 });
        const rand = rng(5);
        l.loraB = randomF32(rand, outF * r);
        l.train();
        const x = new Tensor(randomF32(rand, rows * inF), [rows, inF]);
        const y = l.forward(x);
        const gi = l.backward(new Tensor(randomF32(rand, rows * outF), [rows, outF]));
        return [y.data.slice(), gi.data.slice()];
      };
      const [y1, g1] = run(true);
      const [y0, g0] = run(false);
      expect([r, bias, bits(y1)]).toEqual([r, bias, bits(y0)]);
      expect([r, bias, bits(g1)]).toEqual([r, bias, bits(g0)]);
    }
  });
});
