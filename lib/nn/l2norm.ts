/**
 * L2 normalization of the last dimension: y = x / sqrt(max(|x|^2, eps)).
 */
import { requireNumber } from '../validate';
import { Module, bsf, checkGradShape, noForward } from './module';
import { Tensor } from './tensor';

/** Scales each feature vector to unit length. */
export class L2Normalize extends Module {
  /** Lower bound of the squared norm (default 1e-12): smaller rows are scaled by 1/sqrt(eps). */
  readonly eps: number;
  private saved: { x: Tensor; y: Float32Array; inv: Float64Array; clamped: Uint8Array } | null =
    null;

  /** @param eps - lower bound of the squared norm (default 1e-12, as TF's l2_normalize) */
  constructor(eps = 1e-12) {
    super();
    this.eps = requireNumber('eps', eps, { greaterThan: 0 });
  }

  forward(x: Tensor): Tensor {
    const { batch, seq, feat } = bsf(x, 'L2Normalize.forward');
    const rows = batch * seq;
    const y = new Float32Array(x.size);
    const inv = new Float64Array(rows);
    const clamped = new Uint8Array(rows);
    for (let r = 0; r < rows; r++) {
      const o = r * feat;
      let s = 0;
      for (let j = 0; j < feat; j++) s += x.data[o + j] * x.data[o + j];
      if (s < this.eps) clamped[r] = 1;
      const k = 1 / Math.sqrt(Math.max(s, this.eps));
      inv[r] = k;
      for (let j = 0; j < feat; j++) y[o + j] = x.data[o + j] * k;
    }
    this.saved = this.training ? { x, y, inv, clamped } : null;
    return new Tensor(y, x.shape);
  }

  backward(gradOut: Tensor): Tensor {
    const sv = this.saved;
    if (!sv) throw noForward('L2Normalize.backward');
    checkGradShape(gradOut, sv.x.shape, 'L2Normalize.backward');
    const feat = sv.x.features;
    const rows = sv.inv.length;
    const g = gradOut.data;
    const gi = new Float32Array(g.length);
    for (let r = 0; r < rows; r++) {
      const o = r * feat;
      const k = sv.inv[r];
      if (sv.clamped[r]) {
        for (let j = 0; j < feat; j++) gi[o + j] = g[o + j] * k;
        continue;
      }
      let dot = 0;
      for (let j = 0; j < feat; j++) dot += sv.y[o + j] * g[o + j];
      for (let j = 0; j < feat; j++) gi[o + j] = k * (g[o + j] - sv.y[o + j] * dot);
    }
    this.saved = null;
    return new Tensor(gi, sv.x.shape);
  }
}
