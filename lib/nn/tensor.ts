/**
 * Tensors and parameters: dense row-major Float32Array data with a shape.
 */
import { InvalidArgumentError } from '../errors';
import {
  isTypedArrayOf,
  requireElementCount,
  requireFloat32Array,
  requireShape,
} from '../validate';

/** Number of elements of a shape. */
export function shapeSize(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** A dense row-major float32 tensor. Inputs are `[batch, features]` or `[batch, seq, features]`. */
export class Tensor {
  /** Values, row-major. */
  readonly data: Float32Array;
  /** Dimensions, outermost first. */
  readonly shape: number[];

  constructor(data: Float32Array, shape: readonly number[]) {
    checkData(data, shape, 'Tensor');
    this.data = data;
    this.shape = [...shape];
  }

  /** A zero tensor of the given shape. */
  static zeros(shape: readonly number[]): Tensor {
    requireShape('shape', shape);
    requireElementCount('shape', shape);
    return new Tensor(new Float32Array(shapeSize(shape)), shape);
  }

  /** Wraps a plain array (copied) with a shape. */
  static from(values: ArrayLike<number>, shape: readonly number[]): Tensor {
    return new Tensor(Float32Array.from(values), shape);
  }

  /** Number of elements. */
  get size(): number {
    return this.data.length;
  }

  /** Leading dimension (the batch). */
  get batch(): number {
    return this.shape[0];
  }

  /** Last dimension (the features). */
  get features(): number {
    return this.shape[this.shape.length - 1];
  }

  /** Product of the dimensions between batch and features (1 for `[batch, features]`). */
  get seq(): number {
    let s = 1;
    for (let i = 1; i < this.shape.length - 1; i++) s *= this.shape[i];
    return s;
  }

  /** A tensor of the same data with another shape of equal size. */
  reshape(shape: readonly number[]): Tensor {
    return new Tensor(this.data, shape);
  }

  /** A deep copy. */
  clone(): Tensor {
    return new Tensor(this.data.slice(), this.shape);
  }
}

/** Where the gradient currently held in {@link Parameter.grad} came from. */
export type GradSource = 'none' | 'raw' | 'private';

/**
 * A parameter: data, shape, whether training changes it, and its gradient.
 * `grad` holds the raw (non-private) gradient sum after a backward pass in
 * 'sum' mode, or the noisy private gradient the DP optimizer hands to the
 * inner optimizer; `gradSource` says which.
 */
export class Parameter {
  /** Values, row-major (updated in place by optimizers). */
  data: Float32Array;
  /** Dimensions, outermost first. */
  readonly shape: number[];
  /** Whether training changes it (false: frozen). */
  requiresGrad: boolean;
  /** Gradient of the loss (or the privatized update under DP), or null before backward. */
  grad: Float32Array | null = null;
  /** Where `grad` came from (plain backward or the DP optimizer). */
  gradSource: GradSource = 'none';
  /**
   * Bumped by {@link Parameter.markChanged}: layers that keep derived copies of a frozen
   * weight (packed for the GEMM kernel) rebuild them when it moves.
   */
  version = 0;

  constructor(data: Float32Array, shape: readonly number[], requiresGrad = true) {
    checkData(data, shape, 'Parameter');
    this.data = data;
    this.shape = [...shape];
    this.requiresGrad = requiresGrad;
  }

  /**
   * Declares that `data` was changed in place (copies derived from it, such as the packed
   * form of a frozen weight, are rebuilt at their next use). Library code that writes a
   * frozen weight calls it; call it after writing into a frozen weight's `data` yourself.
   */
  markChanged(): void {
    this.version++;
  }

  /** Number of elements. */
  get size(): number {
    return this.data.length;
  }

  /** Adds a raw gradient contribution (non-private 'sum' mode). */
  addRawGrad(g: Float32Array): void {
    if (!this.grad || this.gradSource !== 'raw') {
      this.grad = new Float32Array(this.data.length);
      this.gradSource = 'raw';
    }
    const d = this.grad;
    for (let i = 0; i < d.length; i++) d[i] += g[i];
  }

  /** Returns the raw gradient buffer (allocated, zeroed on first use) for in-place accumulation. */
  rawGradBuffer(): Float32Array {
    if (!this.grad || this.gradSource !== 'raw') {
      this.grad = new Float32Array(this.data.length);
      this.gradSource = 'raw';
    }
    return this.grad;
  }

  /** Drops the gradient. */
  zeroGrad(): void {
    this.grad = null;
    this.gradSource = 'none';
  }
}

/** True for a Float32Array from any realm (vm contexts, structuredClone). */
export function isFloat32Array(x: unknown): x is Float32Array {
  return isTypedArrayOf(x, 'Float32Array');
}

/** The checks shared by the Tensor and Parameter constructors. */
function checkData(data: Float32Array, shape: readonly number[], who: string): void {
  requireFloat32Array('data', data);
  requireShape('shape', shape);
  if (shapeSize(shape) !== data.length)
    throw new InvalidArgumentError(
      'data',
      `${who}: data has ${data.length} elements but shape ${JSON.stringify(shape)} needs ${shapeSize(shape)}`,
    );
}
