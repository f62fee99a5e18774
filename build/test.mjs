// Runs the uvu suite and ends with one plain summary line ("N passed, N failed, N skipped") that CI reads.
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const pattern = process.argv[2] ?? '\\.test\\.ts$';
const child = spawn(process.execPath, [join(root, 'node_modules/uvu/bin.js'), '-r', 'tsx', 'test', pattern], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });
let out = '';
child.stdout.on('data', (d) => { process.stdout.write(d); out += d.toString(); });
child.on('close', (code) => {
  const plain = out.replace(/\x1b\[[0-9;]*m/g, '');
  // the last summary is uvu's own; earlier ones may come from child processes that tests spawn
  const num = (re) => Number([...plain.matchAll(new RegExp(re.source, 'g'))].pop()?.[1] ?? 0);
  const total = num(/Total:\s+(\d+)/), passed = num(/Passed:\s+(\d+)/), skipped = num(/Skipped:\s+(\d+)/);
  const failed = Math.max(0, total - passed - skipped) || (code !== 0 && total === passed ? 1 : 0);
  console.log(`\n${passed} passed, ${failed} failed, ${skipped} skipped`);
  process.exit(code ?? 1);
});
