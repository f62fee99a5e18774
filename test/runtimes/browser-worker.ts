// The Chromium checks inside a module Web Worker (started by browser-page.ts); the pool's workers are then
// nested workers. Posts back the report (or an error) as JSON text.
import { browserChecks, paramsFrom } from './browser-common.ts';

const scope = globalThis as any;
try {
  scope.postMessage(JSON.stringify(await browserChecks('worker', paramsFrom(location.search))));
} catch (e) {
  scope.postMessage(JSON.stringify({ error: e instanceof Error ? `${e.name}: ${e.message}\n${e.stack}` : String(e) }));
}
