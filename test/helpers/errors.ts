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

/** What {@link expectCode} and {@link expectCodeAsync} check besides the code. */
export interface CodeExpectation {
  /** The argument the error must name (its `argument` field, also in the message). */
  argument?: string;
  /** A pattern the message must match. */
  message?: RegExp;
}

function checkCode(thrown: unknown, code: string, exp: CodeExpectation): void {
  if (thrown === undefined) throw new Error(`expected ${code} but nothing was thrown`);
  const err = thrown as { code?: unknown; argument?: unknown; message?: string; name?: string };
  if (err.code !== code)
    throw new Error(
      `expected ${code} but got ${String(err.name)} (code ${String(err.code)}): ${String(err.message)}`,
    );
  if (exp.argument !== undefined) {
    if (err.argument !== exp.argument)
      throw new Error(
        `expected argument ${exp.argument} but got ${String(err.argument)}: ${err.message}`,
      );
    if (!String(err.message).includes(exp.argument))
      throw new Error(`the message does not name ${exp.argument}: ${err.message}`);
  }
  if (exp.message && !exp.message.test(String(err.message)))
    throw new Error(`expected a message matching ${exp.message} but got: ${err.message}`);
}

/**
 * Expects `fn` to throw a dp-lora error with the given stable `code` (and, if given, naming
 * `argument`). Checks fields, not classes, so it also works across jest's vm realms.
 */
export function expectCode(fn: () => unknown, code: string, exp: CodeExpectation = {}): void {
  let thrown: unknown;
  try {
    fn();
  } catch (e) {
    thrown = e;
  }
  checkCode(thrown, code, exp);
}

/** Async form of {@link expectCode}: `p` must reject with the code (and argument). */
export async function expectCodeAsync(
  p: Promise<unknown> | (() => Promise<unknown>),
  code: string,
  exp: CodeExpectation = {},
): Promise<void> {
  let thrown: unknown;
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    thrown = e;
  }
  checkCode(thrown, code, exp);
}

/** Shorthand: expects an ERR_DPLORA_INVALID_ARGUMENT naming `argument`. */
export function expectInvalidArgument(fn: () => unknown, argument: string, message?: RegExp): void {
  expectCode(fn, 'ERR_DPLORA_INVALID_ARGUMENT', { argument, message });
}
