/** Exact two-sided binomial test p-value (twice the smaller tail, capped at 1). */
export function binomialTwoSidedP(k: number, n: number, p: number): number {
  const lf = new Float64Array(n + 2);
  for (let i = 2; i <= n + 1; i++) lf[i] = lf[i - 1] + Math.log(i);
  const logPmf = (i: number) =>
    lf[n] - lf[i] - lf[n - i] + i * Math.log(p) + (n - i) * Math.log1p(-p);
  let lo = 0;
  let hi = 0;
  for (let i = 0; i <= k; i++) lo += Math.exp(logPmf(i));
  for (let i = k; i <= n; i++) hi += Math.exp(logPmf(i));
  return Math.min(1, 2 * Math.min(lo, hi));
}
