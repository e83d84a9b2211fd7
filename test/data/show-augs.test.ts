// `selfsup show-augs` end to end through bin/selfsup.js: writes a PNG grid of the expected size.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { encodePng } from './png.js';

const tmp = mkdtempSync(join(tmpdir(), 'selfsup-showaugs-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const BIN = fileURLToPath(new URL('../../bin/selfsup.js', import.meta.url));

test('show-augs --preset moco-v2 writes a rows x (1 + cols) PNG grid atomically', async () => {
  for (const cls of ['a', 'b']) {
    mkdirSync(join(tmp, 'data', cls), { recursive: true });
    for (let i = 0; i < 3; i++) {
      const px = Array.from({ length: 40 * 30 * 3 }, (_, k) => (k * (i + 3) + (cls === 'a' ? 0 : 90)) % 256);
      writeFileSync(join(tmp, 'data', cls, `${i}.png`), encodePng(40, 30, 3, 8, px));
    }
  }
  const out = join(tmp, 'out', 'grid.png');
  mkdirSync(join(tmp, 'out'));
  const stdout = execFileSync(process.execPath, [BIN, 'show-augs', '--data', join(tmp, 'data'), '--preset', 'moco-v2', '--size', '24', '--rows', '3', '--cols', '4', '--zoom', '2', '--out', out], { encoding: 'utf8' });
  assert.match(stdout, /wrote .*grid\.png/);
  const meta = await sharp(out).metadata();
  // 5 columns and 3 rows of 48 px cells with 4 px gaps
  assert.deepEqual([meta.width, meta.height, meta.format], [5 * 48 + 6 * 4, 3 * 48 + 4 * 4, 'png']);
  assert.deepEqual(readdirSync(join(tmp, 'out')), ['grid.png'], 'no temporary file left behind');
  assert.throws(() => execFileSync(process.execPath, [BIN, 'show-augs', '--data', join(tmp, 'data'), '--preset', 'nope', '--out', out], { stdio: 'pipe' }), /unknown preset 'nope'/);
});
