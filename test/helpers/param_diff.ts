import { Parameter } from '../../lib/nn';

/**
 * The largest element difference between two models' parameters (`a` against `b`, in the same
 * order) and the largest move of `a` from `start`: "same weights, and they did change".
 */
export function paramDiff(
  a: Parameter[],
  b: Parameter[],
  start: Parameter[],
): { maxDiff: number; maxMove: number } {
  let maxDiff = 0;
  let maxMove = 0;
  a.forEach((p, i) =>
    p.data.forEach((v, j) => {
      maxDiff = Math.max(maxDiff, Math.abs(v - b[i].data[j]));
      maxMove = Math.max(maxMove, Math.abs(v - start[i].data[j]));
    }),
  );
  return { maxDiff, maxMove };
}
