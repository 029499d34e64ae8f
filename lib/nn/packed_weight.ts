/**
 * Frozen weights packed once for the GEMM kernel and reused by every forward
 * and backward product ({@link PackedMatrix}); a trainable weight is never
 * packed.  The packed copies are dropped and rebuilt when the weight's data
 * array is replaced, when {@link Parameter.markChanged} was called, or when a
 * sample of its elements no longer matches (a reload with `data.set(...)`).
 */
import { PackedMatrix } from '../kernels/linalg';
import type { BaseDtype } from '../kernels/linalg';
import type { Parameter } from './tensor';

let packingEnabled = true;

/**
 * Turns the packing of frozen weights on or off for every layer (default on; off
 * runs the plain {@link sgemm} path, for benchmarks and tests).  A bf16 base is
 * always packed (the packed copy is the only place its bf16 values live).  Internal.
 */
export function setFrozenWeightPacking(on: boolean): void {
  packingEnabled = on;
}

const SAMPLES = 64;

/** The two packed orientations of a frozen weight `W [out, in]`. */
export class PackedWeight {
  private fwd: PackedMatrix | null = null;
  private bwd: PackedMatrix | null = null;
  private data: Float32Array | null = null;
  private version = -1;
  private readonly sample = new Float32Array(SAMPLES);
  private dtypeValue: BaseDtype = 'fp32';

  constructor(
    private readonly param: Parameter,
    private readonly outDim: number,
    private readonly inDim: number,
  ) {}

  /** Element type of the packed copies (a change drops them). */
  get dtype(): BaseDtype {
    return this.dtypeValue;
  }
  set dtype(d: BaseDtype) {
    if (d !== this.dtypeValue) this.drop();
    this.dtypeValue = d;
  }

  /** `W^T` packed (`k = in, n = out`), for `y = x W^T`; null when not frozen. */
  forward(): PackedMatrix | null {
    if (!this.usable()) return null;
    this.fwd ??= PackedMatrix.pack(this.param.data, {
      k: this.inDim,
      n: this.outDim,
      transB: true,
      dtype: this.dtypeValue,
    });
    return this.fwd;
  }

  /** `W` packed (`k = out, n = in`), for the input gradient `g W`; null when not frozen. */
  backward(): PackedMatrix | null {
    if (!this.usable()) return null;
    this.bwd ??= PackedMatrix.pack(this.param.data, {
      k: this.outDim,
      n: this.inDim,
      dtype: this.dtypeValue,
    });
    return this.bwd;
  }

  /** Drops the packed copies (native memory is freed when they are collected). */
  drop(): void {
    this.fwd = null;
    this.bwd = null;
    this.data = null;
  }

  private usable(): boolean {
    const p = this.param;
    if (!packingEnabled && this.dtypeValue === 'fp32') return false;
    if (p.requiresGrad) {
      this.drop();
      return false;
    }
    const d = p.data;
    const n = d.length;
    if (n === 0) return false;
    const step = Math.max(1, Math.floor(n / SAMPLES));
    let same = this.data === d && this.version === p.version;
    for (let i = 0, j = 0; i < SAMPLES; i++, j += step) {
      const v = d[Math.min(j, n - 1)];
      // Bitwise comparison (NaN-safe: Object.is treats NaN as equal to NaN).
      if (same && !Object.is(this.sample[i], v)) same = false;
      this.sample[i] = v;
    }
    if (!same) {
      this.fwd = null;
      this.bwd = null;
      this.data = d;
      this.version = p.version;
    }
    return true;
  }
}
