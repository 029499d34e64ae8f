/**
 * Cryptographic random numbers for the noise: a ChaCha20 (RFC 8439) stream
 * keyed from the OS entropy source, with an explicit, loudly labelled
 * fixed-seed mode for reproducible runs.
 *
 * The stream state (key, nonce, 64-bit word position) lives here in
 * JavaScript; the native functions are stateless and read fixed stream words
 * determined by the element index and the position, so the output never
 * depends on the thread count or the ISA path, and the state is trivially
 * serializable ({@link Rng.getState} / {@link Rng.fromState}).
 */
import { loadAddon } from '../native';
import { InvalidArgumentError, InvalidStateError } from '../errors';
import {
  isTypedArrayOf,
  requireInstance,
  requireBoolean,
  requireFloat32Array,
  requireLength,
  requireNumber,
  requireObject,
  requireString,
  requireTypedArray,
} from '../validate';

/** Options of {@link Rng}. */
export interface RngOptions {
  /**
   * Explicit key: 32 bytes, or 64 hexadecimal characters. Makes the stream
   * REPRODUCIBLE (and therefore predictable): for tests and debugging only.
   * Without it the key comes from the OS entropy source.
   */
  seed?: Uint8Array | string;
}

/** Serializable stream state. Contains the key: treat it as a secret. */
export interface RngState {
  /** State format version. */
  version: 1;
  /** True when the key was an explicit seed (fixed-seed mode). */
  reproducible: boolean;
  /** 32-byte key, 64 hex characters. */
  key: string;
  /** 12-byte nonce, 24 hex characters. */
  nonce: string;
  /** Next unused 32-bit word of the stream, a decimal integer in [0, 2^64). */
  position: string;
}

/** A rational sigma^2 = num / den (both positive). */
export interface RationalSigmaSq {
  /** Numerator (> 0). */
  num: bigint;
  /** Denominator (> 0). */
  den: bigint;
}

const addon = loadAddon;

const U64_LIMIT = 1n << 64n;
const HEX_RE = /^[0-9a-fA-F]*$/;

function toHex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
}

function fromHex(s: string, bytes: number, name: string): Uint8Array {
  requireString(name, s, false);
  if (s.length !== 2 * bytes || !HEX_RE.test(s)) {
    throw new InvalidArgumentError(
      name,
      `${name} must be exactly ${2 * bytes} hexadecimal characters (${bytes} bytes)`,
    );
  }
  return Uint8Array.from(Buffer.from(s, 'hex'));
}

function checkStd(std: unknown): number {
  return requireNumber('std', std, { min: 0 });
}

/** Words a Float32 Gaussian call of n elements consumes (groups of 16). */
function gaussianF32Words(n: number): bigint {
  return 16n * BigInt(Math.ceil(n / 16));
}

/** Words a Float64 Gaussian call of n elements consumes (4 per pair). */
function gaussianF64Words(n: number): bigint {
  return 4n * BigInt(Math.ceil(n / 2));
}

function gcd(a: bigint, b: bigint): bigint {
  while (b !== 0n) [a, b] = [b, a % b];
  return a;
}

/**
 * sigma^2 as a reduced rational with numerator and denominator below 2^64.
 * A number is taken as its exact binary value (0.1 is 0x1.999999999999ap-4).
 */
export function sigmaSqRational(
  sigmaSq: number | RationalSigmaSq,
  name = 'sigmaSq',
): RationalSigmaSq {
  let num: bigint;
  let den: bigint;
  if (typeof sigmaSq === 'number') {
    requireNumber(name, sigmaSq, { greaterThan: 0 });
    // Exact decomposition sigmaSq = m * 2^e with integer m.
    const buf = new DataView(new ArrayBuffer(8));
    buf.setFloat64(0, sigmaSq);
    const bits = buf.getBigUint64(0);
    const expBits = Number((bits >> 52n) & 0x7ffn);
    let mant = bits & ((1n << 52n) - 1n);
    let e: number;
    if (expBits === 0) e = -1074;
    else {
      mant |= 1n << 52n;
      e = expBits - 1075;
    }
    if (e >= 0) {
      num = mant << BigInt(e);
      den = 1n;
    } else {
      num = mant;
      den = 1n << BigInt(-e);
    }
  } else if (
    sigmaSq !== null &&
    typeof sigmaSq === 'object' &&
    typeof sigmaSq.num === 'bigint' &&
    typeof sigmaSq.den === 'bigint'
  ) {
    num = sigmaSq.num;
    den = sigmaSq.den;
    if (num <= 0n || den <= 0n)
      throw new InvalidArgumentError(name, `${name}.num and ${name}.den must be > 0`);
  } else {
    throw new InvalidArgumentError(
      name,
      `${name} must be a number or { num: bigint, den: bigint }`,
    );
  }
  const g = gcd(num, den);
  num /= g;
  den /= g;
  if (num >= U64_LIMIT || den >= U64_LIMIT) {
    throw new InvalidArgumentError(
      name,
      `${name}: numerator and denominator must be < 2^64 after reduction (got ${num}/${den})`,
    );
  }
  return { num, den };
}

/**
 * ChaCha20 random stream. By default keyed from the OS entropy source
 * (getrandom on Linux, getentropy on macOS); with `seed` it runs in the
 * explicit FIXED-SEED reproducible mode, which {@link Rng.describe} says.
 */
export class Rng {
  /** True only when the key was an explicit seed. */
  readonly reproducible: boolean;
  private readonly key: Uint8Array;
  private readonly nonce: Uint8Array;
  private position: bigint;

  /** Keys the stream from OS entropy, or from `opts.seed` (fixed-seed mode). */
  constructor(opts?: RngOptions) {
    if (opts !== undefined) requireObject('opts', opts);
    const seed = opts?.seed;
    this.nonce = new Uint8Array(12);
    this.position = 0n;
    if (seed === undefined) {
      this.key = addon().osEntropy(32);
      this.reproducible = false;
    } else if (typeof seed === 'string') {
      this.key = fromHex(seed, 32, 'seed');
      this.reproducible = true;
    } else if (isTypedArrayOf(seed, 'Uint8Array')) {
      this.key = Uint8Array.from(requireLength('seed', seed, 32, 'bytes'));
      this.reproducible = true;
    } else {
      throw new InvalidArgumentError(
        'seed',
        'seed must be a Uint8Array of 32 bytes or a string of 64 hex characters',
      );
    }
  }

  /** One line saying where the key came from; warns loudly in fixed-seed mode. */
  describe(): string {
    if (this.reproducible) {
      return (
        'WARNING: FIXED SEED (reproducible mode): ChaCha20 keyed by a caller-supplied seed. The noise is ' +
        'predictable to anyone who knows the seed, so it gives NO privacy protection; use it only for tests and debugging.'
      );
    }
    return 'ChaCha20 keyed from OS entropy (getrandom/getentropy), RFC 8439 block function';
  }

  /** Reserves `words` stream words and returns the position of the first. */
  private reserve(words: bigint): bigint {
    const start = this.position;
    const next = start + words;
    if (next >= U64_LIMIT)
      throw new InvalidStateError('the random stream is exhausted (position would pass 2^64)');
    this.position = next;
    return start;
  }

  /** Fills `out` with uniform 32-bit words (one stream word each). */
  fillUint32(out: Uint32Array): Uint32Array {
    requireTypedArray('out', out, 'Uint32Array');
    const pos = this.position;
    addon().rngFillU32(this.key, this.nonce, pos, out);
    this.reserve(BigInt(out.length));
    return out;
  }

  /** Fills `out` with 53-bit uniforms in [0, 1) (two stream words each). */
  uniform(out: Float64Array): Float64Array {
    requireTypedArray('out', out, 'Float64Array');
    addon().rngUniform(this.key, this.nonce, this.position, out);
    this.reserve(2n * BigInt(out.length));
    return out;
  }

  /**
   * Fills `out` with N(0, std^2) samples (Box-Muller; Float32Array uses the
   * vectorized single-precision path, Float64Array libm in double).
   */
  gaussian<T extends Float32Array | Float64Array>(out: T, std: number): T {
    const words = this.gaussianWords(out, 'out');
    checkStd(std);
    addon().rngGaussian(this.key, this.nonce, this.position, out, std, false);
    this.reserve(words);
    return out;
  }

  /** Adds N(0, std^2) noise to every element of `buf` in place. */
  addGaussianNoise(buf: Float32Array, std: number): Float32Array {
    requireFloat32Array('buf', buf);
    checkStd(std);
    addon().rngGaussian(this.key, this.nonce, this.position, buf, std, true);
    this.reserve(gaussianF32Words(buf.length));
    return buf;
  }

  /**
   * {@link addGaussianNoise} on a worker thread. The stream words are
   * reserved at the call, so later calls draw fresh words whatever the
   * completion order; do not touch `buf` until the promise settles.
   */
  addGaussianNoiseAsync(buf: Float32Array, std: number): Promise<Float32Array> {
    try {
      requireFloat32Array('buf', buf);
      checkStd(std);
      const words = gaussianF32Words(buf.length);
      if (this.position + words >= U64_LIMIT)
        throw new InvalidStateError('the random stream is exhausted (position would pass 2^64)');
      // The addon validates synchronously before queuing: reserve only once it accepted.
      const p = addon().rngAddGaussianAsync(this.key, this.nonce, this.position, buf, std);
      this.reserve(words);
      return p;
    } catch (e) {
      // Validation throws Errors (from the addon's realm, so `instanceof Error` can fail).
      const err = e as Error;
      return Promise.reject(err);
    }
  }

  /**
   * Exact discrete Gaussian samples N_Z(0, sigma^2) (rejection from a
   * staircase envelope with the exp(-gamma) tests of Canonne, Kamath,
   * Steinke 2020), integer arithmetic only. `sigmaSq` is a positive number
   * (taken as its exact binary rational) or a rational { num, den }, both
   * below 2^64. Throws when a sample would not fit int64 (int32 for
   * Int32Array output) or the stream would pass its end, instead of wrapping.
   */
  discreteGaussian<T extends Int32Array | BigInt64Array>(
    out: T,
    sigmaSq: number | RationalSigmaSq,
  ): T {
    if (!isTypedArrayOf(out, 'Int32Array') && !isTypedArrayOf(out, 'BigInt64Array'))
      throw new InvalidArgumentError('out', 'out must be an Int32Array or BigInt64Array');
    const { num, den } = sigmaSqRational(sigmaSq);
    const next = addon().rngDiscreteGaussian(this.key, this.nonce, this.position, out, num, den);
    this.reserve(next - this.position);
    return out;
  }

  /** The stream state (includes the key: keep it secret). */
  getState(): RngState {
    return {
      version: 1,
      reproducible: this.reproducible,
      key: toHex(this.key),
      nonce: toHex(this.nonce),
      position: this.position.toString(),
    };
  }

  /** Restores a stream saved by {@link getState}; it continues exactly where it stopped. */
  static fromState(state: RngState): Rng {
    requireObject('state', state);
    if (state.version !== 1)
      throw new InvalidArgumentError(
        'state.version',
        `state.version must be 1 (got ${String(state.version)})`,
      );
    requireBoolean('state.reproducible', state.reproducible);
    const key = fromHex(state.key, 32, 'state.key');
    const nonce = fromHex(state.nonce, 12, 'state.nonce');
    if (typeof state.position !== 'string' || !/^[0-9]{1,20}$/.test(state.position)) {
      throw new InvalidArgumentError(
        'state.position',
        'state.position must be a decimal integer string',
      );
    }
    const position = BigInt(state.position);
    if (position >= U64_LIMIT)
      throw new InvalidArgumentError('state.position', 'state.position must be < 2^64');
    const rng = new Rng({ seed: key });
    (rng as unknown as { reproducible: boolean }).reproducible = state.reproducible;
    rng.nonce.set(nonce);
    rng.position = position;
    return rng;
  }

  /** @internal Runs `fn` on the stream at the current position; advances to the position it returns. */
  static useStream<R>(
    rng: Rng,
    fn: (key: Uint8Array, nonce: Uint8Array, position: bigint) => { result: R; next: bigint },
  ): R {
    requireInstance('rng', rng, Rng);
    const { result, next } = fn(rng.key, rng.nonce, rng.position);
    rng.reserve(next - rng.position);
    return result;
  }

  private gaussianWords(out: unknown, name: string): bigint {
    if (isTypedArrayOf(out, 'Float32Array')) return gaussianF32Words(out.length);
    if (isTypedArrayOf(out, 'Float64Array')) return gaussianF64Words(out.length);
    throw new InvalidArgumentError(name, `${name} must be a Float32Array or Float64Array`);
  }
}

/** One RFC 8439 ChaCha20 block (64 bytes) for a 32-byte key, 32-bit counter and 12-byte nonce. */
export function chacha20Block(key: Uint8Array, counter: number, nonce: Uint8Array): Uint8Array {
  return addon().chacha20Block(key, counter, nonce);
}
