/**
 * DP optimizer: wraps any optimizer.  Per micro-batch it turns the model's
 * per-sample captures into clipped sums (book-keeping: norms from every
 * trainable parameter, factors c_i, then one clipped-sum product per
 * parameter).  Per logical batch it adds Gaussian noise ONCE, divides by the
 * EXPECTED batch size, and hands the result to the wrapped optimizer.
 */
import { clipFactors, noisyMean, rowsScaledSum, rowsSumSq, sgemm } from '../kernels/linalg';
import type { Rng } from '../kernels/rng';
import { Module, PerSampleModule, isPerSampleModule } from '../nn/module';
import { Parameter } from '../nn/tensor';
import { Optimizer } from '../optim/optimizer';
import { InvalidArgumentError, InvalidStateError } from '../errors';
import { PER_SAMPLE_BUDGET } from '../nn/per_sample';
import { PerSampleGradError } from './errors';
import { GradientSubspace } from './gradient_subspace';

/** Flat clipping (one threshold on the whole gradient) or per-layer thresholds. */
export type ClippingMode = 'flat' | 'perLayer';

/** One module whose own trainable parameters the DP optimizer clips. */
export interface TrackedModule {
  /** Module path in the model. */
  path: string;
  /** The module. */
  module: PerSampleModule;
  /** Its own trainable parameters. */
  params: Parameter[];
  /** Per-layer threshold C_k (perLayer mode); the flat threshold otherwise. */
  maxGradNorm: number;
}

/** Hooks the privacy engine installs (budget check, accounting, batch bookkeeping). */
export interface DPStepHooks {
  /** Called first in step(); throws to refuse the step before anything changes. */
  beforeStep?(): void;
  /** Called once the noisy gradient exists, before the wrapped optimizer updates. */
  afterNoise?(): void;
  /** Called after the update. */
  afterStep?(): void;
  /**
   * True while a logical batch drawn by the engine has not been stepped: its micro-batches are
   * private, so public gradients are not read and the subspace is not changed meanwhile.
   */
  batchOpen?(): boolean;
}

/** Options of {@link DPOptimizer}. */
export interface DPOptimizerOptions {
  /** Noise standard deviation over the clipping norm. */
  noiseMultiplier: number;
  /** Flat clipping norm C (perLayer: the overall norm used for default thresholds). */
  maxGradNorm: number;
  /** Expected logical batch size q*N: the noisy sum is divided by it. */
  expectedBatchSize: number;
  /** Noise source (the OS-keyed CSPRNG unless a seed was an explicit opt-in). */
  rng: Rng;
  /** Clipping mode (default `'flat'`). */
  clipping?: ClippingMode;
  /** perLayer: thresholds by module path (default C / sqrt(K) each, so sqrt(sum C_k^2) = C). */
  perLayerMaxGradNorm?: Record<string, number> | number[];
  /** Hooks run around each step. */
  hooks?: DPStepHooks;
}

/** Non-private diagnostics of the last logical step (do not publish: they depend on the data). */
export interface DPStepStats {
  /** Records in the logical batch. */
  samples: number;
  /** Records whose gradient norm exceeded the bound. */
  clipped: number;
  /** Records with a non-finite gradient (contributed zero). */
  nonfinite: number;
  /** Micro-batches the logical batch was split into. */
  microBatches: number;
}

/** Per-sample gradients as rows (see {@link DPOptimizer.publicPerSampleGradients}). */
export interface PerSampleGradientRows {
  /** `count x` the trainable size, row-major; each row is one record's gradient. */
  rows: Float32Array;
  /** Records (rows). */
  count: number;
}

/** Finds every module with own trainable parameters; throws if one lacks per-sample support. */
export function trackModules(
  model: Module,
): Array<{ path: string; module: PerSampleModule; params: Parameter[] }> {
  const out: Array<{ path: string; module: PerSampleModule; params: Parameter[] }> = [];
  for (const [path, m] of model.namedModules()) {
    const own = m.ownParameters().filter(([, p]) => p.requiresGrad);
    if (own.length === 0) continue;
    const names = own.map(([n]) => (path ? `${path}.${n}` : n)).join(', ');
    if (!isPerSampleModule(m)) {
      throw new PerSampleGradError(
        `module '${path || '<root>'}' (${m.constructor.name}) has trainable parameters (${names}) but no per-sample gradient support; ` +
          'freeze them (requiresGrad = false) or use a layer that implements the per-sample hooks',
      );
    }
    out.push({ path, module: m, params: own.map(([, p]) => p) });
  }
  return out;
}

/** Wraps an optimizer with per-sample clipping, noise and expected-batch normalization. */
export class DPOptimizer {
  /** The wrapped optimizer that applies the privatized gradient. */
  readonly inner: Optimizer;
  /** The model being trained. */
  readonly model: Module;
  /** Noise standard deviation over the clipping norm. */
  readonly noiseMultiplier: number;
  /** Flat clipping norm C. */
  readonly maxGradNorm: number;
  /** Expected logical batch size: the noisy sum is divided by it. */
  readonly expectedBatchSize: number;
  /** Clipping mode. */
  readonly clipping: ClippingMode;
  /** The modules whose parameters are clipped and noised. */
  readonly tracked: TrackedModule[];
  /** Noise standard deviation on every coordinate of the clipped sum: z * sqrt(sum C_k^2) (flat: z * C). */
  readonly noiseStd: number;
  /** Hooks run around each step (the privacy engine installs its own). */
  hooks: DPStepHooks;
  private rng: Rng;
  /** Clipped sums of the current logical batch, in double (see lib/nn/per_sample.ts). */
  private readonly acc = new Map<Parameter, Float64Array>();
  private trackedParams: Set<Parameter>;
  private samples = 0;
  private clipped = 0;
  private nonfinite = 0;
  private micro = 0;
  /** Diagnostics of the last completed step (non-private). */
  lastStepStats: DPStepStats | null = null;
  /**
   * Subspace mode: the space as given, the optimizer's own copy of its basis (what later
   * changes to `space.basis` cannot reach), its rank, the clipping norm applied to the
   * coordinates, and their clipped sum in double.
   */
  private sub: {
    space: GradientSubspace;
    basis: Float32Array;
    rank: number;
    clip: number;
    sum: Float64Array;
  } | null = null;
  /** Column of each tracked parameter in a concatenated gradient row. */
  private readonly columns = new Map<Parameter, number>();
  /** Total trainable size (the length of a concatenated gradient row). */
  private readonly trainableSize: number;

  constructor(model: Module, inner: Optimizer, o: DPOptimizerOptions) {
    if (!(model instanceof Module))
      throw new InvalidArgumentError('model', 'DPOptimizer: model must be a Module');
    if (!(inner instanceof Optimizer))
      throw new InvalidArgumentError(
        'optimizer',
        'DPOptimizer: optimizer must be an Optimizer (SGD, Adam, AdamW, ...)',
      );
    if (!(Number.isFinite(o.noiseMultiplier) && o.noiseMultiplier >= 0))
      throw new InvalidArgumentError(
        'noiseMultiplier',
        `DPOptimizer: noiseMultiplier must be finite and >= 0, got ${o.noiseMultiplier}`,
      );
    if (!(Number.isFinite(o.maxGradNorm) && o.maxGradNorm > 0))
      throw new InvalidArgumentError(
        'maxGradNorm',
        `DPOptimizer: maxGradNorm must be finite and > 0, got ${o.maxGradNorm}`,
      );
    if (!(Number.isFinite(o.expectedBatchSize) && o.expectedBatchSize > 0))
      throw new InvalidArgumentError(
        'expectedBatchSize',
        `DPOptimizer: expectedBatchSize must be > 0, got ${o.expectedBatchSize}`,
      );
    this.model = model;
    this.inner = inner;
    this.noiseMultiplier = o.noiseMultiplier;
    this.maxGradNorm = o.maxGradNorm;
    this.expectedBatchSize = o.expectedBatchSize;
    this.clipping = o.clipping ?? 'flat';
    if (this.clipping !== 'flat' && this.clipping !== 'perLayer')
      throw new InvalidArgumentError(
        'clipping',
        `DPOptimizer: clipping must be 'flat' or 'perLayer', got ${String(this.clipping)}`,
      );
    this.rng = o.rng;
    this.hooks = o.hooks ?? {};
    const found = trackModules(model);
    if (found.length === 0)
      throw new PerSampleGradError('DPOptimizer: the model has no trainable parameters');
    this.tracked = found.map((t, k) => ({
      ...t,
      maxGradNorm: this.thresholdFor(t.path, k, found.length, o.perLayerMaxGradNorm),
    }));
    this.trackedParams = new Set(this.tracked.flatMap((t) => t.params));
    for (const p of inner.params) {
      if (p.requiresGrad && !this.trackedParams.has(p))
        throw new PerSampleGradError(
          'DPOptimizer: the optimizer holds a trainable parameter that is not part of the model',
        );
    }
    for (const p of this.trackedParams) {
      if (!inner.params.includes(p)) {
        const path = model.namedParameters().find(([, q]) => q === p)?.[0];
        throw new PerSampleGradError(
          `DPOptimizer: trainable parameter '${path}' is not in the optimizer; give the optimizer model.trainableParameters() or freeze it`,
        );
      }
    }
    const sumSq =
      this.clipping === 'flat'
        ? this.maxGradNorm ** 2
        : this.tracked.reduce((s, t) => s + t.maxGradNorm ** 2, 0);
    this.noiseStd = this.noiseMultiplier * Math.sqrt(sumSq);
    let col = 0;
    for (const t of this.tracked)
      for (const p of t.params) {
        this.columns.set(p, col);
        col += p.size;
      }
    this.trainableSize = col;
    model.zeroGrad();
    model.setGradMode('perSample');
  }

  private thresholdFor(
    path: string,
    k: number,
    count: number,
    given?: Record<string, number> | number[],
  ): number {
    if (this.clipping === 'flat') return this.maxGradNorm;
    let c: number | undefined;
    if (Array.isArray(given)) {
      if (given.length !== count)
        throw new InvalidArgumentError(
          'perLayerMaxGradNorm',
          `DPOptimizer: perLayerMaxGradNorm has ${given.length} entries, the model has ${count} clipped modules`,
        );
      c = given[k];
    } else if (given) {
      c = given[path];
      if (c === undefined)
        throw new InvalidArgumentError(
          'perLayerMaxGradNorm',
          `DPOptimizer: perLayerMaxGradNorm has no threshold for module '${path}'`,
        );
    } else {
      c = this.maxGradNorm / Math.sqrt(count);
    }
    if (!(Number.isFinite(c) && c > 0))
      throw new InvalidArgumentError(
        'perLayerMaxGradNorm',
        `DPOptimizer: per-layer threshold for '${path}' must be finite and > 0, got ${c}`,
      );
    return c;
  }

  /** Replaces the noise RNG (after a resume). */
  setRng(rng: Rng): void {
    this.rng = rng;
  }

  private sink = (p: Parameter): Float64Array => {
    let b = this.acc.get(p);
    if (!b) {
      b = new Float64Array(p.size);
      this.acc.set(p, b);
    }
    return b;
  };

  private checkTrainableSet(): void {
    for (const [path, p] of this.model.namedParameters()) {
      if (p.requiresGrad && !this.trackedParams.has(p)) {
        throw new PerSampleGradError(
          `parameter '${path}' became trainable after makePrivate; it would get an unclipped update. Re-run makePrivate with it trainable from the start, or freeze it`,
        );
      }
      if (p.gradSource === 'raw') {
        throw new PerSampleGradError(
          `parameter '${path}' holds a raw (non-private) gradient; a DP step needs per-sample information. Do not switch the model back to gradMode 'sum' during private training`,
        );
      }
    }
  }

  /** Samples accumulated in the current logical batch so far. */
  get accumulatedSamples(): number {
    return this.samples;
  }

  /** True if a backward pass left per-sample captures not yet accumulated. */
  hasPendingCapture(): boolean {
    return this.tracked.some((t) => t.module.captureBatch() >= 0);
  }

  /**
   * Clips the current micro-batch and adds its clipped sums to the running
   * totals.  Call after each micro-batch's backward (step() calls it for a
   * pending one).  Throws if any trainable parameter lacks its per-sample capture.
   */
  accumulate(): void {
    this.checkTrainableSet();
    const batch = this.capturedBatch('accumulate()');
    if (batch > 0 && this.sub) {
      this.accumulateProjected(batch);
    } else if (batch > 0) {
      let factorsPer: Float32Array[];
      if (this.clipping === 'flat') {
        const normsSq = new Float64Array(batch);
        for (const t of this.tracked) t.module.addPerSampleNormsSq(normsSq);
        const r = clipFactors(normsSq, this.maxGradNorm);
        this.clipped += r.clipped;
        this.nonfinite += r.nonfinite;
        factorsPer = this.tracked.map(() => r.factors);
      } else {
        factorsPer = [];
        const bad = new Uint8Array(batch);
        const anyClipped = new Uint8Array(batch);
        for (const t of this.tracked) {
          const normsSq = new Float64Array(batch);
          t.module.addPerSampleNormsSq(normsSq);
          const r = clipFactors(normsSq, t.maxGradNorm);
          for (let i = 0; i < batch; i++) {
            if (!Number.isFinite(normsSq[i])) bad[i] = 1;
            if (r.factors[i] < 1) anyClipped[i] = 1;
          }
          factorsPer.push(r.factors);
        }
        // A sample with a non-finite norm anywhere is dropped from every layer.
        for (let i = 0; i < batch; i++) {
          if (bad[i]) {
            this.nonfinite++;
            for (const f of factorsPer) f[i] = 0;
          } else if (anyClipped[i]) this.clipped++;
        }
      }
      this.tracked.forEach((t, k) => t.module.accumulateClippedGrads(factorsPer[k], this.sink));
    }
    for (const t of this.tracked) t.module.releaseCapture();
    this.samples += batch;
    this.micro++;
  }

  /**
   * The batch size every tracked module captured in the pending backward. Throws (a
   * PerSampleGradError, `who` naming the caller) when none is pending, and, after dropping the
   * captures, when some module has none or the sizes differ.
   */
  private capturedBatch(who: string): number {
    const batches = this.tracked.map((t) => t.module.captureBatch());
    const missing = this.tracked.filter((_, k) => batches[k] < 0).map((t) => t.path || '<root>');
    if (missing.length === this.tracked.length)
      throw new PerSampleGradError(
        `${who}: no per-sample information pending; run forward and backward on the micro-batch first`,
      );
    if (missing.length > 0) {
      for (const t of this.tracked) t.module.releaseCapture();
      throw new PerSampleGradError(
        `${who}: no per-sample information for trainable module(s) ${missing.join(', ')}; every trainable parameter must take part in each backward pass`,
      );
    }
    const batch = batches[0];
    if (batches.some((b) => b !== batch)) {
      for (const t of this.tracked) t.module.releaseCapture();
      throw new PerSampleGradError(
        `${who}: modules captured different batch sizes (${batches.join(', ')})`,
      );
    }
    return batch;
  }

  /**
   * The subspace the gradients are projected onto, or `null` (the default: full-dimensional
   * noise). See {@link DPOptimizer.setSubspace}.
   */
  get subspace(): GradientSubspace | null {
    return this.sub ? this.sub.space : null;
  }

  /**
   * Subspace mode (opt-in): from the next logical batch on, each record's gradient `g_i` (all
   * tracked parameters concatenated, {@link DPOptimizer.tracked} order) is replaced by its
   * coordinates `U g_i` in `space`; those are clipped to `C / sqrt(1 + rho)` (`rho`: a
   * Gershgorin bound on `U U^T - I`, so that one record also moves the lifted sum by at most
   * C; a basis with `rho > 0.5` is refused), summed, and noised with N(0, (sigma C)^2) on each
   * of the rank coordinates once per logical batch; the update is `U^T (noisy sum) / B`. The
   * privacy guarantee and its accounting are unchanged (see lib/privacy/gradient_subspace.ts);
   * the noise's norm drops from about `sigma C sqrt(dim)` to `sigma C sqrt(rank)`, and what
   * lies outside the subspace is not applied. The basis must not depend on private records; the
   * optimizer keeps its own copy of it. `null` returns to full-dimensional noise. Only between
   * steps (not from the engine's nextBatch() until step()), with flat clipping, without
   * DP-AdamBC, and on modules that can write per-sample rows.
   */
  setSubspace(space: GradientSubspace | null): void {
    if (space !== null && !(space instanceof GradientSubspace))
      throw new InvalidArgumentError('space', 'setSubspace: must be a GradientSubspace or null');
    this.refuseMidBatch('setSubspace');
    if (space === null) {
      this.sub = null;
      return;
    }
    if (this.clipping !== 'flat')
      throw new InvalidStateError("setSubspace: needs flat clipping (clipping: 'flat')");
    this.refuseAdamBc('setSubspace');
    const basis = space.basis.slice();
    const rank = basis.length / this.trainableSize;
    if (!Number.isSafeInteger(rank) || rank < 1 || space.dim !== this.trainableSize)
      throw new InvalidArgumentError(
        'space',
        `setSubspace: the basis rows have length ${space.dim}, the model's trainable size is ${this.trainableSize}`,
      );
    this.requireRowWriters('setSubspace');
    const rho = orthonormalityDefect(basis, rank, this.trainableSize);
    if (!(rho <= 0.5))
      throw new InvalidArgumentError(
        'space',
        `setSubspace: the basis rows must be orthonormal (Gershgorin defect of U U^T - I is ${rho}, at most 0.5 allowed)`,
      );
    // ||U^T x|| <= sqrt(1 + rho) ||x||: clipping the coordinates to C / sqrt(1 + rho) keeps one
    // record's share of the lifted sum within C as well (noise stays sigma C: more, not less).
    const clip = (this.maxGradNorm / Math.sqrt(1 + rho)) * (1 - 1e-12);
    this.sub = { space, basis, rank, clip, sum: new Float64Array(rank) };
  }

  /**
   * Throws an InvalidStateError while a logical batch is drawn or being accumulated (a pending
   * capture counts unless `capturePending` allows it: the public micro-batch being read).
   */
  private refuseMidBatch(who: string, capturePending = false): void {
    const pending = !capturePending && this.hasPendingCapture();
    if (this.samples > 0 || pending || (this.hooks.batchOpen?.() ?? false))
      throw new InvalidStateError(
        `${who}: a logical batch is drawn or being accumulated; call it only between steps`,
      );
  }

  /** Throws a PerSampleGradError naming the tracked modules that cannot write per-sample rows. */
  private requireRowWriters(who: string): void {
    const lacking = this.tracked.filter((t) => typeof t.module.writePerSampleRows !== 'function');
    if (lacking.length > 0)
      throw new PerSampleGradError(
        `${who}: module(s) ${lacking.map((t) => `'${t.path || '<root>'}'`).join(', ')} cannot write per-sample rows (writePerSampleRows)`,
      );
  }

  /** DP-AdamBC subtracts full-dimensional noise variance: wrong under subspace noise. */
  private refuseAdamBc(who: string): void {
    const v = (this.inner as { noiseVariance?: unknown }).noiseVariance;
    if (typeof v === 'number' && v > 0)
      throw new InvalidStateError(
        `${who}: the wrapped optimizer's DP-AdamBC correction (noiseVariance ${v}) assumes full-dimensional noise; turn it off (setNoiseVariance(0)) for subspace mode`,
      );
  }

  /**
   * The pending micro-batch's per-sample gradients as rows (`count x` the trainable size, the
   * parameters concatenated in {@link DPOptimizer.tracked} order), unclipped and un-noised;
   * the capture is dropped and nothing is added to the logical batch. Only between logical
   * batches (a capture pending mid-batch may be a private micro-batch's). For PUBLIC records only
   * (e.g. to fit a {@link GradientSubspace} with `GradientSubspace.fromGradients`): rows of
   * private records are raw data outside the privacy guarantee.
   */
  publicPerSampleGradients(): PerSampleGradientRows {
    // Between logical batches only: mid-batch, a pending capture may be a private micro-batch.
    this.refuseMidBatch('publicPerSampleGradients()', true);
    try {
      this.requireRowWriters('publicPerSampleGradients()');
      const count = this.capturedBatch('publicPerSampleGradients()');
      const rows = new Float32Array(count * this.trainableSize);
      this.writeRows(0, count, rows);
      return { rows, count };
    } finally {
      for (const t of this.tracked) t.module.releaseCapture();
    }
  }

  /** Writes samples i0..i0+n-1 of the pending captures as concatenated rows (zeroed first). */
  private writeRows(i0: number, n: number, rows: Float32Array): void {
    rows.fill(0, 0, n * this.trainableSize);
    const column = (p: Parameter): number => {
      const c = this.columns.get(p);
      if (c === undefined)
        throw new PerSampleGradError('a module captured a parameter the optimizer does not track');
      return c;
    };
    // Every tracked module has the method: setSubspace and publicPerSampleGradients check it.
    for (const t of this.tracked)
      t.module.writePerSampleRows!(i0, n, rows, this.trainableSize, column);
  }

  /**
   * Subspace mode: coordinates of each record's gradient (float, by SGEMM on blocks of
   * records), clipped like any per-sample tensor (norm in double from the floats that are
   * summed, factor rounded down, non-finite rows dropped) and added to the double sum.
   */
  private accumulateProjected(batch: number): void {
    const { basis, rank: k } = this.sub!;
    const d = this.trainableSize;
    const block = Math.max(1, Math.min(batch, Math.floor(PER_SAMPLE_BUDGET.floats / d)));
    const rows = new Float32Array(block * d);
    const coords = new Float32Array(batch * k);
    for (let i0 = 0; i0 < batch; i0 += block) {
      const n = Math.min(block, batch - i0);
      this.writeRows(i0, n, rows);
      sgemm(rows, basis, coords.subarray(i0 * k, (i0 + n) * k), {
        m: n,
        n: k,
        k: d,
        transB: true,
      });
    }
    this.addCoordinates(coords, batch, true);
  }

  /** Clips (unless `clip` is false: the audit's test aid) and sums coordinate rows. */
  private addCoordinates(coords: Float32Array, count: number, clip: boolean): void {
    const { rank: k, clip: maxNorm } = this.sub!;
    let factors: Float32Array;
    if (clip) {
      const normsSq = rowsSumSq(coords, count, k, new Float64Array(count));
      const r = clipFactors(normsSq, maxNorm);
      this.clipped += r.clipped;
      this.nonfinite += r.nonfinite;
      factors = r.factors;
    } else factors = new Float32Array(count).fill(1);
    rowsScaledSum(coords, count, k, factors, this.sub!.sum);
  }

  /**
   * Adds records given directly as per-sample gradients (gradient-space
   * records, e.g. the audit's Dirac canaries): `rows` holds `count` rows, each
   * the concatenation of every tracked parameter's gradient in
   * {@link DPOptimizer.tracked} order.  Each row is clipped exactly like a
   * model record (its norm taken in double from the float values, the factor
   * rounded down) and added to the double-precision sums.
   *
   * @param rows - `Float32Array(count * total trainable size)`
   * @param count - number of records in `rows`
   */
  accumulateGradients(rows: Float32Array, count: number): void {
    this.addGradientRows(rows, count, true);
  }

  /** @internal The audit's `--plant no-clip` test aid goes through here with `clip = false`. */
  addGradientRows(rows: Float32Array, count: number, clip: boolean): void {
    const sizes = this.tracked.map((t) => t.params.reduce((a, p) => a + p.size, 0));
    const total = sizes.reduce((a, b) => a + b, 0);
    if (!Number.isSafeInteger(count) || count < 0)
      throw new InvalidArgumentError('count', `must be an integer >= 0, got ${count}`);
    if (!(rows instanceof Float32Array) || rows.length !== count * total)
      throw new InvalidArgumentError(
        'rows',
        `must be a Float32Array of count * ${total} (the trainable size) elements`,
      );
    if (this.sub) {
      const { basis, rank: k } = this.sub;
      const coords = new Float32Array(count * k);
      if (count > 0) sgemm(rows, basis, coords, { m: count, n: k, k: total, transB: true });
      this.addCoordinates(coords, count, clip);
      this.samples += count;
      return;
    }
    for (let i = 0; i < count; i++) {
      const row = rows.subarray(i * total, (i + 1) * total);
      // Squared norm per tracked module, in double.
      const n2 = sizes.map(() => 0);
      let o = 0;
      this.tracked.forEach((_, k) => {
        for (let j = 0; j < sizes[k]; j++) n2[k] += row[o + j] * row[o + j];
        o += sizes[k];
      });
      let factors: number[];
      if (!clip) factors = sizes.map(() => 1);
      else if (this.clipping === 'flat') {
        const f = clipFactors(Float64Array.of(n2.reduce((a, b) => a + b, 0)), this.maxGradNorm);
        this.clipped += f.clipped;
        this.nonfinite += f.nonfinite;
        factors = sizes.map(() => f.factors[0]);
      } else {
        factors = this.tracked.map(
          (t, k) => clipFactors(Float64Array.of(n2[k]), t.maxGradNorm).factors[0],
        );
        if (factors.some((f, k) => f === 0 && Number.isFinite(n2[k]) === false))
          factors = factors.map(() => 0);
      }
      o = 0;
      this.tracked.forEach((t, k) => {
        const f = factors[k];
        for (const p of t.params) {
          const out = this.sink(p);
          if (f !== 0) for (let j = 0; j < p.size; j++) out[j] += f * row[o + j];
          o += p.size;
        }
      });
    }
    this.samples += count;
  }

  /**
   * One private step: accumulates a pending micro-batch, adds N(0, noiseStd^2)
   * to every coordinate of the clipped sum (once per logical batch), divides by
   * the expected batch size, and runs the wrapped optimizer.  Throws before
   * changing anything if the engine's hooks refuse the step.
   */
  step(): void {
    this.checkTrainableSet();
    if (this.sub) this.refuseAdamBc('step()');
    if (this.hooks.beforeStep) this.hooks.beforeStep();
    if (this.hasPendingCapture()) this.accumulate();
    const scale = 1 / this.expectedBatchSize;
    let finite = true;
    const grads = new Map<Parameter, Float32Array>();
    if (this.sub) {
      // Noise on the rank coordinates, once; the lift U^T (sum + noise) / B is post-processing.
      const { basis, rank, sum } = this.sub;
      const c = new Float32Array(rank);
      if (this.noiseStd > 0) this.rng.addGaussianNoise(c, this.noiseStd);
      if (noisyMean(sum, c, scale) !== 0) finite = false;
      const full = sgemm(c, basis, new Float32Array(this.trainableSize), {
        m: 1,
        n: this.trainableSize,
        k: rank,
      });
      for (const t of this.tracked)
        for (const p of t.params) {
          const c0 = this.columns.get(p)!;
          const g = full.slice(c0, c0 + p.size);
          for (let j = 0; j < g.length && finite; j++) if (!Number.isFinite(g[j])) finite = false;
          grads.set(p, g);
        }
    } else {
      for (const t of this.tracked) {
        for (const p of t.params) {
          // Noise is added to the double-precision clipped sum; rounding the
          // noisy sum to float afterwards is post-processing.
          const sum = this.sink(p);
          const g = new Float32Array(p.size);
          if (this.noiseStd > 0) this.rng.addGaussianNoise(g, this.noiseStd);
          // g = float((sum + noise) * scale), counting non-finite results.
          if (noisyMean(sum, g, scale) !== 0) finite = false;
          grads.set(p, g);
        }
      }
    }
    if (this.hooks.afterNoise) this.hooks.afterNoise();
    if (!finite) {
      this.resetAccumulation();
      throw new PerSampleGradError(
        'DP step produced a non-finite gradient; the update was not applied',
      );
    }
    for (const [p, g] of grads) {
      p.grad = g;
      p.gradSource = 'private';
    }
    this.inner.step();
    this.lastStepStats = {
      samples: this.samples,
      clipped: this.clipped,
      nonfinite: this.nonfinite,
      microBatches: this.micro,
    };
    this.resetAccumulation();
    if (this.hooks.afterStep) this.hooks.afterStep();
  }

  private resetAccumulation(): void {
    // The double sums are kept (zeroed) for the next logical batch.
    for (const [p, sum] of this.acc) {
      p.zeroGrad();
      sum.fill(0);
    }
    if (this.sub) {
      this.sub.sum.fill(0);
      for (const t of this.tracked) for (const p of t.params) p.zeroGrad();
    }
    this.samples = 0;
    this.clipped = 0;
    this.nonfinite = 0;
    this.micro = 0;
  }

  /** Drops pending captures and accumulated clipped sums (e.g. to abandon a batch). */
  zeroGrad(): void {
    for (const t of this.tracked) t.module.releaseCapture();
    this.resetAccumulation();
  }

  /** The wrapped optimizer's learning rate. */
  get lr(): number {
    return this.inner.lr;
  }
  /** Sets the wrapped optimizer's learning rate. */
  set lr(v: number) {
    this.inner.lr = v;
  }
}

/**
 * Gershgorin bound on the defect of a basis from orthonormal: `max_i sum_j |G_ij - delta_ij|`
 * with `G = U U^T` formed in double from the float rows (products exact), plus a bound on the
 * rounding of those sums. Then `lambda_max(U U^T) <= 1 + defect`, so `||U^T x|| <= sqrt(1 +
 * defect) ||x||`. Infinity for a non-finite result.
 */
function orthonormalityDefect(basis: Float32Array, rank: number, dim: number): number {
  const g = new Float64Array(rank * rank);
  let maxSq = 0;
  for (let i = 0; i < rank; i++) {
    const ui = basis.subarray(i * dim, (i + 1) * dim);
    for (let j = 0; j <= i; j++) {
      const uj = basis.subarray(j * dim, (j + 1) * dim);
      let acc = 0;
      for (let t = 0; t < dim; t++) acc += ui[t] * uj[t];
      g[i * rank + j] = acc;
      g[j * rank + i] = acc;
    }
    maxSq = Math.max(maxSq, g[i * rank + i]);
  }
  // |computed - exact| <= dim * 2^-53 * ||u_i|| ||u_j|| per entry (with margin), summed over a row.
  const rounding = rank * dim * 2 ** -51 * maxSq;
  let worst = 0;
  for (let i = 0; i < rank; i++) {
    let r = 0;
    for (let j = 0; j < rank; j++) r += Math.abs(g[i * rank + j] - (i === j ? 1 : 0));
    worst = Math.max(worst, r);
  }
  const d = worst + rounding;
  return Number.isFinite(d) ? d : Infinity;
}
