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
//
// A job of n choices is prefilled once: its prompt's KV cache is copied into each further choice's cache, and
// the n sequences then decode side by side (each is one slot of maxConcurrency). OpenAI's additive penalties and
// logit_bias change a choice's logits before the sampling processors; log-probabilities are those of the model
// itself (a log-softmax of the raw logits), as OpenAI reports them.
import { BusyError, GPT2WasmError, InputError, OptionError } from '../errors.js';
import { nextToken, type SamplingOptions } from '../generation/logits-process.js';
import { applyOpenAIPenalties, logSoftmax, topLogprobs, type TokenLogprob } from './logprobs.js';
import { MAX_SEED, Random } from '../generation/random.js';
import type { GPT2LMHeadModel } from '../model/gpt2.js';
import type { KVCache } from '../model/kv-cache.js';

export type FinishReason = 'stop' | 'length';
export type CancelReason = 'disconnected' | 'timeout' | 'shutdown' | 'cancelled';

/** How a job left the scheduler (`tokens`: generated over all its choices). */
export type JobEnd =
  | { status: 'done'; reason: FinishReason; reasons: FinishReason[]; tokens: number }
  | { status: 'cancelled'; reason: CancelReason; tokens: number }
  | { status: 'error'; error: unknown; tokens: number };

export interface JobSpec {
  /** Prompt token ids (at least one). */
  prompt: number[];
  /** Tokens to generate at most per choice (0: the prompt is only prefilled, e.g. to score it); prompt.length +
   *  maxTokens must fit the model's context. */
  maxTokens: number;
  sampling: SamplingOptions;
  /** Generation ends after one of these ids (it is counted as a generated token). */
  eos: number[];
  /** Seed of the sampling PRNG (ignored by greedy decoding); choice i draws from seed + i. */
  seed?: number;
  /** Completions of the same prompt, sharing its prefill (default 1). */
  n?: number;
  /** OpenAI's presence_penalty and frequency_penalty over each choice's generated tokens (default 0). */
  presencePenalty?: number;
  frequencyPenalty?: number;
  /** Added to the logit of a token id before sampling (OpenAI's logit_bias; -100 bans, +100 forces in practice). */
  logitBias?: Map<number, number>;
  /** The log-probabilities of this many most likely tokens at each step (undefined: none are computed). */
  logprobs?: number;
  /** With logprobs: score the prompt too, and pass its tokens' log-probabilities to onPrompt (the first is null). */
  echoLogprobs?: boolean;
  onPrompt?(lps: (TokenLogprob | null)[]): void;
  /** Each generated id of a choice, in order (with its log-probabilities when `logprobs` is set). Return true to
   *  end that choice here with finish reason 'stop'. */
  onToken(id: number, choice: number, lp: TokenLogprob | null): boolean | void;
  /** Called once, when the job leaves the scheduler for any reason. */
  onEnd(end: JobEnd): void;
}

export type { TokenLogprob };

export interface JobHandle {
  readonly id: number;
  /** 'queued' | 'active' | 'done'. */
  readonly state: JobState;
  /** Ends the job now (queued or running) and frees its caches; onEnd gets status 'cancelled'. No-op once done. */
  cancel(reason?: CancelReason): void;
}

export class QueueFullError extends BusyError {
  constructor(readonly active: number, readonly queued: number) {
    super(`server busy: ${active} requests running and ${queued} queued (the queue is full); retry later`);
    this.name = 'QueueFullError';
  }
}

export interface SchedulerOptions {
  /** Sequences decoded together at most (default 8); a job of n choices takes n of them. */
  maxConcurrency?: number;
  /** Requests that may wait for a free slot (default 32); beyond that submit() throws QueueFullError. */
  queueSize?: number;
}

export interface SchedulerStats {
  /** Jobs running (their prompt is prefilled). */
  active: number;
  /** Sequences running: the jobs' choices not yet finished. */
  active_sequences: number;
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
  /** Bytes of the KV caches of running sequences (reserved at full length when admitted). */
  kv_cache_bytes: number;
  /** Of those, the bytes that hold tokens so far. */
  kv_cache_used_bytes: number;
  /** Bytes reserved once for the batched decode step (maxConcurrency sequences of the full context). */
  decode_workspace_bytes: number;
  /** Admissions postponed because a cache or prefill did not fit while other requests ran. */
  memory_waits: number;
}

type JobState = 'queued' | 'active' | 'done';

/** One choice of a running job: its own cache, tokens and PRNG. */
interface Seq {
  choice: number;
  cache: KVCache;
  /** Prompt and generated ids: the `seen` list of the repetition penalty, as in generate(). */
  seq: number[];
  generated: number;
  /** How often each id was generated (for frequency/presence penalties). */
  counts: Map<number, number>;
  /** The last sampled id, not yet in the cache: the input of the next decode step. */
  pending: number;
  rng: Random;
  finish: FinishReason | null;
}

interface Job {
  id: number;
  spec: JobSpec;
  n: number;
  state: JobState;
  seqs: Seq[];
  generated: number;
}

// Deno serves almost no network I/O while a setImmediate chain runs (measured: one HTTP round trip took 898 ms
// behind a chain of 5 ms ticks, 106 ms in Node, 14 ms in Bun; a client's first stream byte came after ~60 decode
// steps), so there the ticks yield through the timer queue, where its sockets are polled (37 ms). Node's timers
// would cost ~1 ms a tick, so Node and Bun keep setImmediate.
const isDeno = typeof (globalThis as any).Deno !== 'undefined';
const nextTick = (fn: () => void): void => {
  const si = (globalThis as any).setImmediate;
  if (typeof si === 'function' && !isDeno) si(fn); else setTimeout(fn, 0);
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
  /** The decode steps' logits, reused: each step's rows are consumed (sampled) before the next step. */
  private logits = new Float32Array(0);

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
  /** Sequences running (a job of n choices counts n until its choices finish). */
  get sequenceCount(): number { return this.running.reduce((s, j) => s + j.seqs.filter((q) => !q.finish).length, 0); }

  /** Queues a job; throws QueueFullError when it would have to wait for a slot and queueSize jobs already wait. */
  submit(spec: JobSpec): JobHandle {
    if (!this.workspaceBytes) throw new GPT2WasmError('DISPOSED', 'this scheduler was disposed');
    if (!(spec.prompt.length >= 1) || !(spec.maxTokens >= 0)) throw new InputError('a job needs a non-empty prompt and maxTokens >= 0');
    const n = spec.n ?? 1;
    if (!Number.isInteger(n) || n < 1 || n > this.maxConcurrency) throw new InputError(`n must be an integer from 1 to maxConcurrency (${this.maxConcurrency}), got ${n}`);
    // slots are sequences, not jobs: a running job of n choices holds n of them, so count who waits for one (first
    // come, first served: behind the first queued job that does not fit, every later one waits)
    let free = this.maxConcurrency - this.sequenceCount, waiting = 0;
    for (const j of this.queue) { if (waiting === 0 && j.n <= free) free -= j.n; else waiting++; }
    if ((waiting > 0 || n > free) && waiting >= this.queueSize) {
      this.counts.rejected++;
      throw new QueueFullError(this.running.length, this.queue.length);
    }
    const job: Job = { id: this.nextId++, spec, n, state: 'queued', seqs: [], generated: 0 };
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
    let kv = 0, used = 0;
    for (const j of this.running) for (const q of j.seqs) if (!q.finish) { kv += q.cache.bytes; used += q.cache.usedBytes; }
    return {
      active: this.running.length, active_sequences: this.sequenceCount, queued: this.queue.length, submitted: c.submitted, completed: c.completed, cancelled: c.cancelled, failed: c.failed, refused: c.refused,
      rejected: c.rejected, prompt_tokens: c.prompt_tokens, generated_tokens: c.generated_tokens, decode_steps: c.decode_steps, decode_rows: c.batched_rows,
      decode_ms: Math.round(c.decode_ms), prefill_ms: Math.round(c.prefill_ms),
      mean_batch: c.decode_steps ? +(c.batched_rows / c.decode_steps).toFixed(2) : 0,
      kv_cache_bytes: kv, kv_cache_used_bytes: used,
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
   * Admits the oldest waiting request when its n slots are free: reserves its n KV caches at full length (prompt
   * + maxTokens, at most n_positions), prefills the prompt once (every position through the head when the prompt
   * is scored), copies that cache into the other choices' caches and samples each choice's first token. When the
   * caches or the prefill do not fit, the request stays first in the queue while others run, and is refused when
   * none do.
   */
  private admitOne(): void {
    if (!this.queue.length || this.waitingForMemory) return;
    const job = this.queue[0], s = job.spec;
    if (this.sequenceCount + job.n > this.maxConcurrency) return;
    const capacity = Math.min(s.prompt.length + s.maxTokens, this.model.config.n_positions);
    const caches: KVCache[] = [];
    let logits: Float32Array;
    const t0 = performance.now();
    try {
      for (let i = 0; i < job.n; i++) caches.push(this.model.createCache(1, capacity));
      const scored = s.echoLogprobs === true && s.logprobs !== undefined;
      logits = this.model.prefill(caches[0], s.prompt, scored); // [T, V] when scored, else [V]
      for (let i = 1; i < job.n; i++) caches[i].copyFrom(caches[0]);
      if (scored) {
        const V = this.model.config.vocab_size, T = s.prompt.length;
        s.onPrompt?.(s.prompt.map((_, t) => t === 0 ? null : topLogprobs(logSoftmax(logits.subarray((t - 1) * V, t * V)), s.prompt[t], s.logprobs!)));
        logits = logits.slice((T - 1) * V, T * V);
      }
    } catch (error) {
      for (const c of caches) c.dispose();
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
    job.seqs = caches.map((cache, choice) => ({
      choice, cache, seq: s.prompt.slice(), generated: 0, counts: new Map(), pending: -1, finish: null,
      rng: new Random(s.seed === undefined ? undefined : (s.seed + choice) % (MAX_SEED + 1)),
    }));
    this.running.push(job);
    this.counts.prompt_tokens += s.prompt.length;
    if (s.maxTokens === 0) { this.end(job, { status: 'done', reason: 'length', reasons: job.seqs.map(() => 'length'), tokens: 0 }); return; }
    for (const q of job.seqs) if (job.state === 'active') this.accept(job, q, job.n > 1 ? logits.slice() : logits);
  }

  /** One batched forward step for every running sequence. */
  private decodeAll(): void {
    const batch: [Job, Seq][] = [];
    for (const j of this.running) if (j.state === 'active') for (const q of j.seqs) if (!q.finish && q.pending >= 0) batch.push([j, q]);
    if (!batch.length) return;
    let logits: Float32Array;
    const t0 = performance.now();
    try {
      const need = batch.length * this.model.config.vocab_size;
      if (this.logits.length < need) this.logits = new Float32Array(need);
      logits = this.model.decodeStep(batch.map(([, q]) => ({ cache: q.cache, id: q.pending, pos: q.cache.length })), this.logits);
    } catch (error) {
      for (const [j] of batch) if (j.state !== 'done') this.end(j, { status: 'error', error, tokens: j.generated });
      return;
    } finally { this.counts.decode_ms += performance.now() - t0; }
    this.counts.decode_steps++;
    this.counts.batched_rows += batch.length;
    const V = this.model.config.vocab_size;
    batch.forEach(([j, q], i) => { if (j.state === 'active') this.accept(j, q, logits.subarray(i * V, (i + 1) * V)); });
  }

  /** Samples the next token of one choice from its logits row (changed in place) and decides whether it goes on. */
  private accept(job: Job, q: Seq, logits: Float32Array): void {
    const s = job.spec;
    let id: number, userStop: boolean | void, lp: Float64Array | null = null;
    try {
      if (s.logprobs !== undefined) lp = logSoftmax(logits); // the model's own distribution, before any processor
      applyOpenAIPenalties(logits, q.counts, s.presencePenalty ?? 0, s.frequencyPenalty ?? 0, s.logitBias);
      id = nextToken(logits, s.sampling, q.seq, [], () => q.rng.next());
      q.seq.push(id);
      q.counts.set(id, (q.counts.get(id) ?? 0) + 1);
      q.generated++;
      job.generated++;
      this.counts.generated_tokens++;
      userStop = s.onToken(id, q.choice, lp ? topLogprobs(lp, id, s.logprobs!) : null);
    } catch (error) {
      if (job.state !== 'done') this.end(job, { status: 'error', error, tokens: job.generated });
      return;
    }
    if (job.state === 'done') return; // cancelled from inside onToken
    if (userStop === true || s.eos.includes(id)) q.finish = 'stop';
    else if (q.generated >= s.maxTokens) q.finish = 'length';
    else { q.pending = id; return; }
    // this choice is over: its cache goes back at once, and the job ends with its last choice
    q.cache.dispose();
    this.waitingForMemory = false;
    if (job.seqs.every((x) => x.finish)) {
      const reasons = job.seqs.map((x) => x.finish!);
      this.end(job, { status: 'done', reason: reasons[0], reasons, tokens: job.generated });
    }
  }

  private end(job: Job, how: JobEnd): void {
    if (job.state === 'done') return;
    const wasQueued = job.state === 'queued';
    const list = wasQueued ? this.queue : this.running;
    const at = list.indexOf(job);
    if (at >= 0) list.splice(at, 1);
    // a running job frees its caches, and a new head of the queue may fit: try admitting again
    if (job.state === 'active' || at === 0) this.waitingForMemory = false;
    job.state = 'done';
    for (const q of job.seqs) q.cache.dispose();
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
