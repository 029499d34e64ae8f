/**
 * `dp-lora epsilon` and `dp-lora noise`: through buildProgram() with captured
 * stdout, and once through the compiled binary when dist/ exists.
 */
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { buildProgram } from '../lib/cli/main';
import { RdpAccountant } from '../lib';
import { expectCodeAsync } from './helpers/errors';

async function run(args: string[]): Promise<string> {
  const chunks: string[] = [];
  const spy = jest.spyOn(process.stdout, 'write').mockImplementation((c: string | Uint8Array) => {
    chunks.push(String(c));
    return true;
  });
  try {
    const program = buildProgram();
    program.exitOverride();
    program.configureOutput({ writeErr: () => undefined, writeOut: (s) => chunks.push(s) });
    for (const c of program.commands) {
      c.exitOverride();
      c.configureOutput({ writeErr: () => undefined, writeOut: (s) => chunks.push(s) });
    }
    await program.parseAsync(args, { from: 'user' });
  } finally {
    spy.mockRestore();
  }
  return chunks.join('');
}

/** Command-line words for options given as { name: value } (names without the dashes). */
function args(command: string, options: Record<string, string>, ...flags: string[]): string[] {
  return [command, ...Object.entries(options).flatMap(([k, v]) => [`--${k}`, v]), ...flags];
}

/** Runs `dp-lora epsilon` with the options given as { name: value }, then any flags. */
function epsilon(options: Record<string, string>, ...flags: string[]): Promise<string> {
  return run(args('epsilon', options, ...flags));
}

/** Runs `dp-lora noise` with the options given as { name: value }, then any flags. */
function noise(options: Record<string, string>, ...flags: string[]): Promise<string> {
  return run(args('noise', options, ...flags));
}

describe('dp-lora epsilon', () => {
  test('--json with the RDP accountant matches the library', async () => {
    const out = JSON.parse(
      await epsilon(
        { 'sample-rate': '0.01', noise: '1', steps: '1000', delta: '1e-5', accountant: 'rdp' },
        '--json',
      ),
    );
    const lib = new RdpAccountant()
      .step({ sampleRate: 0.01, noiseMultiplier: 1 }, 1000)
      .getEpsilonAndOrder(1e-5);
    expect(out).toMatchObject({
      accountant: 'rdp',
      sampleRate: 0.01,
      noiseMultiplier: 1,
      steps: 1000,
      delta: 1e-5,
    });
    expect(out.epsilon).toBeCloseTo(lib.epsilon, 12);
    expect(out.optimalOrder).toBe(lib.order);
    expect(out.epsilon).toBeCloseTo(2.101, 3);
  });

  test('default PLD accountant prints a table with both relations', async () => {
    const out = await epsilon({ 'sample-rate': '0.01', noise: '1', steps: '1000', delta: '1e-5' });
    expect(out).toMatch(/accountant\s+pld/);
    const eps = Number(/^epsilon\s+([\d.]+)/m.exec(out)![1]);
    expect(eps).toBeGreaterThanOrEqual(1.828);
    expect(eps).toBeLessThan(1.828 * 1.01);
    expect(out).toMatch(/epsilonRemove/);
    expect(out).toMatch(/epsilonAdd/);
  });

  test('bad values name the option', async () => {
    await expect(
      run(['epsilon', '--sample-rate', 'abc', '--noise', '1', '--steps', '10', '--delta', '1e-5']),
    ).rejects.toThrow(/--sample-rate/);
    await expect(
      run(['epsilon', '--sample-rate', '0.1', '--noise', '1', '--steps', '10']),
    ).rejects.toThrow(/--delta/);
    await expect(
      epsilon({ 'sample-rate': '0.1', noise: '1', steps: '10', delta: '2', accountant: 'rdp' }),
    ).rejects.toThrow(/delta/);
    await expect(
      epsilon({ 'sample-rate': '0.1', noise: '1', steps: '10', delta: '1e-5', accountant: 'x' }),
    ).rejects.toThrow(/--accountant/);
  });
});

describe('dp-lora noise', () => {
  test('--epochs with the RDP accountant round trips through epsilon', async () => {
    const out = JSON.parse(
      await noise(
        { epsilon: '3', delta: '1e-5', 'sample-rate': '0.0025', epochs: '15', accountant: 'rdp' },
        '--json',
      ),
    );
    expect(out.steps).toBe(6000);
    expect(out.epsilon).toBeLessThanOrEqual(3);
    const back = new RdpAccountant()
      .step({ sampleRate: 0.0025, noiseMultiplier: out.noiseMultiplier }, 6000)
      .getEpsilon(1e-5);
    expect(back).toBeLessThanOrEqual(3);
    expect(back).toBeGreaterThan(2.98);
  });

  test('exactly one of --epochs and --steps', async () => {
    await expect(
      run(['noise', '--epsilon', '3', '--delta', '1e-5', '--sample-rate', '0.01']),
    ).rejects.toThrow(/--epochs and --steps/);
    await expect(
      noise({ epsilon: '3', delta: '1e-5', 'sample-rate': '0.01', steps: '5', epochs: '1' }),
    ).rejects.toThrow(/--epochs and --steps/);
    await expect(
      run(['noise', '--epsilon', '-3', '--delta', '1e-5', '--sample-rate', '0.01', '--steps', '5']),
    ).rejects.toThrow(/--epsilon: must be > 0/);
  });
});

const bin = path.join(__dirname, '..', 'dist', 'lib', 'cli', 'main.js');
(fs.existsSync(bin) ? test : test.skip)('compiled binary: dp-lora noise --json (PLD)', () => {
  const out = execFileSync(
    process.execPath,
    [
      bin,
      ...args(
        'noise',
        { epsilon: '2', delta: '1e-5', 'sample-rate': '0.01', steps: '1000' },
        '--json',
      ),
    ],
    { encoding: 'utf8' },
  );
  const r = JSON.parse(out);
  expect(r.accountant).toBe('pld');
  expect(r.epsilon).toBeLessThanOrEqual(2);
  expect(r.noiseMultiplier).toBeGreaterThan(0.95);
  expect(r.noiseMultiplier).toBeLessThan(0.97);
});

describe('accounting options are bounded and named', () => {
  const eps = [
    'epsilon',
    '--sample-rate',
    '0.1',
    '--noise',
    '1',
    '--steps',
    '10',
    '--delta',
    '1e-5',
  ];
  const set = (args: string[], opt: string, v: string) => {
    const out = [...args];
    out[out.indexOf(opt) + 1] = v;
    return out;
  };
  test.each([
    [set(eps, '--sample-rate', '0'), '--sample-rate', /must be > 0 and <= 1/],
    [set(eps, '--sample-rate', '1.5'), '--sample-rate', /<= 1/],
    [set(eps, '--noise', '-1'), '--noise', /must be > 0/],
    [set(eps, '--steps', '0'), '--steps', /must be >= 1/],
    [set(eps, '--steps', '2.5'), '--steps', /must be an integer/],
    [set(eps, '--steps', '1e12'), '--steps', /<= 2147483647/],
    [set(eps, '--delta', '1'), '--delta', /< 1/],
    [
      ['noise', '--epsilon', '0', '--delta', '1e-5', '--sample-rate', '0.1', '--steps', '10'],
      '--epsilon',
      /must be > 0/,
    ],
  ])('%p is an InvalidArgumentError naming the option', async (args, option, re) => {
    await expectCodeAsync(run(args), 'ERR_DPLORA_INVALID_ARGUMENT', {
      argument: option,
      message: re,
    });
  });
});
