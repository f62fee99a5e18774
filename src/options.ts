// The checks every options object of the public API gets: keys it does not know are errors, never ignored; values
// are shown in messages so that their type is visible (a string '5' is "5", not 5).
import { OptionError } from './errors.js';

/** Refuses a key of `options` outside `known` (a typo such as { dtpye } or { thread } would otherwise be ignored
 *  and the call run with the default): an OptionError naming it, as `unknown ${what} '${key}'`, and the known keys. */
export function checkKnownKeys(options: object, known: ReadonlySet<string>, what: string): void {
  if (options === null || typeof options !== 'object') throw new OptionError(`${what}s must be an object, got ${options === null ? 'null' : typeof options}`);
  for (const k of Object.keys(options)) if (!known.has(k)) throw new OptionError(`unknown ${what} '${k}' (known: ${[...known].join(', ')})`);
}

/** A value as an error message shows it: strings quoted ("5", so a string where a number belongs is visible),
 *  bigints with their n, arrays and plain objects as JSON, functions and symbols by their type. */
export function shown(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'bigint') return `${v}n`;
  if (typeof v === 'function') return 'a function';
  if (typeof v === 'symbol') return v.toString();
  if (v !== null && typeof v === 'object') {
    try { const j = JSON.stringify(v); if (j !== undefined) return j.length > 80 ? `${j.slice(0, 77)}...` : j; } catch { /* cyclic: below */ }
    return (v as object).constructor?.name ?? 'an object';
  }
  return String(v); // numbers (NaN, Infinity and -0 as String gives them), booleans, null, undefined
}

/** A boolean option: undefined or null → `fallback`; true/false as given; anything else ('yes', 1, 'no' — which
 *  JavaScript would take as true) an OptionError naming the option and the value. */
export function checkBoolean(v: unknown, name: string, fallback: boolean): boolean {
  if (v === undefined || v === null) return fallback;
  if (typeof v !== 'boolean') throw new OptionError(`${name} must be true or false, got ${shown(v)}`);
  return v;
}
