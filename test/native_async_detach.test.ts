/**
 * Async kernels and arrays that go away while the promise is pending (issue 10, section 4): a
 * transferred or shrunk buffer used to crash the process (SIGSEGV, exit 139). Now inputs are
 * copied before the work is queued and outputs are written back on the main thread only if the
 * array still has its length; otherwise the promise rejects. Run in a child process under
 * --expose-gc pressure so that a crash fails this test instead of killing jest.
 */
import { spawnSync } from 'child_process';
import * as path from 'path';

const root = path.resolve(__dirname, '..');

test('transfer or shrink while pending: no crash; outputs reject, inputs were copied', () => {
  const r = spawnSync(
    process.execPath,
    ['--expose-gc', path.join(__dirname, 'scripts', 'async_detach.js'), root],
    { encoding: 'utf8', timeout: 120_000 },
  );
  expect(r.signal).toBeNull();
  expect(r.status).toBe(0);
  const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as Record<string, unknown>;
  expect(out).toEqual({
    gaussianOutputTransferred: 'rejected-detached',
    gaussianResizableShrunk: 'rejected-detached',
    sgemmInputsTransferred: 'resolved',
    sgemmValue: 512,
    sgemmOutputTransferred: 'rejected-detached',
    gradNormOutputTransferred: 'rejected-detached',
    clippedSumOutputTransferred: 'rejected-detached',
  });
});
