// The CLI as a user runs it: the built dist/cli.js in a child process, offline, with the tests' own HF_HOME.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { repoRoot } from './fixtures.js';

export const cli = join(repoRoot, 'dist', 'cli.js');
export const cliEnv = { ...process.env, HF_HUB_OFFLINE: '1', HF_HOME: join(repoRoot, '.cache', 'test-hf-home') };

/** `gpt2-wasm ARGS` with `input` on stdin: its status, stdout and stderr (60 s at most). */
export const run = (args: string[], input?: string) => spawnSync(process.execPath, [cli, ...args], { input, encoding: 'utf8', timeout: 60_000, env: cliEnv });
