// The edge budget (issue 8): GPT-2 124M with q4 weights and an f16 KV cache, loaded and served inside one workerd
// isolate through createFetchHandler, must peak under 120 MB (wasm memory + V8 heap used, MB = 10^6 bytes) at
// 128 tokens of context (64 prompt + 64 new) and under 128 MB at 512 (448 + 64), with GPT-2's tokenizer loaded to
// decode the replies (as a deployment serving text has it). A memory bound, not a timing.
// test/runtimes/workerd-budget.ts measures (in a child node, which gets a WebSocket for workerd's inspector);
// bench/edge-budget.ts prints the same figures for q8, fp16 and distilgpt2's shape.
// Skipped when workerd is not installed, unless GPT2WASM_REQUIRE_RUNTIMES=1 (CI), where that is a failure.
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { runBudget } from '../bench/edge-budget.ts';
import { NEW_TOKENS, budgetCheckpoint } from './runtimes/workerd-budget.ts';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const installed = existsSync(join(root, 'node_modules', '.bin', 'workerd'));
const GOALS = [{ context: 128, bytes: 120e6 }, { context: 512, bytes: 128e6 }];

/**
 * Set while the goal is known not to be met (with why); the test then reports the measured peak instead of
 * failing, and fails once the goal IS met so that the mark is removed. null: the goal is asserted.
 * (Met since the Range reads stopped looping over body packets in JavaScript and the tokenizer moved to typed
 * arrays: V8 heap used peaks at 5-8 MB instead of 17-26 MB; docs/platforms.md.)
 */
const KNOWN_FAILURE: string | null = null;

if (!installed && process.env.GPT2WASM_REQUIRE_RUNTIMES !== '1') {
  console.log('# SKIP edge budget: workerd not installed (run: node scripts/setup-runtimes.mjs)');
  test.skip('edge budget: gpt2 q4 + fp16 KV in workerd (workerd not installed)', () => {});
} else {
  test('edge budget: gpt2 (124M) q4 weights + fp16 KV cache in one workerd isolate, under 120 MB at context 128 and 128 MB at 512', async () => {
    assert.ok(installed, 'workerd not installed (GPT2WASM_REQUIRE_RUNTIMES=1)');
    const r = await runBudget(budgetCheckpoint('gpt2'), 'q4', 'fp16', GOALS.map((g) => g.context));
    if (r.error) assert.unreachable(`measurement failed: ${r.error}`);
    assert.ok(r.tokenizer, 'the tokenizer was not served (fixtures not found?): the budget is measured with it loaded');
    const over: string[] = [];
    for (const g of GOALS) {
      const c = r.contexts.find((x) => x.context === g.context);
      assert.ok(c, `no measurement at context ${g.context}`);
      assert.is(c!.newTokens, NEW_TOKENS, `context ${g.context}: the request generated ${c!.newTokens} tokens, not ${NEW_TOKENS}`);
      assert.ok(c!.wasmBytes >= c!.weightBytes && c!.heapUsedPeak > 0, `context ${g.context}: implausible figures ${JSON.stringify(c)}`);
      const line = `context ${g.context}: peak ${(c!.peakBytes / 1e6).toFixed(1)} MB (wasm ${(c!.wasmBytes / 1e6).toFixed(1)} + V8 heap ${(c!.heapUsedPeak / 1e6).toFixed(1)}), ` +
        `RSS growth ${(c!.rssGrowth / 1e6).toFixed(1)} MB; goal < ${g.bytes / 1e6} MB`;
      console.log(`# ${line}`);
      if (c!.peakBytes >= g.bytes) over.push(line);
    }
    if (KNOWN_FAILURE) {
      if (!over.length) assert.unreachable(`the edge budget is met now: remove KNOWN_FAILURE (${KNOWN_FAILURE})`);
      console.log(`# KNOWN FAILURE (edge budget): ${KNOWN_FAILURE}\n# ${over.join('\n# ')}`);
      return;
    }
    assert.is(over.length, 0, `over the edge budget:\n${over.join('\n')}`);
  });
}

test.run();
