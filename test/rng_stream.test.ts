/**
 * ChaCha20 stream: RFC 8439 vectors, OpenSSL's chacha20 keystream as an
 * independent reference, determinism, state round trip, independence from
 * the thread count and the ISA path, and argument validation.
 */
import * as crypto from 'crypto';
import { Rng, chacha20Block } from '../lib/kernels/rng';
import { capabilities, setIsa, setThreads } from '../lib/native';
import { expectError, expectRejection } from './helpers/errors';
import { ksCritical, ksStatistic } from './helpers/stats';

const hex = (h: string): Uint8Array => Uint8Array.from(Buffer.from(h.replace(/\s+/g, ''), 'hex'));
const toHex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const SEED = '000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f';

/** OpenSSL's ChaCha20: IV = 4-byte little-endian counter + 12-byte nonce. */
function opensslKeystream(
  key: Uint8Array,
  counter: number,
  nonce: Uint8Array,
  bytes: number,
): Buffer {
  const iv = Buffer.alloc(16);
  iv.writeUInt32LE(counter, 0);
  Buffer.from(nonce).copy(iv, 4);
  return crypto.createCipheriv('chacha20', key, iv).update(Buffer.alloc(bytes));
}

describe('chacha20Block (RFC 8439)', () => {
  test('section 2.3.2 block', () => {
    const key = Uint8Array.from({ length: 32 }, (_, i) => i);
    const nonce = hex('000000090000004a00000000');
    expect(toHex(chacha20Block(key, 1, nonce))).toBe(
      '10f1e7e4d13b5915500fdd1fa32071c4c7d1f4c733c068030422aa9ac3d46c4e' +
        'd2826446079faa0914c2d705d98b02a2b5129cd1de164eb9cbd083e8a2503c4e',
    );
  });

  test('appendix A.1 vectors', () => {
    const zero = new Uint8Array(32);
    const zn = new Uint8Array(12);
    const k1 = new Uint8Array(32);
    k1[31] = 1;
    const kff = new Uint8Array(32);
    kff[1] = 0xff;
    const n2 = new Uint8Array(12);
    n2[11] = 2;
    const cases: [Uint8Array, number, Uint8Array, string][] = [
      [
        zero,
        0,
        zn,
        '76b8e0ada0f13d90405d6ae55386bd28bdd219b8a08ded1aa836efcc8b770dc7da41597c5157488d7724e03fb8d84a376a43b8f41518a11cc387b669b2ee6586',
      ],
      [
        zero,
        1,
        zn,
        '9f07e7be5551387a98ba977c732d080dcb0f29a048e3656912c6533e32ee7aed29b721769ce64e43d57133b074d839d531ed1f28510afb45ace10a1f4b794d6f',
      ],
      [
        k1,
        1,
        zn,
        '3aeb5224ecf849929b9d828db1ced4dd832025e8018b8160b82284f3c949aa5a8eca00bbb4a73bdad192b5c42f73f2fd4e273644c8b36125a64addeb006c13a0',
      ],
      [
        kff,
        2,
        zn,
        '72d54dfbf12ec44b362692df94137f328fea8da73990265ec1bbbea1ae9af0ca13b25aa26cb4a648cb9b9d1be65b2c0924a66c54d545ec1b7374f4872e99f096',
      ],
      [
        zero,
        0,
        n2,
        'c2c64d378cd536374ae204b9ef933fcd1a8b2288b3dfa49672ab765b54ee27c78a970e0e955c14f3a88e741b97c286f75f8fc299e8148362fa198a39531bed6d',
      ],
    ];
    for (const [key, counter, nonce, want] of cases)
      expect(toHex(chacha20Block(key, counter, nonce))).toBe(want);
  });

  test('validates its arguments', () => {
    expectError(
      () => chacha20Block(new Uint8Array(31), 0, new Uint8Array(12)),
      'InvalidArgumentError',
      /key/,
    );
    expectError(
      () => chacha20Block(new Uint8Array(32), 0, new Uint8Array(11)),
      'InvalidArgumentError',
      /nonce/,
    );
    expectError(
      () => chacha20Block(new Uint8Array(32), -1, new Uint8Array(12)),
      'InvalidArgumentError',
      /counter/,
    );
    expectError(
      () => chacha20Block(new Uint8Array(32), 2 ** 32, new Uint8Array(12)),
      'InvalidArgumentError',
      /counter/,
    );
    expectError(
      () => chacha20Block([] as unknown as Uint8Array, 0, new Uint8Array(12)),
      'InvalidArgumentError',
      /key/,
    );
  });
});

describe('Rng stream', () => {
  test('fillUint32 is the RFC 8439 keystream (checked against OpenSSL), continuing across calls', () => {
    const key = hex(SEED);
    const rng = new Rng({ seed: key });
    const a = rng.fillUint32(new Uint32Array(5));
    const b = rng.fillUint32(new Uint32Array(1000));
    const all = Buffer.concat([Buffer.from(a.buffer), Buffer.from(b.buffer)]);
    expect(all.equals(opensslKeystream(key, 0, new Uint8Array(12), 4 * 1005))).toBe(true);
    expect(rng.getState().position).toBe('1005');
  });

  test('the 64-bit position carries into nonce word 0 past block 2^32', () => {
    const key = hex(SEED);
    const state = {
      version: 1 as const,
      reproducible: true,
      key: SEED,
      nonce: '07000000' + '00'.repeat(8),
      position: (16n * (2n ** 32n + 5n)).toString(),
    };
    const got = Rng.fromState(state).fillUint32(new Uint32Array(16));
    const n = new Uint8Array(12);
    n[0] = 8; // nonce word 0 + 1
    expect(Buffer.from(got.buffer).equals(opensslKeystream(key, 5, n, 64))).toBe(true);
  });

  test('same seed gives the same stream; hex and byte seeds agree; default Rngs differ', () => {
    const x = new Rng({ seed: SEED }).fillUint32(new Uint32Array(64));
    const y = new Rng({ seed: hex(SEED) }).fillUint32(new Uint32Array(64));
    expect(toHex(new Uint8Array(x.buffer))).toBe(toHex(new Uint8Array(y.buffer)));
    const r1 = new Rng();
    const r2 = new Rng();
    expect(r1.reproducible).toBe(false);
    const p = r1.fillUint32(new Uint32Array(8));
    const q = r2.fillUint32(new Uint32Array(8));
    expect(toHex(new Uint8Array(p.buffer))).not.toBe(toHex(new Uint8Array(q.buffer)));
    expect(r1.getState().key).not.toBe(r2.getState().key);
  });

  test('describe() names the entropy source or warns about the fixed seed', () => {
    expect(new Rng().describe()).toMatch(/OS entropy/);
    const fixed = new Rng({ seed: SEED });
    expect(fixed.reproducible).toBe(true);
    expect(fixed.describe()).toMatch(/FIXED SEED \(reproducible mode\)/);
  });

  test('getState / fromState continues the stream exactly', () => {
    const rng = new Rng();
    rng.fillUint32(new Uint32Array(17));
    rng.gaussian(new Float32Array(5), 1);
    const state = JSON.parse(JSON.stringify(rng.getState()));
    const copy = Rng.fromState(state);
    expect(copy.reproducible).toBe(false);
    const a = rng.uniform(new Float64Array(33));
    const b = copy.uniform(new Float64Array(33));
    expect(Array.from(a)).toEqual(Array.from(b));
  });

  test('uniform: 53-bit values in [0, 1) from word pairs', () => {
    const rng = new Rng({ seed: SEED });
    const w = new Rng({ seed: SEED }).fillUint32(new Uint32Array(200));
    const u = rng.uniform(new Float64Array(100));
    for (let i = 0; i < 100; i++) {
      const want = ((w[2 * i] >>> 5) * 67108864 + (w[2 * i + 1] >>> 6)) / 2 ** 53;
      expect(u[i]).toBe(want);
      expect(u[i]).toBeGreaterThanOrEqual(0);
      expect(u[i]).toBeLessThan(1);
    }
  });

  test('uniform passes Kolmogorov-Smirnov against U(0, 1) (false-alarm rate 1e-4)', () => {
    const n = 200_000;
    const u = new Rng({ seed: SEED }).uniform(new Float64Array(n));
    expect(ksStatistic(u, (x) => Math.min(1, Math.max(0, x)))).toBeLessThan(ksCritical(n, 1e-4));
    // and detects a skewed one
    const skew = u.map((x) => x * x);
    expect(ksStatistic(skew, (x) => Math.min(1, Math.max(0, x)))).toBeGreaterThan(
      ksCritical(n, 1e-4),
    );
  });

  test('output does not depend on the thread count or the ISA path', () => {
    const caps = capabilities();
    const n = 70001;
    const ref: Record<string, string> = {};
    const digest = (a: ArrayBufferView) =>
      crypto
        .createHash('sha256')
        .update(Buffer.from(a.buffer, a.byteOffset, a.byteLength))
        .digest('hex');
    try {
      for (const isa of caps.supportedIsas) {
        setIsa(isa);
        for (const threads of [1, 2, 3]) {
          setThreads(threads);
          const rng = Rng.fromState({
            version: 1,
            reproducible: true,
            key: SEED,
            nonce: '00'.repeat(12),
            position: '13',
          });
          const got = {
            u32: digest(rng.fillUint32(new Uint32Array(n))),
            uni: digest(rng.uniform(new Float64Array(n))),
            g32: digest(rng.gaussian(new Float32Array(n), 2.5)),
            g64: digest(rng.gaussian(new Float64Array(n), 2.5)),
            add: digest(rng.addGaussianNoise(new Float32Array(n).fill(1), 0.5)),
            dg: digest(rng.discreteGaussian(new BigInt64Array(3001), 2 ** 32)),
            pos: rng.getState().position,
          };
          for (const [k, v] of Object.entries(got)) {
            if (ref[k] === undefined) ref[k] = v;
            expect(`${k} ${isa} ${threads}: ${v}`).toBe(`${k} ${isa} ${threads}: ${ref[k]}`);
          }
        }
      }
    } finally {
      setIsa(caps.isa);
      setThreads(caps.threads);
    }
  });

  test('validation', () => {
    expectError(() => new Rng({ seed: 'abc' }), 'InvalidArgumentError', /seed/);
    expectError(() => new Rng({ seed: 'zz'.repeat(32) }), 'InvalidArgumentError', /seed/);
    expectError(() => new Rng({ seed: new Uint8Array(31) }), 'InvalidArgumentError', /seed/);
    expectError(() => new Rng({ seed: 5 as unknown as string }), 'InvalidArgumentError', /seed/);
    expectError(() => new Rng(5 as unknown as object), 'InvalidArgumentError', /opts/);
    const rng = new Rng({ seed: SEED });
    expectError(
      () => rng.fillUint32(new Int32Array(4) as unknown as Uint32Array),
      'InvalidArgumentError',
      /out/,
    );
    expectError(
      () => rng.uniform(new Float32Array(4) as unknown as Float64Array),
      'InvalidArgumentError',
      /out/,
    );
    expectError(
      () => rng.gaussian(new Int32Array(4) as unknown as Float32Array, 1),
      'InvalidArgumentError',
      /out/,
    );
    expectError(() => rng.gaussian(new Float32Array(4), NaN), 'InvalidArgumentError', /std/);
    expectError(() => rng.gaussian(new Float32Array(4), -1), 'InvalidArgumentError', /std/);
    expectError(() => rng.gaussian(new Float32Array(4), Infinity), 'InvalidArgumentError', /std/);
    expectError(() => rng.gaussian(new Float32Array(4), 1e39), 'InvalidArgumentError', /std/);
    expect(
      new Rng({ seed: SEED }).gaussian(new Float64Array(4), 1e39).every((v) => Number.isFinite(v)),
    ).toBe(true);
    expectError(
      () => rng.gaussian(new Float32Array(4), '1' as unknown as number),
      'InvalidArgumentError',
      /std/,
    );
    expectError(
      () => rng.addGaussianNoise(new Float64Array(4) as unknown as Float32Array, 1),
      'InvalidArgumentError',
      /buf/,
    );
    // A failed call does not advance the stream.
    expect(rng.getState().position).toBe('0');
    const bad = (patch: Record<string, unknown>) =>
      ({ ...new Rng({ seed: SEED }).getState(), ...patch }) as never;
    expectError(() => Rng.fromState(bad({ version: 2 })), 'InvalidArgumentError', /version/);
    expectError(() => Rng.fromState(bad({ key: 'ab' })), 'InvalidArgumentError', /state\.key/);
    expectError(
      () => Rng.fromState(bad({ nonce: 'xx'.repeat(12) })),
      'InvalidArgumentError',
      /state\.nonce/,
    );
    expectError(() => Rng.fromState(bad({ position: '-1' })), 'InvalidArgumentError', /position/);
    expectError(
      () => Rng.fromState(bad({ position: (2n ** 64n).toString() })),
      'InvalidArgumentError',
      /position/,
    );
    expectError(() => Rng.fromState(null as never), 'InvalidArgumentError', /state/);
  });

  test('the stream refuses to run past position 2^64', async () => {
    const end = Rng.fromState({
      version: 1,
      reproducible: true,
      key: SEED,
      nonce: '00'.repeat(12),
      position: (2n ** 64n - 10n).toString(),
    });
    expectError(
      () => end.fillUint32(new Uint32Array(10)),
      'InvalidArgumentError',
      /overflow|exhausted/,
    );
    expectError(
      () => end.gaussian(new Float32Array(1), 1),
      'InvalidArgumentError',
      /overflow|exhausted/,
    );
    await expectRejection(
      end.addGaussianNoiseAsync(new Float32Array(1), 1),
      'InvalidStateError',
      /exhausted/,
    );
    expect(end.fillUint32(new Uint32Array(9)).length).toBe(9);
  });
});
