/**
 * Golden-section search for the minimum of a unimodal function, shared by
 * the (eps, delta) conversions and the PLD accountant's Chernoff bound.
 */

/** Result: the best point evaluated and its value. */
export interface GoldenSectionResult {
  x: number;
  f: number;
}

/**
 * Minimizes `f` on `[lo, hi]`. Stops after `iters` narrowing steps, or once
 * the bracket is narrower than `relTol * max(1, |a|)` (0 disables that test).
 * Returns the lowest value seen over every evaluation; callers for whom any
 * evaluated point gives a valid bound may use it directly.
 */
export function goldenSectionMin(
  f: (x: number) => number,
  lo: number,
  hi: number,
  iters: number,
  relTol = 0,
): GoldenSectionResult {
  const g = (Math.sqrt(5) - 1) / 2;
  let a = lo;
  let b = hi;
  let c = b - g * (b - a);
  let d = a + g * (b - a);
  let fc = f(c);
  let fd = f(d);
  const best: GoldenSectionResult = fc < fd ? { x: c, f: fc } : { x: d, f: fd };
  for (let i = 0; i < iters && b - a > relTol * Math.max(1, Math.abs(a)); i++) {
    if (fc < fd) {
      b = d;
      d = c;
      fd = fc;
      c = b - g * (b - a);
      fc = f(c);
      if (fc < best.f) {
        best.x = c;
        best.f = fc;
      }
    } else {
      a = c;
      c = d;
      fc = fd;
      d = a + g * (b - a);
      fd = f(d);
      if (fd < best.f) {
        best.x = d;
        best.f = fd;
      }
    }
  }
  return best;
}
