// The typed-error assertion the error tests share: `p` (a promise, or a function that may throw or return one)
// fails with a GPT2WasmError of `code` whose message matches `pattern`.
import * as assert from 'uvu/assert';
import { GPT2WasmError } from '../../src/errors.js';

export async function expectError(p: Promise<unknown> | (() => unknown), code: string, pattern: RegExp): Promise<void> {
  let err: any;
  try { await (typeof p === 'function' ? p() : p); } catch (e) { err = e; }
  assert.ok(err, `expected a ${code} error matching ${pattern}, got success`);
  assert.ok(err instanceof GPT2WasmError, `not a GPT2WasmError: ${err?.stack ?? err}`);
  assert.is(err.code, code, err.message);
  assert.match(err.message, pattern);
}
