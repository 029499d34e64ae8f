/**
 * LoRA adapters in the Hugging Face PEFT directory layout.
 *
 * A directory holding:
 * - `adapter_config.json`: `peft_type: "LORA"`, `r`, `lora_alpha`, `target_modules`,
 *   `use_rslora`, `lora_dropout`, `bias`, `task_type`, `base_model_name_or_path`,
 *   `modules_to_save`, `inference_mode`, plus our own fields under the key `dplora`
 *   (`method: 'ffa' | 'vanilla'` and free-form extras).
 * - `adapter_model.safetensors`: F32 tensors
 *   `base_model.model.<path>.lora_A.weight` with shape [r, in] and
 *   `base_model.model.<path>.lora_B.weight` with shape [out, r];
 *   any other trained tensor (e.g. the classification head) is stored under
 *   `base_model.model.<key>` where `<key>` is its name in `extra` (for a head at module
 *   path `head`: `base_model.model.head.weight` [out, in] and `base_model.model.head.bias`
 *   [out]); its module path is listed in `modules_to_save`.
 * - `privacy_report.json` (optional): the privacy guarantee of the training run.
 *
 * The module works on plain data ({@link AdapterData}), independent of the layer classes.
 */
import * as fs from 'fs';
import * as path from 'path';
import { atomicWriteDir } from './atomic';
import { readRegularFile } from './files';
import {
  MAX_SAFETENSORS_BYTES,
  parseSafetensors,
  serializeSafetensors,
  StTensorInput,
} from './safetensors';
import { AdapterFormatError, InvalidArgumentError } from '../errors';
import {
  requireBoolean,
  requireInt,
  requireNumber,
  requireObject,
  requireString,
  requireTypedArray,
} from '../validate';
export { AdapterFormatError };

/** File names inside an adapter directory. */
export const ADAPTER_CONFIG_FILE = 'adapter_config.json';
export const ADAPTER_WEIGHTS_FILE = 'adapter_model.safetensors';
export const PRIVACY_REPORT_FILE = 'privacy_report.json';

/** Key prefix PEFT uses for every tensor of the wrapped model. */
export const PEFT_PREFIX = 'base_model.model.';

/** Contents of adapter_config.json. Unknown keys read from a file are kept in `other`. */
export interface AdapterConfig {
  /** Always `LORA`. */
  peft_type: 'LORA';
  /** LoRA rank. */
  r: number;
  /** LoRA scaling numerator: the update is (alpha / r) B A, or alpha / sqrt(r) with rsLoRA. */
  lora_alpha: number;
  /** Module paths that carry a LoRA pair. */
  target_modules: string[];
  /** Rank-stabilized scaling alpha / sqrt(r). */
  use_rslora: boolean;
  /** Dropout probability on the LoRA input during training. */
  lora_dropout: number;
  /** Which biases are trained (dp-lora writes `none`). */
  bias: 'none' | 'all' | 'lora_only';
  /** PEFT task type, if any. */
  task_type: string | null;
  /** The base model the adapter applies to, if known. */
  base_model_name_or_path: string | null;
  /** Fully trained (non-LoRA) modules saved with the adapter. */
  modules_to_save: string[] | null;
  /** PEFT flag: the adapter is loaded for inference. */
  inference_mode: boolean;
  /** dp-lora's own fields. */
  dplora?: {
    /** LoRA variant: `ffa` (A frozen) or `vanilla` (A and B trained). */
    method: 'ffa' | 'vanilla';
    [key: string]: unknown;
  };
  /** Other keys found in a file we read (kept so that a rewrite preserves them). */
  other?: Record<string, unknown>;
}

/** One LoRA pair: A is [r, inDim] row-major, B is [outDim, r] row-major. */
export interface LoraTensors {
  /** Module path in the model, e.g. `layers.0` (keys become `base_model.model.<path>...`). */
  path: string;
  /** A [r, inDim], row-major. */
  loraA: Float32Array;
  /** B [outDim, r], row-major. */
  loraB: Float32Array;
  /** Rank. */
  r: number;
  /** Input width of the adapted module. */
  inDim: number;
  /** Output width of the adapted module. */
  outDim: number;
}

/** A whole adapter as plain data. */
export interface AdapterData {
  /** adapter_config.json. */
  config: AdapterConfig;
  /** The LoRA pairs, one per adapted module. */
  loras: LoraTensors[];
  /** Other trained tensors by key relative to the model, e.g. `head.weight`. */
  extra: Record<
    string,
    {
      /** Values, row-major. */
      data: Float32Array;
      /** Dimensions, outermost first. */
      shape: number[];
    }
  >;
}

/** The privacy guarantee of a training run, saved next to the adapter. */
export interface PrivacyReport {
  /** Spent epsilon at `delta`. */
  epsilon: number;
  /** The delta of the guarantee. */
  delta: number;
  /** The epsilon budget the run was calibrated to, if any. */
  targetEpsilon?: number;
  /** Noise standard deviation over the clipping norm. */
  noiseMultiplier: number;
  /** Per-sample clipping norm C. */
  maxGradNorm: number;
  /** Poisson sampling rate q (expected batch size / dataset size). */
  sampleRate: number;
  /** Noisy steps taken. */
  steps: number;
  /** Accountant that computed epsilon (`rdp` or `pld`). */
  accountant: string;
  /** True when a fixed seed was used (reproducible noise: an explicit opt-in). */
  reproducibleSeed: boolean;
  /** Number of private records. */
  datasetSize?: number;
  /** Expected logical batch size (the noisy sum is divided by it). */
  expectedBatchSize?: number;
  [key: string]: unknown;
}

/**
 * Checks that `report` has the shape of a {@link PrivacyReport}: finite epsilon >= 0, delta in
 * [0, 1), noiseMultiplier >= 0, maxGradNorm > 0, sampleRate in (0, 1], an integer step count,
 * the accountant's name and the reproducible-seed flag (the optional fields, when present, are
 * checked too). Throws an {@link InvalidArgumentError} naming the field (e.g.
 * `privacyReport.epsilon`); returns the report.
 */
export function validatePrivacyReport(report: unknown, name = 'privacyReport'): PrivacyReport {
  const r = requireObject(name, report);
  requireNumber(`${name}.epsilon`, r.epsilon, { min: 0 });
  requireNumber(`${name}.delta`, r.delta, { min: 0, lessThan: 1 });
  requireNumber(`${name}.noiseMultiplier`, r.noiseMultiplier, { min: 0 });
  requireNumber(`${name}.maxGradNorm`, r.maxGradNorm, { greaterThan: 0 });
  requireNumber(`${name}.sampleRate`, r.sampleRate, { greaterThan: 0, max: 1 });
  requireInt(`${name}.steps`, r.steps, { min: 0 });
  requireString(`${name}.accountant`, r.accountant);
  requireBoolean(`${name}.reproducibleSeed`, r.reproducibleSeed);
  if (r.targetEpsilon !== undefined)
    requireNumber(`${name}.targetEpsilon`, r.targetEpsilon, { greaterThan: 0 });
  if (r.datasetSize !== undefined) requireInt(`${name}.datasetSize`, r.datasetSize, { min: 1 });
  if (r.expectedBatchSize !== undefined)
    requireNumber(`${name}.expectedBatchSize`, r.expectedBatchSize, { greaterThan: 0 });
  return r as PrivacyReport;
}

/** A default PEFT LoRA config; fields given override the defaults. */
export function defaultAdapterConfig(
  fields: Partial<AdapterConfig> & { r: number; lora_alpha: number },
): AdapterConfig {
  return {
    peft_type: 'LORA',
    target_modules: [],
    use_rslora: false,
    lora_dropout: 0,
    bias: 'none',
    task_type: null,
    base_model_name_or_path: null,
    modules_to_save: null,
    inference_mode: true,
    ...fields,
  };
}

function checkPath(p: string, what: string): void {
  if (
    typeof p !== 'string' ||
    p.length === 0 ||
    p.startsWith('.') ||
    p.endsWith('.') ||
    p.includes('..')
  ) {
    throw new AdapterFormatError(`${what} "${p}" must be a non-empty dotted module path`);
  }
}

/** Builds the safetensors tensors and config JSON of an adapter (validating shapes). */
export function encodeAdapter(adapter: AdapterData): { configJson: string; weights: Buffer } {
  const { config, loras, extra } = adapter;
  if (config.peft_type !== 'LORA')
    throw new AdapterFormatError(
      `config.peft_type must be "LORA", got ${JSON.stringify(config.peft_type)}`,
    );
  if (!Number.isInteger(config.r) || config.r < 1)
    throw new AdapterFormatError(`config.r must be a positive integer, got ${config.r}`);
  if (!Number.isFinite(config.lora_alpha))
    throw new AdapterFormatError(
      `config.lora_alpha must be a finite number, got ${config.lora_alpha}`,
    );
  const tensors: Record<string, StTensorInput> = {};
  for (const l of loras) {
    checkPath(l.path, 'lora path');
    if (l.r !== config.r)
      throw new AdapterFormatError(
        `lora "${l.path}": rank ${l.r} differs from config.r ${config.r}`,
      );
    if (!Number.isInteger(l.inDim) || l.inDim < 1 || !Number.isInteger(l.outDim) || l.outDim < 1) {
      throw new AdapterFormatError(`lora "${l.path}": inDim and outDim must be positive integers`);
    }
    if (!(l.loraA instanceof Float32Array) || l.loraA.length !== l.r * l.inDim) {
      throw new AdapterFormatError(
        `lora "${l.path}": loraA must be a Float32Array of r*inDim = ${l.r * l.inDim} values`,
      );
    }
    if (!(l.loraB instanceof Float32Array) || l.loraB.length !== l.outDim * l.r) {
      throw new AdapterFormatError(
        `lora "${l.path}": loraB must be a Float32Array of outDim*r = ${l.outDim * l.r} values`,
      );
    }
    const a = `${PEFT_PREFIX}${l.path}.lora_A.weight`;
    const b = `${PEFT_PREFIX}${l.path}.lora_B.weight`;
    if (a in tensors) throw new AdapterFormatError(`lora path "${l.path}" appears twice`);
    tensors[a] = { data: l.loraA, shape: [l.r, l.inDim] };
    tensors[b] = { data: l.loraB, shape: [l.outDim, l.r] };
  }
  for (const [key, t] of Object.entries(extra)) {
    checkPath(key, 'extra tensor key');
    if (/\.lora_[AB]\.weight$/.test(key))
      throw new AdapterFormatError(
        `extra tensor key "${key}" looks like a LoRA key; put it in loras`,
      );
    if (!(t.data instanceof Float32Array))
      throw new AdapterFormatError(`extra tensor "${key}" must be a Float32Array`);
    const full = PEFT_PREFIX + key;
    if (full in tensors)
      throw new AdapterFormatError(`extra tensor "${key}" collides with another key`);
    tensors[full] = { data: t.data, shape: t.shape };
  }
  const { other, ...known } = config;
  const json = { ...(other ?? {}), ...known };
  const weights = serializeSafetensors(tensors, { format: 'pt' });
  return { configJson: JSON.stringify(json, null, 2) + '\n', weights };
}

/**
 * Saves an adapter directory atomically (all files appear together): adapter_config.json,
 * adapter_model.safetensors and, if given, privacy_report.json. An existing directory is
 * replaced.
 */
export function saveAdapter(
  dir: string,
  adapter: AdapterData,
  privacyReport?: PrivacyReport,
): void {
  requireString('dir', dir);
  requireObject('adapter', adapter);
  if (privacyReport !== undefined) validatePrivacyReport(privacyReport);
  const { configJson, weights } = encodeAdapter(adapter);
  const files: Record<string, string | Buffer> = {
    [ADAPTER_CONFIG_FILE]: configJson,
    [ADAPTER_WEIGHTS_FILE]: weights,
  };
  if (privacyReport) files[PRIVACY_REPORT_FILE] = JSON.stringify(privacyReport, null, 2) + '\n';
  atomicWriteDir(dir, files);
}

const KNOWN_CONFIG_KEYS = new Set([
  'peft_type',
  'r',
  'lora_alpha',
  'target_modules',
  'use_rslora',
  'lora_dropout',
  'bias',
  'task_type',
  'base_model_name_or_path',
  'modules_to_save',
  'inference_mode',
  'dplora',
]);

/** Parses and validates adapter_config.json text. */
export function parseAdapterConfig(text: string, source = ADAPTER_CONFIG_FILE): AdapterConfig {
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(text) as Record<string, unknown>;
  } catch (e) {
    throw new AdapterFormatError(`${source}: not valid JSON (${(e as Error).message})`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
    throw new AdapterFormatError(`${source}: must be a JSON object`);
  if (raw.peft_type !== 'LORA')
    throw new AdapterFormatError(
      `${source}: peft_type must be "LORA", got ${JSON.stringify(raw.peft_type)}`,
    );
  if (typeof raw.r !== 'number' || !Number.isInteger(raw.r) || raw.r < 1)
    throw new AdapterFormatError(`${source}: r must be a positive integer`);
  if (typeof raw.lora_alpha !== 'number' || !Number.isFinite(raw.lora_alpha))
    throw new AdapterFormatError(`${source}: lora_alpha must be a number`);
  let targets: string[] = [];
  if (typeof raw.target_modules === 'string') targets = [raw.target_modules];
  else if (
    Array.isArray(raw.target_modules) &&
    raw.target_modules.every((x) => typeof x === 'string')
  )
    targets = raw.target_modules;
  else if (raw.target_modules !== undefined && raw.target_modules !== null)
    throw new AdapterFormatError(`${source}: target_modules must be a string or a list of strings`);
  const other: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(raw)) if (!KNOWN_CONFIG_KEYS.has(k)) other[k] = v;
  const dplora = raw.dplora as AdapterConfig['dplora'];
  if (
    dplora !== undefined &&
    (typeof dplora !== 'object' ||
      dplora === null ||
      (dplora.method !== 'ffa' && dplora.method !== 'vanilla'))
  ) {
    throw new AdapterFormatError(`${source}: dplora.method must be "ffa" or "vanilla"`);
  }
  const bias = (raw.bias ?? 'none') as AdapterConfig['bias'];
  if (!['none', 'all', 'lora_only'].includes(bias))
    throw new AdapterFormatError(`${source}: bias must be none, all or lora_only`);
  return {
    peft_type: 'LORA',
    r: raw.r,
    lora_alpha: raw.lora_alpha,
    target_modules: targets,
    use_rslora: raw.use_rslora === true,
    lora_dropout: typeof raw.lora_dropout === 'number' ? raw.lora_dropout : 0,
    bias,
    task_type: typeof raw.task_type === 'string' ? raw.task_type : null,
    base_model_name_or_path:
      typeof raw.base_model_name_or_path === 'string' ? raw.base_model_name_or_path : null,
    modules_to_save: Array.isArray(raw.modules_to_save) ? (raw.modules_to_save as string[]) : null,
    inference_mode: raw.inference_mode !== false,
    ...(dplora ? { dplora } : {}),
    ...(Object.keys(other).length ? { other } : {}),
  };
}

function toF32(data: unknown, key: string, source: string): Float32Array {
  let out: Float32Array;
  if (data instanceof Float32Array) out = data;
  else if (data instanceof Float64Array) out = Float32Array.from(data);
  else
    throw new AdapterFormatError(
      `${source}: tensor "${key}" must be floating point (F32, F64, F16 or BF16)`,
    );
  // A NaN or an infinity (also an F64 value beyond the float32 range) would turn every
  // prediction into NaN.
  for (let i = 0; i < out.length; i++)
    if (!Number.isFinite(out[i]))
      throw new AdapterFormatError(
        `${source}: tensor "${key}" holds a non-finite value (${out[i]}) at index ${i}`,
      );
  return out;
}

/** Decodes an adapter from its config text and safetensors bytes, validating shapes and ranks. */
export function decodeAdapter(
  configText: string,
  weights: Buffer,
  source = 'adapter',
): AdapterData {
  requireString('configText', configText, false);
  requireTypedArray('weights', weights, 'Uint8Array');
  const config = parseAdapterConfig(configText, `${source}/${ADAPTER_CONFIG_FILE}`);
  const wsrc = `${source}/${ADAPTER_WEIGHTS_FILE}`;
  const st = parseSafetensors(weights, wsrc);
  const loraKeys = new Map<string, { a?: string; b?: string }>();
  const extra: AdapterData['extra'] = {};
  for (const key of st.tensors.keys()) {
    if (!key.startsWith(PEFT_PREFIX))
      throw new AdapterFormatError(`${wsrc}: key "${key}" lacks the "${PEFT_PREFIX}" prefix`);
    const m = /^(.*)\.lora_([AB])\.weight$/.exec(key.slice(PEFT_PREFIX.length));
    if (m) {
      const entry = loraKeys.get(m[1]) ?? {};
      if (m[2] === 'A') entry.a = key;
      else entry.b = key;
      loraKeys.set(m[1], entry);
    } else {
      const t = st.tensors.get(key)!;
      extra[key.slice(PEFT_PREFIX.length)] = { data: toF32(t.data, key, wsrc), shape: t.shape };
    }
  }
  const loras: LoraTensors[] = [];
  for (const [p, { a, b }] of loraKeys) {
    if (!a || !b)
      throw new AdapterFormatError(
        `${wsrc}: module "${p}" has lora_${a ? 'A' : 'B'} but no lora_${a ? 'B' : 'A'}`,
      );
    const ta = st.tensors.get(a)!;
    const tb = st.tensors.get(b)!;
    if (ta.shape.length !== 2 || tb.shape.length !== 2)
      throw new AdapterFormatError(`${wsrc}: module "${p}": LoRA tensors must be 2-D`);
    const [r, inDim] = ta.shape;
    const [outDim, rb] = tb.shape;
    if (rb !== r)
      throw new AdapterFormatError(`${wsrc}: module "${p}": lora_A rank ${r} != lora_B rank ${rb}`);
    if (r !== config.r)
      throw new AdapterFormatError(
        `${wsrc}: module "${p}": rank ${r} differs from adapter_config r ${config.r}`,
      );
    loras.push({
      path: p,
      loraA: toF32(ta.data, a, wsrc),
      loraB: toF32(tb.data, b, wsrc),
      r,
      inDim,
      outDim,
    });
  }
  loras.sort((x, y) => (x.path < y.path ? -1 : x.path > y.path ? 1 : 0));
  return { config, loras, extra };
}

/** Loads an adapter directory written by {@link saveAdapter} (or by PEFT, for LoRA adapters). */
export function loadAdapter(dir: string): AdapterData {
  requireString('dir', dir);
  const cfg = path.join(dir, ADAPTER_CONFIG_FILE);
  const w = path.join(dir, ADAPTER_WEIGHTS_FILE);
  if (!fs.existsSync(cfg)) throw new AdapterFormatError(`${dir}: no ${ADAPTER_CONFIG_FILE}`);
  if (!fs.existsSync(w)) throw new AdapterFormatError(`${dir}: no ${ADAPTER_WEIGHTS_FILE}`);
  // Bounded reads: a FIFO, a link to /dev/zero, a folder or a huge file is refused, not read.
  return decodeAdapter(
    readRegularFile('dir', cfg, MAX_ADAPTER_JSON_BYTES).toString('utf8'),
    readRegularFile('dir', w, MAX_SAFETENSORS_BYTES),
    dir,
  );
}

/** Largest adapter_config.json or privacy_report.json read (bytes): 16 MiB. */
export const MAX_ADAPTER_JSON_BYTES = 16 << 20;

/** Reads privacy_report.json from an adapter directory, or undefined if there is none. */
export function loadPrivacyReport(dir: string): PrivacyReport | undefined {
  const f = path.join(dir, PRIVACY_REPORT_FILE);
  if (!fs.existsSync(f)) return undefined;
  let r: unknown;
  const text = readRegularFile('dir', f, MAX_ADAPTER_JSON_BYTES).toString('utf8');
  try {
    r = JSON.parse(text);
  } catch (e) {
    throw new AdapterFormatError(`${f}: not valid JSON (${(e as Error).message})`, {
      argument: f,
      cause: e,
    });
  }
  try {
    return validatePrivacyReport(r, 'report');
  } catch (e) {
    if (!(e instanceof InvalidArgumentError)) throw e;
    throw new AdapterFormatError(`${f}: ${e.message}`, { argument: f, cause: e });
  }
}
