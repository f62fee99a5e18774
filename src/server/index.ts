// The Node HTTP server (node:http): kept out of src/index.ts so the browser/edge bundle never imports node:http.
export { createServer } from './http.js';
export type { GPT2Server, ServerOptions, ServerStats } from './http.js';
export { Scheduler, QueueFullError } from './scheduler.js';
export type { JobSpec, JobEnd, JobHandle, SchedulerOptions, SchedulerStats, FinishReason, CancelReason } from './scheduler.js';
export { parseCompletionRequest, HttpError } from './request.js';
export type { CompletionParams } from './request.js';
export { CompletionText } from './text.js';
export { serve, servedModelName, SERVE_USAGE } from './cli.js';
export { logSoftmax, topLogprobs, applyOpenAIPenalties } from './logprobs.js';
export type { TokenLogprob } from './logprobs.js';
