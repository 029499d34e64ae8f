/**
 * The exact discrete Gaussian of the addon (threaded host path) against the
 * known answers of an independent implementation (scripts/dgauss_kat.py:
 * Python, exact integers and fractions, its own ChaCha20), sample for
 * sample. The same vectors run on the FPU-less targets in
 * scripts/nofpu-tests.sh.
 */
import * as fs from 'fs';
import * as path from 'path';
import { Rng } from '../lib/kernels/rng';

const header = fs.readFileSync(
  path.join(__dirname, '..', 'native', 'nofpu', 'dgauss_kat_vectors.h'),
  'utf8',
);

function bytes(name: string): Uint8Array {
  const m = new RegExp(`${name}\\[\\d+\\] = \\{([^}]*)\\}`).exec(header);
  if (!m) throw new Error(`no ${name} in the vectors`);
  return Uint8Array.from(m[1].split(',').map((s) => Number(s.trim())));
}
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

interface Case {
  name: string;
  num: bigint;
  den: bigint;
  base: bigint;
  expect: bigint[];
}

function cases(): Case[] {
  const out: Case[] = [];
  const re =
    /\{"(\w+)", UINT64_C\((\d+)\), UINT64_C\((\d+)\), UINT64_C\((\d+)\), (\d+), kKat_\w+\}/g;
  for (let m = re.exec(header); m; m = re.exec(header)) {
    const arr = new RegExp(`kKat_${m[1]}\\[${m[5]}\\] = \\{([^}]*)\\}`).exec(header);
    if (!arr) throw new Error(`no samples for ${m[1]}`);
    const expect = [...arr[1].matchAll(/INT64_C\((-?\d+)\)/g)].map((x) => BigInt(x[1]));
    out.push({ name: m[1], num: BigInt(m[2]), den: BigInt(m[3]), base: BigInt(m[4]), expect });
  }
  return out;
}

describe('exact discrete Gaussian known answers (independent Python implementation)', () => {
  const key = bytes('kKatKey');
  const nonce = bytes('kKatNonce');
  const all = cases();

  test('the vectors parse (11 cases, counts as declared)', () => {
    expect(all.map((c) => c.name)).toEqual([
      'tiny',
      'unit',
      'third',
      'mid',
      'sigma_2p16',
      'huge',
      'max',
      'den_2p64',
      'tie_e1',
      'e1_beyond7',
      'cell_k3',
    ]);
    for (const c of all) expect(c.expect.length).toBeGreaterThanOrEqual(64);
  });

  test.each(all.map((c) => [c.name, c] as [string, Case]))('%s: sample for sample', (_n, c) => {
    const rng = Rng.fromState({
      version: 1,
      reproducible: true,
      key: hex(key),
      nonce: hex(nonce),
      position: c.base.toString(),
    });
    const out = new BigInt64Array(c.expect.length);
    rng.discreteGaussian(out, { num: c.num, den: c.den });
    expect(Array.from(out)).toEqual(c.expect);
  });

  test('a perturbed stream position gives different samples (the test can fail)', () => {
    const c = all.find((x) => x.name === 'unit')!;
    const rng = Rng.fromState({
      version: 1,
      reproducible: true,
      key: hex(key),
      nonce: hex(nonce),
      position: (c.base + 1n).toString(),
    });
    const out = new BigInt64Array(c.expect.length);
    rng.discreteGaussian(out, { num: c.num, den: c.den });
    expect(Array.from(out)).not.toEqual(c.expect);
  });
});
