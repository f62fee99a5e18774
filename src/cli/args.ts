// A small argument parser: `--name value`, `--name=value`, boolean `--flag`, positionals. Unknown options
// are errors that list what is known, so a typo never silently changes behaviour.
import { OptionError } from '../errors.js';
import { DEFAULT_MODEL } from '../generation/pipeline.js';
import { parseDTypeSpec } from '../model/weights.js';

export interface OptionSpec { type: 'string' | 'number' | 'int' | 'boolean'; help: string; alias?: string }

/** The options every command that loads a model takes. */
export const MODEL_OPTIONS: Record<string, OptionSpec> = {
  model: { type: 'string', alias: 'm', help: `Hub id or local directory (default ${DEFAULT_MODEL})` },
  revision: { type: 'string', help: 'Hub revision (branch, tag or commit)' },
  dtype: { type: 'string', help: 'weights in memory: auto | fp32 | fp16 | q8 | q4, or a plan like q4,wte=q8 (default auto)' },
  kv_dtype: { type: 'string', help: 'KV cache in memory: fp32 | fp16 (default fp32; fp16 halves it)' },
  threads: { type: 'int', alias: 't', help: 'kernel threads (default: all cores, at most 16)' },
};

/** The --help flag every command takes. */
export const HELP_OPTION: OptionSpec = { type: 'boolean', alias: 'h', help: 'show this help' };

/** from_pretrained's options from the MODEL_OPTIONS flags, as every command that loads a model reads them. */
export function modelLoadOptions(o: Record<string, any>) {
  return { dtype: o.dtype === undefined ? undefined : parseDTypeSpec(o.dtype), kv_dtype: o.kv_dtype, threads: o.threads, revision: o.revision };
}

export function parseArgs(argv: string[], specs: Record<string, OptionSpec>): { opts: Record<string, any>; positionals: string[] } {
  const opts: Record<string, any> = {};
  const positionals: string[] = [];
  const byAlias = new Map(Object.entries(specs).filter(([, s]) => s.alias).map(([k, s]) => [s.alias!, k]));
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') { positionals.push(...argv.slice(i + 1)); break; }
    if (!a.startsWith('-') || a === '-') { positionals.push(a); continue; }
    let name: string, value: string | undefined;
    if (a.startsWith('--')) { const eq = a.indexOf('='); name = eq > 0 ? a.slice(2, eq) : a.slice(2); value = eq > 0 ? a.slice(eq + 1) : undefined; }
    else { name = byAlias.get(a.slice(1)) ?? a.slice(1); }
    const key = name.replace(/-/g, '_');
    const spec = specs[key];
    if (!spec) throw new OptionError(`unknown option ${a}${didYouMean(key, Object.keys(specs))} (see --help)`);
    // the flag as documented (dashes), after the alias the user typed: "-n (--max-new-tokens)"
    const flag = `--${key.replace(/_/g, '-')}`, shown = a.startsWith('--') ? flag : `${a} (${flag})`;
    if (spec.type === 'boolean') {
      if (value !== undefined && !['true', 'false'].includes(value)) throw new OptionError(`${shown} takes no value`);
      opts[key] = value !== 'false';
      continue;
    }
    if (value === undefined) {
      if (i + 1 >= argv.length) throw new OptionError(`${shown} needs a value`);
      value = argv[++i];
    }
    if (spec.type === 'string') opts[key] = value;
    else {
      // decimal only: Number() would also read '0x10', '1e2' or '0b1' as integers the user did not write
      const n = Number(value);
      const syntax = spec.type === 'int' ? /^[+-]?\d+$/ : /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;
      if (!syntax.test(value) || !Number.isFinite(n) || (spec.type === 'int' && !Number.isInteger(n))) throw new OptionError(`${shown} must be ${spec.type === 'int' ? 'an integer' : 'a number'}, got ${JSON.stringify(value)}`);
      opts[key] = n;
    }
  }
  return { opts, positionals };
}

/** " (did you mean --max-new-tokens?)" for a flag within two edits (or a prefix) of a known one; "" otherwise. */
export function didYouMean(key: string, known: string[]): string {
  let best = '', bestD = 3;
  for (const k of known) {
    const d = k.startsWith(key) && key.length >= 3 ? 1 : editDistance(key, k);
    if (d < bestD) { best = k; bestD = d; }
  }
  return best ? ` (did you mean --${best.replace(/_/g, '-')}?)` : '';
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[b.length];
}

/**
 * A library message in the CLI's words: option names become the flags that set them ("context_overflow: 'slide'"
 * → "--context-overflow slide", "max_new_tokens" → "--max-new-tokens"). Only names with an underscore, or a
 * one-word name that starts a "NAME must ..." sentence, are rewritten, so ordinary words stay as they are.
 */
export function inFlagTerms(message: string, specs: Record<string, OptionSpec>): string {
  let m = message;
  for (const key of Object.keys(specs)) {
    const flag = `--${key.replace(/_/g, '-')}`;
    const esc = key.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    m = m.replace(new RegExp(`(?<![-\\w])${esc}: '([^']*)'`, 'g'), `${flag} $1`);
    if (key.includes('_')) m = m.replace(new RegExp(`(?<![-\\w])${esc}(?!\\w)`, 'g'), flag);
    else m = m.replace(new RegExp(`(^|: |\\. )${esc} must`, 'g'), `$1${flag} must`);
  }
  return m;
}

export function helpFor(specs: Record<string, OptionSpec>): string {
  return Object.entries(specs).map(([k, s]) => {
    const flag = `--${k.replace(/_/g, '-')}${s.type === 'boolean' ? '' : ` <${s.type === 'string' ? 'value' : 'n'}>`}${s.alias ? `, -${s.alias}` : ''}`;
    return `  ${flag.padEnd(34)} ${s.help}`;
  }).join('\n');
}
