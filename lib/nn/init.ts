/**
 * Weight initialization.  Initial weights are public (they do not depend on
 * the private data), so a small seedable PRNG is enough here; the DP noise and
 * the sampler use the cryptographic `Rng` instead.
 */

/** A small seedable PRNG (SplitMix32-style) for initialization and dropout masks. */
export class InitRandom {
  private s: number;
  constructor(seed?: number) {
    this.s = (seed ?? Math.floor(Math.random() * 2 ** 32)) >>> 0;
  }
  /** Uniform in [0, 1). */
  next(): number {
    this.s = (this.s + 0x9e3779b9) >>> 0;
    let z = this.s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    z = (z ^ (z >>> 16)) >>> 0;
    return z / 2 ** 32;
  }
  /** Standard normal (Box-Muller). */
  normal(): number {
    const u = 1 - this.next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * this.next());
  }
}

/** Fills `out` with U(-bound, bound). */
export function uniformFill(out: Float32Array, bound: number, rnd: InitRandom): Float32Array {
  for (let i = 0; i < out.length; i++) out[i] = (2 * rnd.next() - 1) * bound;
  return out;
}

/** Fills `out` with N(0, std^2). */
export function normalFill(out: Float32Array, std: number, rnd: InitRandom): Float32Array {
  for (let i = 0; i < out.length; i++) out[i] = std * rnd.normal();
  return out;
}

/**
 * Kaiming-uniform with negative slope `a` (PyTorch's `kaiming_uniform_`):
 * bound = sqrt(6 / ((1 + a^2) fanIn)); a = sqrt(5) gives 1/sqrt(fanIn).
 */
export function kaimingUniform(
  out: Float32Array,
  fanIn: number,
  a: number,
  rnd: InitRandom,
): Float32Array {
  const bound = fanIn > 0 ? Math.sqrt(6 / ((1 + a * a) * fanIn)) : 0;
  return uniformFill(out, bound, rnd);
}
