/**
 * The typed addon boundary: the interface (lib/native_types.ts) and the real addon export the
 * same functions, and native argument errors reach users as InvalidArgumentError naming the
 * argument.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import {
  loadAddon,
  loadAddonFrom,
  rawAddonFunctionNames,
  translateNativeError,
} from '../lib/native';
import { NATIVE_FUNCTION_NAMES } from '../lib/native_types';
import { sgemm, sgemmAsync, clipFactors, perSampleGradNormSq } from '../lib/kernels/linalg';
import { expectCode, expectCodeAsync, expectInvalidArgument } from './helpers/errors';

describe('typed native addon', () => {
  test('the interface lists exactly the functions the addon exports', () => {
    // A native function added without a type (or a type left after its function is gone) fails.
    expect([...NATIVE_FUNCTION_NAMES]).toEqual(rawAddonFunctionNames());
    expect(NATIVE_FUNCTION_NAMES.length).toBeGreaterThanOrEqual(24);
  });

  test('an addon file lacking a typed function is refused, naming the function', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dplora-partial-'));
    try {
      const fake = path.join(dir, 'partial.js');
      fs.writeFileSync(fake, 'module.exports = { isaInfo() { return {}; } };\n');
      expectCode(() => loadAddonFrom(dir, fake), 'ERR_DPLORA_NATIVE_LOAD', {
        message: /has no function \w+/,
      });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('loadAddon returns every listed function and nothing else', () => {
    const addon = loadAddon() as unknown as Record<string, unknown>;
    expect(Object.keys(addon).sort()).toEqual([...NATIVE_FUNCTION_NAMES]);
    for (const name of NATIVE_FUNCTION_NAMES) expect(typeof addon[name]).toBe('function');
  });

  test('a native TypeError or RangeError becomes an InvalidArgumentError naming the argument', () => {
    const c = new Float32Array(4);
    expectInvalidArgument(
      () => sgemm(new Float64Array(4) as unknown as Float32Array, c, c, { m: 2, n: 2, k: 2 }),
      'a',
      /a must be a Float32Array/,
    );
    expectInvalidArgument(() => clipFactors(new Float64Array(2), -1), 'maxNorm');
    expectInvalidArgument(
      () =>
        perSampleGradNormSq(new Float32Array(6), new Float32Array(4), {
          batch: 2,
          seq: 1,
          inDim: 3,
          outDim: 2,
          method: 'nope' as 'auto',
        }),
      'method',
    );
    // The original native error is kept as the cause.
    try {
      clipFactors(new Float64Array(2), Number.NaN);
      throw new Error('expected a throw');
    } catch (e) {
      expect((e as Error & { cause?: { name?: string } }).cause?.name).toMatch(/RangeError/);
    }
  });

  test('async kernels reject with the same typed error', async () => {
    const c = new Float32Array(4);
    await expectCodeAsync(
      () => sgemmAsync(c, c, c, { m: 2, n: 2, k: -1 }),
      'ERR_DPLORA_INVALID_ARGUMENT',
      { argument: 'k' },
    );
  });

  test('translateNativeError: names, fallbacks and pass-through', () => {
    const t = (e: unknown) => translateNativeError(e, 'sgemm') as Record<string, unknown>;
    expect(t(new RangeError('shape.batch must be >= 1')).argument).toBe('shape.batch');
    expect(t(new RangeError('factors[3] must be finite')).argument).toBe('factors[3]');
    expect(t(new RangeError('sgemm: size overflows')).argument).toBe('sgemm');
    expect(t(new TypeError('!!! odd message')).argument).toBe('sgemm');
    const ent = t(new Error('the OS entropy source failed'));
    expect(ent.code).toBe('ERR_DPLORA_NATIVE');
    expect(ent.message).toBe('sgemm: the OS entropy source failed');
    const other = { name: 'Weird' };
    expect(translateNativeError(other, 'x')).toBe(other);
    expectCode(
      () => {
        throw t(new TypeError('x must be a number')) as unknown as Error;
      },
      'ERR_DPLORA_INVALID_ARGUMENT',
      { argument: 'x', message: /^x must be a number$/ },
    );
  });
});
