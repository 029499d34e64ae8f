/**
 * Token embedding lookup: ids `[batch, seq]` (float-coded integers, -1 for
 * padding) to `scale * E[id]` rows `[batch, seq, dim]`; padding rows are 0.
 * The table is frozen (dp-lora adapts the encoder with LoRA, not the table),
 * so backward only checks shapes and returns a zero gradient for the ids.
 */
import { InvalidArgumentError } from '../errors';
import { requireElementCount, requireLength, requirePositiveInt } from '../validate';
import { Module, checkGradShape, noForward } from './module';
import { Parameter, Tensor } from './tensor';
import { scratch } from './workspace';
import { gatherRows } from '../kernels/elementwise';

/** Options of {@link Embedding}. */
export interface EmbeddingOptions {
  /** Initial table [vocab, dim] (copied); default zeros. */
  weight?: Float32Array;
  /** Multiplier of the looked-up rows (default 1; USE-Lite uses 2). */
  scale?: number;
}

/** A frozen token-embedding table. */
export class Embedding extends Module {
  /** Number of rows of the table: ids are integers in [0, vocabSize). */
  readonly vocabSize: number;
  /** Width of each embedding row (the output is [batch, seq, dim]). */
  readonly dim: number;
  /** Multiplier of the looked-up rows (default 1). */
  readonly scale: number;
  /** The table, [vocabSize, dim], frozen (requiresGrad false). */
  readonly weight: Parameter;
  private savedShape: number[] | null = null;

  constructor(vocabSize: number, dim: number, options: EmbeddingOptions = {}) {
    super();
    requirePositiveInt('vocabSize', vocabSize);
    requirePositiveInt('dim', dim);
    requireElementCount('dim', [vocabSize, dim]);
    this.vocabSize = vocabSize;
    this.dim = dim;
    this.scale = options.scale ?? 1;
    const w = new Float32Array(vocabSize * dim);
    if (options.weight) {
      w.set(requireLength('weight', options.weight, w.length, `${vocabSize}x${dim}`));
    }
    this.weight = new Parameter(w, [vocabSize, dim], false);
  }

  ownParameters(): Array<[string, Parameter]> {
    return [['weight', this.weight]];
  }

  /** Looks up `ids` ([batch, seq], -1 = padding). */
  forward(ids: Tensor): Tensor {
    if (!(ids instanceof Tensor))
      throw new InvalidArgumentError('ids', 'Embedding.forward: must be a Tensor');
    if (ids.shape.length !== 2)
      throw new InvalidArgumentError(
        'ids',
        `must be [batch, seq], got ${JSON.stringify(ids.shape)}`,
      );
    if (this.weight.requiresGrad)
      throw new InvalidArgumentError('weight', 'Embedding tables are frozen in dp-lora');
    const [batch, seq] = ids.shape;
    const d = this.dim;
    const y = scratch(batch * seq * d);
    // Ids checked here (for an error naming the offending one), then gathered natively.
    for (let r = 0; r < batch * seq; r++) {
      const id = ids.data[r];
      if (id !== -1 && (!Number.isInteger(id) || id < 0 || id >= this.vocabSize))
        throw new InvalidArgumentError(
          `ids[${r}]`,
          `must be an integer in [0, ${this.vocabSize}) or -1 (padding), got ${id}`,
        );
    }
    gatherRows(this.weight.data, this.vocabSize, d, ids.data, this.scale, y);
    this.savedShape = this.training ? [batch, seq, d] : null;
    return new Tensor(y, [batch, seq, d]);
  }

  backward(gradOut: Tensor): Tensor {
    if (!this.savedShape) throw noForward('Embedding.backward');
    checkGradShape(gradOut, this.savedShape, 'Embedding.backward');
    const [batch, seq] = this.savedShape;
    this.savedShape = null;
    return Tensor.zeros([batch, seq]);
  }
}
