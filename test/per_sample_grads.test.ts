/**
 * perSampleGrads (the per-sample weight gradients whose norms are clipped and which are then
 * summed): against a plain float64 reference under every ISA and thread count, including the
 * narrow-side kernels (a side of at most 16: LoRA ranks) with their edge blocks, and the
 * determinism the floating-point clipping argument relies on (the same tensor on every call,
 * every thread count, and whichever batch slice a sample is materialized in).
 */
import { perSampleGrads } from '../lib/kernels/linalg';
import type { GradShape } from '../lib/kernels/linalg';
import { forEachConfig } from './reference/linalg_configs';
import { offsetView, randomF32, rng } from './reference/linalg_ref';

const U = 2 ** -24;

/** G_i = alpha * g_i^T a_i in float64, and per element the sum of |terms| (error scale). */
function refGrads(
  a: Float32Array,
  g: Float32Array,
  s: GradShape,
  alpha: number,
): { out: Float64Array; scale: Float64Array } {
  const { batch, seq, inDim, outDim } = s;
  const out = new Float64Array(batch * outDim * inDim);
  const scale = new Float64Array(out.length);
  for (let i = 0; i < batch; i++)
    for (let p = 0; p < outDim; p++)
      for (let d = 0; d < inDim; d++) {
        let acc = 0;
        let abs = 0;
        for (let t = 0; t < seq; t++) {
          const v = g[(i * seq + t) * outDim + p] * a[(i * seq + t) * inDim + d];
          acc += v;
          abs += Math.abs(v);
        }
        const o = (i * outDim + p) * inDim + d;
        out[o] = alpha * acc;
        scale[o] = Math.abs(alpha) * abs;
      }
  return { out, scale };
}

const SHAPES: GradShape[] = [
  // LoRA-like: one side narrow (<= 16), the other wide, T over and under the 16-row blocks
  { batch: 3, seq: 37, inDim: 8, outDim: 100 },
  { batch: 3, seq: 37, inDim: 100, outDim: 8 },
  { batch: 2, seq: 16, inDim: 16, outDim: 96 },
  { batch: 2, seq: 33, inDim: 97, outDim: 16 },
  // narrow sides that are not a multiple of the register blocks (6 on AVX2, 8 on AVX-512)
  { batch: 2, seq: 21, inDim: 1, outDim: 50 },
  { batch: 2, seq: 21, inDim: 13, outDim: 49 },
  { batch: 2, seq: 21, inDim: 47, outDim: 7 },
  { batch: 2, seq: 5, inDim: 3, outDim: 3 },
  // both narrow, one token, and wider than the kernels take (the SGEMM path)
  { batch: 4, seq: 9, inDim: 12, outDim: 15 },
  { batch: 3, seq: 1, inDim: 8, outDim: 40 },
  { batch: 2, seq: 11, inDim: 17, outDim: 33 },
  { batch: 2, seq: 300, inDim: 20, outDim: 18 },
];

describe('perSampleGrads', () => {
  it('matches the float64 reference under every ISA and thread count', () => {
    forEachConfig((isa, threads) => {
      const rand = rng(7);
      for (const s of SHAPES) {
        for (const alpha of [1, -0.75]) {
          const a = offsetView(randomF32(rand, s.batch * s.seq * s.inDim), 1);
          const g = offsetView(randomF32(rand, s.batch * s.seq * s.outDim), 2);
          const out = offsetView(
            new Float32Array(s.batch * s.outDim * s.inDim).fill(Number.NaN),
            3,
          );
          expect(perSampleGrads(a, g, s, alpha, out)).toBe(out);
          const ref = refGrads(a, g, s, alpha);
          // A chain of seq float multiply-adds plus the scaling: (seq + 2) u of the |terms|.
          for (let o = 0; o < out.length; o++) {
            const tol = (s.seq + 2) * U * ref.scale[o] + 1e-30;
            if (!(Math.abs(out[o] - ref.out[o]) <= tol))
              throw new Error(
                `${isa}/${threads} ${JSON.stringify(s)} alpha ${alpha} [${o}]: ${out[o]} vs ${ref.out[o]}`,
              );
          }
        }
      }
    });
  });

  it('gives the same tensor on every call, thread count and batch slice (per ISA)', () => {
    const s: GradShape = { batch: 9, seq: 40, inDim: 8, outDim: 70 };
    const t: GradShape = { ...s, inDim: 70, outDim: 8 };
    const rand = rng(11);
    const a = randomF32(rand, s.batch * s.seq * 70);
    const g = randomF32(rand, s.batch * s.seq * 70);
    const perIsa = new Map<string, Float32Array[]>();
    forEachConfig((isa) => {
      const runs = perIsa.get(isa) ?? [];
      for (const shape of [s, t]) {
        const ad = a.subarray(0, shape.batch * shape.seq * shape.inDim);
        const gd = g.subarray(0, shape.batch * shape.seq * shape.outDim);
        const size = shape.inDim * shape.outDim;
        const whole = perSampleGrads(ad, gd, shape, 0.5, new Float32Array(shape.batch * size));
        // Samples 3..6 alone (the chunked re-materialization of lib/nn/per_sample.ts).
        const part: GradShape = { ...shape, batch: 4 };
        const slice = perSampleGrads(
          ad.subarray(3 * shape.seq * shape.inDim, 7 * shape.seq * shape.inDim),
          gd.subarray(3 * shape.seq * shape.outDim, 7 * shape.seq * shape.outDim),
          part,
          0.5,
          new Float32Array(4 * size),
        );
        expect(slice).toEqual(whole.subarray(3 * size, 7 * size));
        runs.push(whole);
      }
      perIsa.set(isa, runs);
    });
    // Runs alternate [s, t] for threads 1 then 2: equal bit for bit within an ISA.
    for (const [, runs] of perIsa) {
      expect(runs.length).toBe(4);
      expect(runs[2]).toEqual(runs[0]);
      expect(runs[3]).toEqual(runs[1]);
    }
  });

  it('writes zeros for seq = 0 and leaves an empty batch alone', () => {
    const out = new Float32Array(2 * 3 * 4).fill(7);
    perSampleGrads(
      new Float32Array(0),
      new Float32Array(0),
      { batch: 2, seq: 0, inDim: 3, outDim: 4 },
      1,
      out,
    );
    expect(Array.from(out)).toEqual(new Array(24).fill(0));
    const none = new Float32Array(0);
    expect(perSampleGrads(none, none, { batch: 0, seq: 5, inDim: 3, outDim: 4 }, 1, none)).toBe(
      none,
    );
  });
});
