/**
 * PackedMatrix.multiplyWithInit: a second (narrow) product written as the C init of a packed
 * product, block of rows by block of rows.  Checked bitwise against the two-call form it
 * replaces (the init product with beta, then the main product with beta = 1), against a
 * float64 reference, on every ISA path and thread count, with odd sizes, offsets into shared
 * buffers and strided init operands; and the LoRA layer that uses it gives bitwise the same
 * forward output and input gradient as with the fusion off.
 */
import { InvalidArgumentError, LoraLinear, Linear, Tensor } from '../lib';
import { PackedMatrix, sgemm } from '../lib/api/kernels';
import { FUSION } from '../lib/nn/ops';
import { forEachConfig } from './reference/linalg_configs';
import { offsetView, randomF32, refSgemm, rng } from './reference/linalg_ref';
import type { BaseDtype } from '../lib/kernels/linalg';

/** x rounded to bfloat16, round to nearest even (finite, normal inputs: the test's data). */
function bf16(x: number): number {
  const f = new Float32Array([x]);
  const u = new Uint32Array(f.buffer);
  const lsb = (u[0] >>> 16) & 1;
  u[0] = ((u[0] + 0x7fff + lsb) >>> 16) << 16;
  return f[0];
}

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
        for (const [transB, dtype] of [
          [false, 'fp32'],
          [true, 'fp32'],
          [false, 'bf16'],
          [true, 'bf16'],
        ] as Array<[boolean, BaseDtype]>) {
          const beta = m % 2 === 0 ? 0.5 : 0;
          const alpha = -0.75;
          const alpha2 = 1.25;
          const lda2 = k2 + (m % 3);
          const b = randomF32(rand, k * n);
          const base = PackedMatrix.pack(b, { k, n, transB, dtype });
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
          const what = `${isa} x${threads} ${m}x${n}x${k} k2=${k2} transB=${transB} ${dtype}`;
          expect([what, firstDiff(fused, two)]).toEqual([what, -1]);
          // The bf16 product's own accuracy is test/linalg_bf16's; here: the fused form is the
          // two-call form (bitwise, above), and the init is in it (against the references with
          // the main product's operands rounded to bf16).
          const rb = dtype === 'bf16' ? b.map(bf16) : b;
          const ra = dtype === 'bf16' ? a.map(bf16) : a;
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
          const rm = refSgemm(ra, rb, new Float32Array(m * n), { m, n, k, alpha, transB });
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
    const bf = PackedMatrix.pack(randomF32(rand, 2 * 16), { k: 2, n: 16, dtype: 'bf16' });
    expect(() => base.multiplyWithInit(a, c, o, { a: randomF32(rand, 8), b: bf })).toThrow(/fp32/);
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

  it('forward output and input gradient are bitwise those of the unfused C init (fp32 and bf16 bases)', () => {
    for (const baseDtype of ['fp32', 'bf16'] as BaseDtype[]) {
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
          const lin = new Linear(inF, outF, { trainable: false, seed: 3, bias, baseDtype });
          const l = new LoraLinear(lin, { r, alpha: 2 * r, seed: 4 });
          const rand = rng(5);
          l.loraB = randomF32(rand, outF * r);
          l.train();
          const out: Float32Array[] = [];
          // Two steps with new adapter values: the second repacks the layer's packed operands.
          for (let step = 0; step < 2; step++) {
            const x = new Tensor(randomF32(rand, rows * inF), [rows, inF]);
            out.push(l.forward(x).data.slice());
            out.push(
              l.backward(new Tensor(randomF32(rand, rows * outF), [rows, outF])).data.slice(),
            );
            l.loraB = randomF32(rand, outF * r);
            l.loraA = randomF32(rand, r * inF);
          }
          return out;
        };
        const fused = run(true);
        const plain = run(false);
        for (let i = 0; i < fused.length; i++)
          expect([baseDtype, r, bias, i, bits(fused[i])]).toEqual([
            baseDtype,
            r,
            bias,
            i,
            bits(plain[i]),
          ]);
      }
    }
  });
});

describe('PackedMatrix.repackFrom', () => {
  it('packs new values into the same matrix: products equal a fresh pack bitwise, on every path', () => {
    const rand = rng(80);
    forEachConfig((isa) => {
      for (const dtype of ['fp32', 'bf16'] as BaseDtype[]) {
        for (const transB of [false, true]) {
          const [m, k, n] = [37, 9, 70];
          const p = PackedMatrix.pack(randomF32(rand, k * n), { k, n, transB, dtype });
          const b = offsetView(randomF32(rand, k * n), 1);
          expect(p.repackFrom(b)).toBe(p);
          expect(p.source).toBe(b);
          const fresh = PackedMatrix.pack(b.slice(), { k, n, transB, dtype });
          const a = randomF32(rand, m * k);
          const got = p.multiply(a, new Float32Array(m * n), { m, k, n });
          const want = fresh.multiply(a, new Float32Array(m * n), { m, k, n });
          const what = `${isa} ${dtype} transB=${transB}`;
          expect([what, firstDiff(got, want)]).toEqual([what, -1]);
          expect(p.info().dtype).toBe(dtype);
        }
      }
    });
  });

  it('after an ISA switch makes a copy for the active path', () => {
    const rand = rng(81);
    const [m, k, n] = [20, 5, 40];
    const p = PackedMatrix.pack(randomF32(rand, k * n), { k, n });
    const b = randomF32(rand, k * n);
    const a = randomF32(rand, m * k);
    const seen: string[] = [];
    forEachConfig((isa) => {
      seen.push(isa);
      p.repackFrom(b);
      expect(p.info().isa).toBe(isa);
      const got = p.multiply(a, new Float32Array(m * n), { m, k, n });
      const want = new Float32Array(m * n);
      sgemm(a, b, want, { m, k, n });
      expect([isa, firstDiff(got, want)]).toEqual([isa, -1]);
    });
    expect(seen.length).toBeGreaterThan(0);
  });

  it('refuses an operand of another size', () => {
    const rand = rng(82);
    const p = PackedMatrix.pack(randomF32(rand, 4 * 8), { k: 4, n: 8 });
    expect(() => p.repackFrom(randomF32(rand, 31))).toThrow(InvalidArgumentError);
    expect(() => p.repackFrom(randomF32(rand, 31))).toThrow(/\bb\b/);
    expect(() => p.repackFrom(new Float64Array(32) as unknown as Float32Array)).toThrow(
      /b must be a Float32Array/,
    );
  });
});
