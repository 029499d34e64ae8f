/**
 * Hostile-call fuzzing of every export (issue 10, section 4): test/scripts/fuzz_child.js calls
 * every exported function, constructor and method with hostile arguments in a child process.
 * Errors are fine; a crash (signal, abort, out of memory) or a call that does not return within
 * the bound fails this test, naming the call. Bounded: at most 30000 calls, 240 s.
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

const root = path.resolve(__dirname, '..');

test('no export crashes or hangs on hostile arguments', () => {
  const cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'dplora-fuzz-'));
  try {
    const r = spawnSync(
      process.execPath,
      ['--max-old-space-size=4096', path.join(__dirname, 'scripts', 'fuzz_child.js'), root],
      { cwd, encoding: 'utf8', timeout: 240_000, maxBuffer: 1 << 28 },
    );
    const lastCall = r.stderr.trim().split('\n').pop();
    const verdict = { status: r.status, signal: r.signal, lastCall };
    expect(verdict).toEqual({ status: 0, signal: null, lastCall: expect.any(String) });
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as { calls: number };
    expect(out.calls).toBeGreaterThan(5000);
  } finally {
    fs.rmSync(cwd, { recursive: true, force: true });
  }
}, 300_000);
