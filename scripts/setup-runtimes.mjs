#!/usr/bin/env node
// Installs the JavaScript runtimes the portability tests (test/runtimes.test.ts) run on, when they are missing:
//   deno, bun, workerd,         from the npm registry (the packages ship the binaries as per-platform
//   playwright-core             optional dependencies), into this checkout's node_modules;
//                               (workerd is the open-source Cloudflare Workers runtime);
//   chromium                    from Debian apt, only when running as root and /usr/bin/chromium is absent;
//   haproxy                     from Debian apt, likewise (the load balancer of test/server-scale.test.ts).
// Idempotent: what is present and working is left alone. Prints one status line per runtime.
//   node scripts/setup-runtimes.mjs            install what is missing
//   node scripts/setup-runtimes.mjs --check    report only; exit 1 if something is missing
// Versions: the ones in package.json devDependencies when listed there, else the pins below.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const checkOnly = process.argv.includes('--check');
const PINS = { deno: '2.9.6', bun: '1.4.5', workerd: '1.20261117.1', 'playwright-core': '1.65.1' };
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const HAPROXY = process.env.HAPROXY_PATH || '/usr/sbin/haproxy';

const log = (msg) => console.error(`[setup-runtimes] ${msg}`);

function wantedVersion(name) {
  try {
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
    const v = pkg.devDependencies?.[name] ?? pkg.dependencies?.[name];
    if (v) return v;
  } catch { /* no package.json: use the pin */ }
  return PINS[name];
}

/** `<bin> --version` first line, or null when the binary is absent or does not run. */
function version(bin, args = ['--version']) {
  if (!existsSync(bin)) return null;
  const r = spawnSync(bin, args, { encoding: 'utf8', timeout: 30_000 });
  if (r.status !== 0) return null;
  return (r.stdout.trim() || r.stderr.trim()).split('\n')[0].trim();
}

const npmBin = (name) => join(root, 'node_modules', '.bin', name);
const probes = {
  deno: () => version(npmBin('deno')),
  bun: () => version(npmBin('bun')),
  workerd: () => version(npmBin('workerd')),
  'playwright-core': () => {
    const p = join(root, 'node_modules', 'playwright-core', 'package.json');
    return existsSync(p) ? JSON.parse(readFileSync(p, 'utf8')).version : null;
  },
};

let failed = false;

// 1. npm packages, in one install so npm resolves the tree once.
const missing = Object.keys(probes).filter((name) => !probes[name]());
if (missing.length && !checkOnly) {
  const specs = missing.map((n) => `${n}@${wantedVersion(n)}`);
  log(`npm install --no-save ${specs.join(' ')}`);
  // --no-save: package.json/package-lock.json stay as they are (when these are devDependencies, `npm ci`
  // installs them and this step is skipped).
  const r = spawnSync('npm', ['install', '--no-save', '--no-audit', '--no-fund', ...specs], { cwd: root, stdio: 'inherit', timeout: 600_000 });
  if (r.status !== 0) { log(`npm install failed (exit ${r.status})`); failed = true; }
}
// Installed with scripts disabled (--ignore-scripts, or an npm that blocks install scripts): deno still runs
// through its bin.cjs shim, but bun's bin is a stub until its postinstall copies the binary out of
// @oven/bun-<platform> (a local copy, no download when that optional dependency is installed).
if (!checkOnly && !probes.bun() && existsSync(join(root, 'node_modules', 'bun', 'install.js'))) {
  log('bun: running its postinstall (node node_modules/bun/install.js)');
  spawnSync(process.execPath, ['install.js'], { cwd: join(root, 'node_modules', 'bun'), stdio: 'inherit', timeout: 300_000 });
}
for (const name of Object.keys(probes)) {
  const v = probes[name]();
  if (v) log(`${name}: ${v}`);
  else { log(`${name}: MISSING${checkOnly ? '' : ' (install failed)'}`); failed = true; }
}

// 2. chromium (driven by playwright-core with executablePath, no browser download) and haproxy from Debian.
const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const hasApt = spawnSync('sh', ['-c', 'command -v apt-get'], { encoding: 'utf8' }).status === 0;
let aptUpdated = false;

/** `apt-get install -y <pkg>` when root with apt and `bin` is the Debian path; returns the probe afterwards. */
function aptInstall(pkg, bin, defaultBin, probe, envVar) {
  if (bin !== defaultBin) log(`${pkg}: ${bin} (${envVar}) not found; not installing elsewhere`);
  else if (!isRoot || !hasApt) log(`${pkg}: not installing (${!hasApt ? 'no apt-get' : 'not root'}); run: apt-get install -y ${pkg}`);
  else {
    try {
      const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
      if (!aptUpdated) { log('apt-get update'); execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env, timeout: 600_000 }); aptUpdated = true; }
      log(`apt-get install -y ${pkg}`);
      execFileSync('apt-get', ['install', '-y', '-qq', pkg], { stdio: 'inherit', env, timeout: 1_200_000 });
    } catch (e) {
      log(`apt-get failed: ${e.message}`);
    }
  }
  return probe();
}

let chromium = version(CHROMIUM);
if (!chromium && !checkOnly) chromium = aptInstall('chromium', CHROMIUM, '/usr/bin/chromium', () => version(CHROMIUM), 'CHROMIUM_PATH');
if (chromium) log(`chromium: ${chromium}`);
else { log(`chromium: MISSING at ${CHROMIUM}`); failed = true; }

const haproxyVersion = () => version(HAPROXY, ['-v']);
let haproxy = haproxyVersion();
if (!haproxy && !checkOnly) haproxy = aptInstall('haproxy', HAPROXY, '/usr/sbin/haproxy', haproxyVersion, 'HAPROXY_PATH');
if (haproxy) log(`haproxy: ${haproxy}`);
else { log(`haproxy: MISSING at ${HAPROXY}`); failed = true; }

process.exit(failed ? 1 : 0);
