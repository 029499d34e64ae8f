/**
 * Sizes and inputs that used to hang for minutes or forever (issue 10, section 4) are refused
 * with a typed error before anything is allocated or read. Each call below ran > 30 s (or
 * never returned) before the fix; jest's per-test timeout turns a regression into a failure.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { calibrateNoiseMultiplier, computeRdp } from '../lib/accounting';
import { featurize } from '../lib/data/featurize';
import { loadUserData } from '../lib/data/user_data';
import { readSafetensors } from '../lib/io/safetensors';
import { LayerNorm } from '../lib/nn/layer_norm';
import { PrivacyEngine } from '../lib/privacy';
import { RunDirectory } from '../lib/trainer/run_dir';
import { makeModel, privateSgdWithEpsilon, quiet } from './helpers/dp_setup';

let tmp: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dplora-hostile-'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    return (e as { code?: string; name: string }).code ?? (e as Error).name;
  }
  return 'no error';
}

test('computeRdp with order 1e9 is refused', () => {
  expect(
    codeOf(() => computeRdp({ sampleRate: 0.01, noiseMultiplier: 1, steps: 10, orders: [1e9] })),
  ).toBe('ERR_DPLORA_INVALID_ARGUMENT');
});

test('featurize with dim 2^31 and LayerNorm(2^31) are refused before allocating', () => {
  expect(codeOf(() => featurize(['a b c'], { dim: 2 ** 31 }))).toBe('ERR_DPLORA_INVALID_ARGUMENT');
  expect(codeOf(() => new LayerNorm(2 ** 31))).toBe('ERR_DPLORA_INVALID_ARGUMENT');
});

test('a device file behind a .csv or .safetensors name is refused without reading it', () => {
  const csv = path.join(tmp, 'data.csv');
  const st = path.join(tmp, 'model.safetensors');
  fs.symlinkSync('/dev/zero', csv);
  fs.symlinkSync('/dev/zero', st);
  expect(() => loadUserData(csv)).toThrow(/not a regular file/);
  expect(codeOf(() => readSafetensors(st))).toBe('ERR_DPLORA_FILE_FORMAT');
});

test('a run directory on a special file system is refused', () => {
  expect(codeOf(() => RunDirectory.open('/proc/x', { mode: 'new' }))).toBe(
    'ERR_DPLORA_INVALID_ARGUMENT',
  );
});

describe('PLD at large epsilon', () => {
  test('calibration falls back to RDP loudly and fast; the fallback is a valid answer', () => {
    for (const eps of [1000, 1e5, 1e308]) {
      const r = calibrateNoiseMultiplier({
        targetEpsilon: eps,
        targetDelta: 1e-5,
        sampleRate: 0.05,
        steps: 200,
      });
      expect(r.accountant).toBe('rdp');
      expect(r.fallback).toMatch(/RDP/);
      expect(r.epsilon).toBeLessThanOrEqual(eps);
      expect(r.noiseMultiplier).toBeGreaterThan(0);
    }
  });

  test('a run at epsilon 1e308 is accounted with RDP, says so, and can take steps', () => {
    const q = quiet();
    const model = makeModel(1);
    const e = new PrivacyEngine();
    privateSgdWithEpsilon(e, model, 0.1, {
      dataset: 40,
      batchSize: 8,
      targetEpsilon: 1e308,
      targetDelta: 1e-5,
      epochs: 1,
      maxGradNorm: 1,
      ...q,
    });
    expect(e.config.accountant).toBe('rdp');
    expect(q.warnings.some((w) => /ACCOUNTANT FALLBACK/.test(w))).toBe(true);
    expect(e.remainingSteps()).toBeGreaterThanOrEqual(5);
  });
});
