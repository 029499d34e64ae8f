/**
 * A gradient subspace for the DP optimizer's subspace mode: `rank` rows of length `dim` (the
 * total trainable size, parameters concatenated in the optimizer's tracked order), meant to be
 * orthonormal and estimated from PUBLIC gradients (Zhou, Wu and Banerjee, "Bypassing the
 * ambient dimension", ICLR 2021; Yu et al., "Do not let privacy overbill utility", ICLR 2021).
 *
 * In subspace mode each record's gradient `g_i` is replaced by its coordinates
 * `c_i = U g_i` (`rank` floats), and the privacy mechanism runs on those: `c_i` is clipped to
 * at most C (its norm taken in double from the float values that are summed, as for any
 * clipped tensor), summed in double, and Gaussian noise of standard deviation `sigma C` is
 * added to each of the `rank` coordinates once per logical batch. The update
 * `U^T (noisy sum) / B` is post-processing. So the guarantee is the one of the
 * full-dimensional mechanism, with the same noise multiplier and accounting, for any finite
 * basis. The DP optimizer also clips to `C / sqrt(1 + rho)` (`rho` bounding how far the basis
 * is from orthonormal) so that one record moves the lifted sum by at most C too. The noise's norm shrinks from about `sigma C sqrt(dim)` to `sigma C sqrt(rank)`; the
 * part of the gradient outside the subspace is not applied.
 *
 * The basis must not depend on the private records (estimate it from public data, or from the
 * released model and public data): it is a hyperparameter, and one computed from private
 * gradients would leak them outside the accounting.
 */
import { sgemm } from '../kernels/linalg';
import { Rng } from '../kernels/rng';
import { InvalidArgumentError } from '../errors';
import { requireFloat32Array, requireInt, requireNumber, requireObject } from '../validate';

/** Options of {@link GradientSubspace.fromGradients}. */
export interface SubspaceFitOptions {
  /** Rows of the basis (the subspace's dimension), at most the number of gradient rows. */
  rank: number;
  /** Extra random directions of the randomized range finder (default 10). */
  oversample?: number;
  /** Power iterations of the range finder (default 2; more sharpens a slow spectrum). */
  powerIterations?: number;
  /** Seed of the range finder's random test matrix (default 1; the basis needs no secrecy). */
  seed?: number;
}

/** `rank` orthonormal rows of length `dim` onto which the DP optimizer projects gradients. */
export class GradientSubspace {
  /** Rows of the basis: the dimension of the subspace the noise lives in. */
  readonly rank: number;
  /** Length of each row: the total trainable size of the model it is used with. */
  readonly dim: number;
  /** The basis, `rank x dim`, row-major (read-only by convention). */
  readonly basis: Float32Array;
  /**
   * Share of the fitted gradients' squared norm inside the subspace (from
   * {@link GradientSubspace.fromGradients}; `null` for a basis given directly).
   */
  readonly captured: number | null;

  /**
   * @param basis - `rank * dim` finite floats, row-major (copied)
   * @param rank - number of rows
   * @param captured - see {@link GradientSubspace.captured}
   */
  constructor(basis: Float32Array, rank: number, captured: number | null = null) {
    requireFloat32Array('basis', basis);
    requireInt('rank', rank, { min: 1 });
    if (basis.length === 0 || basis.length % rank !== 0)
      throw new InvalidArgumentError(
        'basis',
        `must hold rank (${rank}) rows of equal, non-zero length, got ${basis.length} floats`,
      );
    for (let j = 0; j < basis.length; j++)
      if (!Number.isFinite(basis[j]))
        throw new InvalidArgumentError('basis', `must be finite, got ${basis[j]} at ${j}`);
    if (captured !== null) requireNumber('captured', captured, { min: 0, max: 1 });
    this.rank = rank;
    this.dim = basis.length / rank;
    this.basis = basis.slice();
    this.captured = captured;
  }

  /**
   * The top-`rank` right singular vectors of `count` gradient rows (`rows: count x dim`, e.g.
   * per-sample gradients of PUBLIC records from
   * {@link DPOptimizer.publicPerSampleGradients}), by a randomized range finder with power
   * iterations (Halko, Martinsson and Tropp 2011); the heavy products run on the native SGEMM.
   * Non-finite rows are rejected. Throws if the rows have fewer than `rank` independent
   * directions.
   */
  static fromGradients(
    rows: Float32Array,
    count: number,
    options: SubspaceFitOptions,
  ): GradientSubspace {
    requireFloat32Array('rows', rows);
    requireInt('count', count, { min: 1 });
    requireObject('options', options);
    if (rows.length === 0 || rows.length % count !== 0)
      throw new InvalidArgumentError(
        'rows',
        `must hold count (${count}) rows of equal, non-zero length, got ${rows.length} floats`,
      );
    const dim = rows.length / count;
    const rank = requireInt('rank', options.rank, { min: 1, max: Math.min(count, dim) });
    const over = requireInt('oversample', options.oversample ?? 10, { min: 0 });
    const iters = requireInt('powerIterations', options.powerIterations ?? 2, { min: 0, max: 20 });
    const seed = requireInt('seed', options.seed ?? 1, { min: 0 });
    let maxAbs = 0;
    for (let j = 0; j < rows.length; j++) {
      if (!Number.isFinite(rows[j]))
        throw new InvalidArgumentError('rows', `must be finite, got ${rows[j]} at ${j}`);
      maxAbs = Math.max(maxAbs, Math.abs(rows[j]));
    }
    // Scaled by a power of two to a largest magnitude in [0.5, 1): the float products below
    // neither overflow nor underflow whatever the gradients' scale (the subspace is unchanged).
    if (maxAbs > 0 && (maxAbs < 0.5 || maxAbs >= 1)) {
      const s = 2 ** -Math.ceil(Math.log2(maxAbs) + 1e-12);
      rows = rows.map((v) => v * s);
    }
    const l = Math.min(rank + over, count, dim);
    // Y = R Omega (count x l), Omega Gaussian (dim x l).
    const omega = gaussianMatrix(dim * l, seed);
    let y = sgemm(rows, omega, new Float32Array(count * l), { m: count, n: l, k: dim });
    for (let it = 0; it < iters; it++) {
      orthonormalizeColumns(y, count, l);
      // Y = R (R^T Y): Z = R^T Y is dim x l (tall, left as it is), then Y = R Z.
      const z = sgemm(rows, y, new Float32Array(dim * l), {
        m: dim,
        n: l,
        k: count,
        transA: true,
      });
      y = sgemm(rows, z, new Float32Array(count * l), { m: count, n: l, k: dim });
    }
    orthonormalizeColumns(y, count, l);
    // B = Q^T R (l x dim); the right singular vectors of R in range(Q) are those of B, and
    // B B^T = W diag(lambda) W^T gives them as lambda^(-1/2) W^T B.
    const b = sgemm(y, rows, new Float32Array(l * dim), { m: l, n: dim, k: count, transA: true });
    const g32 = sgemm(b, b, new Float32Array(l * l), { m: l, n: l, k: dim, transB: true });
    const gram = new Float64Array(l * l);
    for (let i = 0; i < l; i++)
      for (let j = 0; j < l; j++) gram[i * l + j] = (g32[i * l + j] + g32[j * l + i]) / 2;
    const { values, vectors } = symmetricEigen(gram, l);
    const order = Array.from({ length: l }, (_, i) => i).sort((p, q) => values[q] - values[p]);
    let total = 0;
    for (let j = 0; j < rows.length; j++) total += rows[j] * rows[j];
    const top = values[order[0]];
    const wt = new Float32Array(rank * l);
    let kept = 0;
    for (let r = 0; r < rank; r++) {
      const e = order[r];
      if (!(values[e] > 1e-8 * top))
        throw new InvalidArgumentError(
          'rank',
          `the gradient rows span fewer than ${rank} directions (singular value ${r + 1} is ~0); lower rank`,
        );
      kept += values[e];
      for (let i = 0; i < l; i++) wt[r * l + i] = vectors[i * l + e];
    }
    const basis = sgemm(wt, b, new Float32Array(rank * dim), { m: rank, n: dim, k: l });
    // Unit rows (the product above ran in float; the rows are orthogonal to float accuracy).
    for (let r = 0; r < rank; r++) {
      const row = basis.subarray(r * dim, (r + 1) * dim);
      let nn = 0;
      for (let t = 0; t < dim; t++) nn += row[t] * row[t];
      const inv = 1 / Math.sqrt(nn);
      for (let t = 0; t < dim; t++) row[t] = row[t] * inv;
    }
    return new GradientSubspace(basis, rank, total > 0 ? Math.min(1, kept / total) : 0);
  }
}

/**
 * `n` standard normal floats for the range finder's test matrix, from the project's ChaCha20
 * stream keyed by `seed` (a fixed, public key: the test matrix needs no secrecy, only
 * reproducibility).
 */
function gaussianMatrix(n: number, seed: number): Float32Array {
  const key = new Uint8Array(32);
  new DataView(key.buffer).setBigUint64(0, BigInt(seed), true);
  return new Rng({ seed: key }).addGaussianNoise(new Float32Array(n), 1);
}

/** Modified Gram-Schmidt (twice) on the `cols` columns of a row-major `rows x cols` matrix. */
function orthonormalizeColumns(m: Float32Array, rows: number, cols: number): void {
  const col = new Float64Array(rows);
  const done: Float64Array[] = [];
  for (let c = 0; c < cols; c++) {
    for (let r = 0; r < rows; r++) col[r] = m[r * cols + c];
    for (let pass = 0; pass < 2; pass++)
      for (const q of done) {
        let d = 0;
        for (let r = 0; r < rows; r++) d += q[r] * col[r];
        for (let r = 0; r < rows; r++) col[r] -= d * q[r];
      }
    let nn = 0;
    for (let r = 0; r < rows; r++) nn += col[r] * col[r];
    const q = new Float64Array(rows);
    // A column in the span of the earlier ones (rank-deficient rows) becomes zero.
    if (nn > 0) {
      const inv = 1 / Math.sqrt(nn);
      for (let r = 0; r < rows; r++) q[r] = col[r] * inv;
    }
    done.push(q);
    for (let r = 0; r < rows; r++) m[r * cols + c] = q[r];
  }
}

/** Eigen-decomposition of a symmetric `n x n` matrix by cyclic Jacobi rotations (columns of `vectors`). */
function symmetricEigen(a0: Float64Array, n: number): { values: number[]; vectors: Float64Array } {
  const a = a0.slice();
  const v = new Float64Array(n * n);
  for (let i = 0; i < n; i++) v[i * n + i] = 1;
  for (let sweep = 0; sweep < 60; sweep++) {
    let off = 0;
    let diag = 0;
    for (let i = 0; i < n; i++) {
      diag += a[i * n + i] * a[i * n + i];
      for (let j = i + 1; j < n; j++) off += a[i * n + j] * a[i * n + j];
    }
    // Off-diagonal mass below ~1e-12 of the diagonal: far beyond what float products need.
    if (off <= 1e-24 * diag || off === 0) break;
    for (let p = 0; p < n; p++)
      for (let q = p + 1; q < n; q++) {
        const apq = a[p * n + q];
        if (apq === 0) continue;
        const app = a[p * n + p];
        const aqq = a[q * n + q];
        const theta = (aqq - app) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        for (let k = 0; k < n; k++) {
          const akp = a[k * n + p];
          const akq = a[k * n + q];
          a[k * n + p] = c * akp - s * akq;
          a[k * n + q] = s * akp + c * akq;
        }
        for (let k = 0; k < n; k++) {
          const apk = a[p * n + k];
          const aqk = a[q * n + k];
          a[p * n + k] = c * apk - s * aqk;
          a[q * n + k] = s * apk + c * aqk;
        }
        for (let k = 0; k < n; k++) {
          const vkp = v[k * n + p];
          const vkq = v[k * n + q];
          v[k * n + p] = c * vkp - s * vkq;
          v[k * n + q] = s * vkp + c * vkq;
        }
      }
  }
  return { values: Array.from({ length: n }, (_, i) => a[i * n + i]), vectors: v };
}
