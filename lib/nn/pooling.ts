/**
 * Masked mean pooling over the sequence: `[batch, seq, f]` to `[batch, f]`,
 * the mean over real tokens (a sequence with none pools to 0).  Padding gets
 * exactly zero gradient.
 */
import { Module, checkGradShape, noForward } from './module';
import { SequenceMask, sequenceInput } from './sequence_mask';
import { Tensor } from './tensor';
import { scratch } from './workspace';

/** Mean over the real tokens of each sequence. */
export class MeanPooling extends Module {
  private mask: SequenceMask | null = null;
  private saved: { shape: number[]; counts: Float64Array; mask: SequenceMask | null } | null = null;

  /** Sets the padding mask. */
  setMask(mask: SequenceMask | null): void {
    this.mask = mask;
  }

  forward(x: Tensor): Tensor {
    const mask = this.mask;
    const { batch, seq, feat } = sequenceInput(x, mask, 'MeanPooling.forward');
    const y = new Float32Array(batch * feat);
    const counts = new Float64Array(batch);
    const acc = new Float64Array(feat);
    for (let b = 0; b < batch; b++) {
      acc.fill(0);
      let c = 0;
      for (let t = 0; t < seq; t++) {
        if (mask && !mask.valid[b * seq + t]) continue;
        c++;
        const o = (b * seq + t) * feat;
        for (let j = 0; j < feat; j++) acc[j] += x.data[o + j];
      }
      counts[b] = c;
      const inv = 1 / Math.max(c, 1);
      for (let j = 0; j < feat; j++) y[b * feat + j] = acc[j] * inv;
    }
    this.saved = this.training ? { shape: x.shape, counts, mask } : null;
    return new Tensor(y, [batch, feat]);
  }

  backward(gradOut: Tensor): Tensor {
    const sv = this.saved;
    if (!sv) throw noForward('MeanPooling.backward');
    const [batch, seq, feat] = sv.shape;
    checkGradShape(gradOut, [batch, feat], 'MeanPooling.backward');
    const gi = scratch(batch * seq * feat);
    for (let b = 0; b < batch; b++) {
      const inv = 1 / Math.max(sv.counts[b], 1);
      for (let t = 0; t < seq; t++) {
        const o = (b * seq + t) * feat;
        if (sv.mask && !sv.mask.valid[b * seq + t]) {
          gi.fill(0, o, o + feat);
          continue;
        }
        for (let j = 0; j < feat; j++) gi[o + j] = gradOut.data[b * feat + j] * inv;
      }
    }
    this.saved = null;
    return new Tensor(gi, sv.shape);
  }
}
