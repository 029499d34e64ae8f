/**
 * Bounded reads of user-named files: the path must be a string naming a regular file (not a
 * descriptor number, a FIFO, a device such as /dev/zero, or a folder) no larger than a stated
 * bound, so no hostile path can hang the process or exhaust its memory.
 */
import * as fs from 'fs';
import { DpLoraError, ErrorCode } from '../errors';
import { requireString } from '../validate';

/**
 * Reads a whole regular file of at most `maxBytes` bytes.
 *
 * @param argument - the argument's name for errors (e.g. `modelJsonPath`)
 * @param file - the path; must be a non-empty string
 * @param maxBytes - the largest size accepted
 * @returns the file's bytes
 */
export function readRegularFile(argument: string, file: unknown, maxBytes: number): Buffer {
  const p = requireString(argument, file);
  let st: fs.Stats;
  try {
    st = fs.statSync(p);
  } catch (e) {
    throw new DpLoraError(ErrorCode.FileFormat, `${argument}: cannot read ${p}`, {
      argument,
      cause: e,
    });
  }
  if (!st.isFile())
    throw new DpLoraError(ErrorCode.FileFormat, `${argument}: ${p} is not a regular file`, {
      argument,
    });
  if (st.size > maxBytes)
    throw new DpLoraError(
      ErrorCode.FileFormat,
      `${argument}: ${p} is ${st.size} bytes, more than the ${maxBytes} accepted`,
      { argument },
    );
  return fs.readFileSync(p);
}
