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
  /** Accept +-Infinity (still subject to the bounds); NaN is always refused. */
  allowInfinite?: boolean;
  /** Said after the range when a value is out of it, e.g. `(use 1 for non-Poisson sampling)`. */
  hint?: string;
}

/** The open interval (0, 1), e.g. for a delta or a probability that cannot be 0 or 1. */
export const OPEN_UNIT: NumberBounds = Object.freeze({ greaterThan: 0, lessThan: 1 });

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

function interval(b: NumberBounds): string | undefined {
  const lo =
    b.min !== undefined ? `[${b.min}` : b.greaterThan !== undefined ? `(${b.greaterThan}` : '';
  const hi = b.max !== undefined ? `${b.max}]` : b.lessThan !== undefined ? `${b.lessThan})` : '';
  return lo && hi ? `${lo}, ${hi}` : undefined;
}

function checkBounds(name: string, value: number, b: NumberBounds, kind = ''): void {
  const inside =
    (b.min === undefined || value >= b.min) &&
    (b.max === undefined || value <= b.max) &&
    (b.greaterThan === undefined || value > b.greaterThan) &&
    (b.lessThan === undefined || value < b.lessThan);
  if (inside) return;
  // Two-sided bounds are said as one interval ("must be in (0, 1)"), one-sided as a comparison.
  const range = interval(b);
  const what =
    range !== undefined
      ? `in ${range}`
      : b.min !== undefined && value < b.min
        ? `>= ${b.min}`
        : b.max !== undefined && value > b.max
          ? `<= ${b.max}`
          : b.greaterThan !== undefined && !(value > b.greaterThan)
            ? `> ${b.greaterThan}`
            : `< ${b.lessThan}`;
  const hint = b.hint ? ` ${b.hint}` : '';
  throw new InvalidArgumentError(name, `must be ${kind}${what}${hint}, got ${value}`);
}

/** A finite number within the bounds; returns it. */
export function requireNumber(name: string, value: unknown, bounds: NumberBounds = {}): number {
  if (typeof value !== 'number' || Number.isNaN(value))
    throw new InvalidArgumentError(name, `must be a number, got ${describe(value)}`);
  if (!bounds.allowInfinite && !Number.isFinite(value))
    throw new InvalidArgumentError(name, `must be a finite number, got ${describe(value)}`);
  checkBounds(name, value, bounds);
  return value;
}

/** A safe integer within the bounds; returns it. */
export function requireInt(name: string, value: unknown, bounds: NumberBounds = {}): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value))
    throw new InvalidArgumentError(name, `must be an integer, got ${describe(value)}`);
  checkBounds(name, value, bounds, 'an integer ');
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

/** A boolean; returns it. */
export function requireBoolean(name: string, value: unknown): boolean {
  if (typeof value !== 'boolean')
    throw new InvalidArgumentError(name, `must be a boolean, got ${describe(value)}`);
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

/** The typed-array kinds {@link requireTypedArray} checks by their tag. */
export interface TypedArrayKinds {
  Float32Array: Float32Array;
  Float64Array: Float64Array;
  Int32Array: Int32Array;
  Uint32Array: Uint32Array;
  Uint8Array: Uint8Array;
  BigInt64Array: BigInt64Array;
}

/** Whether `value` is a typed array of the kind (by tag, so arrays from another realm count). */
export function isTypedArrayOf<K extends keyof TypedArrayKinds>(
  value: unknown,
  kind: K,
): value is TypedArrayKinds[K] {
  return Object.prototype.toString.call(value) === `[object ${kind}]`;
}

/**
 * A typed array of the kind (a Node Buffer counts as a Uint8Array), optionally of an exact
 * length; returns it. Checked by tag, not `instanceof`: arrays made in another realm (a vm
 * context, a worker) still count.
 */
export function requireTypedArray<K extends keyof TypedArrayKinds>(
  name: string,
  value: unknown,
  kind: K,
  length?: number,
): TypedArrayKinds[K] {
  if (!isTypedArrayOf(value, kind))
    throw new InvalidArgumentError(name, `must be a ${kind}, got ${describe(value)}`);
  if (length !== undefined && value.length !== length)
    throw new InvalidArgumentError(name, `must have length ${length}, got ${value.length}`);
  return value;
}

/** A Float32Array, optionally of an exact length; returns it. */
export function requireFloat32Array(name: string, value: unknown, length?: number): Float32Array {
  return requireTypedArray(name, value, 'Float32Array', length);
}

/** A value of the length the caller expects (a typed array or array); returns it. */
export function requireLength<T extends { readonly length: number }>(
  name: string,
  value: T,
  length: number,
  what = '',
): T {
  if (value.length !== length)
    throw new InvalidArgumentError(
      name,
      `must have length ${length}${what ? ` (${what})` : ''}, got ${value.length}`,
    );
  return value;
}

/** An instance of the class (`what` names it in the message, e.g. "a Linear"); returns it. */
export function requireInstance<T>(
  name: string,
  value: unknown,
  ctor: abstract new (...args: never[]) => T,
  what = `a ${ctor.name}`,
): T {
  if (!(value instanceof ctor))
    throw new InvalidArgumentError(name, `must be ${what}, got ${describe(value)}`);
  return value;
}

/** An array (optionally non-empty); returns it. */
export function requireArray(name: string, value: unknown, nonEmpty = false): unknown[] {
  if (!Array.isArray(value))
    throw new InvalidArgumentError(name, `must be an array, got ${describe(value)}`);
  if (nonEmpty && value.length === 0) throw new InvalidArgumentError(name, 'must not be empty');
  return value;
}

/** A tensor shape: an array of integers >= 0; returns it. */
export function requireShape(name: string, value: unknown): readonly number[] {
  if (!Array.isArray(value) || value.some((d) => !Number.isSafeInteger(d) || (d as number) < 0))
    throw new InvalidArgumentError(
      name,
      `must be an array of integers >= 0, got ${Array.isArray(value) ? JSON.stringify(value) : describe(value)}`,
    );
  return value as readonly number[];
}

/**
 * Runs `checks`; an {@link InvalidArgumentError} they throw gets `where` in front of its message
 * (e.g. `"history[3]: sampleRate: must be ..."`), keeping its argument. Returns what they return.
 */
export function inContext<T>(where: string, checks: () => T): T {
  try {
    return checks();
  } catch (e) {
    if (e instanceof InvalidArgumentError)
      throw new InvalidArgumentError(e.argument, `${where}: ${e.message}`, e.cause);
    throw e;
  }
}

/** A plain object (not null, not an array); returns it. */
export function requireObject(name: string, value: unknown): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new InvalidArgumentError(name, `must be an object, got ${describe(value)}`);
  return value as Record<string, unknown>;
}
