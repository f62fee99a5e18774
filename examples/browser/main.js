// The page: starts the worker (worker.js), which loads the model once, and appends each piece of text it
// streams back. Nothing heavy runs here, so the page stays responsive while tokens are computed.
const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const worker = new Worker(new URL('./worker.js', import.meta.url), { type: 'module' });
const files = new Map(); // file → percent, for the status line while loading

worker.onmessage = ({ data: m }) => {
  if (m.type === 'progress') {
    if (m.status === 'progress' && m.total) files.set(m.file, Math.floor(m.progress));
    if (m.status === 'ready') files.clear();
    const parts = [...files].map(([f, p]) => `${f} ${p}%`);
    $('status').textContent = m.status === 'ready' ? 'loaded' : `loading ${parts.join(', ') || m.file || ''}`;
  } else if (m.type === 'ready') {
    $('status').textContent = `ready: ${m.threads} thread(s), ${m.crossOriginIsolated ? '' : 'not '}cross-origin isolated`;
    $('run').disabled = false;
    if (params.has('autostart')) $('run').click();
  } else if (m.type === 'text') {
    $('output').append(m.text);
    $('output').dataset.pieces = String(Number($('output').dataset.pieces ?? 0) + 1);
  } else if (m.type === 'done') {
    $('status').textContent = `done: ${m.tokens} tokens in ${m.ms} ms (${((1000 * m.tokens) / m.ms).toFixed(1)} tokens/s)`;
    $('status').dataset.done = '1';
    $('run').disabled = false;
  } else if (m.type === 'cleared') {
    $('status').textContent = `cache cleared (${m.entries} entries)`;
  } else if (m.type === 'error') {
    $('status').textContent = `error: ${m.message}`;
    $('status').dataset.error = m.message;
  }
};

$('run').onclick = () => {
  $('run').disabled = true;
  $('status').dataset.done = '';
  const prompt = $('prompt').value;
  $('output').textContent = '';
  const p = document.createElement('span');
  p.className = 'prompt';
  p.textContent = prompt;
  $('output').append(p);
  worker.postMessage({ type: 'generate', prompt, max_new_tokens: Number($('max').value) });
};
$('clear').onclick = () => worker.postMessage({ type: 'clear' });

// ?model=<url of a model folder> (default: the one the server names in /config.json, else GPT-2 on the Hub)
const config = await fetch('./config.json').then((r) => (r.ok ? r.json() : {})).catch(() => ({}));
const model = params.get('model') ?? config.model ?? 'https://huggingface.co/openai-community/gpt2/resolve/main/';
worker.postMessage({ type: 'load', model: new URL(model, location.href).href, threads: Number(params.get('threads') ?? 0) || undefined });
