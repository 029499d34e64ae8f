/**
 * Atomic file and directory writes: the target either keeps its old content or gets the
 * complete new content, never a partial file.
 *
 * Files: write a temporary file in the same directory, fsync it, rename it over the target,
 * fsync the directory. Directories: write every file into a temporary sibling directory
 * (each file fsynced), then rename it into place; an existing target is first renamed aside
 * and removed only after the new one is in place.
 */
import * as fs from 'fs';
import * as path from 'path';
import * as crypto from 'crypto';
import { InvalidArgumentError } from '../errors';
import { requireObject, requireString } from '../validate';

/** Content for an atomic write: bytes, a string (UTF-8), or chunks produced one by one. */
export type WriteContent = string | Uint8Array | Iterable<Uint8Array | string>;

function tempName(target: string): string {
  const dir = path.dirname(target);
  const base = path.basename(target);
  return path.join(dir, `.${base}.tmp-${process.pid}-${crypto.randomBytes(4).toString('hex')}`);
}

function fsyncDir(dir: string): void {
  // Directory fsync makes the rename durable; not every platform allows opening a directory.
  let fd: number | undefined;
  try {
    fd = fs.openSync(dir, 'r');
    fs.fsyncSync(fd);
  } catch {
    /* best effort (e.g. Windows) */
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

function writeAll(fd: number, content: WriteContent): void {
  const put = (chunk: Uint8Array | string) => {
    const b = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk;
    let off = 0;
    while (off < b.length) {
      const n = fs.writeSync(fd, b, off, b.length - off);
      // A file that accepts nothing (e.g. under /proc) would otherwise loop forever.
      if (n <= 0) throw new Error(`write accepted no bytes (${b.length - off} left)`);
      off += n;
    }
  };
  if (typeof content === 'string' || content instanceof Uint8Array) put(content);
  else for (const chunk of content) put(chunk);
}

function writeSynced(file: string, content: WriteContent): void {
  const fd = fs.openSync(file, 'wx', 0o644);
  try {
    writeAll(fd, content);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Writes `content` to `target` atomically. If anything fails (including an exception thrown
 * by a chunk iterator part-way), the temporary file is removed, `target` is unchanged, and the
 * error is rethrown.
 */
export function atomicWriteFile(target: string, content: WriteContent): void {
  requireString('target', target);
  const tmp = tempName(target);
  try {
    writeSynced(tmp, content);
    fs.renameSync(tmp, target);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  fsyncDir(path.dirname(path.resolve(target)));
}

/**
 * Writes a directory of files atomically: `files` maps a file name (no subdirectories) to its
 * content. The directory appears complete or not at all; an existing directory at `targetDir`
 * is replaced (its old content survives if the write fails).
 */
export function atomicWriteDir(targetDir: string, files: Record<string, WriteContent>): void {
  requireString('targetDir', targetDir);
  requireObject('files', files);
  const abs = path.resolve(targetDir);
  const parent = path.dirname(abs);
  fs.mkdirSync(parent, { recursive: true });
  const tmp = tempName(abs);
  try {
    fs.mkdirSync(tmp);
    for (const [name, content] of Object.entries(files)) {
      if (name !== path.basename(name) || name === '.' || name === '..' || name.length === 0) {
        throw new InvalidArgumentError(
          'files',
          `atomicWriteDir: file name "${name}" must be a plain name without directories`,
        );
      }
      writeSynced(path.join(tmp, name), content);
    }
    fsyncDir(tmp);
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  let aside: string | undefined;
  try {
    if (fs.existsSync(abs)) {
      aside = tempName(abs) + '.old';
      fs.renameSync(abs, aside);
    }
    fs.renameSync(tmp, abs);
  } catch (e) {
    // Put the old directory back if we moved it.
    if (aside && !fs.existsSync(abs)) fs.renameSync(aside, abs);
    fs.rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  fsyncDir(parent);
  if (aside) fs.rmSync(aside, { recursive: true, force: true });
}
