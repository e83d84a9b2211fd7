// The native allocator's arena (native/memory.cc): blocks from 1 MiB share one address range whose idle parts
// coalesce, so memory freed at one size serves requests of another. Runs in its own process (node --test gives each
// file one), so the arena starts empty and every number below is exact.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { nativeAddon, nativeAvailable, nativeBackend as nb } from '../../src/backend/native.js';

const MiB = 1 << 20;
const floats = (bytes: number): number => bytes / 4;

test('idle large blocks coalesce and serve other sizes; a trim gives their pages back', { skip: !nativeAvailable() && 'native addon not built' }, () => {
  const addon = nativeAddon();
  addon.trimCache();
  const base = addon.memoryStats();
  assert.equal(base.cachedBytes, 0);

  // 16 activation-sized blocks (1 MiB) freed ...
  const small = Array.from({ length: 16 }, () => nb.alloc('float32', floats(MiB), true));
  assert.equal(addon.memoryStats().liveBytes, base.liveBytes + 16 * MiB);
  for (const a of small) nb.free(a);
  assert.equal(addon.memoryStats().cachedBytes, 16 * MiB);

  // ... serve 4 blocks of 4 MiB: nothing new is taken. A cache keyed by exact size would keep the 16 idle (16 MiB
  // cached) and take 16 MiB more from the OS.
  const rss0 = process.memoryUsage().rss;
  const large = Array.from({ length: 4 }, () => nb.alloc('float32', floats(4 * MiB), true));
  assert.equal(addon.memoryStats().cachedBytes, 0);
  assert.equal(addon.memoryStats().liveBytes, base.liveBytes + 16 * MiB);
  assert.ok(large.every((a) => a.length === floats(4 * MiB) && a[0] === 0 && a[a.length - 1] === 0), 'zeroed on reuse');
  assert.ok(process.memoryUsage().rss - rss0 < 8 * MiB, `RSS grew ${(process.memoryUsage().rss - rss0) / MiB} MiB`);

  // sizes that are not multiples of the page still fit back together: 3 of 5 MiB - 4 bytes into the 16 MiB
  for (const a of large) nb.free(a);
  const odd = Array.from({ length: 3 }, () => nb.alloc('float32', floats(5 * MiB - 4), false));
  assert.equal(addon.memoryStats().cachedBytes, MiB);
  for (const a of odd) nb.free(a);

  // a trim hands the idle pages back to the OS and forgets them as cached
  assert.equal(addon.memoryStats().cachedBytes, 16 * MiB);
  const rss1 = process.memoryUsage().rss;
  addon.trimCache();
  assert.equal(addon.memoryStats().cachedBytes, 0);
  assert.ok(rss1 - process.memoryUsage().rss > 12 * MiB, `trim gave back ${(rss1 - process.memoryUsage().rss) / MiB} MiB`);
  const again = nb.alloc('float32', floats(16 * MiB), true);
  assert.ok(again[12345] === 0 && addon.memoryStats().liveBytes === base.liveBytes + 16 * MiB);
  nb.free(again);
});
