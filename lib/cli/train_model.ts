/**
 * The model of `dp-lora train`: a small MLP classifier over hashed text features,
 *   fc1: Linear(dim -> hidden), ReLU, fc2: Linear(hidden -> hidden), ReLU, head: Linear(hidden -> classes),
 * pretrained WITHOUT privacy on public data (cached on disk), then adapted with LoRA on fc1 and
 * fc2 plus a trainable head. Module paths (`fc1`, `fc2`, `head`) are the adapter keys.
 */
import { fileSha256 } from '../io/checkpoint';
import { atomicWriteFile } from '../io/atomic';
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { Linear } from '../nn/linear';
import { LoraLinear } from '../nn/lora_linear';
import { ReLU } from '../nn/activations';
import { Module } from '../nn/module';
import { Tensor } from '../nn/tensor';
import { crossEntropyLoss } from '../nn/losses';
import { InitRandom } from '../nn/init';
import { Adam } from '../optim/adam';
import { FEATURIZER_VERSION } from '../data/featurize';
import { readSafetensors, writeSafetensors } from '../io/safetensors';
import { AdapterData, defaultAdapterConfig } from '../io/peft_adapter';
import { loraHeadAdapter } from '../trainer/adapter';
import type { DataPart } from './train_task';
import type { LoraMethodName } from './train_options';
import { AdapterFormatError, DpLoraError, ErrorCode } from '../errors';

/** Dimensions of the MLP. */
export interface MlpShape {
  dim: number;
  hidden: number;
  classes: number;
}

/** The MLP classifier (fc1 and fc2 may be LoRA-wrapped). */
export class MlpClassifier extends Module {
  fc1: Linear | LoraLinear;
  fc2: Linear | LoraLinear;
  head: Linear;
  private act1 = new ReLU();
  private act2 = new ReLU();

  constructor(fc1: Linear | LoraLinear, fc2: Linear | LoraLinear, head: Linear) {
    super();
    this.fc1 = fc1;
    this.fc2 = fc2;
    this.head = head;
  }

  children(): Array<[string, Module]> {
    return [
      ['fc1', this.fc1],
      ['act1', this.act1],
      ['fc2', this.fc2],
      ['act2', this.act2],
      ['head', this.head],
    ];
  }

  forward(x: Tensor): Tensor {
    return this.head.forward(
      this.act2.forward(this.fc2.forward(this.act1.forward(this.fc1.forward(x)))),
    );
  }

  backward(g: Tensor, inputGrad = true): Tensor {
    return this.fc1.backward(
      this.act1.backward(this.fc2.backward(this.act2.backward(this.head.backward(g)))),
      inputGrad,
    );
  }
}

/** Plain weights of the base MLP. */
export interface BaseWeights {
  shape: MlpShape;
  tensors: Record<string, Float32Array>;
}

const BASE_KEYS = ['fc1.weight', 'fc1.bias', 'fc2.weight', 'fc2.bias', 'head.weight', 'head.bias'];

function baseLinear(
  base: BaseWeights,
  name: string,
  inF: number,
  outF: number,
  trainable: boolean,
): Linear {
  return new Linear(inF, outF, {
    weight: base.tensors[`${name}.weight`],
    biasData: base.tensors[`${name}.bias`],
    trainable,
  });
}

/** A fresh randomly initialized base (public randomness from `seed`). */
export function randomBase(shape: MlpShape, seed: number): BaseWeights {
  const l1 = new Linear(shape.dim, shape.hidden, { seed });
  const l2 = new Linear(shape.hidden, shape.hidden, { seed: seed + 1 });
  const l3 = new Linear(shape.hidden, shape.classes, { seed: seed + 2 });
  return {
    shape,
    tensors: {
      'fc1.weight': l1.weight.data,
      'fc1.bias': l1.bias!.data,
      'fc2.weight': l2.weight.data,
      'fc2.bias': l2.bias!.data,
      'head.weight': l3.weight.data,
      'head.bias': l3.bias!.data,
    },
  };
}

/** The base model as a fully trainable or fully frozen MLP. */
export function baseModel(base: BaseWeights, trainable: boolean): MlpClassifier {
  const { dim, hidden, classes } = base.shape;
  return new MlpClassifier(
    baseLinear(base, 'fc1', dim, hidden, trainable),
    baseLinear(base, 'fc2', hidden, hidden, trainable),
    baseLinear(base, 'head', hidden, classes, trainable),
  );
}

/** LoRA settings. */
export interface LoraSettings {
  rank: number;
  alpha: number;
  method: LoraMethodName;
  /** Seed of A's initialization (public randomness). */
  seed: number;
}

/** The base with LoRA on fc1 and fc2 and a trainable copy of the head. */
export function loraModel(base: BaseWeights, lora: LoraSettings): MlpClassifier {
  const { dim, hidden, classes } = base.shape;
  const opts = (k: number) => ({
    r: lora.rank,
    alpha: lora.alpha,
    method: lora.method,
    seed: lora.seed + k,
  });
  return new MlpClassifier(
    new LoraLinear(baseLinear(base, 'fc1', dim, hidden, false), opts(0)),
    new LoraLinear(baseLinear(base, 'fc2', hidden, hidden, false), opts(1)),
    baseLinear(base, 'head', hidden, classes, true),
  );
}

/** Rows `idx` of a part as a [idx.length, dim] tensor and labels. */
export function gather(
  part: DataPart,
  idx: ArrayLike<number>,
  dim: number,
): { x: Tensor; y: Int32Array } {
  const x = new Float32Array(idx.length * dim);
  const y = new Int32Array(idx.length);
  for (let i = 0; i < idx.length; i++) {
    const r = idx[i];
    x.set(part.X.subarray(r * dim, (r + 1) * dim), i * dim);
    y[i] = part.y[r];
  }
  return { x: new Tensor(x, [idx.length, dim]), y };
}

/** Accuracy (fraction correct) of the model on a part, in eval mode. */
export function accuracy(model: Module, part: DataPart, dim: number, chunk = 512): number {
  if (part.n === 0) return NaN;
  const wasTraining = model.training;
  model.eval();
  let correct = 0;
  for (let s = 0; s < part.n; s += chunk) {
    const e = Math.min(part.n, s + chunk);
    const x = new Tensor(part.X.slice(s * dim, e * dim), [e - s, dim]);
    const logits = model.forward(x);
    const k = logits.features;
    for (let i = 0; i < e - s; i++) {
      let best = 0;
      for (let j = 1; j < k; j++) if (logits.data[i * k + j] > logits.data[i * k + best]) best = j;
      if (best === part.y[s + i]) correct++;
    }
  }
  model.train(wasTraining);
  return correct / part.n;
}

/** Fisher-Yates permutation from a public, seeded PRNG. */
export function permutation(n: number, rnd: InitRandom): Int32Array {
  const p = Int32Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rnd.next() * (i + 1));
    const t = p[i];
    p[i] = p[j];
    p[j] = t;
  }
  return p;
}

/**
 * Non-private training (mean loss, Adam) of the model's trainable parameters for `epochs`
 * passes over `part` in shuffled batches. Used for the base pretraining on PUBLIC data and
 * for the non-private LoRA baseline (a comparison only: its weights are never saved).
 */
export function trainNonPrivate(
  model: Module,
  part: DataPart,
  dim: number,
  o: { epochs: number; batchSize: number; lr: number; seed: number; onEpoch?: (e: number) => void },
): void {
  model.train();
  model.setGradMode('sum');
  const params = model.trainableParameters();
  const opt = new Adam(params, { lr: o.lr });
  const rnd = new InitRandom(o.seed);
  for (let e = 0; e < o.epochs; e++) {
    const perm = permutation(part.n, rnd);
    for (let s = 0; s < part.n; s += o.batchSize) {
      const idx = perm.subarray(s, Math.min(part.n, s + o.batchSize));
      const { x, y } = gather(part, idx, dim);
      model.zeroGrad();
      const out = model.forward(x);
      const loss = crossEntropyLoss(out, y);
      const g = loss.grad.data;
      const inv = 1 / idx.length;
      for (let i = 0; i < g.length; i++) g[i] *= inv;
      model.backward(loss.grad, false); // the input is data: no gradient needed
      opt.step();
    }
    o.onEpoch?.(e);
  }
  model.zeroGrad();
}

/**
 * Settings of the base pretraining (part of the cache key): Adam, batches of 64, at least
 * `minEpochs` passes and at least `minSteps` steps (small public sets get more passes).
 */
export const PRETRAIN = { minEpochs: 6, minSteps: 300, batchSize: 64, lr: 2e-3, seed: 1234 };

/** Epochs of the base pretraining on `n` public examples. */
export function pretrainEpochs(n: number): number {
  return Math.max(
    PRETRAIN.minEpochs,
    Math.ceil((PRETRAIN.minSteps * PRETRAIN.batchSize) / Math.max(1, n)),
  );
}

/** Directory of cached base models: $DPLORA_CACHE_DIR, else ./.dplora-cache. */
export function cacheDir(): string {
  return process.env.DPLORA_CACHE_DIR || path.join(process.cwd(), '.dplora-cache');
}

/** Cache key of a pretrained base: hash of everything that determines its weights. */
export function baseCacheKey(shape: MlpShape, dataId: string, publicPart: DataPart): string {
  const h = crypto.createHash('sha256');
  h.update(
    JSON.stringify({
      v: 1,
      featurizer: FEATURIZER_VERSION,
      shape,
      dataId,
      pretrain: PRETRAIN,
      n: publicPart.n,
    }),
  );
  h.update(Buffer.from(publicPart.X.buffer, publicPart.X.byteOffset, publicPart.X.byteLength));
  h.update(Buffer.from(publicPart.y.buffer, publicPart.y.byteOffset, publicPart.y.byteLength));
  return h.digest('hex').slice(0, 24);
}

/**
 * The pretrained base: loaded from the cache when present, else trained on the public part
 * (no privacy: public data) and cached. Returns the weights and whether the cache was hit.
 */
export function pretrainedBase(
  shape: MlpShape,
  publicPart: DataPart,
  dataId: string,
  log: (s: string) => void = () => {},
): { base: BaseWeights; cached: boolean; file: string } {
  const key = baseCacheKey(shape, dataId, publicPart);
  const file = path.join(cacheDir(), `base-${key}.safetensors`);
  const sumFile = `${file}.sha256`;
  if (fs.existsSync(file)) {
    try {
      // The cache is checked before use: its recorded SHA-256 and finite weights.
      const want = fs.existsSync(sumFile) ? fs.readFileSync(sumFile, 'utf8').trim() : '';
      const got = fileSha256(file);
      if (want !== got) throw new Error('its content does not match its recorded SHA-256');
      return { base: loadBaseWeights(file, shape), cached: true, file };
    } catch (e) {
      log(
        `warning: ignoring the cached base ${file} (${(e as Error).message}); pretraining it again`,
      );
    }
  }
  const base = randomBase(shape, PRETRAIN.seed);
  const model = baseModel(base, true);
  const epochs = pretrainEpochs(publicPart.n);
  trainNonPrivate(model, publicPart, shape.dim, {
    ...PRETRAIN,
    epochs,
    onEpoch: (e) => log(`pretraining base on public data: epoch ${e + 1}/${epochs}`),
  });
  const tensors: Record<string, Float32Array> = {};
  for (const [name, p] of model.namedParameters()) tensors[name] = p.data;
  const out: BaseWeights = { shape, tensors };
  try {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    saveBaseWeights(file, out, { key });
    atomicWriteFile(sumFile, fileSha256(file) + '\n');
  } catch (e) {
    log(`could not cache the base model in ${path.dirname(file)}: ${(e as Error).message}`);
  }
  return { base: out, cached: false, file };
}

/** Writes base weights as a safetensors file (atomic). */
export function saveBaseWeights(
  file: string,
  base: BaseWeights,
  metadata: Record<string, string> = {},
): void {
  writeSafetensors(
    file,
    Object.fromEntries(
      BASE_KEYS.map((k) => [k, { data: base.tensors[k], shape: shapeOf(k, base.shape) }]),
    ),
    { dplora: 'base-mlp', shape: JSON.stringify(base.shape), ...metadata },
  );
}

/** Reads base weights written by {@link saveBaseWeights}, checking every shape. */
export function loadBaseWeights(file: string, shape: MlpShape): BaseWeights {
  const st = readSafetensors(file);
  const tensors: Record<string, Float32Array> = {};
  for (const k of BASE_KEYS) {
    const t = st.tensors.get(k);
    if (!t || !(t.data instanceof Float32Array))
      throw new DpLoraError(ErrorCode.FileFormat, `${file}: missing F32 tensor ${k}`);
    const want = shapeOf(k, shape);
    if (JSON.stringify(t.shape) !== JSON.stringify(want))
      throw new DpLoraError(
        ErrorCode.FileFormat,
        `${file}: ${k} has shape ${JSON.stringify(t.shape)}, expected ${JSON.stringify(want)}`,
      );
    for (let i = 0; i < t.data.length; i++)
      if (!Number.isFinite(t.data[i]))
        throw new DpLoraError(
          ErrorCode.FileFormat,
          `${file}: ${k}[${i}] is ${t.data[i]}; a base model must hold finite weights`,
          { argument: file },
        );
    tensors[k] = t.data;
  }
  return { shape, tensors };
}

function shapeOf(key: string, s: MlpShape): number[] {
  switch (key) {
    case 'fc1.weight':
      return [s.hidden, s.dim];
    case 'fc2.weight':
      return [s.hidden, s.hidden];
    case 'head.weight':
      return [s.classes, s.hidden];
    case 'head.bias':
      return [s.classes];
    default:
      return [s.hidden];
  }
}

/** The adapter of a LoRA model as plain data (PEFT layout; see lib/io/peft_adapter.ts). */
export function adapterOf(
  model: MlpClassifier,
  lora: LoraSettings,
  baseName: string,
  extraConfig: Record<string, unknown> = {},
): AdapterData {
  for (const p of ['fc1', 'fc2'] as const)
    if (!(model[p] instanceof LoraLinear))
      throw new Error(`internal: adapterOf: ${p} is not a LoRA layer`);
  return loraHeadAdapter(
    model,
    model.head,
    defaultAdapterConfig({
      r: lora.rank,
      lora_alpha: lora.alpha,
      target_modules: ['fc1', 'fc2'],
      task_type: 'SEQ_CLS',
      base_model_name_or_path: baseName,
      modules_to_save: ['head'],
      dplora: { method: lora.method, ...extraConfig },
    }),
  );
}

/** Loads adapter tensors into a LoRA model (shapes must match). */
export function loadAdapterInto(model: MlpClassifier, a: AdapterData): void {
  for (const l of a.loras) {
    const m = (model as unknown as Record<string, unknown>)[l.path];
    if (!(m instanceof LoraLinear))
      throw new AdapterFormatError(`adapter module "${l.path}" is not a LoRA layer of this model`);
    m.loraA = l.loraA;
    m.loraB = l.loraB;
  }
  model.head.weight.data.set(a.extra['head.weight'].data);
  model.head.bias!.data.set(a.extra['head.bias'].data);
}
