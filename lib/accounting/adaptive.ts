/**
 * Noise for adaptive (quantile) clipping (Andrew et al., NeurIPS 2021): the
 * clipped-count release and the gradient sum share the privacy budget.
 */
import { InvalidArgumentError } from '../errors';
import { requireNumber } from '../validate';

/**
 * The noise multiplier the gradient sum needs so that, together with the
 * count release of standard deviation `countNoiseStd` (the centred count has
 * sensitivity 1/2), the pair costs as much as one Gaussian mechanism with
 * `targetNoiseMultiplier`:  z = (sigma_D^-2 + (2 sigma_b)^-2)^(-1/2), solved
 * for sigma_D.
 * @throws RangeError when 2 * countNoiseStd <= targetNoiseMultiplier (the count alone would exceed the budget)
 */
export function adaptiveClippingNoiseMultiplier(opts: {
  targetNoiseMultiplier: number;
  countNoiseStd: number;
}): number {
  const { targetNoiseMultiplier: z, countNoiseStd: sb } = opts ?? ({} as never);
  requireNumber('targetNoiseMultiplier', z, { greaterThan: 0 });
  requireNumber('countNoiseStd', sb, { greaterThan: 0 });
  const rest = 1 / (z * z) - 1 / (4 * sb * sb);
  if (!(rest > 0)) {
    throw new InvalidArgumentError(
      'countNoiseStd',
      `countNoiseStd ${sb} is too small for targetNoiseMultiplier ${z}: the count release alone uses the whole budget (need countNoiseStd > ${z / 2})`,
    );
  }
  return 1 / Math.sqrt(rest);
}
