// GET /metrics in the Prometheus text exposition format (version 0.0.4): counters, gauges and histograms with
// cumulative `le` buckets, written by hand (no client library: zero runtime dependencies). The server keeps the
// request counters and latency histograms here; the scheduler's own counts and the memory figures are read
// when the page is rendered.

/** Latency buckets in seconds: from 1 ms (a decode step of the tiny model) to a minute (a long queue). */
export const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

export class Histogram {
  private readonly counts: number[];
  private sum = 0;
  private count = 0;
  constructor(readonly buckets: number[] = LATENCY_BUCKETS) { this.counts = buckets.map(() => 0); }

  observe(v: number): void {
    for (let i = 0; i < this.buckets.length; i++) if (v <= this.buckets[i]) this.counts[i]++;
    this.sum += v;
    this.count++;
  }

  get observations(): number { return this.count; }

  lines(name: string): string[] {
    const out = this.buckets.map((b, i) => `${name}_bucket{le="${b}"} ${this.counts[i]}`);
    out.push(`${name}_bucket{le="+Inf"} ${this.count}`, `${name}_sum ${this.sum}`, `${name}_count ${this.count}`);
    return out;
  }
}

/** A label value escaped as the format asks (backslash, double quote, newline). */
const esc = (v: string) => v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');

/** Labelled values of one metric: `{a="x",b="y"} → value`. */
export function labelled(labels: Record<string, string>): string {
  const parts = Object.entries(labels).map(([k, v]) => `${k}="${esc(v)}"`);
  return parts.length ? `{${parts.join(',')}}` : '';
}

/** Builds one exposition page: each metric with its HELP and TYPE lines. */
export class MetricsPage {
  private readonly out: string[] = [];
  private metric(name: string, type: string, help: string): void { this.out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`); }

  counter(name: string, help: string, values: [Record<string, string>, number][] | number): this { return this.scalar(name, 'counter', help, values); }
  gauge(name: string, help: string, values: [Record<string, string>, number][] | number): this { return this.scalar(name, 'gauge', help, values); }

  histogram(name: string, help: string, h: Histogram): this {
    this.metric(name, 'histogram', help);
    this.out.push(...h.lines(name));
    return this;
  }

  text(): string { return this.out.join('\n') + '\n'; }

  private scalar(name: string, type: string, help: string, values: [Record<string, string>, number][] | number): this {
    this.metric(name, type, help);
    if (typeof values === 'number') this.out.push(`${name} ${values}`);
    else for (const [l, v] of values) this.out.push(`${name}${labelled(l)} ${v}`);
    return this;
  }
}
