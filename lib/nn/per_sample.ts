/**
 * Per-sample gradient capture, written once for every layer (Linear,
 * LoraLinear, LayerNorm, and any new layer): a layer's backward hands each
 * trainable parameter's per-sample gradient to a {@link PerSampleCapture};
 * the DP optimizer reads the norms, computes the clipping factors, and has the
 * capture add the clipped gradients to its double-precision sums.
 *
 * ## Why the clipping holds in floating point
 *
 * Let `G_i` be the tensor that is actually summed for sample `i`:
 * - for a linear map with one token per sample, the real tensor
 *   `s * g_i a_i^T` (the sum takes each term `s f_i g_ij a_ik` in double from
 *   float inputs, see below);
 * - otherwise the float tensor materialized by one deterministic product per
 *   sample (`alpha * g_i^T a_i` with its float rounding and cancellation
 *   included; native/kernels/clip/per_sample.cc), or a float tensor the layer
 *   formed itself (LayerNorm).
 *
 * Its squared norm is computed in double from exactly those values (squares
 * of floats are exact in double; a sum of `n` terms has relative error
 * `<= n u`, `u = 2^-53`; for one-token maps `||s g a^T||^2 = s^2 ||g||^2 ||a||^2`, again
 * in double).  The factor `f_i = min(1, C / (norm_i + 1e-6))` is rounded
 * down to float so that `f_i * norm_i <= C`; a non-finite norm gives `f_i = 0`
 * and the sample is never read again.  Hence `||f_i G_i|| <= C (1 + (n+4) u)`
 * exactly.
 *
 * The clipped tensors of the whole logical batch (all micro-batches) are
 * added in double by the active ISA's kernel (native/kernels/clip): per
 * micro-batch (or chunk), each coordinate's kept terms are summed from zero in
 * ascending sample order, one multiply-add per term (fused on AVX2/AVX-512,
 * a rounded product then an addition on the portable path), and the total is
 * added once to the running double sum.  Count the roundings a term `t_k`
 * (exact real value) goes through before the final sum: two forming its
 * coefficient (`fl(fl(s f_k) x)` on the one-token path, none for a
 * materialized tensor, whose factor is exact in double); at most `n_m` in
 * its chain of `n_m` kept terms (fused: one per multiply-add from its own
 * on; unfused: its product plus the additions after it, the first addition
 * onto zero being exact); and at most one per micro-batch from its own on
 * (`M` micro-batches that added something, each with at least one kept
 * sample, so `n_m + M <= B + 1` for `B` samples).  So the computed
 * coordinate is `sum_k t_k (1 + theta_k)` with `|theta_k| <= gamma_{B+3}`
 * (`gamma_N = N u / (1 - N u)`, Higham's lemma 3.1), whatever the ISA and
 * the thread count (each coordinate is reduced by one thread in that order).
 * The L2 distance between the double sums with and without one record is
 * then at most `C' (1 + (2B+1) gamma_{B+3})` with `C' = C (1 + (n+4) u)`,
 * i.e. below `C (1 + (n+4) u + 2 (B+3)^2 u / (1 - (B+3) u))`: under
 * `C (1 + 1e-9)` for `B <= 10^3` and `n <= 10^6`, and under `C (1 + 1e-5)`
 * up to `B = 2 * 10^5` and `n = 10^7`.  Noise is added to the double sum, and
 * rounding the noisy sum to float afterwards is post-processing.
 *
 * Tensors too large to keep (`batch * size` over {@link PER_SAMPLE_BUDGET}
 * `.floats`) are materialized twice, in chunks: once for the norms, once for the
 * sums, both times from the capture's own copies of the operands (as the one-token path's
 * sums read its own copies): nothing the caller overwrites between backward and the step can
 * change them.  The product is deterministic on one ISA path (whatever the thread count), so
 * both passes see bit-identical tensors. A different path could round them differently, so the
 * sums refuse to run if the path changed (`setIsa`) after the norms were taken.
 */
import {
  outerScaledSum,
  perSampleGradNormSq,
  perSampleGrads,
  rowsScaledSum,
  rowsSumSq,
} from '../kernels/linalg';
import type { NormMethod } from '../kernels/linalg';
import { ClippedSink, Module, PerSampleModule, isPerSampleModule } from './module';
import { ones } from './ops';
import { BUFFER_REUSE } from './workspace';
import { Parameter } from './tensor';
import { InvalidStateError } from '../errors';
import { capabilities } from '../native';

/**
 * Floats a layer keeps per parameter for materialized per-sample gradients
 * (default 16 Mi floats = 64 MiB); larger ones are materialized twice, in
 * chunks of this size.  Mutable (tests lower it to exercise that path).
 */
export const PER_SAMPLE_BUDGET = {
  /** Largest per-sample gradient tensor kept whole (`batch * size` floats); default 16 Mi. */
  floats: 16 * 2 ** 20,
};

/**
 * The scratch of the re-materialized (chunked) per-sample gradients, shared by every layer's
 * norm pass and clipped-sum pass of a micro-batch: each chunk is written whole before it is
 * read, so one buffer serves them all.  Dropped whenever a capture is released (after each
 * accumulate()), so it is never held through a forward pass.
 */
let chunkScratchBuf: Float32Array | null = null;

/** A scratch of at least `n` floats (contents undefined), shared until the next release. */
function chunkScratch(n: number): Float32Array {
  if (!chunkScratchBuf || chunkScratchBuf.length < n) chunkScratchBuf = new Float32Array(n);
  return chunkScratchBuf;
}

/**
 * Materialized per-sample gradient buffers of released captures, handed to the next captures
 * of the same size instead of new arrays (a DP step at seq > 1 materializes `batch * size`
 * floats per trainable parameter: fresh memory costs page faults or a zero fill every step).
 * A buffer enters the pool only when the capture that owned it is released, i.e. when nothing
 * can read it any more; it is overwritten whole (one SGEMM with beta = 0) before it is read.
 */
const rowsPool: Float32Array[] = [];

/** Floats the pool may hold (the oldest buffers are dropped beyond it). */
const ROWS_POOL_FLOATS = 2 * 16 * 2 ** 20;

/** A buffer of exactly `n` floats from the pool, or a new one (contents undefined). */
function takeRows(n: number): Float32Array {
  if (!BUFFER_REUSE.perSampleRows) return new Float32Array(n);
  for (let i = rowsPool.length - 1; i >= 0; i--) {
    if (rowsPool[i].length === n) return rowsPool.splice(i, 1)[0];
  }
  return new Float32Array(n);
}

/** Returns released buffers to the pool, dropping the oldest beyond {@link ROWS_POOL_FLOATS}. */
function giveRows(bufs: readonly Float32Array[]): void {
  if (!BUFFER_REUSE.perSampleRows) return;
  if (BUFFER_REUSE.poison) for (const b of bufs) b.fill(NaN);
  rowsPool.push(...bufs);
  let total = rowsPool.reduce((t, b) => t + b.length, 0);
  while (total > ROWS_POOL_FLOATS && rowsPool.length > 0) total -= rowsPool.shift()!.length;
}

/**
 * What a capture allocated from the pool.  A capture keeps no reference to a caller's array:
 * what its sums read later is its own (pooled rows, or private copies of the operands).
 */
interface CaptureMemory {
  /** Buffers taken from the pool (returned to it when the capture is released). */
  owned: Float32Array[];
}

/** The memory book-keeping of each capture (kept out of the public class). */
const captureMemory = new WeakMap<PerSampleCapture, CaptureMemory>();

/** The pending capture of each {@link PerSampleLayer} (set by beginCapture, cleared on release). */
const pendingCapture = new WeakMap<PerSampleLayer, PerSampleCapture>();

function memoryOf(c: PerSampleCapture): CaptureMemory {
  let m = captureMemory.get(c);
  if (!m) {
    m = { owned: [] };
    captureMemory.set(c, m);
  }
  return m;
}

/**
 * True unless it is certain that no pending per-sample capture in `m`'s tree reads memory of
 * `buffer`: a {@link PerSampleLayer}'s capture reads only memory of its own (see
 * {@link CaptureMemory}); a module with a pending capture that is not one (whose references
 * are unknown here) counts as reading it.  Used before a buffer is reused within a pass
 * (lib/nn/sequential.ts).
 */
export function captureMayRead(m: Module, _buffer: ArrayBufferLike): boolean {
  for (const [, mod] of m.namedModules()) {
    if (!isPerSampleModule(mod) || mod.captureBatch() < 0) continue;
    if (!(mod instanceof PerSampleLayer && pendingCapture.has(mod))) return true;
  }
  return false;
}

type Entry =
  | { kind: 'rows'; param: Parameter; rows: Float32Array }
  | {
      kind: 'outer';
      param: Parameter;
      a: Float32Array;
      g: Float32Array;
      inDim: number;
      outDim: number;
      scale: number;
    }
  | {
      kind: 'recompute';
      param: Parameter;
      a: Float32Array;
      g: Float32Array;
      seq: number;
      inDim: number;
      outDim: number;
      scale: number;
      chunk: number;
      /** The ISA path the norms were taken on (the sums must re-materialize on the same). */
      isa: string;
    };

/** Options of {@link PerSampleCapture.addLinear}. */
export interface LinearGradOptions {
  /** Multiplies the gradient (LoRA's B: the scaling s). Default 1. */
  scale?: number;
  /** 'bound' additionally clips by the upper bound `(sum_t |a_t| |g_t|)^2` (over-clips on purpose). */
  method?: NormMethod;
}

/**
 * The per-sample gradients of one backward pass of one layer: squared norms
 * (over all its captured parameters) and the clipped sums (see the module
 * comment for why the clipping holds in floating point).
 */
export class PerSampleCapture {
  /** Samples in the captured micro-batch. */
  readonly batch: number;
  /** Per-sample squared norms over every parameter added so far. */
  readonly normsSq: Float64Array;
  private readonly entries: Entry[] = [];
  /** Private copies of the operands read again by the sums ({@link PerSampleCapture.snapshot}). */
  private readonly copies = new Map<Float32Array, Float32Array>();

  /** @param batch - samples in the micro-batch */
  constructor(batch: number) {
    this.batch = batch;
    this.normsSq = new Float64Array(batch);
  }

  /** Parameters captured, in order. */
  get params(): Parameter[] {
    return this.entries.map((e) => e.param);
  }

  /**
   * The capture's own copy of `src`, one per source array (a layer's A and B sides may read
   * the same activation): the operands a capture reads again at accumulate() are copied when
   * captured, so that nothing the caller does between backward and the step (overwriting the
   * input batch, the loss gradient, a reused buffer) can make the clipped sums read another
   * tensor than the one whose norm set the clip factor.
   */
  private snapshot(src: Float32Array): Float32Array {
    let copy = this.copies.get(src);
    if (!copy) {
      // From the pool of released buffers (no garbage per step), returned at release.
      copy = takeRows(src.length);
      copy.set(src);
      memoryOf(this).owned.push(copy);
      this.copies.set(src, copy);
    }
    return copy;
  }

  /**
   * Adds the per-sample gradient `scale * sum_t g_{i,t}^T a_{i,t}` of a linear
   * map's weight (`[outDim, inDim]`, the layout of `param`), for
   * `a: [batch, seq, inDim]` and `g: [batch, seq, outDim]`.  What the clipped
   * sums need later is materialized now or copied now (one token per sample,
   * or tensors too large to keep: their operands), so the arrays may change
   * once this returns.
   */
  addLinear(
    param: Parameter,
    a: Float32Array,
    g: Float32Array,
    seq: number,
    inDim: number,
    outDim: number,
    options: LinearGradOptions = {},
  ): void {
    const batch = this.batch;
    const scale = options.scale ?? 1;
    const size = inDim * outDim;
    if (batch === 0 || size === 0) return;
    const own = new Float64Array(batch);
    if (seq === 0) {
      this.entries.push({ kind: 'rows', param, rows: new Float32Array(batch * size) });
      return;
    }
    if (seq === 1) {
      a = this.snapshot(a);
      g = this.snapshot(g);
      const ga = rowsSumSq(g, batch, outDim, new Float64Array(batch));
      const aa = rowsSumSq(a, batch, inDim, new Float64Array(batch));
      const s2 = scale * scale;
      for (let i = 0; i < batch; i++) own[i] = s2 * ga[i] * aa[i];
      this.entries.push({ kind: 'outer', param, a, g, inDim, outDim, scale });
    } else {
      const chunk = Math.max(1, Math.min(batch, Math.floor(PER_SAMPLE_BUDGET.floats / size)));
      if (chunk >= batch) {
        // Every element is written (beta = 0), so a reused buffer needs no zero fill.
        const buf = takeRows(batch * size);
        memoryOf(this).owned.push(buf);
        const rows = perSampleGrads(a, g, { batch, seq, inDim, outDim }, scale, buf);
        rowsSumSq(rows, batch, size, own);
        this.entries.push({ kind: 'rows', param, rows });
      } else {
        a = this.snapshot(a);
        g = this.snapshot(g);
        const scratch = chunkScratch(chunk * size);
        for (let i0 = 0; i0 < batch; i0 += chunk) {
          const n = Math.min(chunk, batch - i0);
          this.materialize(a, g, seq, inDim, outDim, scale, i0, n, scratch);
          rowsSumSq(scratch.subarray(0, n * size), n, size, own.subarray(i0, i0 + n));
        }
        const isa = capabilities().isa;
        this.entries.push({
          kind: 'recompute',
          param,
          a,
          g,
          seq,
          inDim,
          outDim,
          scale,
          chunk,
          isa,
        });
      }
    }
    if (options.method === 'bound') {
      const b = perSampleGradNormSq(a, g, { batch, seq, inDim, outDim, method: 'bound' });
      for (let i = 0; i < batch; i++) own[i] = Math.max(own[i], scale * scale * b[i]);
    }
    for (let i = 0; i < batch; i++) this.normsSq[i] += own[i];
  }

  /** Adds a bias's per-sample gradient `sum_t g_{i,t}` (`g: [batch, seq, outDim]`). */
  addBias(param: Parameter, g: Float32Array, seq: number, outDim: number): void {
    this.addLinear(param, ones(this.batch * seq), g, seq, 1, outDim);
  }

  /** Adds per-sample gradients the layer materialized itself (`rows: [batch, param.size]`). */
  addRows(param: Parameter, rows: Float32Array): void {
    const size = param.size;
    if (this.batch === 0 || size === 0) return;
    const own = rowsSumSq(rows, this.batch, size, new Float64Array(this.batch));
    for (let i = 0; i < this.batch; i++) this.normsSq[i] += own[i];
    this.entries.push({ kind: 'rows', param, rows });
  }

  /**
   * Adds `sum_i factors_i * G_i` for every captured parameter into
   * `sink(param)` (double).  Samples with factor 0 are never read.
   */
  accumulate(factors: Float32Array, sink: ClippedSink): void {
    const batch = this.batch;
    this.checkPath();
    for (const e of this.entries) {
      const out = sink(e.param);
      const size = e.param.size;
      if (e.kind === 'rows') rowsScaledSum(e.rows, batch, size, factors, out);
      else if (e.kind === 'outer')
        outerScaledSum(e.a, e.g, batch, e.inDim, e.outDim, factors, e.scale, out);
      else {
        const scratch = chunkScratch(e.chunk * size);
        for (let i0 = 0; i0 < batch; i0 += e.chunk) {
          const n = Math.min(e.chunk, batch - i0);
          const f = factors.subarray(i0, i0 + n);
          if (f.every((v) => v === 0)) continue;
          this.materialize(e.a, e.g, e.seq, e.inDim, e.outDim, e.scale, i0, n, scratch);
          rowsScaledSum(scratch.subarray(0, n * size), n, size, f, out);
        }
      }
    }
  }

  /**
   * Writes the per-sample gradients of samples `i0 .. i0 + n - 1` of every captured parameter
   * into `out` as float rows: row `r` (stride `ld`) is sample `i0 + r`, and parameter `p`
   * occupies the `p.size` columns from `column(p)` (its own layout, `[outDim, inDim]` for a
   * weight). One-token gradients are formed here as `(scale * g_j) * a_k`; the others are the
   * tensors the clipped sums read. Used by the subspace mode of the DP optimizer, which clips
   * what it computes from these rows (lib/privacy/gradient_subspace.ts), and to collect
   * gradients of public records.
   */
  writeRows(
    i0: number,
    n: number,
    out: Float32Array,
    ld: number,
    column: (p: Parameter) => number,
  ): void {
    this.checkPath();
    for (const e of this.entries) {
      const size = e.param.size;
      const c0 = column(e.param);
      if (e.kind === 'rows') {
        for (let r = 0; r < n; r++)
          out.set(e.rows.subarray((i0 + r) * size, (i0 + r + 1) * size), r * ld + c0);
      } else if (e.kind === 'outer') {
        for (let r = 0; r < n; r++) {
          const a = e.a.subarray((i0 + r) * e.inDim, (i0 + r + 1) * e.inDim);
          const g = e.g.subarray((i0 + r) * e.outDim, (i0 + r + 1) * e.outDim);
          let o = r * ld + c0;
          for (let j = 0; j < e.outDim; j++) {
            const gj = Math.fround(e.scale * g[j]);
            for (let k = 0; k < e.inDim; k++) out[o++] = gj * a[k];
          }
        }
      } else {
        const scratch = chunkScratch(e.chunk * size);
        for (let s0 = i0; s0 < i0 + n; s0 += e.chunk) {
          const m = Math.min(e.chunk, i0 + n - s0);
          this.materialize(e.a, e.g, e.seq, e.inDim, e.outDim, e.scale, s0, m, scratch);
          for (let r = 0; r < m; r++)
            out.set(scratch.subarray(r * size, (r + 1) * size), (s0 - i0 + r) * ld + c0);
        }
      }
    }
  }

  /**
   * Throws if the ISA path changed since the norms of a re-materialized tensor were taken:
   * the sums would re-materialize it on another path, which may round it differently from
   * the tensor whose norm set its clip factor. Checked when the norms are read (before any
   * sum is added) and again before the sums.
   */
  checkPath(): void {
    let isa = '';
    for (const e of this.entries) {
      if (e.kind !== 'recompute') continue;
      isa ||= capabilities().isa;
      if (e.isa !== isa)
        throw new InvalidStateError(
          `the ISA path changed from ${e.isa} to ${isa} between backward and the clipped sums: ` +
            'the per-sample gradients re-materialized for the sums could differ from those ' +
            'whose norms set the clip factors; call setIsa only between steps',
        );
    }
  }

  private materialize(
    a: Float32Array,
    g: Float32Array,
    seq: number,
    inDim: number,
    outDim: number,
    scale: number,
    i0: number,
    n: number,
    out: Float32Array,
  ): void {
    perSampleGrads(
      a.subarray(i0 * seq * inDim, (i0 + n) * seq * inDim),
      g.subarray(i0 * seq * outDim, (i0 + n) * seq * outDim),
      { batch: n, seq, inDim, outDim },
      scale,
      out.subarray(0, n * inDim * outDim),
    );
  }
}

/**
 * Base class of layers with per-sample gradient support: implements the
 * {@link PerSampleModule} hooks once over a {@link PerSampleCapture}; a
 * subclass's backward calls the protected `beginCapture(batch)` in
 * `'perSample'` mode and adds its trainable parameters' gradients to it.
 */
export abstract class PerSampleLayer extends Module implements PerSampleModule {
  /** Marker: this module implements the per-sample hooks. */
  readonly perSample = true as const;
  /** The pending capture, if any. */
  protected capture: PerSampleCapture | null = null;

  /** Starts a capture for `batch` samples; throws if one is still pending. */
  protected beginCapture(batch: number): PerSampleCapture {
    if (this.capture)
      throw new InvalidStateError(
        `${this.constructor.name}.backward: a per-sample capture is still pending; call the DP optimizer's accumulate() after each micro-batch`,
      );
    this.capture = new PerSampleCapture(batch);
    pendingCapture.set(this, this.capture);
    return this.capture;
  }

  private pending(): PerSampleCapture {
    if (!this.capture)
      throw new InvalidStateError(
        `${this.constructor.name}: no per-sample capture pending (run forward/backward in perSample mode first)`,
      );
    return this.capture;
  }

  /** Batch size of the pending capture, or -1 when none is pending. */
  captureBatch(): number {
    return this.capture ? this.capture.batch : -1;
  }

  /** Adds each sample's squared gradient norm over this layer's trainable parameters to `out`. */
  addPerSampleNormsSq(out: Float64Array): void {
    const c = this.pending();
    c.checkPath(); // before the optimizer adds any clipped sum
    for (let i = 0; i < c.batch; i++) out[i] += c.normsSq[i];
  }

  /** Adds `sum_i factors_i * grad_i` for each trainable parameter into `sink(param)` (double). */
  accumulateClippedGrads(factors: Float32Array, sink: ClippedSink): void {
    this.pending().accumulate(factors, sink);
  }

  /**
   * Writes samples `i0 .. i0 + n - 1` of the pending capture's per-sample gradients into `out`
   * (see {@link PerSampleCapture.writeRows}); the capture stays pending.
   */
  writePerSampleRows(
    i0: number,
    n: number,
    out: Float32Array,
    ld: number,
    column: (p: Parameter) => number,
  ): void {
    this.pending().writeRows(i0, n, out, ld, column);
  }

  /**
   * Drops the pending capture (and the shared chunk scratch, which holds nothing to keep); the
   * per-sample gradients it materialized go back to a pool for the next capture.
   */
  releaseCapture(): void {
    const c = this.capture;
    if (c) {
      const mem = captureMemory.get(c);
      if (mem) {
        captureMemory.delete(c);
        giveRows(mem.owned);
      }
    }
    pendingCapture.delete(this);
    this.capture = null;
    chunkScratchBuf = null;
  }
}
