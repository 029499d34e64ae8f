/**
 * In-place radix-2 complex FFT on split real/imaginary Float64Arrays, used by
 * the PLD accountant to compose privacy loss distributions.
 */
import { InvalidArgumentError } from '../errors';

interface Plan {
  n: number;
  cos: Float64Array; // cos(2 pi k / n), k < n/2
  sin: Float64Array; // sin(2 pi k / n), k < n/2
  rev: Uint32Array; // bit-reversal permutation
}

const plans = new Map<number, Plan>();

function plan(n: number): Plan {
  let p = plans.get(n);
  if (p) return p;
  const half = n >> 1;
  const cos = new Float64Array(half);
  const sin = new Float64Array(half);
  for (let k = 0; k < half; k++) {
    // Use symmetric evaluation for accuracy: angles in [0, pi).
    const a = (2 * Math.PI * k) / n;
    cos[k] = Math.cos(a);
    sin[k] = Math.sin(a);
  }
  const bits = Math.round(Math.log2(n));
  const rev = new Uint32Array(n);
  for (let i = 0; i < n; i++) {
    let r = 0;
    for (let b = 0, x = i; b < bits; b++, x >>= 1) r = (r << 1) | (x & 1);
    rev[i] = r >>> 0;
  }
  p = { n, cos, sin, rev };
  if (plans.size > 8) plans.clear();
  plans.set(n, p);
  return p;
}

/** True when n is a power of two >= 1. */
export function isPowerOfTwo(n: number): boolean {
  return Number.isInteger(n) && n >= 1 && (n & (n - 1)) === 0;
}

/** Smallest power of two >= n (n >= 1; Infinity beyond 2^52 or for NaN). */
export function nextPowerOfTwo(n: number): number {
  if (!(n <= 2 ** 52)) return Infinity; // NaN and huge lengths: no FFT that long
  let p = 1;
  while (p < n) p *= 2;
  return p;
}

/**
 * In-place FFT of (re, im). Forward: X_k = sum_j x_j e^{-2 pi i jk/n};
 * inverse (inverse = true): x_j = (1/n) sum_k X_k e^{+2 pi i jk/n}.
 * The length must be a power of two.
 */
export function fft(re: Float64Array, im: Float64Array, inverse = false): void {
  const n = re.length;
  if (im.length !== n)
    throw new InvalidArgumentError('im', `im must have the length of re (${n}), got ${im.length}`);
  if (!isPowerOfTwo(n)) throw new Error(`internal: FFT length must be a power of two, got ${n}`);
  if (n === 1) return;
  const { cos, sin, rev } = plan(n);
  for (let i = 0; i < n; i++) {
    const j = rev[i];
    if (j > i) {
      let t = re[i];
      re[i] = re[j];
      re[j] = t;
      t = im[i];
      im[i] = im[j];
      im[j] = t;
    }
  }
  const sgn = inverse ? 1 : -1;
  const bits = Math.round(Math.log2(n));
  let q = 1; // half-size of the current radix-2 stage
  if (bits % 2 === 1) {
    // One plain radix-2 stage of size 2 (twiddle 1) so the rest pairs up.
    for (let a = 0; a < n; a += 2) {
      const xr = re[a + 1];
      const xi = im[a + 1];
      re[a + 1] = re[a] - xr;
      im[a + 1] = im[a] - xi;
      re[a] += xr;
      im[a] += xi;
    }
    q = 2;
  }
  // Two radix-2 stages at a time (sizes 2q and 4q): half the passes over memory.
  for (; q < n; q *= 4) {
    const size = 4 * q;
    const step2 = n / (2 * q); // twiddle stride of the size-2q stage
    const step4 = n / size; // twiddle stride of the size-4q stage
    for (let j = 0; j < q; j++) {
      const wr = cos[j * step2];
      const wi = sgn * sin[j * step2];
      const ur = cos[j * step4];
      const ui = sgn * sin[j * step4];
      // v = u * W_4^{1} = u * (sgn * i)
      const vr = -sgn * ui;
      const vi = sgn * ur;
      for (let a = j; a < n; a += size) {
        const b = a + q;
        const c = b + q;
        const d = c + q;
        // size-2q stage on (a, b) and (c, d) with twiddle w
        let tr = re[b] * wr - im[b] * wi;
        let ti = re[b] * wi + im[b] * wr;
        const y0r = re[a] + tr;
        const y0i = im[a] + ti;
        const y1r = re[a] - tr;
        const y1i = im[a] - ti;
        tr = re[d] * wr - im[d] * wi;
        ti = re[d] * wi + im[d] * wr;
        const y2r = re[c] + tr;
        const y2i = im[c] + ti;
        const y3r = re[c] - tr;
        const y3i = im[c] - ti;
        // size-4q stage: (y0, y2) with u, (y1, y3) with v
        tr = y2r * ur - y2i * ui;
        ti = y2r * ui + y2i * ur;
        re[a] = y0r + tr;
        im[a] = y0i + ti;
        re[c] = y0r - tr;
        im[c] = y0i - ti;
        tr = y3r * vr - y3i * vi;
        ti = y3r * vi + y3i * vr;
        re[b] = y1r + tr;
        im[b] = y1i + ti;
        re[d] = y1r - tr;
        im[d] = y1i - ti;
      }
    }
  }
  if (inverse) {
    const s = 1 / n;
    for (let i = 0; i < n; i++) {
      re[i] *= s;
      im[i] *= s;
    }
  }
}
