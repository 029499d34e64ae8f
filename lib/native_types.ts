/**
 * The typed boundary to the native addon: one interface listing every function the binding
 * exports (native/binding/*.cc, each `Export(env, exports, "name", ...)`), with the exact
 * argument and return types the glue accepts and produces. {@link NATIVE_FUNCTION_NAMES} lists
 * the same names at run time; a test checks it against the real addon, so a native function
 * added without a type here fails the suite.
 *
 * Every function checks its arguments natively and throws a `TypeError` or `RangeError` whose
 * message starts with the argument's name; `loadAddon` (lib/native.ts) turns those into
 * `InvalidArgumentError`s naming the argument, and other native failures (entropy source,
 * memory) into `NativeError`s.
 */
import type { IntegerLoraConfig, IntegerLoraState } from './kernels/fixed_lora';
import type {
  ClipResult,
  GradShape,
  PackOptions,
  PackedGemmOptions,
  SgemmOptions,
} from './kernels/linalg';

/** An ISA path name as the addon spells it. */
export type NativeIsaName = 'scalar' | 'neon' | 'avx2' | 'avx512';

/** `shape` argument of the per-sample norm and clipped-sum kernels (the public shape plus a method). */
export type NativeGradShape = GradShape & {
  /** Norm method (gradNormSq only); default 'auto'. */
  method?: 'auto' | 'direct' | 'ghost' | 'bound';
};

/** `opts` argument of sgemm: the public {@link SgemmOptions}. */
export type NativeSgemmOptions = SgemmOptions;

/** Result of clipFactors and clipRows: the public {@link ClipResult}. */
export type NativeClipResult = ClipResult;

/** Every function of dplora.node, as the binding exports it. */
export interface NativeAddon {
  // core.cc
  /** The active ISA path, the paths this build and CPU support, and the pool's thread count. */
  isaInfo(): {
    active: NativeIsaName;
    supported: NativeIsaName[];
    threads: number;
    /** Whether the active path multiplies a bf16 base natively (AVX512_BF16). */
    bf16Native: boolean;
  };
  /** Forces an ISA path; RangeError if unknown or unsupported here. */
  setIsa(isa: string): void;
  /** Resizes the native thread pool (1..1024). */
  setThreads(threads: number): void;

  // linalg.cc
  /** `c = alpha op(a) op(b) + beta c`; returns `c`. */
  sgemm(a: Float32Array, b: Float32Array, c: Float32Array, opts: NativeSgemmOptions): Float32Array;
  /** {@link NativeAddon.sgemm} on a worker thread; resolves to `c`. */
  sgemmAsync(...args: Parameters<NativeAddon['sgemm']>): Promise<Float32Array>;
  /** Per-sample squared gradient norms; returns `out` or a new `Float64Array(batch)`. */
  gradNormSq(
    a: Float32Array,
    g: Float32Array,
    shape: NativeGradShape,
    out?: Float64Array,
  ): Float64Array;
  /** {@link NativeAddon.gradNormSq} on a worker thread. */
  gradNormSqAsync(...args: Parameters<NativeAddon['gradNormSq']>): Promise<Float64Array>;
  /** Clipped gradient sum `[outDim, inDim]`; returns `out` or a new array. */
  clippedSum(
    a: Float32Array,
    g: Float32Array,
    shape: NativeGradShape,
    factors: Float32Array,
    out?: Float32Array,
    opts?: { accumulate?: boolean },
  ): Float32Array;
  /** {@link NativeAddon.clippedSum} on a worker thread. */
  clippedSumAsync(...args: Parameters<NativeAddon['clippedSum']>): Promise<Float32Array>;
  /** Clipping factors from squared norms. */
  clipFactors(normsSq: Float64Array, maxNorm: number, out?: Float32Array): NativeClipResult;
  /** Clips the rows of `x: [batch, dim]` in place. */
  clipRows(x: Float32Array, batch: number, dim: number, maxNorm: number): NativeClipResult;
  /** Per-sample weight gradients `alpha * g_i^T a_i` into `out` (`[batch, outDim, inDim]`). */
  perSampleGrads(
    a: Float32Array,
    g: Float32Array,
    shape: NativeGradShape,
    alpha: number,
    out: Float32Array,
  ): Float32Array;
  /** Sum of squares of each of `rows` rows of width `n` of `x` (double accumulation) into `out`. */
  rowsSumSq(x: Float32Array, rows: number, n: number, out: Float64Array): Float64Array;
  /** `out += sum_r factors[r] * x[r]` over `rows` rows of width `n` (double accumulation). */
  rowsScaledSum(
    x: Float32Array,
    rows: number,
    n: number,
    factors: Float32Array,
    out: Float64Array,
  ): Float64Array;
  /** `out += scale * sum_r factors[r] g_r^T a_r` (`[outDim, inDim]`, double accumulation). */
  outerScaledSum(
    a: Float32Array,
    g: Float32Array,
    rows: number,
    inDim: number,
    outDim: number,
    factors: Float32Array,
    scale: number,
    out: Float64Array,
  ): Float64Array;
  /** `g[j] = float((sum[j] + g[j]) * scale)` in place; returns how many results are not finite. */
  noisyMean(sum: Float64Array, g: Float32Array, scale: number): number;
  /** Packs `op(B)` of `b` (rounded to bf16 with `dtype: 'bf16'`) for the active ISA path; returns an opaque native handle. */
  sgemmPackB(b: Float32Array, opts: PackOptions): object;
  /** `c = alpha op(a) op(B) + beta c` with a packed `op(B)`; false if the handle is stale. */
  sgemmPacked(a: Float32Array, packed: object, c: Float32Array, opts: PackedGemmOptions): boolean;
  /**
   * Packs `op(B)` of `b` again into an existing handle (same `k x n`, its own element type; no
   * allocation); false if the handle was packed for another ISA path.
   */
  sgemmRepackB(packed: object, b: Float32Array, opts: PackOptions): boolean;
  /** The ISA path a packed operand was packed for, the native bytes it holds and its element type. */
  packedInfo(packed: object): { isa: string; bytes: number; dtype: 'fp32' | 'bf16' };
  /**
   * Asks the OS to back the 2 MiB-aligned pages inside `x` with transparent huge pages from
   * their first touch on (Linux); whether the advice was given.
   */
  adviseHugePages(x: Float32Array): boolean;
  /** Roofline probe: read bandwidth over `x`. */
  benchReadBandwidth(
    x: Float32Array,
    repeats: number,
  ): { bytesPerSecond: number; checksum: number };
  /** Roofline probe: FMA throughput. */
  benchFmaPeak(iters: number): { flopsPerSecond: number; checksum: number };

  // rng.cc
  /** One 64-byte ChaCha20 block (RFC 8439); `counter` in [0, 2^32). */
  chacha20Block(key: Uint8Array, counter: number, nonce: Uint8Array): Uint8Array;
  /** `bytes` (0..65536) bytes from the OS entropy source. */
  osEntropy(bytes: number): Uint8Array;
  /** Fills `out` with stream words from `position`; returns `out`. */
  rngFillU32(key: Uint8Array, nonce: Uint8Array, position: bigint, out: Uint32Array): Uint32Array;
  /** Fills `out` with uniforms in [0, 1) from `position`; returns `out`. */
  rngUniform(key: Uint8Array, nonce: Uint8Array, position: bigint, out: Float64Array): Float64Array;
  /** Writes (or with `add`, adds) N(0, std^2) samples to `out`; returns `out`. */
  rngGaussian<T extends Float32Array | Float64Array>(
    key: Uint8Array,
    nonce: Uint8Array,
    position: bigint,
    out: T,
    std: number,
    add: boolean,
  ): T;
  /** Adds N(0, std^2) noise to `buf` on a worker thread; resolves to `buf`. */
  rngAddGaussianAsync(
    key: Uint8Array,
    nonce: Uint8Array,
    position: bigint,
    buf: Float32Array,
    std: number,
  ): Promise<Float32Array>;
  /** Exact discrete Gaussian samples of variance num/den into `out`; returns the next position. */
  rngDiscreteGaussian(
    key: Uint8Array,
    nonce: Uint8Array,
    position: bigint,
    out: Int32Array | BigInt64Array,
    num: bigint,
    den: bigint,
  ): bigint;

  // fixed.cc
  /** Quantizes `x` to `fracBits` fractional bits into `out`. */
  fixedQuantize(
    x: Float32Array,
    fracBits: number,
    out: Int32Array,
  ): { saturated: number; nan: number };
  /** Dequantizes `q` (Int32 to Float32, BigInt64 to Float64) into `out`; returns `out`. */
  fixedDequantize(q: Int32Array, fracBits: number, out: Float32Array): Float32Array;
  fixedDequantize(q: BigInt64Array, fracBits: number, out: Float64Array): Float64Array;
  /** Clips each row of `grads: [batch, dim]` to `clipInt` and sums into `out`; returns rows clipped. */
  fixedClipSum(
    grads: Int32Array,
    batch: number,
    dim: number,
    clipInt: number,
    out: BigInt64Array,
  ): number;
  /** One integer-only DP LoRA step on int8 inputs `x` and labels `y`; updates `state`. */
  fixedLoraStep(
    config: IntegerLoraConfig,
    state: IntegerLoraState,
    key: Uint8Array,
    nonce: Uint8Array,
    x: Int8Array,
    y: Int32Array,
  ): { steps: bigint; position: bigint; batch: number };
  /** Predicted classes of int8 inputs `x` under the integer LoRA model. */
  fixedLoraPredict(config: IntegerLoraConfig, state: IntegerLoraState, x: Int8Array): Int32Array;
  /** Adds exact discrete Gaussian noise of variance num/den to `sum`. */
  fixedAddDiscreteGaussian(
    key: Uint8Array,
    nonce: Uint8Array,
    position: bigint,
    sum: BigInt64Array,
    num: bigint,
    den: bigint,
  ): { position: bigint; saturated: number };
  // elementwise.cc (transformer layers; every output is written in place)
  /** LayerNorm of `x` [rows, d] into `y`, and the normalized `xhat` and `1/std` [rows] when given. */
  layerNormForward(
    x: Float32Array,
    gamma: Float32Array,
    beta: Float32Array,
    rows: number,
    d: number,
    eps: number,
    y: Float32Array,
    xhat: Float32Array | null,
    invStd: Float32Array | null,
  ): void;
  /** LayerNorm input gradient `gi`, and the per-sample sums `gw`, `gb` [batch, d] when given. */
  layerNormBackward(
    g: Float32Array,
    xhat: Float32Array,
    invStd: Float32Array,
    gamma: Float32Array,
    batch: number,
    seq: number,
    d: number,
    gi: Float32Array,
    gw: Float32Array | null,
    gb: Float32Array | null,
  ): void;
  /** Masked scaled dot-product attention over all sequences and heads: `out` and `probs`. */
  attentionForward(
    q: Float32Array,
    k: Float32Array,
    v: Float32Array,
    valid: Uint8Array | null,
    batch: number,
    seq: number,
    heads: number,
    dHead: number,
    scale: number,
    out: Float32Array,
    probs: Float32Array,
  ): void;
  /** Backward of attentionForward: `gq`, `gk`, `gv` from `gOut` and the saved `probs`. */
  attentionBackward(
    gOut: Float32Array,
    q: Float32Array,
    k: Float32Array,
    v: Float32Array,
    probs: Float32Array,
    valid: Uint8Array | null,
    batch: number,
    seq: number,
    heads: number,
    dHead: number,
    scale: number,
    gq: Float32Array,
    gk: Float32Array,
    gv: Float32Array,
  ): void;
  /** `y = max(x, 0)` (NaN and -0 give 0); `y` may be `x`. */
  reluForward(x: Float32Array, y: Float32Array): void;
  /** `gi = g` where `y > 0`, else 0; `gi` may be `g`. */
  reluBackward(y: Float32Array, g: Float32Array, gi: Float32Array): void;
  /** `y += x`. */
  addInPlace(y: Float32Array, x: Float32Array): void;
  /**
   * Per-sample MSE of `[batch, per]` arrays: `losses[i]` = mean of the squared differences
   * (summed in double), `grad = 2 (pred - target) / per`.
   */
  mseLoss(
    pred: Float32Array,
    target: Float32Array,
    batch: number,
    per: number,
    losses: Float32Array,
    grad: Float32Array,
  ): void;
  /** Mean of `x` [batch, seq, f] over each sequence's real tokens into (or added to) `out` [batch, f]. */
  tokenMean(
    x: Float32Array,
    valid: Uint8Array | null,
    batch: number,
    seq: number,
    f: number,
    out: Float32Array,
    accumulate: boolean,
  ): void;
  /** Adjoint of tokenMean: `g[b] / n_b` onto each real token of `gx` (padding rows 0 unless accumulating). */
  tokenSpread(
    g: Float32Array,
    valid: Uint8Array | null,
    batch: number,
    seq: number,
    f: number,
    gx: Float32Array,
    accumulate: boolean,
  ): void;
  /** Embedding lookup: `y[r] = scale * table[ids[r]]` ([vocab, d] table), zeros for id -1. */
  gatherRows(
    table: Float32Array,
    vocab: number,
    d: number,
    ids: Float32Array,
    scale: number,
    y: Float32Array,
  ): void;
}

/** The name of one native function. */
export type NativeFunctionName = keyof NativeAddon;

// A record keyed by exactly the interface's names: the compiler rejects a missing or extra key,
// so this run-time list cannot drift from the interface.
const NAMES: { readonly [K in NativeFunctionName]: true } = {
  isaInfo: true,
  setIsa: true,
  setThreads: true,
  sgemm: true,
  sgemmAsync: true,
  gradNormSq: true,
  gradNormSqAsync: true,
  clippedSum: true,
  clippedSumAsync: true,
  clipFactors: true,
  clipRows: true,
  perSampleGrads: true,
  rowsSumSq: true,
  rowsScaledSum: true,
  outerScaledSum: true,
  noisyMean: true,
  benchReadBandwidth: true,
  benchFmaPeak: true,
  adviseHugePages: true,
  chacha20Block: true,
  osEntropy: true,
  rngFillU32: true,
  rngUniform: true,
  rngGaussian: true,
  rngAddGaussianAsync: true,
  rngDiscreteGaussian: true,
  fixedQuantize: true,
  fixedDequantize: true,
  fixedClipSum: true,
  fixedAddDiscreteGaussian: true,
  fixedLoraStep: true,
  fixedLoraPredict: true,
  sgemmPackB: true,
  sgemmPacked: true,
  packedInfo: true,
  sgemmRepackB: true,
  layerNormForward: true,
  layerNormBackward: true,
  attentionForward: true,
  attentionBackward: true,
  reluForward: true,
  reluBackward: true,
  addInPlace: true,
  mseLoss: true,
  tokenMean: true,
  tokenSpread: true,
  gatherRows: true,
};

/** Every function name of {@link NativeAddon}, sorted (checked against the real addon by a test). */
export const NATIVE_FUNCTION_NAMES: readonly NativeFunctionName[] = (
  Object.keys(NAMES) as NativeFunctionName[]
).sort();
