/**
 * The cached pretrained base (issue 10, section 1): NaNs written into the cache were used
 * silently (accuracy 81% -> 44%, exit 0, budget spent). The cache is now checked before use
 * (its recorded SHA-256 and finite weights) and pretrained again when it fails.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { pretrainedBase } from '../lib/cli/train_model';
import { fileSha256 } from '../lib/io/checkpoint';
import { readSafetensors, writeSafetensors } from '../lib/io/safetensors';

let tmp: string;
let old: string | undefined;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dplora-cache-'));
  old = process.env.DPLORA_CACHE_DIR;
  process.env.DPLORA_CACHE_DIR = tmp;
});
afterAll(() => {
  if (old === undefined) delete process.env.DPLORA_CACHE_DIR;
  else process.env.DPLORA_CACHE_DIR = old;
  fs.rmSync(tmp, { recursive: true, force: true });
});

test('a tampered cached base (NaNs, re-hashed or not) is not used', () => {
  const shape = { dim: 16, hidden: 8, classes: 2 };
  const n = 64;
  const X = new Float32Array(n * 16).map((_, i) => Math.sin(i));
  const y = Int32Array.from({ length: n }, (_, i) => i % 2);
  const part = { X, y, n };
  const first = pretrainedBase(shape, part, 'test');
  expect(first.cached).toBe(false);
  expect(pretrainedBase(shape, part, 'test').cached).toBe(true);
  // NaNs written in, and the recorded hash updated to match: the finite check refuses it.
  const st = readSafetensors(first.file);
  const tensors = Object.fromEntries(
    [...st.tensors].map(([k, t]) => [k, { data: t.data as Float32Array, shape: t.shape }]),
  );
  tensors['fc1.weight'].data[3] = NaN;
  writeSafetensors(first.file, tensors, st.metadata);
  fs.writeFileSync(`${first.file}.sha256`, fileSha256(first.file) + '\n');
  const lines: string[] = [];
  const again = pretrainedBase(shape, part, 'test', (l) => lines.push(l));
  expect(again.cached).toBe(false);
  expect(lines.join('\n')).toMatch(/ignoring the cached base.*finite/);
  for (const t of Object.values(again.base.tensors)) expect(t.every(Number.isFinite)).toBe(true);
  // A flipped byte without re-hashing: the hash check refuses it.
  const b = fs.readFileSync(again.file);
  b[b.length - 1] ^= 0x40;
  fs.writeFileSync(again.file, b);
  const lines2: string[] = [];
  expect(pretrainedBase(shape, part, 'test', (l) => lines2.push(l)).cached).toBe(false);
  expect(lines2.join('\n')).toMatch(/SHA-256/);
});
