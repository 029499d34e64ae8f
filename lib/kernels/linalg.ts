/**
 * Linear-algebra kernels for per-sample clipping (DP-SGD book-keeping):
 * per-sample gradient norms of a linear layer, the clipped gradient sum as one
 * matrix product, clipping factors, and a general SGEMM.
 *
 * All arrays are dense row-major and passed zero-copy (subarray views are
 * fine).  Every argument is validated natively: a wrong type throws a
 * `TypeError`, a wrong length, shape or value a `RangeError`, each naming the
 * argument.  The `...Async` variants run on a libuv worker thread and keep
 * their arrays referenced until they settle; do not write to those arrays
 * (or transfer/resize their buffers) before the promise settles.
 */
import { loadAddon } from '../native';
import type { NativeAddon } from '../native_types';

/** How {@link perSampleGradNormSq} computes the norms. */
export type NormMethod = 'auto' | 'direct' | 'ghost' | 'bound';

/**
 * Shape of one linear layer's book-keeping tensors: activations
 * `a: [batch, seq, inDim]` and output gradients `g: [batch, seq, outDim]`.
 * The per-sample weight gradient is `G_i = g_i^T a_i` (`outDim x inDim`).
 */
export interface GradShape {
  /** Samples in the batch. */
  batch: number;
  /** Tokens (rows) per sample; 1 for a plain dense layer. */
  seq: number;
  /** Input width d (columns of a). */
  inDim: number;
  /** Output width p (columns of g). */
  outDim: number;
}

/** Options of {@link sgemm}: `C = alpha * op(A) * op(B) + beta * C`. */
export interface SgemmOptions {
  /** Rows of op(A) and C. */
  m: number;
  /** Columns of op(B) and C. */
  n: number;
  /** Columns of op(A), rows of op(B). */
  k: number;
  /** op(A) = A^T (A stored k x m). Default false (A stored m x k). */
  transA?: boolean;
  /** op(B) = B^T (B stored n x k). Default false (B stored k x n). */
  transB?: boolean;
  /** Default 1. */
  alpha?: number;
  /** Default 0; with 0, C is write-only (NaN in C does not propagate). */
  beta?: number;
  /** Row stride of the stored A (default: its row width). */
  lda?: number;
  /** Row stride of the stored B (default: its row width). */
  ldb?: number;
  /** Row stride of C (default n). */
  ldc?: number;
}

/** Result of {@link clipFactors} and {@link clipRows}. */
export interface ClipResult {
  /** Per-sample factors `min(1, C / (||G_i|| + 1e-6))`; 0 for a non-finite norm. */
  factors: Float32Array;
  /** Samples whose factor is below 1. */
  clipped: number;
  /** Samples with a NaN, infinite (or negative) squared norm: factor 0. */
  nonfinite: number;
}

/** Opaque native handle of a packed operand (see NativeAddon.sgemmPackB). */
type PackedHandle = object;

/** Options of {@link PackedMatrix.pack}: the operand `op(B)`, `k x n`. */
export interface PackOptions {
  /** Rows of op(B) (the shared dimension of the product). */
  k: number;
  /** Columns of op(B) (and of the product). */
  n: number;
  /** op(B) = B^T (B stored n x k, e.g. a weight [out, in] for `x W^T`). Default false. */
  transB?: boolean;
  /** Row stride of the stored B (default: its row width). */
  ldb?: number;
  /**
   * Element type of the packed copy (default `'fp32'`). `'bf16'` rounds op(B) to bfloat16
   * (round to nearest even; half the memory), and every product then rounds op(A) to
   * bfloat16 too and accumulates the exact bf16 products in fp32: with `vdpbf16ps` where the
   * CPU has AVX512_BF16 on the `'avx512'` path, elsewhere by widening both to fp32 for the
   * path's fp32 kernel. See {@link BaseDtype}.
   */
  dtype?: BaseDtype;
}

/**
 * Element type of a frozen base weight's packed copy: `'fp32'` (exact) or `'bf16'`
 * (bfloat16 storage, fp32 accumulation; about twice the throughput where the CPU has
 * AVX512_BF16). Only frozen products use it: LoRA products, norms, clipping, noise and
 * the optimizer are always fp32/double.
 */
export type BaseDtype = 'fp32' | 'bf16';

/** Options of {@link PackedMatrix.multiply}: `C = alpha * op(A) * op(B) + beta * C`. */
export interface PackedGemmOptions {
  /** Rows of op(A) and C. */
  m: number;
  /** Must equal the packed operand's k (checked). */
  k: number;
  /** Must equal the packed operand's n (checked). */
  n: number;
  /** op(A) = A^T (A stored k x m). Default false. */
  transA?: boolean;
  /** Default 1. */
  alpha?: number;
  /** Default 0 (C write-only). */
  beta?: number;
  /** Row stride of the stored A. */
  lda?: number;
  /** Row stride of C (default n). */
  ldc?: number;
}

/**
 * A product written as the C init of {@link PackedMatrix.multiplyWithInit}:
 * `alpha * a * op(B2)` with `a` `[m, k]` row-major and `op(B2)` `[k, n]` packed (fp32,
 * `1 <= k <= 64`).
 */
export interface PackedInit {
  /** A2 `[m, k]`, row-major (row stride `lda`). */
  a: Float32Array;
  /** op(B2) `[k, n]`, packed (fp32, whatever the main product's type). */
  b: PackedMatrix;
  /** Default 1. */
  alpha?: number;
  /** Row stride of A2 (default k). */
  lda?: number;
}

/** The typed addon (lib/native_types.ts describes every native function). */
function addon(): NativeAddon {
  return loadAddon();
}

/** Runs `start` and turns a synchronous validation error into a rejection. */
function settle<T>(start: () => Promise<T>): Promise<T> {
  try {
    return start();
  } catch (e) {
    // Validation throws Errors (from the addon's realm, so `instanceof Error` can fail).
    const err = e as Error;
    return Promise.reject(err);
  }
}

/**
 * Squared Frobenius norm of each sample's weight gradient `G_i = g_i^T a_i`,
 * accumulated in double precision.
 *
 * Methods: `'direct'` forms G_i blockwise (T*d*p multiply-adds per sample);
 * `'ghost'` uses `<a a^T, g g^T>` (about T^2/2 * (d+p)); `'auto'` (default)
 * picks whichever of these two exact methods needs fewer multiply-adds;
 * `'bound'` returns the DP-valid upper bound `(sum_t |a_t| |g_t|)^2`, which
 * over-clips (roughly by sqrt(T) on uncorrelated tokens): use it only on
 * purpose.  Any non-finite input gives a non-finite norm for that sample
 * (see {@link clipFactors}).
 *
 * @param a activations `[batch, seq, inDim]`
 * @param g output gradients `[batch, seq, outDim]`
 * @param shape the shape, optionally with `method`
 * @param out optional `Float64Array(batch)` to write into
 * @returns `out` (or a new array) with one squared norm per sample
 */
export function perSampleGradNormSq(
  a: Float32Array,
  g: Float32Array,
  shape: GradShape & { method?: NormMethod },
  out?: Float64Array,
): Float64Array {
  return addon().gradNormSq(a, g, shape, out);
}

/** {@link perSampleGradNormSq} on a worker thread. Validation errors reject the promise. */
export function perSampleGradNormSqAsync(
  a: Float32Array,
  g: Float32Array,
  shape: GradShape & { method?: NormMethod },
  out?: Float64Array,
): Promise<Float64Array> {
  return settle(() => addon().gradNormSqAsync(a, g, shape, out));
}

/**
 * Clipped gradient sum `sum_{i,t} factors_i g_{i,t} a_{i,t}^T` as ONE matrix
 * product (the factors are folded into the packing of g; no per-sample
 * gradient is formed).  The result is row-major `[outDim, inDim]`, the layout
 * of a weight matrix `W: inDim -> outDim`.
 *
 * Samples whose factor is 0 contribute exactly nothing, even when their `a`
 * or `g` rows hold NaN or Inf (the privacy-safe handling of a sample whose
 * norm was not finite).  Factors must be finite.
 *
 * @param factors `Float32Array(batch)`, usually from {@link clipFactors}
 * @param out optional `Float32Array(outDim * inDim)`; required with `accumulate`
 * @param opts `accumulate: true` adds to `out` instead of overwriting it
 */
export function clippedSum(
  a: Float32Array,
  g: Float32Array,
  shape: GradShape,
  factors: Float32Array,
  out?: Float32Array,
  opts?: { accumulate?: boolean },
): Float32Array {
  return addon().clippedSum(a, g, shape, factors, out, opts);
}

/** {@link clippedSum} on a worker thread. Validation errors reject the promise. */
export function clippedSumAsync(
  a: Float32Array,
  g: Float32Array,
  shape: GradShape,
  factors: Float32Array,
  out?: Float32Array,
  opts?: { accumulate?: boolean },
): Promise<Float32Array> {
  return settle(() => addon().clippedSumAsync(a, g, shape, factors, out, opts));
}

/**
 * Single-precision matrix product `C = alpha * op(A) * op(B) + beta * C`
 * (packed, cache-blocked, SIMD, multi-threaded; results do not depend on the
 * thread count).  `c` must not share memory with `a` or `b`.
 *
 * @returns `c`
 */
export function sgemm(
  a: Float32Array,
  b: Float32Array,
  c: Float32Array,
  opts: SgemmOptions,
): Float32Array {
  return addon().sgemm(a, b, c, opts);
}

/** {@link sgemm} on a worker thread. Validation errors reject the promise. */
export function sgemmAsync(
  a: Float32Array,
  b: Float32Array,
  c: Float32Array,
  opts: SgemmOptions,
): Promise<Float32Array> {
  return settle(() => addon().sgemmAsync(a, b, c, opts));
}

/**
 * A matrix operand packed once for many products `C = alpha * op(A) * op(B) + beta * C`
 * with the same `op(B)`: a frozen weight, which {@link sgemm} would otherwise pack again on
 * every call (for a 768x768 weight, 2.4 MB read and written per call). Results are bitwise
 * equal to {@link sgemm} on the same B.
 *
 * The packed copy is a snapshot: after B changes, call {@link PackedMatrix.repack}. When
 * the active ISA path changes (`setIsa`), the next product repacks from the source array
 * automatically, so keep the source array unchanged while the handle is used.
 *
 * @example
 * ```ts
 * const w = new Float32Array(out * inp);                       // weight [out, in]
 * const wt = PackedMatrix.pack(w, { k: inp, n: out, transB: true }); // op(B) = W^T
 * wt.multiply(x, y, { m: rows, k: inp, n: out });              // y = x W^T
 * ```
 */
export class PackedMatrix {
  private src: Float32Array;
  /** Rows of op(B). */
  readonly k: number;
  /** Columns of op(B). */
  readonly n: number;
  private readonly opts: PackOptions;
  private handle: PackedHandle;

  private constructor(source: Float32Array, opts: PackOptions) {
    this.src = source;
    this.opts = { ...opts };
    this.k = opts.k;
    this.n = opts.n;
    this.handle = addon().sgemmPackB(source, this.opts);
  }

  /**
   * Packs `op(B)` (`k x n`) of `b` for the active ISA path (rounded to bf16 with
   * `dtype: 'bf16'`; products are then not bitwise equal to {@link sgemm}).
   *
   * @throws TypeError / RangeError naming the argument, as {@link sgemm}
   */
  static pack(b: Float32Array, opts: PackOptions): PackedMatrix {
    return new PackedMatrix(b, opts);
  }

  /** Whether op(B) = B^T (the source stored `n x k`). */
  get transB(): boolean {
    return !!this.opts.transB;
  }

  /** Element type of the packed copy (`'fp32'` unless packed with `dtype: 'bf16'`). */
  get dtype(): BaseDtype {
    return this.opts.dtype ?? 'fp32';
  }

  /** The source array the operand was (last) packed from. */
  get source(): Float32Array {
    return this.src;
  }

  /** Packs the source array again (after it changed). */
  repack(): void {
    this.handle = addon().sgemmPackB(this.src, this.opts);
  }

  /**
   * Packs `b` (the same shape, stride and orientation as the source, see {@link PackOptions})
   * into this matrix's native copy, which keeps its element type: no native allocation when
   * the copy was packed for the active ISA path (else a new copy is made). `b` becomes the
   * source. For operands that change every call (a LoRA factor in a fused C init).
   *
   * @returns this
   * @throws InvalidArgumentError naming `b` when it is not a large enough Float32Array
   */
  repackFrom(b: Float32Array): this {
    if (!addon().sgemmRepackB(this.handle, b, this.opts)) {
      this.handle = addon().sgemmPackB(b, this.opts); // packed for another ISA path
    }
    this.src = b;
    return this;
  }

  /** Bytes of native memory the packed copy holds, the ISA path it was packed for, its element type. */
  info(): {
    /** ISA path the copy was packed for: 'scalar' | 'neon' | 'avx2' | 'avx512'. */
    isa: string;
    /** Bytes of native memory the packed copy holds. */
    bytes: number;
    /** Element type of the packed copy. */
    dtype: BaseDtype;
  } {
    return addon().packedInfo(this.handle);
  }

  /**
   * `c = alpha * op(a) * op(B) + beta * c` with the packed `op(B)`; `c` must not share
   * memory with `a`.
   *
   * @returns `c`
   */
  multiply(a: Float32Array, c: Float32Array, opts: PackedGemmOptions): Float32Array {
    if (!addon().sgemmPacked(a, this.handle, c, opts)) {
      this.repack(); // packed for another ISA path
      addon().sgemmPacked(a, this.handle, c, opts);
    }
    return c;
  }

  /**
   * `c = alpha * op(a) * op(B) + (beta * c + init)` with `init = init.alpha * init.a *
   * op(init.b)` written as the C init: each block of rows of `c` gets it right before the
   * main product's updates, while it is in cache (one pass over `c` instead of two for, e.g.,
   * a LoRA adapter term in front of a frozen base product). Bitwise equal to
   * `init.b.multiply(init.a, c, {beta})` followed by `this.multiply(a, c, {beta: 1})`. This
   * matrix may be fp32 or bf16 (the init is then the fp32 product in front of the bf16 one);
   * `init.b` must be fp32 and `init.b.k` in [1, 64]; `c` must not share memory with `a` or
   * `init.a`.
   *
   * @returns `c`
   */
  multiplyWithInit(
    a: Float32Array,
    c: Float32Array,
    opts: PackedGemmOptions,
    init: PackedInit,
  ): Float32Array {
    const o: PackedGemmOptions & { init: object } = {
      ...opts,
      init: {
        a: init.a,
        packed: init.b.handle,
        k: init.b.k,
        alpha: init.alpha ?? 1,
        ...(init.lda === undefined ? {} : { lda: init.lda }),
      },
    };
    if (!addon().sgemmPacked(a, this.handle, c, o)) {
      // Packed for another ISA path.
      this.repack();
      init.b.repack();
      o.init = { ...o.init, packed: init.b.handle };
      addon().sgemmPacked(a, this.handle, c, o);
    }
    return c;
  }
}

/**
 * Clipping factors `min(1, maxNorm / (sqrt(normsSq_i) + 1e-6))`, rounded down
 * to float so that `factor * norm <= maxNorm`.  A NaN, infinite or negative
 * squared norm gets factor 0 and is counted in `nonfinite`.
 *
 * @param normsSq per-sample squared norms (e.g. the sum over layers of
 *   {@link perSampleGradNormSq})
 * @param maxNorm clipping threshold C (finite, > 0)
 * @param out optional `Float32Array(normsSq.length)` for the factors
 */
export function clipFactors(
  normsSq: Float64Array,
  maxNorm: number,
  out?: Float32Array,
): ClipResult {
  return addon().clipFactors(normsSq, maxNorm, out);
}

/**
 * Clips each row of materialized per-sample gradients `x: [batch, dim]` in
 * place to L2 norm at most `maxNorm` (norms accumulated in double).  A row
 * holding NaN or Inf is zeroed (factor 0, counted in `nonfinite`).
 */
export function clipRows(x: Float32Array, batch: number, dim: number, maxNorm: number): ClipResult {
  return addon().clipRows(x, batch, dim, maxNorm);
}

/**
 * Materializes each sample's weight gradient `G_i = alpha * g_i^T a_i` as a
 * float tensor (`out: [batch, outDim, inDim]`), each by one deterministic
 * product (a narrow-side kernel when `inDim` or `outDim` is at most 16, as for
 * LoRA factors, else SGEMM; the samples split over the pool): on one ISA path
 * the same inputs always give bit-identical tensors, on any thread count.  Used by the floating-point-sound clipping (the tensor whose norm is
 * clipped is the very tensor that is summed).
 */
export function perSampleGrads(
  a: Float32Array,
  g: Float32Array,
  shape: GradShape,
  alpha: number,
  out: Float32Array,
): Float32Array {
  return addon().perSampleGrads(a, g, shape, alpha, out);
}

/** `out[r] = sum_j x[r, j]^2` in double (the squares of floats are exact in double). */
export function rowsSumSq(
  x: Float32Array,
  rows: number,
  n: number,
  out: Float64Array,
): Float64Array {
  return addon().rowsSumSq(x, rows, n, out);
}

/**
 * `out[j] += sum_r factors_r * x[r, j]` in double; rows whose factor is 0 or
 * non-finite are never read.
 */
export function rowsScaledSum(
  x: Float32Array,
  rows: number,
  n: number,
  factors: Float32Array,
  out: Float64Array,
): Float64Array {
  return addon().rowsScaledSum(x, rows, n, factors, out);
}

/**
 * `out[j, k] += sum_r (scale * factors_r * g[r, j]) * a[r, k]` in double (the
 * clipped sum of one-token per-sample gradients `scale * g_r a_r^T`); rows
 * whose factor is 0 or non-finite are never read.
 */
export function outerScaledSum(
  a: Float32Array,
  g: Float32Array,
  rows: number,
  inDim: number,
  outDim: number,
  factors: Float32Array,
  scale: number,
  out: Float64Array,
): Float64Array {
  return addon().outerScaledSum(a, g, rows, inDim, outDim, factors, scale, out);
}

/**
 * The DP step's last stage, in place: `g[j] = float((sum[j] + g[j]) * scale)`
 * where `sum` is the double clipped sum and `g` holds the float noise on entry
 * (noise is added to the double sum; rounding to float is post-processing).
 * Returns how many results are not finite (0 when the step may proceed).
 */
export function noisyMean(sum: Float64Array, g: Float32Array, scale: number): number {
  return addon().noisyMean(sum, g, scale);
}

/**
 * Roofline probe for benchmarks: read bandwidth (bytes/s) of a float
 * sum-of-squares loop over `x`, `repeats` times, on all pool threads with
 * the active ISA.
 */
export function benchReadBandwidth(x: Float32Array, repeats: number): number {
  return addon().benchReadBandwidth(x, repeats).bytesPerSecond;
}

/**
 * Roofline probe for benchmarks: FMA throughput (flop/s, an FMA counting 2)
 * of `iters` iterations of independent FMA chains on each pool thread with
 * the active ISA.
 */
export function benchFmaPeak(iters: number): number {
  return addon().benchFmaPeak(iters).flopsPerSecond;
}

/**
 * Asks the OS to back the 2 MiB-aligned pages inside `x`'s memory with transparent huge pages
 * from their first touch on (Linux `madvise(MADV_HUGEPAGE)`; honoured where transparent huge
 * pages are enabled, `always` or `madvise`). The contents are unchanged and pages already in
 * memory stay as they are, so call it right after allocating a large array that is about to be
 * written: the first writes then take a few huge-page faults instead of one fault per 4 KiB page
 * (measured on this project's 2-vCPU VM: ~45 ms for a fresh 12 MiB array, ~6 ms with the
 * advice). Returns whether the advice was given (false on other systems, for arrays holding no
 * whole aligned huge page, or when the kernel refuses).
 */
export function adviseHugePages(x: Float32Array): boolean {
  return addon().adviseHugePages(x);
}
