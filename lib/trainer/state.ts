/**
 * Moving the privacy engine's state in and out of a checkpoint: Float32Arrays become
 * safetensors entries (replaced in the JSON by `{"$tensor": key}`), the accountant ledger
 * becomes the checkpoint's mandatory, checksummed `ledger`.
 */
import { StTensor, StTensorInput } from '../io/safetensors';
import { CheckpointError } from '../errors';

/** Replaces every Float32Array in `value` by a `{$tensor: key}` reference, collecting them. */
export function extractTensors(
  value: unknown,
  tensors: Record<string, StTensorInput>,
  prefix = '',
): unknown {
  if (value instanceof Float32Array) {
    const key = prefix || 'tensor';
    if (key in tensors) throw new Error(`internal: extractTensors: duplicate key ${key}`);
    tensors[key] = { data: value, shape: [value.length] };
    return { $tensor: key };
  }
  if (Array.isArray(value))
    return value.map((v, i) => extractTensors(v, tensors, prefix ? `${prefix}.${i}` : String(i)));
  if (value && typeof value === 'object') {
    if (ArrayBuffer.isView(value))
      throw new Error(
        `internal: extractTensors: ${prefix}: only Float32Array tensors are supported`,
      );
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      if (v === undefined) continue;
      out[k] = extractTensors(v, tensors, prefix ? `${prefix}.${k}` : k);
    }
    return out;
  }
  return value;
}

/** Inverse of {@link extractTensors}: puts the tensors back (copies, as Float32Array). */
export function restoreTensors(value: unknown, tensors: Map<string, StTensor>): unknown {
  if (Array.isArray(value)) return value.map((v) => restoreTensors(v, tensors));
  if (value && typeof value === 'object') {
    const o = value as Record<string, unknown>;
    if (typeof o.$tensor === 'string' && Object.keys(o).length === 1) {
      const t = tensors.get(o.$tensor);
      if (!t)
        throw new CheckpointError(
          `checkpoint: tensor "${o.$tensor}" is missing from the tensor file`,
        );
      if (!(t.data instanceof Float32Array))
        throw new CheckpointError(`checkpoint: tensor "${o.$tensor}" must be F32`);
      return t.data;
    }
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(o)) out[k] = restoreTensors(v, tensors);
    return out;
  }
  return value;
}
