/**
 * Errors thrown by the native addon are created in Node's main realm, while
 * jest runs tests in a separate vm context, so `toThrow(RangeError)` fails on
 * them.  Compare the error's name (and message) instead.
 */
export function expectError(fn: () => unknown, name: string, message?: RegExp): void {
  let thrown: unknown;
  try {
    fn();
  } catch (e) {
    thrown = e;
  }
  if (thrown === undefined) throw new Error(`expected ${name} but nothing was thrown`);
  const err = thrown as Error;
  if (err.name !== name) throw new Error(`expected ${name} but got ${err.name}: ${err.message}`);
  if (message && !message.test(err.message)) {
    throw new Error(`expected ${name} matching ${message} but got: ${err.message}`);
  }
}

/** Async form of {@link expectError} for promise-returning calls. */
export async function expectRejection(
  p: Promise<unknown>,
  name: string,
  message?: RegExp,
): Promise<void> {
  let thrown: unknown;
  try {
    await p;
  } catch (e) {
    thrown = e;
  }
  if (thrown === undefined) throw new Error(`expected ${name} rejection but the promise resolved`);
  const err = thrown as Error;
  if (err.name !== name) throw new Error(`expected ${name} but got ${err.name}: ${err.message}`);
  if (message && !message.test(err.message))
    throw new Error(`expected ${name} matching ${message} but got: ${err.message}`);
}
