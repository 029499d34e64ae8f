/**
 * Shared fixtures of the integer LoRA tests: a separable synthetic task, a seeded float base and
 * the default plan options.
 */
import type { IntegerLoraPlanOptions } from '../../lib/kernels/fixed_lora';

/** A separable synthetic task: class c favours its half of the buckets (L2-normalized rows). */
export function task(n: number, dIn: number, seed: number): { x: Float32Array; y: Int32Array } {
  let s = seed >>> 0;
  const rnd = (): number => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
  const x = new Float32Array(n * dIn);
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    y[i] = i % 2;
    let ss = 0;
    for (let j = 0; j < dIn; j++) {
      const fav = j < dIn / 2 === (y[i] === 0);
      const v = rnd() < (fav ? 0.3 : 0.1) ? 1 : 0;
      x[i * dIn + j] = v;
      ss += v;
    }
    const inv = ss > 0 ? 1 / Math.sqrt(ss) : 0;
    for (let j = 0; j < dIn; j++) x[i * dIn + j] *= inv;
  }
  return { x, y };
}

/** Seeded float weights [rows][cols], uniform +-0.5 / sqrt(cols). */
export function randomBase(rows: number, cols: number, seed = 99): Float32Array {
  let s = seed;
  const w = new Float32Array(rows * cols);
  for (let i = 0; i < w.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    w[i] = (s / 2 ** 32 - 0.5) / Math.sqrt(cols);
  }
  return w;
}

/** Width of the synthetic task's input. */
export const D_IN = 128;
/** Hidden width of the synthetic base. */
export const HIDDEN = 32;
/** Real value of one int8 input unit. */
export const INPUT_SCALE = 1 / 127;

/** Default plan options (one layer, SGD, squared loss, epsilon 8 over 30 steps). */
export function planOptions(over: Partial<IntegerLoraPlanOptions> = {}): IntegerLoraPlanOptions {
  return {
    baseWeight: randomBase(HIDDEN, D_IN),
    dIn: D_IN,
    hidden: HIDDEN,
    classes: 2,
    rank: 4,
    inputScale: INPUT_SCALE,
    clipNorm: 1,
    targetEpsilon: 8,
    targetDelta: 1e-5,
    datasetSize: 1000,
    sampleRate: 0.064,
    steps: 30,
    learningRate: 2, // A is in real units (z = (A x) >> inShift), so SGD needs a larger rate
    ...over,
  };
}
