/**
 * Per-record randomness: every random draw a layer makes for one record
 * (LoRA dropout, the Dropout layer) comes from a stream keyed by
 * (run key, step, the record's index in the data set, layer), never by the
 * record's position in its batch.  With a fixed key, adding or removing a
 * record therefore leaves every other record's computation bit-identical, and
 * any micro-batch split gives the same masks.
 *
 * The masks are public randomness (each record's gradient is a function of
 * the record and its own mask; clipping bounds it whatever the mask), so a
 * fast keyed mixer is used rather than the CSPRNG; the run key itself comes
 * from the CSPRNG (or from the explicit fixed seed).
 */
import { InvalidArgumentError } from '../errors';
import { requireInt, requireTypedArray } from '../validate';

/** Which records a batch holds, for per-record randomness (see {@link Module.setRecordContext}). */
export interface RecordContext {
  /** Run key: four 32-bit words (e.g. from {@link recordKeyFromBytes}). */
  key: Uint32Array;
  /** Optimizer step the batch belongs to (integer >= 0). */
  step: number;
  /** Data-set index of each sample of the batch, in batch order. */
  records: ArrayLike<number>;
}

/** A record context bound to one layer (the layer key is a hash of the module's path). */
export interface LayerRecordContext extends RecordContext {
  /** 32-bit key of the layer (from its dotted path). */
  layer: number;
}

function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** 32-bit key of a layer path (FNV-1a, then mixed). */
export function layerKey(path: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < path.length; i++) {
    h ^= path.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return fmix32(h >>> 0);
}

/** A run key from at least 16 bytes (a CSPRNG draw or a hashed fixed seed). */
export function recordKeyFromBytes(bytes: Uint8Array): Uint32Array {
  if (!(bytes instanceof Uint8Array) || bytes.length < 16)
    throw new InvalidArgumentError('bytes', 'must be a Uint8Array of at least 16 bytes');
  const k = new Uint32Array(4);
  for (let i = 0; i < 4; i++)
    k[i] =
      (bytes[4 * i] |
        (bytes[4 * i + 1] << 8) |
        (bytes[4 * i + 2] << 16) |
        (bytes[4 * i + 3] << 24)) >>>
      0;
  return k;
}

/** Checks a record context; throws an InvalidArgumentError naming the field at fault. */
export function validateRecordContext(ctx: RecordContext): void {
  requireTypedArray('context.key', ctx.key, 'Uint32Array', 4);
  requireInt('context.step', ctx.step, { min: 0 });
  const r = ctx.records;
  if (r === null || typeof r !== 'object' || typeof r.length !== 'number')
    throw new InvalidArgumentError('context.records', 'must be an array of data-set indices');
  for (let i = 0; i < r.length; i++) requireInt(`context.records[${i}]`, r[i], { min: 0 });
}

/**
 * The uniform stream of one record in one layer and step: sfc32 seeded by
 * mixing (key, step, record, layer).  Returns a function giving uniforms in
 * [0, 1) with 24 random bits each.
 */
export function recordStream(ctx: LayerRecordContext, record: number): () => number {
  const k = ctx.key;
  const stepLo = ctx.step >>> 0;
  const stepHi = Math.floor(ctx.step / 2 ** 32) >>> 0;
  const recLo = record >>> 0;
  const recHi = Math.floor(record / 2 ** 32) >>> 0;
  let a = fmix32(k[0] ^ fmix32(stepLo ^ 0x9e3779b9));
  let b = fmix32(k[1] ^ fmix32(recLo ^ 0x7f4a7c15));
  let c = fmix32(k[2] ^ fmix32(ctx.layer ^ 0x94d049bb));
  let d = fmix32(k[3] ^ fmix32(stepHi ^ fmix32(recHi ^ 0x2545f491)));
  // Cross-mix so that every input word reaches every state word.
  for (let i = 0; i < 4; i++) {
    a = fmix32(a ^ d);
    b = fmix32(b ^ a);
    c = fmix32(c ^ b);
    d = fmix32(d ^ c);
  }
  const next = (): number => {
    // sfc32 (d is its counter).
    const t = (((a + b) | 0) + d) | 0;
    d = (d + 1) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) | 0;
    return (t >>> 8) / 16777216;
  };
  for (let i = 0; i < 12; i++) next();
  return next;
}

/**
 * Fills an inverted-dropout mask (`0` or `1 / (1 - p)`) for `batch` records of
 * `perRecord` elements each, record `i` from its own keyed stream.
 */
export function recordDropoutMask(
  ctx: LayerRecordContext,
  batch: number,
  perRecord: number,
  p: number,
): Float32Array {
  if (ctx.records.length !== batch)
    throw new InvalidArgumentError(
      'context.records',
      `has ${ctx.records.length} entries but the batch has ${batch} samples; set the record context of each micro-batch before its forward pass`,
    );
  const keep = 1 / (1 - p);
  const m = new Float32Array(batch * perRecord);
  for (let i = 0; i < batch; i++) {
    const next = recordStream(ctx, ctx.records[i]);
    const o = i * perRecord;
    for (let j = 0; j < perRecord; j++) m[o + j] = next() >= p ? keep : 0;
  }
  return m;
}
