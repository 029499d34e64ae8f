/**
 * The one-run audit end to end: an honest run never certifies more than the
 * claimed epsilon (20 seeds); a planted break (no noise, no clipping) at a
 * claimed epsilon of 1 is certified at >= 2; `dp-lora audit` writes its JSON
 * report, marks plants as test aids and never writes an adapter.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { builtinAuditData, runAudit } from '../lib/audit';
import { buildProgram } from '../lib/cli/main';
import { InvalidArgumentError } from '../lib/errors';

const small = builtinAuditData(200);

describe('one-run audit', () => {
  test('honest runs never certify more than the claimed epsilon (20 seeds)', () => {
    const bounds: number[] = [];
    for (let seed = 0; seed < 20; seed++) {
      const eps = seed % 2 ? 1 : 4;
      const r = runAudit({ epsilon: eps, data: small, canaries: 300, steps: 40, seed });
      expect(r.testAid).toBe(false);
      expect(r.guesses).toBe(30);
      expect(r.epsilonLowerBound).toBeLessThanOrEqual(eps);
      bounds.push(r.epsilonLowerBound);
    }
    if (process.env.DPLORA_AUDIT_REPORT) console.log(bounds.join(' '));
  });

  test('planted no-noise at claimed epsilon 1: the default audit certifies >= 2', () => {
    const r = runAudit({ epsilon: 1, plant: 'no-noise' });
    if (process.env.DPLORA_AUDIT_REPORT) console.log(JSON.stringify(r));
    expect(r.canaries).toBe(1000);
    expect(r.testAid).toBe(true);
    expect(r.epsilonLowerBound).toBeGreaterThanOrEqual(2);
  });

  test('planted no-clip and input-space canaries also expose a broken mechanism', () => {
    const a = runAudit({ epsilon: 1, plant: 'no-clip', data: small, seed: 5 });
    expect(a.epsilonLowerBound).toBeGreaterThanOrEqual(2);
    const b = runAudit({ epsilon: 1, plant: 'no-noise', kind: 'input', data: small, seed: 6 });
    expect(b.epsilonLowerBound).toBeGreaterThanOrEqual(2);
  });

  test('bad options are named', () => {
    expect(() => runAudit({ epsilon: 0, data: small })).toThrow(InvalidArgumentError);
    expect(() => runAudit({ epsilon: 1, data: small, canaries: 10, guessesPerSide: 6 })).toThrow(
      /guessesPerSide/,
    );
    expect(() => runAudit({ epsilon: 1, data: small, plant: 'oops' as never })).toThrow(/plant/);
  });

  test('dp-lora audit writes the JSON report, marks the plant, writes no adapter', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dplora-audit-'));
    const json = path.join(dir, 'audit.json');
    const out: string[] = [];
    const spy = jest.spyOn(process.stdout, 'write').mockImplementation((s) => {
      out.push(String(s));
      return true;
    });
    try {
      await buildProgram().parseAsync(
        [
          'audit',
          '--epsilon',
          '1',
          '--plant',
          'no-noise',
          '--canaries',
          '200',
          '--limit',
          '200',
          '--steps',
          '40',
          '--no-progress',
          '--seed',
          '3',
          '--json',
          json,
        ],
        { from: 'user' },
      );
    } finally {
      spy.mockRestore();
    }
    const rep = JSON.parse(fs.readFileSync(json, 'utf8')) as Record<string, unknown>;
    for (const k of [
      'claimedEpsilon',
      'epsilonLowerBound',
      'canaries',
      'guesses',
      'correct',
      'plant',
    ])
      expect(rep).toHaveProperty(k);
    expect(rep.claimedEpsilon).toBe(1);
    expect(rep.canaries).toBe(200);
    expect(rep.plant).toBe('no-noise');
    expect(rep.testAid).toBe(true);
    expect(String(rep.warning)).toMatch(/TEST AID/);
    expect(fs.readdirSync(dir)).toEqual(['audit.json']);
    expect(out.join('')).toMatch(/TEST AID/);
    fs.rmSync(dir, { recursive: true });
  });
});
