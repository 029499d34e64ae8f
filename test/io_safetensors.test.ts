import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import {
  parseSafetensors,
  readSafetensors,
  serializeSafetensors,
  writeSafetensors,
  SafetensorsError,
} from '../lib/io/safetensors';

/**
 * An independent minimal reader: decodes the layout straight from the format description
 * with a DataView (no shared code with lib/io/safetensors.ts).
 */
function miniRead(buf: Buffer): { header: any; data: Record<string, number[]>; dataStart: number } {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const n = Number(dv.getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(buf.subarray(8, 8 + n)));
  const dataStart = 8 + n;
  const data: Record<string, number[]> = {};
  for (const [k, v] of Object.entries<any>(header)) {
    if (k === '__metadata__') continue;
    const [b, e] = v.data_offsets;
    const out: number[] = [];
    const size = ({ F32: 4, F64: 8, I32: 4, I64: 8 } as any)[v.dtype];
    for (let o = dataStart + b; o < dataStart + e; o += size) {
      if (v.dtype === 'F32') out.push(dv.getFloat32(o, true));
      else if (v.dtype === 'F64') out.push(dv.getFloat64(o, true));
      else if (v.dtype === 'I32') out.push(dv.getInt32(o, true));
      else out.push(Number(dv.getBigInt64(o, true)));
    }
    data[k] = out;
  }
  return { header, data, dataStart };
}

function bitsEqual(a: Float32Array, b: Float32Array): boolean {
  if (a.length !== b.length) return false;
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  return ua.every((x, i) => x === ub[i]);
}

/** Deterministic awkward floats: NaN payloads, -0, denormals, infinities, random bits. */
function awkwardF32(n: number, seed: number): Float32Array {
  const u = new Uint32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    u[i] = s;
  }
  u[0] = 0x80000000; // -0
  u[1] = 0x00000001; // smallest denormal
  u[2] = 0x7f800000; // +inf
  u[3] = 0x7fc00001; // quiet NaN with payload
  return new Float32Array(u.buffer);
}

describe('safetensors', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dplora-st-'));
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  test('write then read is bit-identical; independent reader agrees', () => {
    const a = awkwardF32(3 * 5, 7);
    const b = new Float64Array([1.5, -2.25, Math.PI, -0]);
    const c = new Int32Array([-(2 ** 31), 2 ** 31 - 1, 0]);
    const d = new BigInt64Array([-(2n ** 63n), 2n ** 63n - 1n]);
    const file = path.join(tmp, 'x.safetensors');
    writeSafetensors(
      file,
      {
        'z.a': { data: a, shape: [3, 5] },
        b: { data: b, shape: [2, 2] },
        c: { data: c, shape: [3] },
        d: { data: d, shape: [2] },
      },
      { format: 'pt', note: 'hi' },
    );
    const back = readSafetensors(file);
    expect(back.metadata).toEqual({ format: 'pt', note: 'hi' });
    const ta = back.tensors.get('z.a')!;
    expect(ta.dtype).toBe('F32');
    expect(ta.shape).toEqual([3, 5]);
    expect(bitsEqual(ta.data as Float32Array, a)).toBe(true);
    expect(Array.from(back.tensors.get('b')!.data as Float64Array)).toEqual(Array.from(b));
    expect(Object.is((back.tensors.get('b')!.data as Float64Array)[3], -0)).toBe(true);
    expect(Array.from(back.tensors.get('c')!.data as Int32Array)).toEqual(Array.from(c));
    expect(Array.from(back.tensors.get('d')!.data as BigInt64Array)).toEqual(Array.from(d));

    const raw = fs.readFileSync(file);
    const mini = miniRead(raw);
    // Data section aligned to 8 bytes, header padded with spaces.
    expect(mini.dataStart % 8).toBe(0);
    const hdrText = raw.subarray(8, mini.dataStart).toString('utf8');
    expect(hdrText.trimEnd()).toBe(JSON.stringify(JSON.parse(hdrText)));
    expect(/^ *$/.test(hdrText.slice(hdrText.lastIndexOf('}') + 1))).toBe(true);
    expect(mini.header.__metadata__).toEqual({ format: 'pt', note: 'hi' });
    expect(mini.header.b).toEqual({ dtype: 'F64', shape: [2, 2], data_offsets: [0, 32] });
    // Tensors in sorted key order: b, c, d, z.a
    expect(mini.header.c.data_offsets).toEqual([32, 44]);
    expect(mini.header.d.data_offsets).toEqual([44, 60]);
    expect(mini.header['z.a'].data_offsets).toEqual([60, 120]);
    expect(raw.length).toBe(mini.dataStart + 120);
    expect(mini.data.b).toEqual([1.5, -2.25, Math.PI, -0]);
    expect(mini.data.c).toEqual([-(2 ** 31), 2 ** 31 - 1, 0]);
    // Compare F32 bits through the mini reader (NaN excluded by value compare)
    const miniA = mini.data['z.a'];
    for (let i = 0; i < a.length; i++) {
      if (Number.isNaN(a[i])) expect(Number.isNaN(miniA[i])).toBe(true);
      else expect(Object.is(miniA[i], a[i])).toBe(true);
    }
  });

  test('reads F16 and BF16 (widened to F32), and a hand-built file', () => {
    // Hand-built: header {"h":{"dtype":"F16","shape":[3],"data_offsets":[0,6]},"g":{"dtype":"BF16","shape":[2],"data_offsets":[6,10]}}
    const hdr = JSON.stringify({
      h: { dtype: 'F16', shape: [3], data_offsets: [0, 6] },
      g: { dtype: 'BF16', shape: [2], data_offsets: [6, 10] },
    });
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(hdr.length));
    const data = Buffer.alloc(10);
    data.writeUInt16LE(0x3c00, 0); // 1.0
    data.writeUInt16LE(0xc000, 2); // -2.0
    data.writeUInt16LE(0x0001, 4); // 2^-24
    data.writeUInt16LE(0x3fc0, 6); // bf16 1.5
    data.writeUInt16LE(0xc0a0, 8); // bf16 -5
    const f = parseSafetensors(Buffer.concat([len, Buffer.from(hdr), data]));
    expect(Array.from(f.tensors.get('h')!.data as Float32Array)).toEqual([1, -2, 2 ** -24]);
    expect(Array.from(f.tensors.get('g')!.data as Float32Array)).toEqual([1.5, -5]);
  });

  function build(header: object, dataBytes: number, lenOverride?: bigint): Buffer {
    const h = Buffer.from(JSON.stringify(header));
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(lenOverride ?? BigInt(h.length));
    return Buffer.concat([len, h, Buffer.alloc(dataBytes)]);
  }

  test.each([
    ['too short', Buffer.alloc(4), /too short/],
    ['header past end', build({}, 0, 1000n), /past the end/],
    ['huge header', build({}, 0, 2n ** 40n), /exceeds the limit/],
    [
      'bad json',
      Buffer.concat([Buffer.from([3, 0, 0, 0, 0, 0, 0, 0]), Buffer.from('{x}')]),
      /not valid JSON/,
    ],
    ['array header', build([] as any, 0), /JSON object/],
    [
      'unknown dtype',
      build({ a: { dtype: 'F8', shape: [1], data_offsets: [0, 1] } }, 1),
      /unsupported dtype/,
    ],
    [
      'negative shape',
      build({ a: { dtype: 'F32', shape: [-1], data_offsets: [0, 4] } }, 4),
      /non-negative integers/,
    ],
    [
      'offsets past data',
      build({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } }, 4),
      /run past/,
    ],
    [
      'size mismatch',
      build({ a: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, 8),
      /needs 12/,
    ],
    [
      'reversed offsets',
      build({ a: { dtype: 'F32', shape: [0], data_offsets: [4, 0] } }, 4),
      /end 0 < begin 4/,
    ],
    [
      'overlap',
      build(
        {
          a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
          b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] },
        },
        12,
      ),
      /overlap/,
    ],
    ['hole', build({ a: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }, 8), /hole/],
    [
      'trailing bytes',
      build({ a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }, 8),
      /not belonging/,
    ],
    ['non-string metadata', build({ __metadata__: { a: 1 } }, 0), /must be a string/],
    [
      'offsets not integers',
      build({ a: { dtype: 'F32', shape: [1], data_offsets: [0, 'x'] } }, 4),
      /data_offsets/,
    ],
  ])('rejects %s', (_name, buf, re) => {
    expect(() => parseSafetensors(buf)).toThrow(SafetensorsError);
    expect(() => parseSafetensors(buf)).toThrow(re);
  });

  test('writer rejects shape/data mismatch and reserved names', () => {
    expect(() => serializeSafetensors({ a: { data: new Float32Array(3), shape: [2, 2] } })).toThrow(
      /holds 4 elements but data has 3/,
    );
    expect(() =>
      serializeSafetensors({ __metadata__: { data: new Float32Array(1), shape: [1] } }),
    ).toThrow(/reserved/);
    expect(() => serializeSafetensors({ a: { data: [1, 2] as any, shape: [2] } })).toThrow(
      /typed array/,
    );
  });

  test('empty tensors and empty files round trip', () => {
    const buf = serializeSafetensors({ e: { data: new Float32Array(0), shape: [0, 4] } });
    const f = parseSafetensors(buf);
    expect(f.tensors.get('e')!.shape).toEqual([0, 4]);
    expect(parseSafetensors(serializeSafetensors({})).tensors.size).toBe(0);
  });
});
