/**
 * A text classifier on USE-Lite: the encoder (frozen, optionally with LoRA
 * adapters) and a trainable linear head on the sentence embedding (the
 * L2-normalized output).  Layers below `startLayer` are frozen and can be run
 * once per text and cached ({@link UseLiteClassifier.encodePrefix}); training
 * then starts from those hidden states.
 */
import { InvalidArgumentError, InvalidStateError } from '../../errors';
import { requireInt } from '../../validate';
import { Linear } from '../../nn/linear';
import { Module, noInputGrad } from '../../nn/module';
import { SequenceMask, maskFromLengths } from '../../nn/sequence_mask';
import { Tensor } from '../../nn/tensor';
import { Workspace, hasPendingCapture } from '../../nn/workspace';
import { USE_LITE_DIM, UseLiteEncoder, padTokens } from './model';

/** Options of {@link UseLiteClassifier}. */
export interface UseLiteClassifierOptions {
  /** Number of classes: the head's output width. */
  classes: number;
  /** First layer that runs in training (default 0: the whole encoder). */
  startLayer?: number;
  /** Initial head weight [classes, 512] row-major (default: zeros). */
  headWeight?: Float32Array;
  /** Initial head bias [classes] (default: zeros). */
  headBias?: Float32Array;
}

/** Encoder + linear head; forward takes ids `[B, T]` (startLayer 0) or hidden states `[B, T, d]`. */
export class UseLiteClassifier extends Module {
  /** The USE-Lite encoder (frozen; its projections may be wrapped with LoRA). */
  readonly encoder: UseLiteEncoder;
  /** Trainable linear head: sentence embedding (512) -> one logit per class. */
  readonly head: Linear;
  /** First encoder layer forward runs, in [0, layers.length]; those below are the prefix. */
  readonly startLayer: number;
  private mask: SequenceMask | null = null;
  /** Scratch memory reused by successive forward/backward passes (see nn/workspace). */
  private readonly workspace = new Workspace();
  /** Scratch memory of {@link encodePrefix}. */
  private readonly prefixWorkspace = new Workspace();
  /** The input buffer of {@link batchTensors} with `reuse`. */
  private inputBuf = new Float32Array(0);

  constructor(encoder: UseLiteEncoder, options: UseLiteClassifierOptions) {
    super();
    const start = requireInt('startLayer', options.startLayer ?? 0, {
      min: 0,
      max: encoder.layers.length,
    });
    this.encoder = encoder;
    this.startLayer = start;
    this.head = new Linear(USE_LITE_DIM, options.classes, {
      weight: options.headWeight ?? new Float32Array(options.classes * USE_LITE_DIM),
      biasData: options.headBias ?? new Float32Array(options.classes),
    });
  }

  children(): Array<[string, Module]> {
    return [
      ['encoder', this.encoder],
      ['head', this.head],
    ];
  }

  /** Sets the padding mask of the next forward. */
  setMask(mask: SequenceMask | null): void {
    this.mask = mask;
    this.encoder.setMask(mask);
  }

  /** Checks that nothing below startLayer is trainable (it would get no gradient). */
  checkFrozenPrefix(): void {
    const prefix: Module[] = [
      this.encoder.embedding,
      ...this.encoder.layers.slice(0, this.startLayer),
    ];
    for (const m of prefix)
      for (const [p, param] of m.namedParameters())
        if (param.requiresGrad)
          throw new InvalidArgumentError(
            'startLayer',
            `parameter ${p} below startLayer ${this.startLayer} is trainable`,
          );
  }

  forward(x: Tensor): Tensor {
    if (!this.mask) throw new InvalidStateError('UseLiteClassifier.forward: call setMask() first');
    const enc = this.encoder;
    // Intermediates live in the workspace; the sentence embedding (L2Normalize's output) and
    // the logits are new arrays.
    const z = this.workspace.run(this, true, () => {
      const h0 = this.startLayer === 0 ? enc.embedTokens(x) : x;
      return enc.headPooled(enc.poolFrom(h0, this.startLayer));
    });
    return this.head.forward(z);
  }

  backward(gradOut: Tensor, inputGrad = true): Tensor {
    const enc = this.encoder;
    const g = this.workspace.run(this, false, () =>
      // The first layer run computes an input gradient only when one is wanted.
      enc.poolFromBackward(
        enc.headPooledBackward(this.head.backward(gradOut)),
        this.startLayer,
        inputGrad,
      ),
    );
    // The gradient lives in the workspace: hand out a copy (or nothing when not wanted).
    return inputGrad ? g.clone() : noInputGrad();
  }

  /**
   * Runs the frozen prefix (embedding and layers below startLayer) on each
   * token list in eval mode; returns one `[len, d]` row block per text (real
   * tokens only), or the ids themselves when startLayer is 0.
   */
  encodePrefix(tokenLists: number[][], batchSize = 32): Float32Array[] {
    const enc = this.encoder;
    const d = this.startLayer === 0 ? 1 : enc.layers[this.startLayer - 1].dModel;
    if (this.startLayer === 0) return tokenLists.map((l) => Float32Array.from(l));
    const out: Float32Array[] = new Array<Float32Array>(tokenLists.length);
    const order = tokenLists
      .map((_, i) => i)
      .sort((a, b) => tokenLists[a].length - tokenLists[b].length);
    const was = enc.training;
    enc.eval();
    try {
      for (let s = 0; s < order.length; s += batchSize) {
        const idx = order.slice(s, s + batchSize);
        const b = padTokens(idx.map((i) => tokenLists[i]));
        enc.setMask(b.mask);
        const seq = b.ids.shape[1];
        // The prefix output lives in the workspace until the next pass: copied out here. A
        // workspace of its own, so that a training pass in flight keeps its buffers.
        this.prefixWorkspace.run(this, true, () => {
          const h = enc.runLayers(enc.embedTokens(b.ids), 0, this.startLayer).data;
          idx.forEach((i, r) => {
            out[i] = h.slice(r * seq * d, (r * seq + b.lengths[r]) * d);
          });
        });
      }
    } finally {
      enc.setMask(null);
      enc.train(was);
      this.prefixWorkspace.clear(); // the prefix runs once per text: free its memory
    }
    return out;
  }

  /**
   * The model input for examples whose prefix outputs are `rows` (from
   * {@link encodePrefix}): padded to the longest, with its mask set on the model.
   * With `reuse`, see {@link batchTensors}.
   */
  batchInput(rows: Float32Array[], reuse = false): Tensor {
    const { input, mask } = this.batchTensors(rows, reuse);
    this.setMask(mask);
    return input;
  }

  /**
   * The padded model input for examples whose prefix outputs are `rows`, and its padding mask
   * (not set on the model: see {@link batchInput} for that).
   *
   * @param reuse - write the hidden states into a buffer the classifier keeps for the next
   *   call with `reuse` (saves allocating, and the page faults of, a fresh `[B, T, d]` array
   *   per step): the returned input is then valid only until that call. Training loops that
   *   build one batch, run it forward and backward, then build the next use it. Ignored (a
   *   new array) while a per-sample capture is pending.
   */
  batchTensors(
    rows: Float32Array[],
    reuse = false,
  ): {
    /** `[B, T]` ids (startLayer 0, padding -1) or `[B, T, d]` hidden states (padding 0). */
    input: Tensor;
    /** Which positions are real tokens. */
    mask: SequenceMask;
  } {
    const enc = this.encoder;
    const d = this.startLayer === 0 ? 1 : enc.layers[this.startLayer - 1].dModel;
    const lengths = rows.map((r) => r.length / d);
    const seq = Math.max(1, ...lengths);
    const mask = maskFromLengths(lengths, seq);
    if (this.startLayer === 0) {
      const ids = new Float32Array(rows.length * seq).fill(-1);
      rows.forEach((r, b) => ids.set(r, b * seq));
      return { input: new Tensor(ids, [rows.length, seq]), mask };
    }
    const n = rows.length * seq * d;
    let x: Float32Array;
    if (reuse && !hasPendingCapture(this)) {
      if (this.inputBuf.length < n) this.inputBuf = new Float32Array(n);
      x = this.inputBuf.subarray(0, n);
      rows.forEach((r, b) => x.fill(0, b * seq * d + r.length, (b + 1) * seq * d));
    } else {
      x = new Float32Array(n);
    }
    rows.forEach((r, b) => x.set(r, b * seq * d));
    return { input: new Tensor(x, [rows.length, seq, d]), mask };
  }
}
