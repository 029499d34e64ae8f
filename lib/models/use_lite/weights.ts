/**
 * Reads a TF.js graph model's weights (`model.json` + binary shards) directly,
 * without TF.js: the weights manifest lists each tensor's name, shape and dtype
 * in the order the shards hold them, concatenated.
 */
import * as path from 'path';
import { DpLoraError, ErrorCode } from '../../errors';
import { readRegularFile } from '../../io/files';

/** Largest model.json accepted (bytes). */
const MAX_MANIFEST_BYTES = 16 << 20;
/** Largest weight shard accepted (bytes). */
const MAX_SHARD_BYTES = 512 << 20;

/** One tensor read from the shards. */
export interface TfjsTensor {
  /** Dimensions, as the weights manifest lists them. */
  shape: number[];
  /** Element type (quantized weights are not supported). */
  dtype: 'float32' | 'int32';
  /** The elements, row-major (a Float32Array for float32, an Int32Array for int32). */
  data: Float32Array | Int32Array;
}

interface ManifestGroup {
  paths: string[];
  weights: Array<{ name: string; shape: number[]; dtype: string; quantization?: unknown }>;
}

function formatError(file: string, msg: string): DpLoraError {
  return new DpLoraError(ErrorCode.FileFormat, `${file}: ${msg}`, { argument: file });
}

/**
 * Every weight of the TF.js model at `modelJsonPath`, by name.
 *
 * @param modelJsonPath - path of `model.json`; the shards are read from its folder
 * @returns a map from weight name to tensor (float32 or int32, no quantization)
 */
export function readTfjsWeights(modelJsonPath: string): Map<string, TfjsTensor> {
  const text = readRegularFile('modelJsonPath', modelJsonPath, MAX_MANIFEST_BYTES).toString('utf8');
  let manifest: ManifestGroup[];
  try {
    const json = JSON.parse(text) as {
      weightsManifest?: ManifestGroup[];
    };
    if (!Array.isArray(json.weightsManifest)) throw new Error('no weightsManifest');
    manifest = json.weightsManifest;
  } catch (e) {
    throw new DpLoraError(ErrorCode.FileFormat, `${modelJsonPath}: not a TF.js model.json`, {
      argument: modelJsonPath,
      cause: e,
    });
  }
  const dir = path.dirname(modelJsonPath);
  const out = new Map<string, TfjsTensor>();
  for (const group of manifest) {
    const buf = Buffer.concat(
      group.paths.map((p) =>
        readRegularFile('modelJsonPath', path.join(dir, String(p)), MAX_SHARD_BYTES),
      ),
    );
    let off = 0;
    for (const w of group.weights) {
      if (w.quantization !== undefined)
        throw formatError(modelJsonPath, `weight ${w.name} is quantized (not supported)`);
      if (w.dtype !== 'float32' && w.dtype !== 'int32')
        throw formatError(modelJsonPath, `weight ${w.name} has dtype ${w.dtype}`);
      let n = 1;
      for (const d of w.shape) n *= d;
      if (off + 4 * n > buf.length)
        throw formatError(modelJsonPath, `the shards end inside weight ${w.name}`);
      // Copy into an aligned buffer (a shard offset need not be 4-byte aligned).
      const bytes = new Uint8Array(buf.buffer, buf.byteOffset + off, 4 * n).slice();
      const data =
        w.dtype === 'float32' ? new Float32Array(bytes.buffer) : new Int32Array(bytes.buffer);
      out.set(w.name, { shape: [...w.shape], dtype: w.dtype, data });
      off += 4 * n;
    }
    if (off !== buf.length)
      throw formatError(
        modelJsonPath,
        `the shards hold ${buf.length - off} bytes past the last weight`,
      );
  }
  return out;
}
