/**
 * mseLoss runs natively (per ISA path, samples split over the pool): checked on every ISA
 * path against the plain JS formula it replaced (d = p - t in double, s += d * d one element
 * at a time, grad = 2 d / per): the gradient bitwise, each loss within one float ulp (the
 * squares are summed in double lanes, not one by one), the total the sum of the losses, NaN
 * and infinities propagated, and the same typed errors.
 */
import { Tensor, mseLoss } from '../lib/nn';
import { capabilities, setIsa } from '../lib/native';
import { InvalidArgumentError } from '../lib/errors';
import { randomF32, rng } from './reference/linalg_ref';

/** The JS implementation mseLoss had before it went native. */
function reference(p: Float32Array, t: Float32Array, batch: number) {
  const per = batch > 0 ? p.length / batch : 0;
  const losses = new Float32Array(batch);
  const grad = new Float32Array(p.length);
  for (let i = 0; i < batch; i++) {
    let s = 0;
    for (let j = 0; j < per; j++) {
      const d = p[i * per + j] - t[i * per + j];
      s += d * d;
      grad[i * per + j] = (2 * d) / per;
    }
    losses[i] = s / per;
  }
  return { losses, grad };
}

const bits = (x: Float32Array) => new Uint32Array(x.buffer, x.byteOffset, x.length);
/** Distance in float ulps between two finite floats of the same sign. */
const ulps = (a: number, b: number) =>
  Math.abs(bits(Float32Array.of(a))[0] - bits(Float32Array.of(b))[0]);

describe('mseLoss (native)', () => {
  const isas = capabilities().supportedIsas;
  const start = capabilities().isa;
  afterAll(() => setIsa(start));

  test.each(isas)('matches the plain formula under %s', (isa) => {
    setIsa(isa);
    const rand = rng(5);
    // Row lengths around the vector widths (tails of every size) and a large one.
    for (const [batch, per] of [
      [1, 1],
      [3, 7],
      [2, 15],
      [4, 16],
      [3, 17],
      [5, 33],
      [2, 4099],
      [9, 768],
    ]) {
      // Values spanning magnitudes, so that the squares' sum order can matter.
      const p = randomF32(rand, batch * per).map((v, i) => v * 10 ** ((i % 7) - 3));
      const t = randomF32(rand, batch * per);
      const got = mseLoss(new Tensor(p, [batch, per]), t);
      const want = reference(p, t, batch);
      expect(Array.from(bits(got.grad.data))).toEqual(Array.from(bits(want.grad)));
      expect(got.grad.shape).toEqual([batch, per]);
      for (let i = 0; i < batch; i++)
        expect(ulps(got.losses[i], want.losses[i])).toBeLessThanOrEqual(1);
      let total = 0;
      for (const l of got.losses) total += l;
      expect(got.total).toBe(total);
    }
  });

  test.each(isas)('propagates NaN and infinities and reads a target view under %s', (isa) => {
    setIsa(isa);
    const p = new Float32Array([1, NaN, 3, 4, Infinity, 0, 2, 2, 2, 5, 5, 5]);
    const buf = new Float32Array(13).fill(1);
    const t = buf.subarray(1); // a view whose byteOffset is not a vector multiple
    const got = mseLoss(new Tensor(p, [4, 3]), t);
    const want = reference(p, t, 4);
    expect(Number.isNaN(got.losses[0])).toBe(true);
    expect(got.losses[1]).toBe(Infinity);
    expect(Array.from(got.losses.subarray(2))).toEqual(Array.from(want.losses.subarray(2)));
    expect(Array.from(bits(got.grad.data))).toEqual(Array.from(bits(want.grad)));
  });

  test('keeps the typed errors and the empty batch', () => {
    const pred = new Tensor(new Float32Array(6), [2, 3]);
    expect(() => mseLoss(pred, new Float32Array(5))).toThrow(InvalidArgumentError);
    expect(() => mseLoss(pred, new Float32Array(5))).toThrow(/target/);
    expect(() => mseLoss(pred, [1, 2] as never)).toThrow(/target/);
    expect(() => mseLoss({} as never, new Float32Array(6))).toThrow(/pred/);
    const empty = mseLoss(new Tensor(new Float32Array(0), [0, 3]), new Float32Array(0));
    expect(empty.losses.length).toBe(0);
    expect(empty.total).toBe(0);
  });
});
