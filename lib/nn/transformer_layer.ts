/**
 * Transformer encoder layer over `[batch, seq, d]` with a padding mask:
 * multi-head attention and a position-wise feed-forward network, each with a
 * residual connection, in the pre-LN arrangement (USE-Lite, GPT-2:
 * `h = x + Attn(LN1(x))`, `y = h + FFN(LN2(h))`) or the post-LN one (BERT:
 * `h = LN1(x + Attn(x))`, `y = LN2(h + FFN(h))`).  When the layer widens
 * (dIn != dModel) the residual goes through a learned projection.
 *
 * Padding rows: the feed-forward output and a projected residual are zero
 * there (the TF graph of USE-Lite gathers the real rows only), and their
 * gradients are dropped, so padding contributes nothing to any gradient.
 */
import { requirePositiveInt } from '../validate';
import { InvalidArgumentError } from '../errors';
import { ReLU, GELU } from './activations';
import { MultiHeadAttention, Projection } from './attention';
import { LayerNorm } from './layer_norm';
import { Linear } from './linear';
import { LoraLinear } from './lora_linear';
import { Module, bsf, checkGradShape, noForward, noInputGrad } from './module';
import { SequenceMask, checkMask, sequenceInput, zeroPadding } from './sequence_mask';
import { Tensor } from './tensor';
import { scratch } from './workspace';
import { addInPlace, tokenMean, tokenSpread } from '../kernels/elementwise';

/** Position-wise feed-forward: fc2(act(fc1(x))), zero on padding rows. */
export class FeedForward extends Module {
  /** First matrix (PEFT name `fc1`). */
  fc1: Projection;
  /** Second matrix (`fc2`). */
  fc2: Projection;
  /** Activation between fc1 and fc2 (ReLU by default, or GELU). */
  readonly act: ReLU | GELU;
  private mask: SequenceMask | null = null;
  private savedMask: SequenceMask | null = null;
  private savedShape: number[] | null = null;
  /** After {@link forwardPooled}: real tokens per sequence (null after forward). */
  private savedCounts: Float64Array | null = null;

  /**
   * @param fc1 - d -> dFF
   * @param fc2 - dFF -> d
   * @param activation - 'relu' (default) or 'gelu'
   */
  constructor(fc1: Projection, fc2: Projection, activation: 'relu' | 'gelu' = 'relu') {
    super();
    if (fc1.outFeatures !== fc2.inFeatures)
      throw new InvalidArgumentError(
        'fc2',
        `must take ${fc1.outFeatures} features (fc1's output), got ${fc2.inFeatures}`,
      );
    this.fc1 = fc1;
    this.fc2 = fc2;
    this.act = activation === 'gelu' ? new GELU() : new ReLU();
  }

  children(): Array<[string, Module]> {
    return [
      ['fc1', this.fc1],
      ['act', this.act],
      ['fc2', this.fc2],
    ];
  }

  /** Replaces fc1 or fc2 (used to wrap it with LoRA). */
  setChild(name: string, m: Projection): void {
    if (name === 'fc1') this.fc1 = m;
    else if (name === 'fc2') this.fc2 = m;
    else throw new InvalidArgumentError('name', `no projection named ${name}`);
  }

  /** Sets the padding mask. */
  setMask(mask: SequenceMask | null): void {
    this.mask = mask;
  }

  forward(x: Tensor): Tensor {
    const { batch, seq } = bsf(x, 'FeedForward.forward', this.fc1.inFeatures);
    if (this.mask) checkMask(this.mask, batch, seq, 'FeedForward.forward');
    // fc1's output is read by nothing else: the activation may overwrite it.
    const y = this.fc2.forward(this.act.forward(this.fc1.forward(x), true));
    zeroPadding(y.data, this.mask, this.fc2.outFeatures);
    this.savedMask = this.mask;
    this.savedShape = this.training ? y.shape : null;
    this.savedCounts = null;
    return y;
  }

  /**
   * Parameter gradients of fc1 and fc2, and dLoss/dx unless `inputGrad` is false (then fc1's
   * input-gradient product is skipped and an empty tensor is returned).
   */
  backward(gradOut: Tensor, inputGrad = true): Tensor {
    if (!this.savedShape || this.savedCounts) throw noForward('FeedForward.backward');
    checkGradShape(gradOut, this.savedShape, 'FeedForward.backward');
    const g = new Tensor(scratch(gradOut.size), gradOut.shape);
    g.data.set(gradOut.data);
    zeroPadding(g.data, this.savedMask, this.fc2.outFeatures);
    const gi = this.fc1.backward(this.act.backward(this.fc2.backward(g)), inputGrad);
    // fc1's input rows on padding get zero gradient already (zero g through a
    // linear map and an elementwise activation).
    this.savedShape = null;
    return gi;
  }

  /**
   * `fc2(mean_t act(fc1(x_t)))` per sequence, the mean over its real tokens (`counts`
   * of them), `[batch, dModel]`; 0 for a sequence without real tokens (the mean of the
   * zeroed padding outputs).  Equal to the masked mean of {@link forward}'s output when fc2
   * is affine (see TransformerLayer.forwardPooled).
   */
  forwardPooled(x: Tensor, counts: Float64Array): Tensor {
    const { batch, seq } = bsf(x, 'FeedForward.forwardPooled', this.fc1.inFeatures);
    if (this.mask) checkMask(this.mask, batch, seq, 'FeedForward.forwardPooled');
    const r = this.act.forward(this.fc1.forward(x), true).data;
    const dFF = this.fc1.outFeatures;
    const mean = scratch(batch * dFF);
    tokenMean(r, this.mask ? this.mask.valid : null, batch, seq, dFF, mean, false);
    const y = this.fc2.forward(new Tensor(mean, [batch, dFF]));
    const d = this.fc2.outFeatures;
    for (let b = 0; b < batch; b++) if (counts[b] === 0) y.data.fill(0, b * d, (b + 1) * d);
    this.savedMask = this.mask;
    this.savedShape = this.training ? x.shape : null;
    this.savedCounts = this.training ? counts : null;
    return y;
  }

  /**
   * Backward of {@link forwardPooled}: `gradOut` `[batch, dModel]` to dLoss/dx `[batch, seq, d]`
   * (an empty tensor when `inputGrad` is false, as in {@link backward}).
   */
  backwardPooled(gradOut: Tensor, inputGrad = true): Tensor {
    const counts = this.savedCounts;
    if (!this.savedShape || !counts) throw noForward('FeedForward.backwardPooled');
    const [batch, seq] = this.savedShape;
    const d = this.fc2.outFeatures;
    checkGradShape(gradOut, [batch, d], 'FeedForward.backwardPooled');
    const g = new Tensor(scratch(gradOut.size), gradOut.shape);
    g.data.set(gradOut.data);
    for (let b = 0; b < batch; b++) if (counts[b] === 0) g.data.fill(0, b * d, (b + 1) * d);
    const gm = this.fc2.backward(g).data; // [batch, dFF]
    // Each real token's activation gets its sequence's gradient / count; padding gets 0.
    const dFF = this.fc1.outFeatures;
    const gr = scratch(batch * seq * dFF);
    const sm = this.savedMask;
    tokenSpread(gm, sm ? sm.valid : null, batch, seq, dFF, gr, false);
    const gi = this.fc1.backward(this.act.backward(new Tensor(gr, [batch, seq, dFF])), inputGrad);
    this.savedShape = null;
    this.savedCounts = null;
    return gi;
  }
}

/** Options of {@link TransformerLayer}. */
export interface TransformerLayerOptions {
  /** Input width. */
  dIn: number;
  /** Output (model) width; a residual projection is added when it differs from dIn. */
  dModel: number;
  /** Attention width (default dIn for pre-LN, dModel otherwise). */
  dAttn?: number;
  /** Number of attention heads (divides the attention width). */
  heads: number;
  /** Feed-forward hidden width. */
  dFF: number;
  /** 'pre' (default) or 'post' layer normalization. */
  norm?: 'pre' | 'post';
  /** Feed-forward activation (default 'relu'). */
  activation?: 'relu' | 'gelu';
  /** LayerNorm epsilon (default 1e-6). */
  lnEps?: number;
  /** Seed of the default sub-blocks' initialization (public randomness). */
  seed?: number;
  /** Ready-made sub-blocks (loaded weights); defaults are freshly initialized. */
  attention?: MultiHeadAttention;
  /** Ready-made feed-forward block, dModel -> dFF -> dModel. */
  ffn?: FeedForward;
  /** Ready-made residual projection, dIn -> dModel (used only when dIn differs from dModel). */
  residual?: Linear;
  /** Ready-made first LayerNorm (width dIn for pre-LN, dModel for post-LN). */
  ln1?: LayerNorm;
  /** Ready-made second LayerNorm (width dModel). */
  ln2?: LayerNorm;
}

/** One transformer encoder layer (see the module comment). */
export class TransformerLayer extends Module {
  /** Input width (features of x, [batch, seq, dIn]). */
  readonly dIn: number;
  /** Output (model) width: the result is [batch, seq, dModel]. */
  readonly dModel: number;
  /** Where the LayerNorms sit: 'pre' (before each sub-block) or 'post' (after each residual). */
  readonly norm: 'pre' | 'post';
  /** The multi-head attention sub-block, dIn -> dModel. */
  readonly attention: MultiHeadAttention;
  /** The position-wise feed-forward sub-block, dModel -> dModel. */
  readonly ffn: FeedForward;
  /** Learned residual projection dIn -> dModel, or null when dIn = dModel (identity residual). */
  readonly residual: Linear | null;
  /** LayerNorm of the attention sub-block (its input for pre-LN, after the residual for post). */
  readonly ln1: LayerNorm;
  /** LayerNorm of the feed-forward sub-block (its input for pre-LN, the output for post-LN). */
  readonly ln2: LayerNorm;
  private mask: SequenceMask | null = null;
  private saved: {
    shape: number[];
    mask: SequenceMask | null;
    /** Real tokens per sequence after {@link forwardPooled}; null after forward. */
    pooled: Float64Array | null;
    /** Whether only the feed-forward sub-block ran ({@link forwardFfn} / {@link forwardFfnPooled}). */
    ffnOnly: boolean;
  } | null = null;

  constructor(o: TransformerLayerOptions) {
    super();
    for (const [name, v] of Object.entries({
      dIn: o.dIn,
      dModel: o.dModel,
      heads: o.heads,
      dFF: o.dFF,
    }))
      requirePositiveInt(name, v);
    this.dIn = o.dIn;
    this.dModel = o.dModel;
    this.norm = o.norm ?? 'pre';
    if (this.norm === 'post' && o.dIn !== o.dModel)
      throw new InvalidArgumentError(
        'dModel',
        'a post-LN layer must keep its width (dIn = dModel)',
      );
    const eps = o.lnEps ?? 1e-6;
    const dAttn = o.dAttn ?? o.dIn;
    const seed = (i: number) => (o.seed === undefined ? undefined : o.seed + i);
    this.attention =
      o.attention ??
      new MultiHeadAttention({ dIn: o.dIn, dAttn, dOut: o.dModel, heads: o.heads, seed: seed(0) });
    this.ffn =
      o.ffn ??
      new FeedForward(
        new Linear(o.dModel, o.dFF, { seed: seed(4) }),
        new Linear(o.dFF, o.dModel, { seed: seed(5) }),
        o.activation,
      );
    this.residual =
      o.dIn !== o.dModel ? (o.residual ?? new Linear(o.dIn, o.dModel, { seed: seed(6) })) : null;
    const lnAttnWidth = this.norm === 'pre' ? o.dIn : o.dModel;
    this.ln1 = o.ln1 ?? new LayerNorm(lnAttnWidth, { eps });
    this.ln2 = o.ln2 ?? new LayerNorm(o.dModel, { eps });
  }

  children(): Array<[string, Module]> {
    const out: Array<[string, Module]> = [
      ['ln1', this.ln1],
      ['attention', this.attention],
    ];
    if (this.residual) out.push(['residual', this.residual]);
    out.push(['ln2', this.ln2], ['ffn', this.ffn]);
    return out;
  }

  /** Sets the padding mask on this layer and its attention and feed-forward blocks. */
  setMask(mask: SequenceMask | null): void {
    this.mask = mask;
    this.attention.setMask(mask);
    this.ffn.setMask(mask);
  }

  forward(x: Tensor): Tensor {
    sequenceInput(x, this.mask, 'TransformerLayer.forward', this.dIn);
    let y: Tensor;
    if (this.norm === 'pre') {
      const a = this.preAttention(x);
      const h = a.data;
      const f = this.ffn.forward(this.ln2.forward(a)).data;
      addInPlace(f, h);
      y = new Tensor(f, a.shape);
    } else {
      const a = this.attention.forward(x).data;
      addInPlace(a, x.data);
      const h = this.ln1.forward(new Tensor(a, x.shape));
      const f = this.ffn.forward(h).data;
      addInPlace(f, h.data);
      y = this.ln2.forward(new Tensor(f, x.shape));
    }
    this.saved = this.training
      ? { shape: x.shape, mask: this.mask, pooled: null, ffnOnly: false }
      : null;
    return y;
  }

  /** Pre-LN `h = res(x) + Attn(LN1(x))` (the projected residual zero on padding rows). */
  private preAttention(x: Tensor): Tensor {
    const a = this.attention.forward(this.ln1.forward(x));
    const h = a.data;
    if (this.residual) {
      const r = this.residual.forward(x).data;
      zeroPadding(r, this.mask, this.dModel);
      addInPlace(h, r);
    } else {
      addInPlace(h, x.data);
    }
    return a;
  }

  /**
   * True when {@link forwardPooled} applies: a pre-LN layer whose fc2 is affine in its input
   * (no active LoRA dropout, which would draw a mask per token).
   */
  canPool(): boolean {
    const fc2 = this.ffn.fc2;
    return this.norm === 'pre' && !(fc2 instanceof LoraLinear && fc2.dropout > 0 && fc2.training);
  }

  /**
   * The layer followed by a masked mean over the sequence (as {@link MeanPooling}: the mean
   * of the real tokens, 0 for a sequence without any), `[batch, seq, dIn]` to
   * `[batch, dModel]`, with fc2 applied once per sequence to the mean of its input rather
   * than to every token: `mean_t (h_t + fc2(r_t)) = mean_t h_t + fc2(mean_t r_t)` as fc2 is
   * affine. This saves fc2's product over all tokens (and its input gradient in backward);
   * fc2's per-sample gradients are those of a one-token input, the same tensor.  Requires
   * {@link canPool}; backward with {@link backwardPooled}.
   */
  forwardPooled(x: Tensor): Tensor {
    const { batch, seq } = sequenceInput(x, this.mask, 'TransformerLayer.forwardPooled', this.dIn);
    if (!this.canPool())
      throw new InvalidArgumentError('norm', 'forwardPooled needs a pre-LN layer (see canPool)');
    return this.pooledFfn(this.preAttention(x), batch, seq, x.shape, false);
  }

  /**
   * `mean_t h_t + fc2(mean_t act(fc1(LN2(h_t))))` over the real tokens, `[batch, dModel]`; saves
   * for {@link backwardPooled} the input shape `shape` and whether the run started at `h`.
   */
  private pooledFfn(
    h: Tensor,
    batch: number,
    seq: number,
    shape: number[],
    ffnOnly: boolean,
  ): Tensor {
    const counts = validCounts(this.mask, batch, seq);
    const y = this.ffn.forwardPooled(this.ln2.forward(h), counts);
    // y += mean of h over the real tokens
    tokenMean(h.data, this.mask ? this.mask.valid : null, batch, seq, this.dModel, y.data, true);
    this.saved = this.training ? { shape, mask: this.mask, pooled: counts, ffnOnly } : null;
    return y;
  }

  /**
   * The attention sub-block alone (pre-LN): `h = res(x) + Attn(LN1(x))`, `[batch, seq, dIn]` to
   * `[batch, seq, dModel]`; the projected residual is zero on padding rows.  With
   * {@link forwardFfn} it splits {@link forward} in two, so that a model training only the
   * feed-forward sub-block can run this part once per text and cache it.  Saves nothing for
   * backward (run it in eval mode or on frozen weights).
   *
   * @throws InvalidArgumentError (`norm`) for a post-LN layer
   */
  attentionBlock(x: Tensor): Tensor {
    sequenceInput(x, this.mask, 'TransformerLayer.attentionBlock', this.dIn);
    this.requirePreLn('attentionBlock');
    return this.preAttention(x);
  }

  /**
   * The feed-forward sub-block alone (pre-LN): `y = h + FFN(LN2(h))` on `h` `[batch, seq,
   * dModel]` (the output of {@link attentionBlock}); `forwardFfn(attentionBlock(x))` equals
   * `forward(x)`.  Backward with {@link backward}, which then stops at `h`.
   *
   * @throws InvalidArgumentError (`norm`) for a post-LN layer
   */
  forwardFfn(h: Tensor): Tensor {
    sequenceInput(h, this.mask, 'TransformerLayer.forwardFfn', this.dModel);
    this.requirePreLn('forwardFfn');
    const f = this.ffn.forward(this.ln2.forward(h)).data;
    addInPlace(f, h.data);
    this.saved = this.training
      ? { shape: h.shape, mask: this.mask, pooled: null, ffnOnly: true }
      : null;
    return new Tensor(f, h.shape);
  }

  /**
   * {@link forwardFfn} followed by the masked mean over the sequence, with fc2 applied once
   * per sequence as in {@link forwardPooled} (`[batch, seq, dModel]` to `[batch, dModel]`);
   * `forwardFfnPooled(attentionBlock(x))` equals `forwardPooled(x)`.  Requires
   * {@link canPool}; backward with {@link backwardPooled}, which then stops at `h`.
   */
  forwardFfnPooled(h: Tensor): Tensor {
    const { batch, seq } = sequenceInput(
      h,
      this.mask,
      'TransformerLayer.forwardFfnPooled',
      this.dModel,
    );
    if (!this.canPool())
      throw new InvalidArgumentError('norm', 'forwardFfnPooled needs a pre-LN layer (see canPool)');
    return this.pooledFfn(h, batch, seq, h.shape, true);
  }

  private requirePreLn(what: string): void {
    if (this.norm !== 'pre')
      throw new InvalidArgumentError('norm', `${what} needs a pre-LN layer, this one is post-LN`);
  }

  /**
   * Parameter gradients of the layer, and the input gradient unless `inputGrad` is false
   * (pre-LN: then the products that only feed the input gradient are skipped, as for the
   * first trained layer of a model fed with cached hidden states, and an empty tensor is
   * returned; post-LN computes it anyway).
   */
  backward(gradOut: Tensor, inputGrad = true): Tensor {
    const sv = this.saved;
    if (!sv || sv.pooled) throw noForward('TransformerLayer.backward');
    const [batch, seq] = sv.shape;
    checkGradShape(gradOut, [batch, seq, this.dModel], 'TransformerLayer.backward');
    let gx: Float32Array;
    if (sv.ffnOnly)
      return this.ffnOnlyBackward(
        this.ffn.backward(gradOut, this.ffnInputGrad(inputGrad)),
        (gh) => addInPlace(gh, gradOut.data),
        inputGrad,
      );
    if (this.norm === 'pre') {
      // y = h + FFN(LN2(h))
      const gh = this.ln2.backward(this.ffn.backward(gradOut)).data;
      const go = gradOut.data;
      addInPlace(gh, go);
      return this.preAttentionBackward(gh, inputGrad);
    } else {
      const gs = this.ln2.backward(gradOut);
      const gh = this.ln1.backward(
        (() => {
          const t = this.ffn.backward(gs).data;
          addInPlace(t, gs.data);
          return new Tensor(t, gs.shape);
        })(),
      );
      gx = this.attention.backward(gh).data;
      addInPlace(gx, gh.data);
    }
    this.saved = null;
    return new Tensor(gx, sv.shape);
  }

  /** Backward of {@link forwardPooled}: `gradOut` is `[batch, dModel]`. */
  backwardPooled(gradOut: Tensor, inputGrad = true): Tensor {
    const sv = this.saved;
    if (!sv || !sv.pooled) throw noForward('TransformerLayer.backwardPooled');
    const [batch, seq] = sv.shape;
    const d = this.dModel;
    checkGradShape(gradOut, [batch, d], 'TransformerLayer.backwardPooled');
    // The mean of h: each real token gets gradOut / count.
    const spread = (gh: Float32Array) =>
      tokenSpread(gradOut.data, sv.mask ? sv.mask.valid : null, batch, seq, d, gh, true);
    if (sv.ffnOnly)
      return this.ffnOnlyBackward(
        this.ffn.backwardPooled(gradOut, this.ffnInputGrad(inputGrad)),
        spread,
        inputGrad,
      );
    const gh = this.ln2.backward(this.ffn.backwardPooled(gradOut)).data;
    spread(gh);
    return this.preAttentionBackward(gh, inputGrad);
  }

  private ln2Trains(): boolean {
    return this.ln2.trainableParameters().length > 0;
  }

  /** Whether the FFN must compute dLoss/d(LN2 output): for the input gradient or LN2's own. */
  private ffnInputGrad(inputGrad: boolean): boolean {
    return inputGrad || this.ln2Trains();
  }

  /**
   * Backward of {@link forwardFfn} / {@link forwardFfnPooled} given the FFN's input gradient `gf`
   * (empty when neither the input gradient nor LN2's is wanted): LN2's backward, then
   * `addResidual` adds the residual path's gradient to dLoss/dh; clears the saved state.
   */
  private ffnOnlyBackward(
    gf: Tensor,
    addResidual: (gh: Float32Array) => void,
    inputGrad: boolean,
  ): Tensor {
    const sv = this.saved!;
    this.saved = null;
    if (!inputGrad && !this.ln2Trains()) return noInputGrad();
    const gh = this.ln2.backward(gf).data;
    if (!inputGrad) return noInputGrad();
    addResidual(gh);
    return new Tensor(gh, sv.shape);
  }

  /** Backward of {@link preAttention} given dLoss/dh (`gh`, overwritten); clears the saved state. */
  private preAttentionBackward(gh: Float32Array, inputGrad: boolean): Tensor {
    const sv = this.saved!;
    const shape = [sv.shape[0], sv.shape[1], this.dModel];
    const ghT = new Tensor(gh, shape);
    this.saved = null;
    if (!inputGrad) {
      // Only parameter gradients: LN1's backward runs only when gamma or beta trains.
      if (this.ln1.trainableParameters().length > 0)
        this.ln1.backward(this.attention.backward(ghT));
      else this.attention.backward(ghT, false);
      if (this.residual) {
        zeroPadding(gh, sv.mask, this.dModel);
        this.residual.backward(ghT, false);
      }
      return noInputGrad();
    }
    const gx = this.ln1.backward(this.attention.backward(ghT)).data;
    if (this.residual) {
      const gr = scratch(gh.length);
      gr.set(gh);
      zeroPadding(gr, sv.mask, this.dModel);
      const g2 = this.residual.backward(new Tensor(gr, shape)).data;
      addInPlace(gx, g2);
    } else {
      addInPlace(gx, gh);
    }
    return new Tensor(gx, sv.shape);
  }
}

/** Real tokens of each sequence (`seq` each without a mask). */
function validCounts(mask: SequenceMask | null, batch: number, seq: number): Float64Array {
  const c = new Float64Array(batch);
  for (let b = 0; b < batch; b++) {
    if (!mask) {
      c[b] = seq;
      continue;
    }
    let n = 0;
    for (let t = 0; t < seq; t++) n += mask.valid[b * seq + t];
    c[b] = n;
  }
  return c;
}
