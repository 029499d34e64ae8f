/**
 * Hostile paths for the USE-Lite loaders: a descriptor number, a device, a folder or a FIFO
 * must be refused with a typed error before anything is read (readFileSync(1) would block on
 * the process's own stdout; /dev/zero never ends).
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { execFileSync } from 'child_process';
import { readTfjsWeights } from '../lib/models/use_lite/weights';
import { loadUseLiteSync } from '../lib/models/use_lite/model';

function codeOf(fn: () => unknown): { code?: string; argument?: string } {
  try {
    fn();
  } catch (e) {
    return e as { code?: string; argument?: string };
  }
  throw new Error('expected a throw');
}

test('readTfjsWeights refuses non-string paths and non-regular files', () => {
  for (const bad of [0, 1, 2, null, {}, ['model.json']]) {
    const e = codeOf(() => readTfjsWeights(bad as unknown as string));
    expect(e).toMatchObject({ code: 'ERR_DPLORA_INVALID_ARGUMENT', argument: 'modelJsonPath' });
  }
  for (const bad of ['/dev/zero', os.tmpdir()]) {
    const e = codeOf(() => readTfjsWeights(bad));
    expect(e).toMatchObject({ code: 'ERR_DPLORA_FILE_FORMAT', argument: 'modelJsonPath' });
  }
});

test('a FIFO named as model.json or in modelDir is refused, not read', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dplora-fifo-'));
  try {
    execFileSync('mkfifo', [path.join(dir, 'model.json'), path.join(dir, 'vocab.json')]);
    expect(codeOf(() => readTfjsWeights(path.join(dir, 'model.json')))).toMatchObject({
      code: 'ERR_DPLORA_FILE_FORMAT',
    });
    expect(codeOf(() => loadUseLiteSync({ modelDir: dir }))).toMatchObject({
      code: 'ERR_DPLORA_FILE_FORMAT',
      argument: 'modelDir',
    });
    expect(codeOf(() => loadUseLiteSync({ modelDir: 7 as unknown as string }))).toMatchObject({
      code: 'ERR_DPLORA_INVALID_ARGUMENT',
      argument: 'modelDir',
    });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
