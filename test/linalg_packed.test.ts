/**
 * Packed frozen weights: PackedMatrix products are bitwise equal to sgemm on every
 * orientation and ISA path (a handle packed under another path is repacked), and the
 * layers that reuse packed frozen weights give exactly the unpacked results, also after
 * the weight is reloaded, replaced, merged or unfrozen.
 */
import { Linear, LoraLinear, Parameter, Tensor } from '../lib';
import { capabilities, PackedMatrix, setIsa, sgemm } from '../lib/api/kernels';
import { SGD } from '../lib/optim';
import { setFrozenWeightPacking } from '../lib/nn/packed_weight';
import { randomF32, rng } from './reference/linalg_ref';

const bits = (x: Float32Array) => new Uint32Array(x.buffer, x.byteOffset, x.length);

describe('PackedMatrix', () => {
  const isas = capabilities().supportedIsas;
  const start = capabilities().isa;
  afterAll(() => setIsa(start));

  test.each(isas)('bitwise equal to sgemm under %s', (isa) => {
    setIsa(isa);
    const rand = rng(11);
    for (const [m, n, k] of [
      [1, 1, 1],
      [3, 17, 5],
      [32, 200, 96],
      [150, 70, 300],
      [5, 768, 33],
      // Three KC blocks over >= 4 MC blocks of rows: op(A) read in place by the micro-kernel
      // for the full row tiles (not transposed), packed for the last partial one.
      [400, 70, 600],
    ]) {
      for (const transB of [false, true]) {
        for (const transA of [false, true]) {
          const lda = (transA ? m : k) + 2;
          const ldb = (transB ? k : n) + 1;
          const a = randomF32(rand, (transA ? k : m) * lda);
          const b = randomF32(rand, (transB ? n : k) * ldb);
          const c0 = randomF32(rand, m * n);
          const p = PackedMatrix.pack(b, { k, n, transB, ldb });
          expect(p.info().isa).toBe(isa);
          expect(p.info().bytes).toBeGreaterThanOrEqual(k * n * 4);
          for (const beta of [0, 1, -0.5]) {
            const want = sgemm(a, b, c0.slice(), {
              m,
              n,
              k,
              transA,
              transB,
              lda,
              ldb,
              beta,
              alpha: 0.5,
            });
            const got = p.multiply(a, c0.slice(), { m, n, k, transA, lda, beta, alpha: 0.5 });
            expect(bits(got)).toEqual(bits(want));
          }
        }
      }
    }
  });

  test('a handle packed under one ISA path is repacked under another', () => {
    const rand = rng(12);
    const [m, n, k] = [40, 50, 60];
    const a = randomF32(rand, m * k);
    const b = randomF32(rand, k * n);
    setIsa(isas[isas.length - 1]);
    const p = PackedMatrix.pack(b, { k, n });
    for (const isa of isas) {
      setIsa(isa);
      const got = p.multiply(a, new Float32Array(m * n), { m, n, k });
      expect(bits(got)).toEqual(bits(sgemm(a, b, new Float32Array(m * n), { m, n, k })));
      expect(p.info().isa).toBe(isa);
    }
  });

  test('arguments are validated, naming the argument', () => {
    const b = new Float32Array(12);
    expect(() => PackedMatrix.pack(b, { k: 4, n: 4 })).toThrow(/b has length 12/);
    expect(() => PackedMatrix.pack(b, { k: 3, n: 4, ldb: 3 })).toThrow(/ldb/);
    const p = PackedMatrix.pack(b, { k: 3, n: 4 });
    expect(() =>
      p.multiply(new Float32Array(6), new Float32Array(8), { m: 2, k: 4, n: 4 }),
    ).toThrow(/does not match the packed matrix 3 x 4/);
    expect(() =>
      p.multiply(new Float32Array(5), new Float32Array(8), { m: 2, k: 3, n: 4 }),
    ).toThrow(/a has length 5/);
    const c = new Float32Array(8);
    expect(() => p.multiply(c.subarray(0, 6), c, { m: 2, k: 3, n: 4 })).toThrow(/share memory/);
  });
});

describe('layers reuse packed frozen weights', () => {
  afterEach(() => setFrozenWeightPacking(true));

  /** Forward output and input gradient of `layer` on fixed data. */
  function run(layer: Linear | LoraLinear, x: Tensor, g: Float32Array) {
    const y = layer.forward(x);
    const gi = layer.backward(new Tensor(g, y.shape));
    return { y: y.data, gi: gi.data };
  }
  function same(l: Linear | LoraLinear, x: Tensor, g: Float32Array) {
    setFrozenWeightPacking(true);
    const packed = run(l, x, g);
    setFrozenWeightPacking(false);
    const plain = run(l, x, g);
    setFrozenWeightPacking(true);
    expect(bits(packed.y)).toEqual(bits(plain.y));
    expect(bits(packed.gi)).toEqual(bits(plain.gi));
    return packed;
  }

  test('frozen Linear: equal to the unpacked path; reload, replace and markChanged are seen', () => {
    const rand = rng(21);
    const [inF, outF, rows] = [40, 36, 7];
    const lin = new Linear(inF, outF, { trainable: false, seed: 3 });
    const x = new Tensor(randomF32(rand, rows * inF), [rows, inF]);
    const g = randomF32(rand, rows * outF);
    const first = same(lin, x, g);
    // Reload in place (the usual way pretrained weights arrive): detected without markChanged.
    lin.weight.data.set(randomF32(rand, inF * outF));
    const reloaded = same(lin, x, g);
    expect(bits(reloaded.y)).not.toEqual(bits(first.y));
    // One element changed in place, declared with markChanged.
    lin.weight.data[5] += 1;
    lin.weight.markChanged();
    same(lin, x, g);
    // The array replaced.
    lin.weight.data = randomF32(rand, inF * outF);
    same(lin, x, g);
  });

  test('an unfrozen weight is trained and never served from a stale pack', () => {
    const rand = rng(22);
    const [inF, outF, rows] = [24, 20, 5];
    const lin = new Linear(inF, outF, { trainable: false, seed: 4 });
    const x = new Tensor(randomF32(rand, rows * inF), [rows, inF]);
    const g = randomF32(rand, rows * outF);
    same(lin, x, g); // packs
    lin.weight.requiresGrad = true;
    const opt = new SGD([lin.weight], { lr: 0.5 });
    run(lin, x, g);
    opt.step();
    lin.weight.requiresGrad = false;
    same(lin, x, g);
  });

  test('LoraLinear: merge and unmerge rebuild the packed base weight', () => {
    const rand = rng(23);
    const [inF, outF, rows] = [32, 28, 6];
    const lora = new LoraLinear(new Linear(inF, outF, { seed: 5 }), { r: 4, seed: 6 });
    lora.loraB = randomF32(rand, outF * 4);
    const x = new Tensor(randomF32(rand, rows * inF), [rows, inF]);
    const g = randomF32(rand, rows * outF);
    same(lora, x, g);
    lora.merge();
    setFrozenWeightPacking(false);
    const plainMerged = lora.base.forward(x).data;
    setFrozenWeightPacking(true);
    expect(bits(lora.base.forward(x).data)).toEqual(bits(plainMerged));
    lora.unmerge();
    same(lora, x, g);
  });

  test('markChanged bumps the version', () => {
    const p = new Parameter(new Float32Array(4), [4], false);
    const v = p.version;
    p.markChanged();
    expect(p.version).toBe(v + 1);
  });
});
