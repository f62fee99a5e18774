// The check every options object of the public API gets: keys it does not know are errors, never ignored.
import { OptionError } from './errors.js';

/** Refuses a key of `options` outside `known` (a typo such as { dtpye } or { thread } would otherwise be ignored
 *  and the call run with the default): an OptionError naming it, as `unknown ${what} '${key}'`, and the known keys. */
export function checkKnownKeys(options: object, known: ReadonlySet<string>, what: string): void {
  if (options === null || typeof options !== 'object') throw new OptionError(`${what}s must be an object, got ${options === null ? 'null' : typeof options}`);
  for (const k of Object.keys(options)) if (!known.has(k)) throw new OptionError(`unknown ${what} '${k}' (known: ${[...known].join(', ')})`);
}
