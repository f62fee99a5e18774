// A small argument parser: `--name value`, `--name=value`, boolean `--flag`, positionals. Unknown options
// are errors that list what is known, so a typo never silently changes behaviour.
import { OptionError } from '../errors.js';
import { DEFAULT_MODEL } from '../generation/pipeline.js';

export interface OptionSpec { type: 'string' | 'number' | 'int' | 'boolean'; help: string; alias?: string }

/** The options every command that loads a model takes. */
export const MODEL_OPTIONS: Record<string, OptionSpec> = {
  model: { type: 'string', alias: 'm', help: `Hub id or local directory (default ${DEFAULT_MODEL})` },
  revision: { type: 'string', help: 'Hub revision (branch, tag or commit)' },
  dtype: { type: 'string', help: 'weights in memory: auto | fp32 | fp16 | q8 | q4, or a plan like q4,wte=q8 (default auto)' },
  kv_dtype: { type: 'string', help: 'KV cache in memory: fp32 | fp16 (default fp32; fp16 halves it)' },
  threads: { type: 'int', alias: 't', help: 'kernel threads (default: all cores, at most 16)' },
};

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
    if (!spec) throw new OptionError(`unknown option ${a} (see --help)`);
    if (spec.type === 'boolean') {
      if (value !== undefined && !['true', 'false'].includes(value)) throw new OptionError(`--${name} takes no value`);
      opts[key] = value !== 'false';
      continue;
    }
    if (value === undefined) {
      if (i + 1 >= argv.length) throw new OptionError(`--${name} needs a value`);
      value = argv[++i];
    }
    if (spec.type === 'string') opts[key] = value;
    else {
      const n = Number(value);
      if (value.trim() === '' || !Number.isFinite(n) || (spec.type === 'int' && !Number.isInteger(n))) throw new OptionError(`--${name} must be ${spec.type === 'int' ? 'an integer' : 'a number'}, got ${JSON.stringify(value)}`);
      opts[key] = n;
    }
  }
  return { opts, positionals };
}

export function helpFor(specs: Record<string, OptionSpec>): string {
  return Object.entries(specs).map(([k, s]) => {
    const flag = `--${k.replace(/_/g, '-')}${s.type === 'boolean' ? '' : ` <${s.type === 'string' ? 'value' : 'n'}>`}${s.alias ? `, -${s.alias}` : ''}`;
    return `  ${flag.padEnd(34)} ${s.help}`;
  }).join('\n');
}
