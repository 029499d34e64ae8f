/**
 * A small reader and writer for the safetensors format (our own implementation).
 *
 * Layout: 8-byte little-endian unsigned header length N, then N bytes of UTF-8 JSON, then
 * the tensor data. The JSON maps each tensor name to `{dtype, shape, data_offsets: [begin,
 * end]}` (offsets relative to the start of the data section) and may hold a
 * `__metadata__` object of string values. We pad the header with spaces so the data section
 * starts at a multiple of 8 bytes, and we write tensors in sorted key order, back to back.
 *
 * Reading validates everything: header length in range, JSON an object, known dtypes, integer
 * non-negative shapes, offsets inside the file, byte length = product(shape) * itemsize, and
 * tensors tiling the data section exactly (no overlaps, holes or trailing bytes).
 */
import { DpLoraError, ErrorCode } from '../errors';
import * as fs from 'fs';
import * as os from 'os';
import { atomicWriteFile } from './atomic';
import { SafetensorsError } from '../errors';
import { requireString, requireTypedArray } from '../validate';
export { SafetensorsError };

/** Element types this module understands. */
export type SafetensorsDtype =
  'F32' | 'F64' | 'F16' | 'BF16' | 'I32' | 'I64' | 'I16' | 'I8' | 'U8' | 'BOOL';

/** Bytes per element for each dtype. */
export const DTYPE_SIZE: Record<SafetensorsDtype, number> = {
  F32: 4,
  F64: 8,
  F16: 2,
  BF16: 2,
  I32: 4,
  I64: 8,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
};

/** A tensor as read from or written to a safetensors file. */
export interface StTensor {
  /** Element type in the file. */
  dtype: SafetensorsDtype;
  /** Dimensions, outermost first (row-major). */
  shape: number[];
  /**
   * Decoded values: Float32Array for F32/F16/BF16 (half types are widened), Float64Array for
   * F64, Int32Array for I32, BigInt64Array for I64, Int16Array, Int8Array, Uint8Array.
   */
  data:
    Float32Array | Float64Array | Int32Array | BigInt64Array | Int16Array | Int8Array | Uint8Array;
}

/** Tensors to write: name -> tensor. Data type decides the dtype unless `dtype` is given. */
export type StTensorInput = {
  /** Values, row-major; a Float32Array is written as F32, a Float64Array as F64, and so on. */
  data:
    Float32Array | Float64Array | Int32Array | BigInt64Array | Int16Array | Int8Array | Uint8Array;
  /** Dimensions, outermost first (row-major); their product is the number of elements. */
  shape: number[];
  /** Element type to write (F16/BF16 from a Float32Array); default: from the array type. */
  dtype?: SafetensorsDtype;
};

/** Result of reading a safetensors file. */
export interface SafetensorsFile {
  /** Tensors by name, in file order. */
  tensors: Map<string, StTensor>;
  /** The `__metadata__` string map of the header (empty if none). */
  metadata: Record<string, string>;
}

/** Largest header we accept (100 MB, the same bound the reference library uses). */
export const MAX_HEADER_BYTES = 100_000_000;

function dtypeOf(t: StTensorInput, name: string): SafetensorsDtype {
  if (t.dtype) {
    const expected: Partial<Record<SafetensorsDtype, abstract new (...args: never[]) => unknown>> =
      {
        F32: Float32Array,
        F64: Float64Array,
        I32: Int32Array,
        I64: BigInt64Array,
        I16: Int16Array,
        I8: Int8Array,
        U8: Uint8Array,
        BOOL: Uint8Array,
      };
    const ctor = expected[t.dtype];
    if (!ctor)
      throw new SafetensorsError(
        `tensor "${name}": writing dtype ${t.dtype} is not supported (use F32, F64, I32, I64, I16, I8, U8, BOOL)`,
      );
    if (!(t.data instanceof ctor))
      throw new SafetensorsError(
        `tensor "${name}": dtype ${t.dtype} needs a ${ctor.name}, got ${t.data?.constructor?.name}`,
      );
    return t.dtype;
  }
  if (t.data instanceof Float32Array) return 'F32';
  if (t.data instanceof Float64Array) return 'F64';
  if (t.data instanceof Int32Array) return 'I32';
  if (t.data instanceof BigInt64Array) return 'I64';
  if (t.data instanceof Int16Array) return 'I16';
  if (t.data instanceof Int8Array) return 'I8';
  if (t.data instanceof Uint8Array) return 'U8';
  throw new SafetensorsError(
    `tensor "${name}": data must be a typed array (Float32Array, Float64Array, Int32Array, BigInt64Array, Int16Array, Int8Array or Uint8Array)`,
  );
}

function checkShape(shape: unknown, name: string): number {
  if (!Array.isArray(shape))
    throw new SafetensorsError(`tensor "${name}": shape must be an array of non-negative integers`);
  let n = 1;
  for (const d of shape) {
    if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0) {
      throw new SafetensorsError(
        `tensor "${name}": shape ${JSON.stringify(shape)} must hold non-negative integers`,
      );
    }
    n *= d;
    if (!Number.isSafeInteger(n))
      throw new SafetensorsError(`tensor "${name}": shape ${JSON.stringify(shape)} is too large`);
  }
  return n;
}

/**
 * Serializes tensors (written in sorted key order) and string metadata into safetensors bytes.
 * Throws {@link SafetensorsError} when a shape does not match the data length.
 */
export function serializeSafetensors(
  tensors: Record<string, StTensorInput> | Map<string, StTensorInput>,
  metadata: Record<string, string> = {},
): Buffer {
  const entries = (tensors instanceof Map ? [...tensors.entries()] : Object.entries(tensors)).sort(
    (a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0),
  );
  const header: Record<string, unknown> = {};
  const metaKeys = Object.keys(metadata);
  if (metaKeys.length > 0) {
    const meta: Record<string, string> = {};
    for (const k of metaKeys) {
      if (typeof metadata[k] !== 'string')
        throw new SafetensorsError(`metadata "${k}" must be a string`);
      meta[k] = metadata[k];
    }
    header.__metadata__ = meta;
  }
  let offset = 0;
  const parts: Buffer[] = [];
  for (const [name, t] of entries) {
    if (name === '__metadata__')
      throw new SafetensorsError('"__metadata__" is reserved and cannot name a tensor');
    if (name.length === 0) throw new SafetensorsError('tensor names must be non-empty');
    const dtype = dtypeOf(t, name);
    const n = checkShape(t.shape, name);
    if (n !== t.data.length) {
      throw new SafetensorsError(
        `tensor "${name}": shape ${JSON.stringify(t.shape)} holds ${n} elements but data has ${t.data.length}`,
      );
    }
    const bytes = n * DTYPE_SIZE[dtype];
    header[name] = { dtype, shape: [...t.shape], data_offsets: [offset, offset + bytes] };
    // Copy to a little-endian buffer (typed arrays are host-endian; Node runs on LE hosts,
    // but we write explicitly to keep the format right everywhere).
    parts.push(toLittleEndian(t.data, dtype));
    offset += bytes;
  }
  let json = Buffer.from(JSON.stringify(header), 'utf8');
  const pad = (8 - ((8 + json.length) % 8)) % 8;
  if (pad > 0) json = Buffer.concat([json, Buffer.alloc(pad, 0x20)]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([len, json, ...parts]);
}

function toLittleEndian(data: StTensorInput['data'], dtype: SafetensorsDtype): Buffer {
  const n = data.length;
  const size = DTYPE_SIZE[dtype];
  if (LITTLE_ENDIAN_HOST) {
    // Raw byte copy: exact bits (NaN payloads included) and fast.
    return Buffer.from(new Uint8Array(data.buffer, data.byteOffset, n * size));
  }
  const out = Buffer.alloc(n * size);
  switch (dtype) {
    case 'F32':
      for (let i = 0; i < n; i++) out.writeFloatLE((data as Float32Array)[i], i * 4);
      break;
    case 'F64':
      for (let i = 0; i < n; i++) out.writeDoubleLE((data as Float64Array)[i], i * 8);
      break;
    case 'I32':
      for (let i = 0; i < n; i++) out.writeInt32LE((data as Int32Array)[i], i * 4);
      break;
    case 'I64':
      for (let i = 0; i < n; i++) out.writeBigInt64LE((data as BigInt64Array)[i], i * 8);
      break;
    case 'I16':
      for (let i = 0; i < n; i++) out.writeInt16LE((data as Int16Array)[i], i * 2);
      break;
    case 'I8':
      for (let i = 0; i < n; i++) out.writeInt8((data as Int8Array)[i], i);
      break;
    case 'U8':
    case 'BOOL':
      out.set(data as Uint8Array);
      break;
    default:
      throw new SafetensorsError(`writing dtype ${dtype} is not supported`);
  }
  return out;
}

function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * f * 2 ** -24;
  if (e === 31) return f ? NaN : s * Infinity;
  return s * (1 + f / 1024) * 2 ** (e - 15);
}

const LITTLE_ENDIAN_HOST = os.endianness() === 'LE';

function decode(buf: Buffer, start: number, n: number, dtype: SafetensorsDtype): StTensor['data'] {
  if (LITTLE_ENDIAN_HOST) {
    // Copy into a fresh, aligned buffer and view it (exact bits).
    const bytes = new Uint8Array(n * DTYPE_SIZE[dtype]);
    bytes.set(buf.subarray(start, start + bytes.length));
    switch (dtype) {
      case 'F32':
        return new Float32Array(bytes.buffer);
      case 'F64':
        return new Float64Array(bytes.buffer);
      case 'I32':
        return new Int32Array(bytes.buffer);
      case 'I64':
        return new BigInt64Array(bytes.buffer);
      case 'I16':
        return new Int16Array(bytes.buffer);
      case 'I8':
        return new Int8Array(bytes.buffer);
      case 'U8':
      case 'BOOL':
        return bytes;
      default:
        break; // half types are widened below
    }
  }
  switch (dtype) {
    case 'F32': {
      const a = new Float32Array(n);
      for (let i = 0; i < n; i++) a[i] = buf.readFloatLE(start + 4 * i);
      return a;
    }
    case 'F64': {
      const a = new Float64Array(n);
      for (let i = 0; i < n; i++) a[i] = buf.readDoubleLE(start + 8 * i);
      return a;
    }
    case 'I32': {
      const a = new Int32Array(n);
      for (let i = 0; i < n; i++) a[i] = buf.readInt32LE(start + 4 * i);
      return a;
    }
    case 'I64': {
      const a = new BigInt64Array(n);
      for (let i = 0; i < n; i++) a[i] = buf.readBigInt64LE(start + 8 * i);
      return a;
    }
    case 'I16': {
      const a = new Int16Array(n);
      for (let i = 0; i < n; i++) a[i] = buf.readInt16LE(start + 2 * i);
      return a;
    }
    case 'I8': {
      const a = new Int8Array(n);
      for (let i = 0; i < n; i++) a[i] = buf.readInt8(start + i);
      return a;
    }
    case 'U8':
    case 'BOOL':
      return Uint8Array.from(buf.subarray(start, start + n));
    case 'F16': {
      const a = new Float32Array(n);
      for (let i = 0; i < n; i++) a[i] = halfToFloat(buf.readUInt16LE(start + 2 * i));
      return a;
    }
    case 'BF16': {
      const a = new Float32Array(n);
      const u = new Uint32Array(a.buffer);
      for (let i = 0; i < n; i++) u[i] = buf.readUInt16LE(start + 2 * i) << 16;
      return a;
    }
  }
}

/**
 * Parses safetensors bytes. Validates the header length, JSON, dtypes, shapes, offsets
 * (inside the data section, matching the shape, not overlapping) and metadata (strings only);
 * throws {@link SafetensorsError} with the reason otherwise.
 */
export function parseSafetensors(
  buf: Buffer | Uint8Array,
  source = 'safetensors data',
): SafetensorsFile {
  requireTypedArray('buf', buf, 'Uint8Array');
  const b = Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  if (b.length < 8)
    throw new SafetensorsError(
      `${source}: file is ${b.length} bytes, too short for the 8-byte header length`,
    );
  const hlen = b.readBigUInt64LE(0);
  if (hlen > BigInt(MAX_HEADER_BYTES))
    throw new SafetensorsError(
      `${source}: header length ${hlen} exceeds the limit of ${MAX_HEADER_BYTES} bytes`,
    );
  const headerLen = Number(hlen);
  if (8 + headerLen > b.length)
    throw new SafetensorsError(
      `${source}: header length ${headerLen} runs past the end of the file (${b.length} bytes)`,
    );
  if (headerLen < 2)
    throw new SafetensorsError(
      `${source}: header length ${headerLen} is too small for a JSON object`,
    );
  let header: unknown;
  try {
    header = JSON.parse(b.subarray(8, 8 + headerLen).toString('utf8'));
  } catch (e) {
    throw new SafetensorsError(`${source}: header is not valid JSON (${(e as Error).message})`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) {
    throw new SafetensorsError(`${source}: header must be a JSON object`);
  }
  const dataStart = 8 + headerLen;
  const dataLen = b.length - dataStart;
  const metadata: Record<string, string> = {};
  const tensors = new Map<string, StTensor>();
  const ranges: Array<[number, number, string]> = [];
  for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
        throw new SafetensorsError(`${source}: __metadata__ must be an object of strings`);
      for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
        if (typeof v !== 'string')
          throw new SafetensorsError(`${source}: __metadata__ value for "${k}" must be a string`);
        metadata[k] = v;
      }
      continue;
    }
    if (typeof raw !== 'object' || raw === null)
      throw new SafetensorsError(`${source}: entry "${name}" must be an object`);
    const info = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof info.dtype !== 'string' || !Object.hasOwn(DTYPE_SIZE, info.dtype)) {
      throw new SafetensorsError(
        `${source}: tensor "${name}" has unsupported dtype ${JSON.stringify(info.dtype)} (supported: ${Object.keys(DTYPE_SIZE).join(', ')})`,
      );
    }
    const dtype = info.dtype as SafetensorsDtype;
    const n = checkShapeRead(info.shape, name, source);
    const off = info.data_offsets;
    if (
      !Array.isArray(off) ||
      off.length !== 2 ||
      !off.every((x) => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0)
    ) {
      throw new SafetensorsError(
        `${source}: tensor "${name}" needs data_offsets [begin, end] of non-negative integers`,
      );
    }
    const [begin, end] = off as [number, number];
    if (end < begin)
      throw new SafetensorsError(
        `${source}: tensor "${name}" has data_offsets end ${end} < begin ${begin}`,
      );
    if (end > dataLen)
      throw new SafetensorsError(
        `${source}: tensor "${name}" data_offsets [${begin}, ${end}] run past the data section (${dataLen} bytes)`,
      );
    if (end - begin !== n * DTYPE_SIZE[dtype]) {
      throw new SafetensorsError(
        `${source}: tensor "${name}" has ${end - begin} bytes but shape ${JSON.stringify(info.shape)} of ${dtype} needs ${n * DTYPE_SIZE[dtype]}`,
      );
    }
    ranges.push([begin, end, name]);
    tensors.set(name, {
      dtype,
      shape: [...(info.shape as number[])],
      data: decode(b, dataStart + begin, n, dtype),
    });
  }
  // Tensors must tile the data section exactly: no overlaps, no holes, no trailing bytes
  // (the same rule the reference implementation enforces).
  ranges.sort((x, y) => x[0] - y[0] || x[1] - y[1]);
  let covered = 0;
  let lastName = '';
  for (const [begin, end, name] of ranges) {
    if (begin === end) continue;
    if (begin < covered)
      throw new SafetensorsError(`${source}: tensors "${lastName}" and "${name}" overlap`);
    if (begin > covered)
      throw new SafetensorsError(
        `${source}: data section has a hole of ${begin - covered} bytes before tensor "${name}"`,
      );
    covered = end;
    lastName = name;
  }
  if (covered !== dataLen)
    throw new SafetensorsError(
      `${source}: data section has ${dataLen - covered} bytes not belonging to any tensor`,
    );
  return { tensors, metadata };
}

function checkShapeRead(shape: unknown, name: string, source: string): number {
  try {
    return checkShape(shape, name);
  } catch (e) {
    throw new SafetensorsError(`${source}: ${(e as Error).message}`);
  }
}

/** Reads and parses a safetensors file (see {@link parseSafetensors}). */
export function readSafetensors(file: string): SafetensorsFile {
  requireString('file', file);
  // Bounded before reading: /dev/zero, a FIFO or a huge file is refused, not read forever.
  const st = fs.statSync(file);
  if (!st.isFile())
    throw new DpLoraError(ErrorCode.FileFormat, `${file}: not a regular file`, {
      argument: 'file',
    });
  if (st.size > MAX_SAFETENSORS_BYTES)
    throw new DpLoraError(
      ErrorCode.FileFormat,
      `${file}: ${st.size} bytes, more than the ${MAX_SAFETENSORS_BYTES} this reader accepts`,
      { argument: 'file' },
    );
  return parseSafetensors(fs.readFileSync(file), file);
}

/** Largest safetensors file read (bytes): 2 GiB. */
export const MAX_SAFETENSORS_BYTES = 2 * 1024 ** 3;

/** Serializes and writes a safetensors file atomically (temp file, fsync, rename). */
export function writeSafetensors(
  file: string,
  tensors: Record<string, StTensorInput> | Map<string, StTensorInput>,
  metadata: Record<string, string> = {},
): void {
  requireString('file', file);
  atomicWriteFile(file, serializeSafetensors(tensors, metadata));
}
