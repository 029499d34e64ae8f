/**
 * Argument validation, written once: every public function and CLI option checks its
 * arguments through these helpers, so each bad input gets an {@link InvalidArgumentError}
 * naming the argument before any work (or allocation) is done.
 */
import { InvalidArgumentError } from './errors';

/**
 * Largest number of elements one tensor or weight matrix may have (2^30; 4 GiB of float32).
 * Sizes are checked against it before anything is allocated, so a huge argument is a clear
 * {@link InvalidArgumentError} rather than a `RangeError: Invalid typed array length` or an
 * out-of-memory crash.
 */
export const MAX_ELEMENTS = 2 ** 30;

/** Bounds for {@link requireNumber} and {@link requireInt}. */
export interface NumberBounds {
  /** Smallest accepted value (inclusive). */
  min?: number;
  /** Largest accepted value (inclusive). */
  max?: number;
  /** Values must be strictly greater than this. */
  greaterThan?: number;
  /** Values must be strictly less than this. */
  lessThan?: number;
}

function describe(value: unknown): string {
  if (typeof value === 'number' || typeof value === 'bigint' || typeof value === 'boolean')
    return String(value);
  if (typeof value === 'string')
    return JSON.stringify(value.length > 40 ? value.slice(0, 40) + '…' : value);
  if (value === null) return 'null';
  if (Array.isArray(value)) return `an array of length ${value.length}`;
  if (ArrayBuffer.isView(value)) return `a ${value.constructor.name}`;
  return typeof value === 'object' ? 'an object' : typeof value;
}

function checkBounds(name: string, value: number, b: NumberBounds): void {
  if (b.min !== undefined && value < b.min)
    throw new InvalidArgumentError(name, `must be >= ${b.min}, got ${value}`);
  if (b.max !== undefined && value > b.max)
    throw new InvalidArgumentError(name, `must be <= ${b.max}, got ${value}`);
  if (b.greaterThan !== undefined && !(value > b.greaterThan))
    throw new InvalidArgumentError(name, `must be > ${b.greaterThan}, got ${value}`);
  if (b.lessThan !== undefined && !(value < b.lessThan))
    throw new InvalidArgumentError(name, `must be < ${b.lessThan}, got ${value}`);
}

/** A finite number within the bounds; returns it. */
export function requireNumber(name: string, value: unknown, bounds: NumberBounds = {}): number {
  if (typeof value !== 'number' || !Number.isFinite(value))
    throw new InvalidArgumentError(name, `must be a finite number, got ${describe(value)}`);
  checkBounds(name, value, bounds);
  return value;
}

/** A safe integer within the bounds; returns it. */
export function requireInt(name: string, value: unknown, bounds: NumberBounds = {}): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value))
    throw new InvalidArgumentError(name, `must be an integer, got ${describe(value)}`);
  checkBounds(name, value, bounds);
  return value;
}

/** A positive safe integer no larger than `max` (default 2^31 - 1); returns it. */
export function requirePositiveInt(name: string, value: unknown, max = 2 ** 31 - 1): number {
  return requireInt(name, value, { min: 1, max });
}

/**
 * Checks that a product of dimensions (e.g. `outFeatures * inFeatures`) stays within
 * {@link MAX_ELEMENTS}; the error names `name` (the dimension to lower). Returns the product.
 */
export function requireElementCount(name: string, dims: readonly number[]): number {
  let n = 1;
  for (const d of dims) n *= d;
  if (!(n <= MAX_ELEMENTS))
    throw new InvalidArgumentError(
      name,
      `${dims.join(' * ')} = ${n} elements exceeds the limit of ${MAX_ELEMENTS} per tensor`,
    );
  return n;
}

/** A string, optionally non-empty; returns it. */
export function requireString(name: string, value: unknown, nonEmpty = true): string {
  if (typeof value !== 'string')
    throw new InvalidArgumentError(name, `must be a string, got ${describe(value)}`);
  if (nonEmpty && value.length === 0) throw new InvalidArgumentError(name, 'must not be empty');
  return value;
}

/** One of the listed values; returns it. */
export function requireOneOf<T extends string>(
  name: string,
  value: unknown,
  allowed: readonly T[],
): T {
  if (typeof value !== 'string' || !(allowed as readonly string[]).includes(value))
    throw new InvalidArgumentError(
      name,
      `must be one of ${allowed.map((a) => JSON.stringify(a)).join(', ')}, got ${describe(value)}`,
    );
  return value as T;
}

/** A Float32Array, optionally of an exact length; returns it. */
export function requireFloat32Array(name: string, value: unknown, length?: number): Float32Array {
  // By tag, not instanceof: arrays made in another realm (a vm context, a worker) still count.
  if (Object.prototype.toString.call(value) !== '[object Float32Array]')
    throw new InvalidArgumentError(name, `must be a Float32Array, got ${describe(value)}`);
  const a = value as Float32Array;
  if (length !== undefined && a.length !== length)
    throw new InvalidArgumentError(name, `must have length ${length}, got ${a.length}`);
  return a;
}

/** A plain object (not null, not an array); returns it. */
export function requireObject(name: string, value: unknown): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new InvalidArgumentError(name, `must be an object, got ${describe(value)}`);
  return value as Record<string, unknown>;
}
