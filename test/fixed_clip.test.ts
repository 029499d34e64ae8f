/**
 * Fixed-point mode: the quantizer, the integer clipped sum against a plain
 * BigInt reference, the invariant sum v^2 <= clipInt^2 on adversarial rows,
 * overflow refusal, and discrete Gaussian noise on the integer sum.
 */
import { Rng } from '../lib/kernels/rng';
import { fixed, fixedClipSum } from '../lib/kernels/fixed';
import { setThreads, capabilities } from '../lib/native';
import { expectError } from './helpers/errors';
import { xorshift32 } from './helpers/accounting_reference';
import { clipRow, clipSumRef } from './helpers/fixed_reference';

const SEED = '5e'.repeat(32);
const I32_MIN = -2147483648;
const I32_MAX = 2147483647;

function normSq(v: bigint[]): bigint {
  return v.reduce((a, x) => a + x * x, 0n);
}

describe('fixed.quantize / dequantize', () => {
  test('round half to even, saturation and NaN are counted', () => {
    const x = Float32Array.from([
      0.5,
      1.5,
      2.5,
      -0.5,
      -1.5,
      0.25,
      1e10,
      -1e10,
      Infinity,
      -Infinity,
      NaN,
      3.75,
    ]);
    const r = fixed.quantize(x, 0);
    expect(Array.from(r.values)).toEqual(
      [0, 2, 2, -0, -2, 0, I32_MAX, -I32_MAX, I32_MAX, -I32_MAX, 0, 4].map((v) => v | 0),
    );
    expect(r.saturated).toBe(4);
    expect(r.nan).toBe(1);
    const q = fixed.quantize(Float32Array.from([0.1, -0.1, 1 / 3]), 16);
    expect(Array.from(q.values)).toEqual([
      Math.round(Math.fround(0.1) * 65536),
      -Math.round(Math.fround(0.1) * 65536),
      Math.round(Math.fround(1 / 3) * 65536),
    ]);
    expect(q.saturated).toBe(0);
  });

  test('dequantize inverts quantize to within half a step', () => {
    const rnd = xorshift32(7);
    const x = Float32Array.from({ length: 1000 }, () => (rnd() / 2 ** 32 - 0.5) * 8);
    const f = 20;
    const q = fixed.quantize(x, f);
    const back = fixed.dequantize(q.values, f);
    for (let i = 0; i < x.length; i++)
      expect(Math.abs(back[i] - x[i])).toBeLessThanOrEqual(2 ** -(f + 1) + 1e-7);
    const wide = fixed.dequantize(BigInt64Array.from([3n, -(2n ** 40n)]), 2);
    expect(Array.from(wide)).toEqual([0.75, -(2 ** 38)]);
  });

  test('validation', () => {
    expectError(
      () => fixed.quantize(new Float64Array(2) as unknown as Float32Array, 4),
      'InvalidArgumentError',
      /x/,
    );
    expectError(() => fixed.quantize(new Float32Array(2), 31), 'InvalidArgumentError', /fracBits/);
    expectError(() => fixed.quantize(new Float32Array(2), 1.5), 'InvalidArgumentError', /fracBits/);
    expectError(() => fixed.quantize(new Float32Array(2), -1), 'InvalidArgumentError', /fracBits/);
    expectError(
      () => fixed.quantize(new Float32Array(2), 4, new Int32Array(3)),
      'InvalidArgumentError',
      /out/,
    );
    expectError(
      () => fixed.quantize(new Float32Array(2), 4, new Uint32Array(2) as unknown as Int32Array),
      'InvalidArgumentError',
      /out/,
    );
    expectError(
      () => fixed.dequantize(new Float32Array(2) as unknown as Int32Array, 4),
      'InvalidArgumentError',
      /q/,
    );
    expectError(
      () => fixed.dequantize(new Int32Array(2), 4, new Float32Array(1)),
      'InvalidArgumentError',
      /out/,
    );
    expectError(() => fixed.clipIntFor(0, 4), 'InvalidArgumentError', /maxGradNorm/);
    expectError(() => fixed.clipIntFor(2 ** 20, 12), 'InvalidArgumentError', /2\^31/);
    expect(fixed.clipIntFor(1.5, 16)).toBe(98304);
  });
});

describe('fixedClipSum', () => {
  test('matches the BigInt reference on random rows (thread counts 1 and 3)', () => {
    const rnd = xorshift32(42);
    const batch = 37;
    const dim = 301;
    const grads = new Int32Array(batch * dim);
    // Row i has magnitudes below 2^(31 - i % 24), both signs: some rows are clipped, some not.
    for (let i = 0; i < grads.length; i++) grads[i] = (rnd() | 0) >> (Math.floor(i / dim) % 24);
    const clipInt = 2 ** 20;
    const ref = clipSumRef(grads, batch, dim, clipInt);
    const caps = capabilities();
    try {
      for (const t of [1, 3]) {
        setThreads(t);
        const got = fixedClipSum(grads, batch, dim, clipInt);
        expect(got.clipped).toBe(ref.clipped);
        expect(Array.from(got.sum)).toEqual(ref.sum);
      }
    } finally {
      setThreads(caps.threads);
    }
    expect(ref.clipped).toBeGreaterThan(0);
    expect(ref.clipped).toBeLessThan(batch);
  });

  test('clipped rows never exceed clipInt^2 on adversarial inputs', () => {
    const rows: { row: number[]; c: number }[] = [];
    // n2 = C^2 + 1 for several C (C^2 + 1 = a^2 + b^2 with a = C, b = 1).
    for (const c of [1, 2, 3, 5, 7, 1000, 65535, 46341, 2 ** 30, I32_MAX])
      rows.push({ row: [c, 1], c }, { row: [-c, -1], c });
    // All negative, extremes, one huge coordinate among small ones.
    rows.push({ row: [I32_MIN, I32_MIN, I32_MIN], c: 1 });
    rows.push({ row: [I32_MIN, I32_MAX, I32_MIN, I32_MAX], c: I32_MAX });
    rows.push({ row: [I32_MIN], c: I32_MAX });
    rows.push({ row: [I32_MAX, 1, 1, 1, 1, 1], c: 3 });
    rows.push({ row: [...new Array(1000).fill(-1), I32_MIN], c: 31 });
    rows.push({ row: new Array(4096).fill(-46341), c: 46341 });
    const rnd = xorshift32(99);
    for (let t = 0; t < 300; t++) {
      const dim = 1 + (rnd() % 50);
      const c = 1 + (rnd() % 100000);
      // Rows just above the clip norm: scale a random direction to about C.
      const dir = Array.from({ length: dim }, () => (rnd() % 2001) - 1000);
      const n = Math.sqrt(dir.reduce((a, v) => a + v * v, 0)) || 1;
      rows.push({ row: dir.map((v) => Math.round((v / n) * c * (1 + (rnd() % 5) * 1e-6))), c });
    }
    for (const { row, c } of rows) {
      const g = Int32Array.from(row);
      const got = fixedClipSum(g, 1, g.length, c);
      const want = clipRow(g, c);
      expect(Array.from(got.sum)).toEqual(want);
      expect(normSq(want) <= BigInt(c) ** 2n).toBe(true);
      // Never grows a magnitude, never flips a sign.
      const bad = Array.from(got.sum).findIndex(
        (v, j) => (v < 0n ? -v : v) > BigInt(Math.abs(g[j])) || (v !== 0n && v < 0n !== g[j] < 0),
      );
      expect(bad).toBe(-1);
    }
  });

  test('an unclipped row passes unchanged; exactly-at-norm rows are not clipped', () => {
    const g = Int32Array.from([3, -4]);
    const r = fixedClipSum(g, 1, 2, 5);
    expect(r.clipped).toBe(0);
    expect(Array.from(r.sum)).toEqual([3n, -4n]);
    expect(fixedClipSum(g, 1, 2, 4).clipped).toBe(1);
  });

  test('refuses inputs whose sum could overflow; validation', () => {
    expectError(
      () => fixedClipSum(new Int32Array(0), 2 ** 31 + 2, 0, I32_MAX),
      'InvalidArgumentError',
      /2\^62/,
    );
    expect(fixedClipSum(new Int32Array(0), 2 ** 31 + 1, 0, I32_MAX).sum.length).toBe(0); // (2^31 + 1)(2^31 - 1) < 2^62
    expectError(() => fixedClipSum(new Int32Array(6), 2, 4, 10), 'InvalidArgumentError', /grads/);
    expectError(
      () => fixedClipSum(new Float32Array(6) as unknown as Int32Array, 2, 3, 10),
      'InvalidArgumentError',
      /grads/,
    );
    expectError(() => fixedClipSum(new Int32Array(6), 2, 3, 0), 'InvalidArgumentError', /clipInt/);
    expectError(
      () => fixedClipSum(new Int32Array(6), 2, 3, 2 ** 31),
      'InvalidArgumentError',
      /clipInt/,
    );
    expectError(
      () => fixedClipSum(new Int32Array(6), 2, 3, 1.5),
      'InvalidArgumentError',
      /clipInt/,
    );
    expectError(
      () => fixedClipSum(new Int32Array(6), -2, -3, 1),
      'InvalidArgumentError',
      /dim|batch/,
    );
    expectError(
      () => fixedClipSum(new Int32Array(6), 2, 3, 5, new BigInt64Array(2)),
      'InvalidArgumentError',
      /out/,
    );
    expectError(
      () => fixedClipSum(new Int32Array(6), 2, 3, 5, new Int32Array(3) as unknown as BigInt64Array),
      'InvalidArgumentError',
      /out/,
    );
  });
});

describe('fixed.addDiscreteGaussianNoise', () => {
  test('adds exactly the discrete Gaussian samples, saturating only after the sum', () => {
    const big = 2n ** 63n - 1n;
    const sum = BigInt64Array.from([
      0n,
      5n,
      big - 3n,
      -big,
      ...new Array(10).fill(big),
      ...new Array(10).fill(-big - 1n),
    ]);
    const sigmaSq = 1e6;
    const noise = new Rng({ seed: SEED }).discreteGaussian(new BigInt64Array(sum.length), sigmaSq);
    const rng = new Rng({ seed: SEED });
    const before = Array.from(sum);
    const r = fixed.addDiscreteGaussianNoise(sum, sigmaSq, rng);
    let sat = 0;
    for (let i = 0; i < sum.length; i++) {
      let want = before[i] + noise[i];
      if (want > big) {
        want = big;
        sat++;
      } else if (want < -big - 1n) {
        want = -big - 1n;
        sat++;
      }
      expect(sum[i]).toBe(want);
    }
    expect(r.saturated).toBe(sat);
    expect(sat).toBeGreaterThan(0);
    expect(rng.getState().position).not.toBe('0');
  });

  test('end to end: quantize, clip, sum, noise, dequantize', () => {
    const f = 16;
    const clipInt = fixed.clipIntFor(1.0, f);
    const batch = 8;
    const dim = 5;
    const rnd = xorshift32(3);
    const x = Float32Array.from({ length: batch * dim }, () => (rnd() / 2 ** 32 - 0.5) * 2);
    const q = fixed.quantize(x, f);
    const { sum } = fixed.clipSum(q.values, batch, dim, clipInt);
    const z = 1.1;
    fixed.addDiscreteGaussianNoise(sum, (z * clipInt) ** 2, new Rng({ seed: SEED }));
    const update = fixed.dequantize(sum, f);
    expect(update.length).toBe(dim);
    expect(update.every((v) => Number.isFinite(v) && Math.abs(v) < batch + 20 * z)).toBe(true);
  });

  test('validation', () => {
    const rng = new Rng({ seed: SEED });
    expectError(
      () => fixed.addDiscreteGaussianNoise(new Int32Array(2) as unknown as BigInt64Array, 1, rng),
      'InvalidArgumentError',
      /sum/,
    );
    expectError(
      () => fixed.addDiscreteGaussianNoise(new BigInt64Array(2), 0, rng),
      'InvalidArgumentError',
      /sigmaSq/,
    );
    expectError(
      () => fixed.addDiscreteGaussianNoise(new BigInt64Array(2), 1, {} as Rng),
      'InvalidArgumentError',
      /rng/,
    );
    const s = BigInt64Array.from([1n, 2n]);
    // A stream position whose 2^26-word region would pass the end of the stream.
    const late = Rng.fromState({
      version: 1,
      reproducible: true,
      key: '00'.repeat(32),
      nonce: '00'.repeat(12),
      position: (2n ** 64n - 2n ** 20n).toString(),
    });
    expectError(
      () => fixed.addDiscreteGaussianNoise(s, 1, late),
      'InvalidArgumentError',
      /overflow/,
    );
    expect(Array.from(s)).toEqual([1n, 2n]); // a refusal leaves the sum untouched
  });
});
