/**
 * Exact privacy curve of one release of the discrete Gaussian mechanism
 * (Canonne, Kamath, Steinke 2020) on an integer query.
 */
import { InvalidArgumentError } from '../errors';
import { requireInt, requireNumber } from '../validate';

/**
 * delta(eps) of one discrete Gaussian release N_Z(0, sigma^2) on an integer
 * query with sensitivity `sensitivity`: sum_x max(0, p(x) - e^eps p(x - D)),
 * with p the discrete Gaussian pmf (summed exactly over the integers where it
 * is not negligible). The two directions are symmetric.
 * @throws RangeError naming the argument for invalid input
 */
export function discreteGaussianDelta(
  sigmaSquared: number,
  sensitivity: number,
  epsilon: number,
): number {
  requireNumber('sigmaSquared', sigmaSquared, { greaterThan: 0 });
  requireInt('sensitivity', sensitivity, { min: 1 });
  requireNumber('epsilon', epsilon, { min: 0 });
  const sigma = Math.sqrt(sigmaSquared);
  const R = Math.ceil(40 * sigma) + sensitivity + 2; // e^{-800}: nothing beyond matters
  if (R > 5e7)
    throw new InvalidArgumentError(
      'sigmaSquared',
      `sigmaSquared ${sigmaSquared} is too large for the exact sum; use the continuous Gaussian bound`,
    );
  const w = (x: number) => Math.exp(-(x * x) / (2 * sigmaSquared));
  let norm = 0;
  for (let x = -R; x <= R; x++) norm += w(x);
  let d = 0;
  const e = Math.exp(epsilon);
  for (let x = -R; x <= R + sensitivity; x++) {
    const v = w(x) - e * w(x - sensitivity);
    if (v > 0) d += v;
  }
  return Math.min(1, d / norm);
}
