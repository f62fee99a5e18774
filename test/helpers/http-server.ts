// A tiny HTTP server on 127.0.0.1 for tests: records requests, serves bytes with HEAD/Range/If-Range/ETag, and
// streams files from disk, can cut a response off after N body bytes to simulate a dropped connection. close() kills open sockets.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createReadStream, statSync } from 'node:fs';
import type { AddressInfo } from 'node:net';

export interface SeenRequest {
  method: string;
  path: string;
  headers: IncomingMessage['headers'];
}

export interface TestServer {
  url: string;
  requests: SeenRequest[];
  close(): Promise<void>;
}

export type Handler = (req: IncomingMessage, res: ServerResponse, path: string) => void | Promise<void>;

export async function startServer(handler: Handler): Promise<TestServer> {
  const requests: SeenRequest[] = [];
  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    requests.push({ method: req.method ?? 'GET', path, headers: req.headers });
    Promise.resolve(handler(req, res, path)).catch((e) => {
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
      res.end(String(e));
    });
  });
  server.keepAliveTimeout = 500;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export interface SendOptions {
  etag?: string | null;
  headers?: Record<string, string>;
  /** Honour Range requests (default true). */
  ranges?: boolean;
  /** Write only this many body bytes, then destroy the socket. */
  dropAfter?: number | null;
}

/** The status, headers and [start, end] of a reply to `req` for a body of `size` bytes (null: 416 already sent). */
function rangeReply(req: IncomingMessage, res: ServerResponse, size: number, opts: SendOptions): { status: number; headers: Record<string, string>; start: number; end: number } | null {
  const headers: Record<string, string> = { 'content-type': 'application/octet-stream', ...(opts.headers ?? {}) };
  if (opts.etag) headers.etag = opts.etag;
  if (opts.ranges !== false) headers['accept-ranges'] = 'bytes';
  let start = 0;
  let end = size - 1;
  let status = 200;
  const range = opts.ranges === false ? undefined : req.headers.range;
  const ifRange = req.headers['if-range'];
  if (range && (ifRange === undefined || (opts.etag && ifRange === opts.etag))) {
    const m = /^bytes=(\d+)-(\d*)$/.exec(range);
    if (m) {
      start = Number(m[1]);
      end = m[2] ? Math.min(Number(m[2]), size - 1) : size - 1;
      if (start >= size || end < start) {
        res.writeHead(416, { ...headers, 'content-range': `bytes */${size}` });
        res.end();
        return null;
      }
      status = 206;
      headers['content-range'] = `bytes ${start}-${end}/${size}`;
    }
  }
  headers['content-length'] = String(end + 1 - start);
  return { status, headers, start, end };
}

/** Answer `req` with `bytes`, as a static file server with byte-range support would. */
export function sendBytes(req: IncomingMessage, res: ServerResponse, bytes: Uint8Array, opts: SendOptions = {}): void {
  const r = rangeReply(req, res, bytes.byteLength, opts);
  if (!r) return;
  const body = bytes.subarray(r.start, r.end + 1);
  res.writeHead(r.status, r.headers);
  if (req.method === 'HEAD') {
    res.end();
    return;
  }
  if (opts.dropAfter != null && opts.dropAfter < body.byteLength) {
    res.write(body.subarray(0, opts.dropAfter), () => setTimeout(() => res.destroy(), 10));
    return;
  }
  res.end(body);
}

/** Answer `req` with the file at `path`, streamed from disk (for checkpoints too large to hold in memory). */
export function sendFile(req: IncomingMessage, res: ServerResponse, path: string, opts: Omit<SendOptions, 'dropAfter'> = {}): void {
  const r = rangeReply(req, res, statSync(path).size, opts);
  if (!r) return;
  res.writeHead(r.status, r.headers);
  if (req.method === 'HEAD' || r.end < r.start) { res.end(); return; }
  createReadStream(path, { start: r.start, end: r.end }).on('error', () => res.destroy()).pipe(res);
}
