/**
 * Thin helpers over the native linalg kernels used by the layers: dense
 * products for forward/backward, and per-sample norms / clipped sums with
 * samples of factor 0 skipped.  No per-element JS loops over large tensors.
 */
import { clippedSum, PackedMatrix, perSampleGradNormSq, sgemm } from '../kernels/linalg';
import type { NormMethod, PackedInit } from '../kernels/linalg';
import { scratch } from './workspace';

export type { NormMethod };

let onesBuf = new Float32Array(0);

/** A read-only-by-convention buffer of at least `n` ones. */
export function ones(n: number): Float32Array {
  if (onesBuf.length < n) {
    onesBuf = new Float32Array(Math.max(n, 2 * onesBuf.length));
    onesBuf.fill(1);
  }
  return onesBuf.subarray(0, n);
}

/** Copies `row` into each of the `rows` rows of `y` (doubling memcpy's, no per-element loop). */
export function fillRows(y: Float32Array, row: Float32Array, rows: number): void {
  const n = row.length;
  if (rows === 0 || n === 0) return;
  y.set(row);
  const total = rows * n;
  for (let done = n; done < total; done *= 2) y.copyWithin(done, 0, Math.min(done, total - done));
}

/**
 * Fusion switches for same-process A/B benchmarks (bench/phases.ts): with `lora` on, a LoRA
 * layer writes its adapter term (and the bias) as the C init of the base products instead of
 * adding it in a separate pass over the output (see {@link loraUpInit}); with `packedInit`
 * also on, that C init runs inside the packed base product's pass over the output
 * ({@link loraUpProduct}, {@link loraDownProduct}) when the product has at least
 * `packedInitMinRows` rows, for a bf16 base only with `packedInitBf16` (off: the init in a
 * pass of its own first).  Below that many rows the fused pass saves nothing measurable; the
 * threshold was set when its packed operands were native allocations made per call (freed by
 * the garbage collector), which made short steps slower (at (B, T) = (32, 1) the harness
 * step's median went from ~9 to ~16 ms in a fresh process).  They are now packed again in
 * place ({@link InitOperands}); the threshold stays until a quiet T = 1 measurement shows
 * that it can go.  Internal.
 */
export const FUSION = {
  lora: true,
  packedInit: true,
  packedInitMinRows: 1024,
  packedInitBf16: true,
};

/** Whether a product init runs inside `wt`'s pass (a bf16 base only with `packedInitBf16`). */
function fusedInto(wt: PackedMatrix): boolean {
  return wt.dtype === 'fp32' || FUSION.packedInitBf16;
}

/**
 * Writes the whole of y[rows, out] with bias + s h[rows, r] B[out, r]^T in ONE product with
 * beta = 0 (`[h | 1] [s B | bias]^T`, k = r + 1; without a bias, `s h B^T`): the C init of
 * a base product that then adds x W^T with beta = 1, so the output is written once for the
 * bias and the adapter instead of filled with the bias and then updated by a rank-r product.
 */
export function loraUpInit(
  h: Float32Array,
  b: Float32Array,
  bias: Float32Array | null,
  s: number,
  rows: number,
  r: number,
  outDim: number,
  y: Float32Array,
): void {
  if (!bias) {
    matmulBT(h, b, rows, r, outDim, s, y, 0);
    return;
  }
  const k = r + 1;
  const { hb, bb } = biasAugmented(h, b, bias, s, rows, r, outDim, scratch);
  matmulBT(hb, bb, rows, k, outDim, 1, y, 0);
}

/**
 * The operands of `[h | 1] [s B | bias]^T` (k = r + 1): hb[rows, k] from {@link scratch},
 * bb[out, k] from `allocB` (taken in that order).
 */
function biasAugmented(
  h: Float32Array,
  b: Float32Array,
  bias: Float32Array,
  s: number,
  rows: number,
  r: number,
  outDim: number,
  allocB: (n: number) => Float32Array,
): { hb: Float32Array; bb: Float32Array } {
  const k = r + 1;
  const hb = scratch(rows * k);
  for (let i = 0; i < rows; i++) {
    const o = i * k;
    const src = i * r;
    for (let j = 0; j < r; j++) hb[o + j] = h[src + j];
    hb[o + r] = 1;
  }
  const bb = allocB(outDim * k);
  for (let i = 0; i < outDim; i++) {
    const o = i * k;
    const src = i * r;
    for (let j = 0; j < r; j++) bb[o + j] = s * b[src + j];
    bb[o + r] = bias[i];
  }
  return { hb, bb };
}

/**
 * The C init of a base product: a function writing every element, or a product
 * `alpha * a * op(b)` (see {@link PackedInit}) that a packed base (fp32 or bf16) runs in the
 * same pass over the output ({@link PackedMatrix.multiplyWithInit}).  Internal.
 */
export type OutputInit = ((y: Float32Array) => void) | PackedInit;

/** Runs `init` into y[rows, n] (every element written): the unfused form of an {@link OutputInit}. */
function runInit(init: OutputInit, y: Float32Array, rows: number, n: number): void {
  if (typeof init === 'function') init(y);
  else init.b.multiply(init.a, y, { m: rows, n, k: init.b.k, alpha: init.alpha ?? 1, beta: 0 });
}

/** The largest k of a product run as the C init of a packed base product. */
const MAX_INIT_K = 64;

/**
 * The packed operands of one layer's fused C inits ({@link loraUpProduct},
 * {@link loraDownProduct}), kept from call to call and packed again in place
 * ({@link PackedMatrix.repackFrom}): no native allocation per call once the shapes are
 * stable. Internal.
 */
export class InitOperands {
  /** `[s B | bias]` [out, r + 1], the source of `up` when the layer has a bias. */
  private upSource: Float32Array | null = null;
  private up: PackedMatrix | null = null;
  private down: PackedMatrix | null = null;

  /** A persistent array of n floats for `[s B | bias]` (the packed up operand's source). */
  upArray(n: number): Float32Array {
    if (this.upSource?.length !== n) this.upSource = new Float32Array(n);
    return this.upSource;
  }

  /** `b` packed as the up operand (op(B) = b^T, `k x n`). */
  packUp(b: Float32Array, k: number, n: number): PackedMatrix {
    this.up = packReusing(this.up, b, { k, n, transB: true });
    return this.up;
  }

  /** `a` packed as the down operand (op(B) = a, `k x n`). */
  packDown(a: Float32Array, k: number, n: number): PackedMatrix {
    this.down = packReusing(this.down, a, { k, n });
    return this.down;
  }
}

/** `b` packed in fp32 into `old`'s native copy when the shape and orientation match, else anew. */
function packReusing(
  old: PackedMatrix | null,
  b: Float32Array,
  opts: { k: number; n: number; transB?: boolean },
): PackedMatrix {
  if (old && old.k === opts.k && old.n === opts.n && old.transB === !!opts.transB)
    return old.repackFrom(b);
  return PackedMatrix.pack(b, opts);
}

/**
 * bias + s h[rows, r] B[out, r]^T (the LoRA forward term, as {@link loraUpInit} writes it) as
 * a {@link PackedInit}: `[h | 1] [s B | bias]^T` (k = r + 1), or `s h B^T` without a bias;
 * null when k would exceed 64 (use {@link loraUpInit}).  Bitwise equal to loraUpInit.  The
 * packed operand is `ops`'s, packed again in place (valid until the next call with `ops`).
 */
export function loraUpProduct(
  h: Float32Array,
  b: Float32Array,
  bias: Float32Array | null,
  s: number,
  rows: number,
  r: number,
  outDim: number,
  ops: InitOperands = new InitOperands(),
): PackedInit | null {
  if (!bias) {
    if (r > MAX_INIT_K) return null;
    return { a: h, b: ops.packUp(b, r, outDim), alpha: s };
  }
  const k = r + 1;
  if (k > MAX_INIT_K) return null;
  // bb is the packed matrix's source (read again on a repack): ops's array, not scratch.
  const { hb, bb } = biasAugmented(h, b, bias, s, rows, r, outDim, (n) => ops.upArray(n));
  return { a: hb, b: ops.packUp(bb, k, outDim) };
}

/**
 * gh[rows, r] A[r, in] (the LoRA term of the input gradient) as a {@link PackedInit}; null
 * when r > 64.  Bitwise equal to `matmul(gh, a, rows, r, in)`.  The packed operand is
 * `ops`'s, packed again in place (valid until the next call with `ops`).
 */
export function loraDownProduct(
  gh: Float32Array,
  a: Float32Array,
  r: number,
  inDim: number,
  ops: InitOperands = new InitOperands(),
): PackedInit | null {
  if (r > MAX_INIT_K) return null;
  return { a: gh, b: ops.packDown(a, r, inDim) };
}

/**
 * y[rows, out] = x[rows, in] W[out, in]^T + bias (the bias copied into y, then the product
 * added with beta = 1); `wt` is W^T packed once (a frozen weight), else W is packed per call.
 * With `init`, `init(y)` writes every element of y first (in place of the bias; see
 * {@link loraUpInit}) and the product is added to it.
 */
export function linearForward(
  x: Float32Array,
  w: Float32Array,
  bias: Float32Array | null,
  rows: number,
  inDim: number,
  outDim: number,
  wt: PackedMatrix | null = null,
  init: OutputInit | null = null,
): Float32Array {
  const y = scratch(rows * outDim);
  if (rows === 0 || outDim === 0) return y;
  let beta = 0;
  if (init && typeof init !== 'function' && wt && inDim > 0 && fusedInto(wt)) {
    // The init and the base product in one pass over y.
    return wt.multiplyWithInit(x, y, { m: rows, n: outDim, k: inDim, beta: 0 }, init);
  }
  if (init) {
    runInit(init, y, rows, outDim);
    beta = 1;
  } else if (bias) {
    fillRows(y, bias, rows);
    beta = 1;
  } else if (inDim === 0) {
    return y.fill(0);
  }
  if (inDim > 0) {
    if (wt) wt.multiply(x, y, { m: rows, n: outDim, k: inDim, beta });
    else sgemm(x, w, y, { m: rows, n: outDim, k: inDim, transB: true, beta });
  }
  return y;
}

/** The body of {@link matmul} and {@link matmulBT}: empty shapes handled without a kernel call. */
function product(
  a: Float32Array,
  b: Float32Array,
  rows: number,
  k: number,
  n: number,
  transB: boolean,
  alpha: number,
  out: Float32Array | undefined,
  beta: number,
): Float32Array {
  const y = out ?? scratch(rows * n);
  if (rows === 0 || n === 0) return y;
  if (k === 0) {
    // An empty sum: zero for beta = 0; out is kept otherwise (callers accumulate with beta = 1).
    if (beta === 0) y.fill(0);
    return y;
  }
  sgemm(a, b, y, { m: rows, n, k, transB, alpha, beta });
  return y;
}

/** out[rows, n] (+)= alpha * a[rows, k] b[k, n]. */
export function matmul(
  a: Float32Array,
  b: Float32Array,
  rows: number,
  k: number,
  n: number,
  alpha = 1,
  out?: Float32Array,
  beta = 0,
): Float32Array {
  return product(a, b, rows, k, n, false, alpha, out, beta);
}

/**
 * out[rows, n] (+)= a[rows, k] op(B) with op(B) [k, n] packed once (into `out` with
 * `beta`, else a new scratch with beta = 0).
 */
export function matmulPacked(
  a: Float32Array,
  b: PackedMatrix,
  rows: number,
  k: number,
  n: number,
  out?: Float32Array,
  beta = 0,
): Float32Array {
  const y = out ?? scratch(rows * n);
  if (rows === 0 || n === 0) return y;
  if (k === 0) return beta === 0 ? y.fill(0) : y;
  return b.multiply(a, y, { m: rows, k, n, beta });
}

/**
 * A new scratch out[rows, n] = init + a[rows, k] W: in one pass over out with W a packed
 * frozen weight (fp32 or bf16) and a product as the init, else `wp`'s or the plain product
 * of `w` [k, n] added to the init run first (see {@link OutputInit}).
 */
export function matmulWithInit(
  a: Float32Array,
  w: Float32Array,
  wp: PackedMatrix | null,
  rows: number,
  k: number,
  n: number,
  init: OutputInit,
): Float32Array {
  const y = scratch(rows * n);
  if (rows === 0 || n === 0) return y;
  if (typeof init !== 'function' && wp && k > 0 && fusedInto(wp))
    return wp.multiplyWithInit(a, y, { m: rows, k, n, beta: 0 }, init);
  runInit(init, y, rows, n);
  if (k === 0) return y;
  if (wp) return wp.multiply(a, y, { m: rows, k, n, beta: 1 });
  return matmul(a, w, rows, k, n, 1, y, 1);
}

/** out[rows, n] (+)= alpha * a[rows, k] b[n, k]^T. */
export function matmulBT(
  a: Float32Array,
  b: Float32Array,
  rows: number,
  k: number,
  n: number,
  alpha = 1,
  out?: Float32Array,
  beta = 0,
): Float32Array {
  return product(a, b, rows, k, n, true, alpha, out, beta);
}

/** dW[out, in] += alpha * g[rows, out]^T a[rows, in] (raw gradient of a linear map). */
export function addOuterGrad(
  g: Float32Array,
  a: Float32Array,
  rows: number,
  inDim: number,
  outDim: number,
  dW: Float32Array,
  alpha = 1,
): void {
  if (rows === 0 || inDim === 0 || outDim === 0) return;
  sgemm(g, a, dW, { m: outDim, n: inDim, k: rows, transA: true, alpha, beta: 1 });
}

/** db[out] += alpha * sum over rows of g[rows, out]. */
export function addColumnSums(
  g: Float32Array,
  rows: number,
  outDim: number,
  db: Float32Array,
  alpha = 1,
): void {
  if (rows === 0 || outDim === 0) return;
  sgemm(ones(rows), g, db, { m: 1, n: outDim, k: rows, alpha, beta: 1 });
}

/**
 * out[i] += scale * ||sum_t g_{i,t} a_{i,t}^T||_F^2 for each sample i
 * (a: [batch, seq, inDim], g: [batch, seq, outDim]).
 */
export function addNormsSq(
  a: Float32Array,
  g: Float32Array,
  batch: number,
  seq: number,
  inDim: number,
  outDim: number,
  out: Float64Array,
  scale = 1,
  method: NormMethod = 'auto',
): void {
  if (batch === 0) return;
  if (seq === 0 || inDim === 0 || outDim === 0) return;
  const n = perSampleGradNormSq(a, g, { batch, seq, inDim, outDim, method });
  for (let i = 0; i < batch; i++) out[i] += scale * n[i];
}

/** Bias contribution: out[i] += scale * ||sum_t g_{i,t}||^2 (the kernel with a = ones). */
export function addBiasNormsSq(
  g: Float32Array,
  batch: number,
  seq: number,
  outDim: number,
  out: Float64Array,
  scale = 1,
): void {
  addNormsSq(ones(batch * seq), g, batch, seq, 1, outDim, out, scale, 'direct');
}

/**
 * out[outDim, inDim] += sum_{i,t} scale * factors_i g_{i,t} a_{i,t}^T, calling
 * the kernel once per run of consecutive samples with a nonzero factor, so
 * samples with factor 0 (non-finite norms) are never read.
 */
export function addClippedSum(
  a: Float32Array,
  g: Float32Array,
  batch: number,
  seq: number,
  inDim: number,
  outDim: number,
  factors: Float32Array,
  out: Float32Array,
  scale = 1,
): void {
  if (batch === 0 || seq === 0 || inDim === 0 || outDim === 0) return;
  const f = scale === 1 ? factors : factors.map((v) => v * scale);
  let i = 0;
  while (i < batch) {
    while (i < batch && f[i] === 0) i++;
    if (i >= batch) break;
    let j = i;
    while (j < batch && f[j] !== 0) j++;
    const n = j - i;
    clippedSum(
      a.subarray(i * seq * inDim, j * seq * inDim),
      g.subarray(i * seq * outDim, j * seq * outDim),
      { batch: n, seq, inDim, outDim },
      f.subarray(i, j),
      out,
      { accumulate: true },
    );
    i = j;
  }
}

/** Bias clipped sum: out[outDim] += sum_{i,t} scale * factors_i g_{i,t}. */
export function addBiasClippedSum(
  g: Float32Array,
  batch: number,
  seq: number,
  outDim: number,
  factors: Float32Array,
  out: Float32Array,
  scale = 1,
): void {
  addClippedSum(ones(batch * seq), g, batch, seq, 1, outDim, factors, out, scale);
}
