/**
 * Batch samplers.  Poisson sampling (each example independently with
 * probability q) is what the accountant's amplification by subsampling
 * assumes; batches have random size and may be empty.  Shuffled fixed-size
 * batches get no amplification and are accounted with sampleRate 1.
 */
import type { Rng } from '../kernels/rng';
import { InvalidArgumentError } from '../errors';
import {
  requireArray,
  requireInt,
  requireNumber,
  requireObject,
  requirePositiveInt,
  requireTypedArray,
} from '../validate';

/** Serializable sampler state (the RNG state is saved by the engine). */
export interface SamplerState {
  /** Which sampler saved it. */
  kind: 'poisson' | 'shuffle';
  /** Number of records sampled from. */
  datasetSize: number;
  /** Poisson: q; shuffle: batchSize / datasetSize. */
  sampleRate: number;
  /** Logical batches drawn so far. */
  batchesDrawn: number;
  /** Shuffle only: the current permutation and position in it. */
  permutation?: number[];
  /** Shuffle only: position in the permutation. */
  position?: number;
  /** Shuffle only: the fixed batch size. */
  batchSize?: number;
}

/** Common sampler interface. */
export interface BatchSampler {
  /** Poisson (amplification applies) or shuffled fixed-size batches. */
  readonly kind: 'poisson' | 'shuffle';
  /** Number of records sampled from. */
  readonly datasetSize: number;
  /** The sampling rate the accountant must use (Poisson: q; others: 1). */
  readonly accountingSampleRate: number;
  /** Draws the next logical batch of example indices. */
  sample(): Int32Array;
  /** Replaces the random source (e.g. re-keyed after a resume). */
  setRng(rng: Rng): void;
  /** The sampler's position as plain JSON data (saved with a checkpoint). */
  stateDict(): SamplerState;
  /** Restores a position saved by {@link BatchSampler.stateDict} (throws if another sampler's). */
  loadStateDict(s: SamplerState): void;
}

/**
 * What both samplers share: the random source they draw from (replaceable after a resume) and
 * the count of logical batches drawn.
 */
export abstract class SamplerBase {
  /** Logical batches drawn so far. */
  batchesDrawn = 0;

  protected constructor(protected rng: Rng) {}

  /** {@inheritDoc BatchSampler.setRng} */
  setRng(rng: Rng): void {
    this.rng = rng;
  }

  /** Counts `batch` as drawn and returns it. */
  protected drawn(batch: Int32Array): Int32Array {
    this.batchesDrawn++;
    return batch;
  }
}

/** Poisson sampler: each index in [0, N) joins the batch independently with probability q. */
export class PoissonSampler extends SamplerBase implements BatchSampler {
  /** Always `poisson`. */
  readonly kind = 'poisson' as const;
  /** Number of records sampled from. */
  readonly datasetSize: number;
  /** Probability q that each record is in a batch. */
  readonly sampleRate: number;
  private u: Float64Array;

  constructor(o: { datasetSize: number; sampleRate: number; rng: Rng }) {
    requireObject('options', o);
    requirePositiveInt('datasetSize', o.datasetSize);
    requireNumber('sampleRate', o.sampleRate, { greaterThan: 0, max: 1 });
    super(o.rng);
    this.datasetSize = o.datasetSize;
    this.sampleRate = o.sampleRate;
    this.u = new Float64Array(o.datasetSize);
  }

  get accountingSampleRate(): number {
    return this.sampleRate;
  }

  /** Indices i with U_i < q, U_i uniform in [0, 1) from the RNG, in increasing order. */
  sample(): Int32Array {
    this.rng.uniform(this.u);
    const q = this.sampleRate;
    let n = 0;
    for (let i = 0; i < this.u.length; i++) if (this.u[i] < q) n++;
    const out = new Int32Array(n);
    let k = 0;
    for (let i = 0; i < this.u.length; i++) if (this.u[i] < q) out[k++] = i;
    return this.drawn(out);
  }

  /** {@inheritDoc BatchSampler.stateDict} */
  stateDict(): SamplerState {
    return {
      kind: 'poisson',
      datasetSize: this.datasetSize,
      sampleRate: this.sampleRate,
      batchesDrawn: this.batchesDrawn,
    };
  }

  /** {@inheritDoc BatchSampler.loadStateDict} */
  loadStateDict(s: SamplerState): void {
    if (
      s?.kind !== 'poisson' ||
      s.datasetSize !== this.datasetSize ||
      s.sampleRate !== this.sampleRate
    ) {
      throw new InvalidArgumentError(
        'state',
        `PoissonSampler.loadStateDict: state (${s?.kind}, N=${s?.datasetSize}, q=${s?.sampleRate}) does not match this sampler (poisson, N=${this.datasetSize}, q=${this.sampleRate})`,
      );
    }
    this.batchesDrawn = requireInt('state.batchesDrawn', s.batchesDrawn, { min: 0 });
  }
}

/** Unbiased integer in [0, n) from 32-bit words (rejection sampling). */
function randomBelow(rng: Rng, n: number, buf: Uint32Array): number {
  const limit = Math.floor(2 ** 32 / n) * n;
  for (;;) {
    rng.fillUint32(buf);
    if (buf[0] < limit) return buf[0] % n;
  }
}

/**
 * Shuffled fixed-size batches (a new permutation per epoch).  No amplification:
 * the engine accounts it with sampleRate 1.
 */
export class ShuffleSampler extends SamplerBase implements BatchSampler {
  /** Always `shuffle`. */
  readonly kind = 'shuffle' as const;
  /** Number of records sampled from. */
  readonly datasetSize: number;
  /** Records per batch. */
  readonly batchSize: number;
  readonly accountingSampleRate = 1;
  private perm: Int32Array | null = null;
  private pos = 0;

  constructor(o: { datasetSize: number; batchSize: number; rng: Rng }) {
    requireObject('options', o);
    requirePositiveInt('datasetSize', o.datasetSize);
    requireInt('batchSize', o.batchSize, { min: 1, max: o.datasetSize });
    super(o.rng);
    this.datasetSize = o.datasetSize;
    this.batchSize = o.batchSize;
  }

  private reshuffle(): void {
    const p = new Int32Array(this.datasetSize);
    for (let i = 0; i < p.length; i++) p[i] = i;
    const buf = new Uint32Array(1);
    for (let i = p.length - 1; i > 0; i--) {
      const j = randomBelow(this.rng, i + 1, buf);
      const t = p[i];
      p[i] = p[j];
      p[j] = t;
    }
    this.perm = p;
    this.pos = 0;
  }

  /** The next `batchSize` indices of the permutation (drops the epoch's remainder). */
  sample(): Int32Array {
    if (!this.perm || this.pos + this.batchSize > this.datasetSize) this.reshuffle();
    const out = this.perm!.slice(this.pos, this.pos + this.batchSize);
    this.pos += this.batchSize;
    return this.drawn(out);
  }

  /** {@inheritDoc BatchSampler.stateDict} */
  stateDict(): SamplerState {
    return {
      kind: 'shuffle',
      datasetSize: this.datasetSize,
      sampleRate: this.batchSize / this.datasetSize,
      batchSize: this.batchSize,
      batchesDrawn: this.batchesDrawn,
      permutation: this.perm ? Array.from(this.perm) : undefined,
      position: this.pos,
    };
  }

  /** {@inheritDoc BatchSampler.loadStateDict} */
  loadStateDict(s: SamplerState): void {
    if (
      s?.kind !== 'shuffle' ||
      s.datasetSize !== this.datasetSize ||
      s.batchSize !== this.batchSize
    ) {
      throw new InvalidArgumentError(
        'state',
        'ShuffleSampler.loadStateDict: state does not match this sampler (kind, datasetSize, batchSize)',
      );
    }
    // Checked whole before anything is written. A permutation that repeated a record would put
    // it in a batch twice (twice its clipped contribution), so it must be one of [0, N).
    const batchesDrawn = requireInt('state.batchesDrawn', s.batchesDrawn, { min: 0 });
    const pos = requireInt('state.position', s.position ?? 0, { min: 0, max: this.datasetSize });
    let perm: Int32Array | null = null;
    if (s.permutation !== undefined && s.permutation !== null) {
      const list = requireArray('state.permutation', s.permutation);
      if (list.length !== this.datasetSize)
        throw new InvalidArgumentError(
          'state.permutation',
          `must hold ${this.datasetSize} indices, holds ${list.length}`,
        );
      const p = new Int32Array(list.length);
      const seen = new Uint8Array(list.length);
      list.forEach((v, i) => {
        const k = requireInt(`state.permutation[${i}]`, v, { min: 0, max: this.datasetSize - 1 });
        if (seen[k])
          throw new InvalidArgumentError(
            'state.permutation',
            `is not a permutation: index ${k} appears twice`,
          );
        seen[k] = 1;
        p[i] = k;
      });
      perm = p;
    }
    this.perm = perm;
    this.pos = pos;
    this.batchesDrawn = batchesDrawn;
  }
}

/** Splits a logical batch into micro-batches of at most `maxPhysicalBatchSize` (views, no copy). */
export function splitMicroBatches(indices: Int32Array, maxPhysicalBatchSize: number): Int32Array[] {
  requireTypedArray('indices', indices, 'Int32Array');
  requireInt('maxPhysicalBatchSize', maxPhysicalBatchSize, { min: 1 });
  const out: Int32Array[] = [];
  for (let i = 0; i < indices.length; i += maxPhysicalBatchSize)
    out.push(indices.subarray(i, Math.min(indices.length, i + maxPhysicalBatchSize)));
  return out;
}
