// Portability check in headless Chromium (Debian's /usr/bin/chromium, driven by playwright-core):
//   node --import tsx test/runtimes/browser.ts [--kernels=reference] [--threads=1,2] [--mode=isolated|plain]
// Serves the repository on 127.0.0.1 with a tiny node:http server, twice: once with COOP/COEP headers
// (the page is crossOriginIsolated → SharedArrayBuffer → worker threads) and once without (no shared
// memory → the single-thread fallback). The page (browser-page.ts) runs the checks on the page and in a Web
// Worker: each imports /dist/index.js and reads the fixture model with urlSource. Prints one RUNTIME_RESULT
// line per mode and context; exit 1 when a check fails.
import { printReport, type RuntimeReport } from './check.ts';
import { chromiumMissing, launchChromium, serveRepo } from './browser-server.ts';

const arg = (name: string) => process.argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1];
const kernels = arg('kernels') === 'reference' ? 'reference' : 'wasm';
const threads = arg('threads') ?? '1,2';
const modes = (arg('mode') ?? 'isolated,plain').split(',') as ('isolated' | 'plain')[];
const timeoutMs = Number(process.env.GPT2WASM_BROWSER_TIMEOUT ?? 120_000);

type Outcome = RuntimeReport | { error: string };

async function runMode(mode: 'isolated' | 'plain', log: string[]): Promise<Outcome[]> {
  const server = await serveRepo(mode === 'isolated');
  let browser: Awaited<ReturnType<typeof launchChromium>> | null = null;
  try {
    browser = await launchChromium();
    const { context } = browser;
    const page = context.pages()[0] ?? await context.newPage();
    page.on('console', (m) => log.push(`[${mode} console.${m.type()}] ${m.text()}`));
    page.on('pageerror', (e) => log.push(`[${mode} pageerror] ${e.message}`));
    let finish!: (s: string) => void;
    const result = new Promise<string>((r) => { finish = r; });
    await page.exposeFunction('__gpt2wasmDone', (s: string) => finish(s));
    await page.goto(`${server.url}/?kernels=${kernels}&threads=${threads}&rawfetch=${process.env.GPT2WASM_RAW_FETCH === '0' ? 0 : 1}`);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<string>((r) => { timer = setTimeout(() => r(JSON.stringify([{ error: `no result within ${timeoutMs} ms` }])), timeoutMs); });
    const text = await Promise.race([result, timeout]);
    clearTimeout(timer);
    return JSON.parse(text);
  } catch (e) {
    return [{ error: `${(e as Error).message}` }];
  } finally {
    await browser?.close();
    await server.close();
  }
}

const missing = chromiumMissing();
if (missing) {
  console.error(missing);
  process.exit(2);
}
let code = 0;
for (const mode of modes) {
  const log: string[] = [];
  const outcomes = await runMode(mode, log);
  for (const l of log) console.error(l);
  for (const r of outcomes) {
    if ('error' in r) {
      code = 1;
      printReport({ platform: `chromium ${mode === 'isolated' ? 'cross-origin isolated' : 'not isolated'}`, kernels, results: [{ name: 'page', status: 'fail', threadsRequested: 0, message: r.error }] });
      continue;
    }
    code = Math.max(code, printReport(r));
  }
}
process.exit(code);
