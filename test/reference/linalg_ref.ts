/**
 * Plain TypeScript references for the linalg kernels, in float64, written
 * straight from the definitions (no blocking, no tricks), plus a seeded
 * random source for the tests.
 */
import type { GradShape, SgemmOptions } from '../../lib/kernels/linalg';

/** Deterministic uniform [0, 1) generator (mulberry32). */
export function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Float32Array of n uniform values in [-1, 1). */
export function randomF32(rand: () => number, n: number): Float32Array {
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = 2 * rand() - 1;
  return x;
}

/**
 * A view of n elements that starts `offset` elements into a larger buffer
 * (so its byteOffset is not a multiple of the vector width).
 */
export function offsetView(src: Float32Array, offset: number): Float32Array {
  const buf = new Float32Array(src.length + offset + 3);
  buf.fill(Number.NaN);
  const view = buf.subarray(offset, offset + src.length);
  view.set(src);
  return view;
}

/** Expected C and a per-element error scale (sum of |terms|) for sgemm. */
export function refSgemm(
  a: Float32Array,
  b: Float32Array,
  c: Float32Array,
  o: SgemmOptions,
): { c: Float64Array; scale: Float64Array } {
  const { m, n, k } = o;
  const ta = o.transA ?? false;
  const tb = o.transB ?? false;
  const alpha = o.alpha ?? 1;
  const beta = o.beta ?? 0;
  const lda = o.lda ?? (ta ? m : k);
  const ldb = o.ldb ?? (tb ? k : n);
  const ldc = o.ldc ?? n;
  const out = new Float64Array(c.length);
  const scale = new Float64Array(c.length);
  for (let i = 0; i < c.length; i++) out[i] = c[i];
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      let mag = 0;
      for (let q = 0; q < k; q++) {
        const x = ta ? a[q * lda + i] : a[i * lda + q];
        const y = tb ? b[j * ldb + q] : b[q * ldb + j];
        s += x * y;
        mag += Math.abs(x * y);
      }
      const c0 = beta === 0 ? 0 : c[i * ldc + j];
      out[i * ldc + j] = alpha * s + beta * c0;
      scale[i * ldc + j] = Math.abs(alpha) * mag + Math.abs(beta * c0);
    }
  }
  return { c: out, scale };
}

/** ||g_i^T a_i||_F^2 per sample, forming G_i explicitly. */
export function refNormSq(a: Float32Array, g: Float32Array, s: GradShape): Float64Array {
  const { batch: B, seq: T, inDim: d, outDim: p } = s;
  const out = new Float64Array(B);
  for (let i = 0; i < B; i++) {
    let sq = 0;
    for (let j = 0; j < p; j++) {
      for (let k = 0; k < d; k++) {
        let v = 0;
        for (let t = 0; t < T; t++) v += g[(i * T + t) * p + j] * a[(i * T + t) * d + k];
        sq += v * v;
      }
    }
    out[i] = sq;
  }
  return out;
}

/** (sum_t |a_t| |g_t|)^2 per sample. */
export function refBoundSq(a: Float32Array, g: Float32Array, s: GradShape): Float64Array {
  const { batch: B, seq: T, inDim: d, outDim: p } = s;
  const out = new Float64Array(B);
  for (let i = 0; i < B; i++) {
    let sum = 0;
    for (let t = 0; t < T; t++) {
      let na = 0;
      let ng = 0;
      for (let k = 0; k < d; k++) na += a[(i * T + t) * d + k] ** 2;
      for (let j = 0; j < p; j++) ng += g[(i * T + t) * p + j] ** 2;
      sum += Math.sqrt(na) * Math.sqrt(ng);
    }
    out[i] = sum * sum;
  }
  return out;
}

/** sum_{i,t} f_i g_{i,t} a_{i,t}^T ([outDim, inDim]) and its error scale; samples with f = 0 skipped. */
export function refClippedSum(
  a: Float32Array,
  g: Float32Array,
  s: GradShape,
  f: Float32Array,
  init?: Float32Array,
): { out: Float64Array; scale: Float64Array } {
  const { batch: B, seq: T, inDim: d, outDim: p } = s;
  const out = new Float64Array(p * d);
  const scale = new Float64Array(p * d);
  if (init)
    for (let x = 0; x < p * d; x++) {
      out[x] = init[x];
      scale[x] = Math.abs(init[x]);
    }
  for (let i = 0; i < B; i++) {
    if (f[i] === 0) continue;
    for (let t = 0; t < T; t++) {
      for (let j = 0; j < p; j++) {
        const gj = f[i] * g[(i * T + t) * p + j];
        for (let k = 0; k < d; k++) {
          const v = gj * a[(i * T + t) * d + k];
          out[j * d + k] += v;
          scale[j * d + k] += Math.abs(v);
        }
      }
    }
  }
  return { out, scale };
}

/** The clipping factor for one squared norm (before rounding to float). */
export function refClipFactor(n2: number, maxNorm: number): number {
  if (!Number.isFinite(n2) || n2 < 0) return 0;
  return Math.min(1, maxNorm / (Math.sqrt(n2) + 1e-6));
}
