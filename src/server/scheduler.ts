// Continuous batching for the HTTP server. Every running request owns a batch-1 KV cache sized for its prompt
// plus its max_tokens. One scheduler tick admits at most one waiting request (prefill of its prompt) and then
// runs ONE model.decodeStep for every running sequence, so the weights are streamed once per step however many
// clients there are. Finished, cancelled and failed sequences leave between ticks and free their cache at once.
// Ticks are separated by setImmediate, so sockets (new requests, disconnects, timeouts) are served between steps.
//
// Admission cannot break running requests: everything a decode step needs is reserved before a request runs.
// The step's workspace (activations, scratch, logits) is reserved once, for maxConcurrency sequences of the full
// context, when the scheduler is made; a request's KV cache is reserved at its full length when it is admitted.
// A request whose cache or prefill does not fit waits at the head of the queue while others run (their memory
// comes back as they end) and is refused (MemoryLimitError → 503) only when nothing else is running.
//
// Each sequence is sampled exactly as generate() samples a batch-1 row (same processors, same seeded PRNG, same
// stopping rules), so a request gives the same tokens alone or batched with others.
import { BusyError, GPT2WasmError, InputError, OptionError } from '../errors.js';
import { nextToken, type SamplingOptions } from '../generation/logits-process.js';
import { Random } from '../generation/random.js';
import type { GPT2LMHeadModel } from '../model/gpt2.js';
import type { KVCache } from '../model/kv-cache.js';

export type FinishReason = 'stop' | 'length';
export type CancelReason = 'disconnected' | 'timeout' | 'shutdown' | 'cancelled';

/** How a job left the scheduler. */
export type JobEnd =
  | { status: 'done'; reason: FinishReason; tokens: number }
  | { status: 'cancelled'; reason: CancelReason; tokens: number }
  | { status: 'error'; error: unknown; tokens: number };

export interface JobSpec {
  /** Prompt token ids (at least one). */
  prompt: number[];
  /** Tokens to generate at most (>= 1); prompt.length + maxTokens must fit the model's context. */
  maxTokens: number;
  sampling: SamplingOptions;
  /** Generation ends after one of these ids (it is counted as a generated token). */
  eos: number[];
  /** Seed of the sampling PRNG (ignored by greedy decoding). */
  seed?: number;
  /** Each generated id, in order. Return true to end the sequence here with finish reason 'stop'. */
  onToken(id: number): boolean | void;
  /** Called once, when the job leaves the scheduler for any reason. */
  onEnd(end: JobEnd): void;
}

export interface JobHandle {
  readonly id: number;
  /** 'queued' | 'active' | 'done'. */
  readonly state: JobState;
  /** Ends the job now (queued or running) and frees its cache; onEnd gets status 'cancelled'. No-op once done. */
  cancel(reason?: CancelReason): void;
}

export class QueueFullError extends BusyError {
  constructor(readonly active: number, readonly queued: number) {
    super(`server busy: ${active} requests running and ${queued} queued (the queue is full); retry later`);
    this.name = 'QueueFullError';
  }
}

export interface SchedulerOptions {
  /** Sequences decoded together at most (default 8). */
  maxConcurrency?: number;
  /** Requests that may wait for a free slot (default 32); beyond that submit() throws QueueFullError. */
  queueSize?: number;
}

export interface SchedulerStats {
  active: number;
  queued: number;
  submitted: number;
  completed: number;
  cancelled: number;
  /** Jobs that failed while running (a decode step or a listener threw): never for lack of memory. */
  failed: number;
  /** Jobs refused at admission (their cache or prefill did not fit with nothing else running, or a bad prompt). */
  refused: number;
  /** Jobs refused at submit() because the queue was full. */
  rejected: number;
  prompt_tokens: number;
  generated_tokens: number;
  decode_steps: number;
  /** Sequence-steps run by those decode steps (the sum of their batch sizes). */
  decode_rows: number;
  /** Milliseconds spent in decode steps and in prefills. */
  decode_ms: number;
  prefill_ms: number;
  /** Mean number of sequences per decode step. */
  mean_batch: number;
  /** Bytes held by the KV caches of running sequences. */
  kv_cache_bytes: number;
  /** Bytes reserved once for the batched decode step (maxConcurrency sequences of the full context). */
  decode_workspace_bytes: number;
  /** Admissions postponed because a cache or prefill did not fit while other requests ran. */
  memory_waits: number;
}

type JobState = 'queued' | 'active' | 'done';

interface Job {
  id: number;
  spec: JobSpec;
  state: JobState;
  cache: KVCache | null;
  /** Prompt and generated ids: the `seen` list of the repetition penalty, as in generate(). */
  seq: number[];
  generated: number;
  /** The last sampled id, not yet in the cache: the input of the next decode step. */
  pending: number;
  rng: Random;
}

const nextTick = (fn: () => void): void => {
  const si = (globalThis as any).setImmediate;
  if (typeof si === 'function') si(fn); else setTimeout(fn, 0);
};

export class Scheduler {
  readonly maxConcurrency: number;
  readonly queueSize: number;
  private readonly queue: Job[] = [];
  private readonly running: Job[] = [];
  private scheduled = false;
  private nextId = 1;
  private idleWaiters: (() => void)[] = [];
  private readonly counts = { submitted: 0, completed: 0, cancelled: 0, failed: 0, refused: 0, rejected: 0, prompt_tokens: 0, generated_tokens: 0, decode_steps: 0, batched_rows: 0, decode_ms: 0, prefill_ms: 0, memory_waits: 0 };
  /** Bytes of the model's workspace reserved for maxConcurrency sequences of n_positions tokens (decode steps and
   *  prefill chunks then allocate nothing); 0 once disposed. */
  private workspaceBytes: number;
  /** The head of the queue did not fit in memory; retried once a running sequence has freed its cache. */
  private waitingForMemory = false;

  /** Reserves the decode workspace; throws MemoryLimitError when maxConcurrency sequences cannot be stepped. */
  constructor(readonly model: GPT2LMHeadModel, opts: SchedulerOptions = {}) {
    this.maxConcurrency = opts.maxConcurrency ?? 8;
    this.queueSize = opts.queueSize ?? 32;
    if (!Number.isInteger(this.maxConcurrency) || this.maxConcurrency < 1) throw new OptionError(`maxConcurrency must be a positive integer, got ${this.maxConcurrency}`);
    if (!Number.isInteger(this.queueSize) || this.queueSize < 0) throw new OptionError(`queueSize must be a non-negative integer, got ${this.queueSize}`);
    this.workspaceBytes = model.reserveWorkspace(this.maxConcurrency, model.config.n_positions);
  }

  /** Cancels what runs; the scheduler takes no jobs after it (the reserved workspace stays with the model until its dispose()). */
  dispose(): void {
    this.cancelAll('shutdown');
    this.workspaceBytes = 0;
  }

  get activeCount(): number { return this.running.length; }
  get queuedCount(): number { return this.queue.length; }

  /** Queues a job; throws QueueFullError when maxConcurrency are running and queueSize are waiting. */
  submit(spec: JobSpec): JobHandle {
    if (!this.workspaceBytes) throw new GPT2WasmError('DISPOSED', 'this scheduler was disposed');
    if (this.running.length + this.queue.length >= this.maxConcurrency + this.queueSize) {
      this.counts.rejected++;
      throw new QueueFullError(this.running.length, this.queue.length);
    }
    if (!(spec.prompt.length >= 1) || !(spec.maxTokens >= 1)) throw new InputError('a job needs a non-empty prompt and maxTokens >= 1');
    const job: Job = { id: this.nextId++, spec, state: 'queued', cache: null, seq: spec.prompt.slice(), generated: 0, pending: -1, rng: new Random(spec.seed) };
    this.queue.push(job);
    this.counts.submitted++;
    this.schedule();
    return {
      id: job.id,
      get state() { return job.state; },
      cancel: (reason: CancelReason = 'cancelled') => { if (job.state !== 'done') this.end(job, { status: 'cancelled', reason, tokens: job.generated }); },
    };
  }

  /** Resolves when nothing is running or queued. */
  drain(): Promise<void> {
    if (!this.running.length && !this.queue.length) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Cancels every queued and running job. */
  cancelAll(reason: CancelReason): void {
    for (const job of [...this.queue, ...this.running]) if (job.state !== 'done') this.end(job, { status: 'cancelled', reason, tokens: job.generated });
  }

  stats(): SchedulerStats {
    const c = this.counts;
    return {
      active: this.running.length, queued: this.queue.length, submitted: c.submitted, completed: c.completed, cancelled: c.cancelled, failed: c.failed, refused: c.refused,
      rejected: c.rejected, prompt_tokens: c.prompt_tokens, generated_tokens: c.generated_tokens, decode_steps: c.decode_steps, decode_rows: c.batched_rows,
      decode_ms: Math.round(c.decode_ms), prefill_ms: Math.round(c.prefill_ms),
      mean_batch: c.decode_steps ? +(c.batched_rows / c.decode_steps).toFixed(2) : 0,
      kv_cache_bytes: this.running.reduce((s, j) => s + (j.cache?.bytes ?? 0), 0),
      decode_workspace_bytes: this.workspaceBytes, memory_waits: c.memory_waits,
    };
  }

  private schedule(): void {
    if (this.scheduled || (!this.running.length && !this.queue.length)) return;
    this.scheduled = true;
    nextTick(() => this.tick());
  }

  private tick(): void {
    this.scheduled = false;
    try {
      this.admitOne();
      this.decodeAll();
    } finally {
      if (!this.running.length && !this.queue.length) {
        const waiters = this.idleWaiters;
        this.idleWaiters = [];
        for (const w of waiters) w();
      }
      this.schedule();
    }
  }

  /**
   * Admits the oldest waiting request when a slot is free: reserves its KV cache at full length (prompt +
   * maxTokens, at most n_positions), prefills the prompt and samples its first token. When the cache or the
   * prefill does not fit, the request stays first in the queue while others run, and is refused when none do.
   */
  private admitOne(): void {
    if (this.running.length >= this.maxConcurrency || !this.queue.length || this.waitingForMemory) return;
    const job = this.queue[0];
    const capacity = Math.min(job.spec.prompt.length + job.spec.maxTokens, this.model.config.n_positions);
    let cache: KVCache | null = null;
    let logits: Float32Array;
    const t0 = performance.now();
    try {
      cache = this.model.createCache(1, capacity);
      logits = this.model.prefill(cache, job.spec.prompt);
    } catch (error) {
      cache?.dispose();
      if (error instanceof GPT2WasmError && error.code === 'MEMORY' && this.running.length > 0) {
        this.waitingForMemory = true; // retried when a running sequence ends
        this.counts.memory_waits++;
        return;
      }
      this.end(job, { status: 'error', error, tokens: 0 });
      return;
    } finally { this.counts.prefill_ms += performance.now() - t0; }
    this.queue.shift();
    job.state = 'active';
    job.cache = cache;
    this.running.push(job);
    this.counts.prompt_tokens += job.spec.prompt.length;
    this.accept(job, logits);
  }

  /** One batched forward step for every running sequence. */
  private decodeAll(): void {
    const batch = this.running.filter((j) => j.state === 'active' && j.pending >= 0);
    if (!batch.length) return;
    let logits: Float32Array;
    const t0 = performance.now();
    try {
      logits = this.model.decodeStep(batch.map((j) => ({ cache: j.cache!, id: j.pending, pos: j.cache!.length })));
    } catch (error) {
      for (const j of batch) if (j.state !== 'done') this.end(j, { status: 'error', error, tokens: j.generated });
      return;
    } finally { this.counts.decode_ms += performance.now() - t0; }
    this.counts.decode_steps++;
    this.counts.batched_rows += batch.length;
    const V = this.model.config.vocab_size;
    batch.forEach((j, i) => { if (j.state === 'active') this.accept(j, logits.subarray(i * V, (i + 1) * V)); });
  }

  /** Samples the next token of `job` from its logits row and decides whether the sequence goes on. */
  private accept(job: Job, logits: Float32Array): void {
    const s = job.spec;
    let id: number, userStop: boolean | void;
    try {
      id = nextToken(logits, s.sampling, job.seq, [], () => job.rng.next());
      job.seq.push(id);
      job.generated++;
      this.counts.generated_tokens++;
      userStop = s.onToken(id);
    } catch (error) {
      if (job.state !== 'done') this.end(job, { status: 'error', error, tokens: job.generated });
      return;
    }
    if (job.state === 'done') return; // cancelled from inside onToken
    if (userStop === true || s.eos.includes(id)) this.end(job, { status: 'done', reason: 'stop', tokens: job.generated });
    else if (job.generated >= s.maxTokens) this.end(job, { status: 'done', reason: 'length', tokens: job.generated });
    else job.pending = id;
  }

  private end(job: Job, how: JobEnd): void {
    if (job.state === 'done') return;
    const wasQueued = job.state === 'queued';
    const list = wasQueued ? this.queue : this.running;
    const at = list.indexOf(job);
    if (at >= 0) list.splice(at, 1);
    // a running sequence frees its cache, and a new head of the queue may fit: try admitting again
    if (job.state === 'active' || at === 0) this.waitingForMemory = false;
    job.state = 'done';
    job.cache?.dispose();
    job.cache = null;
    if (how.status === 'done') this.counts.completed++;
    else if (how.status === 'cancelled') this.counts.cancelled++;
    else if (wasQueued) this.counts.refused++;
    else this.counts.failed++;
    try { job.spec.onEnd(how); } catch { /* a listener's failure must not stop the other sequences */ }
    if (!this.running.length && !this.queue.length && !this.scheduled) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of waiters) w();
    }
  }
}
