// Line charts: the legend sits in the corner of the plot that hides the fewest points of the curves, in a box as
// wide as its longest name.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { legendBox, lineChartSvg } from '../../src/io/plot.js';

const AREA = { l: 70, r: 620, t: 40, b: 350 };

test('legendBox: prefers the top right; moves to the first corner (bottom right, top left, bottom left) the curves leave free', () => {
  const names = ['kNN top-1 (%)', 'pixels - mean, top-1 (%)'];
  assert.deepEqual(legendBox(names, [], AREA), { x: 620 - 8 - (34 + 7 * 24), y: 48, w: 34 + 7 * 24, h: 8 + 18 * 2 });
  // a curve along the top edge (kNN top-5 near 97%): bottom right
  const top: (readonly [number, number])[] = [[70, 45], [620, 45]];
  const b1 = legendBox(names, [top], AREA);
  assert.deepEqual([b1.x, b1.y], [620 - 8 - b1.w, 350 - 8 - b1.h]);
  // and one along the bottom edge too, reaching into the right half only: bottom left
  const bottomRight: (readonly [number, number])[] = [[300, 345], [620, 345]];
  const b2 = legendBox(names, [top, bottomRight], AREA);
  assert.deepEqual([b2.x, b2.y], [78, 350 - 8 - b2.h]);
  // no corner free (a curve along each edge): the first free place down the right edge, between them
  const edges: (readonly [number, number])[][] = [top, [[70, 345], [620, 345]], [[70, 45], [70, 345]]];
  const b4 = legendBox(names, edges, AREA);
  assert.deepEqual([b4.x, b4.y], [620 - 8 - b4.w, 52]);
  // a curve that rises across the whole plot from bottom left to top right leaves bottom right free
  const rising: (readonly [number, number])[] = [[70, 350], [620, 40]];
  const b3 = legendBox(names, [rising], AREA);
  assert.deepEqual([b3.x, b3.y], [620 - 8 - b3.w, 350 - 8 - b3.h]);
  // every sampled point of the chosen box's curves lies outside it
  for (const [x, y] of rising) assert.ok(!(x >= b3.x && x <= b3.x + b3.w && y >= b3.y && y <= b3.y + b3.h));
});

test('lineChartSvg: one legend entry per series in a backed box; the long run\'s kNN curves put it on the right between top-5 and top-1', () => {
  const epochs = [0, 4, 8, 12, 16, 20, 24, 28, 32, 36, 40, 44, 48];
  const top1 = [32.1, 44.5, 50.1, 54.9, 59.1, 61.9, 63.6, 63.6, 66.7, 65.9, 66.5, 67.5, 68.7];
  const top5 = [82.0, 91.4, 93.0, 94.9, 95.4, 95.7, 95.9, 96.2, 96.6, 96.4, 96.6, 96.8, 96.9];
  const svg = lineChartSvg([
    { name: 'kNN top-1 (%)', x: epochs, y: top1 },
    { name: 'kNN top-5 (%)', x: epochs, y: top5 },
    { name: 'raw pixels, top-1 (%)', x: [0, 48], y: [41.1, 41.1], color: '#7f7f7f' },
    { name: 'pixels - mean, top-1 (%)', x: [0, 48], y: [41.2, 41.2], color: '#bcbd22' },
  ], { title: 'kNN monitor', xLabel: 'epoch', yLabel: 'accuracy (%)' });
  for (const n of ['kNN top-1 (%)', 'kNN top-5 (%)', 'raw pixels, top-1 (%)', 'pixels - mean, top-1 (%)']) assert.ok(svg.includes(`>${n}</text>`), n);
  const box = /<rect x="([\d.]+)" y="([\d.]+)" width="([\d.]+)" height="([\d.]+)" fill="white" fill-opacity="0.85"/.exec(svg);
  assert.ok(box !== null);
  const [x, y, w, h] = box.slice(1).map(Number) as [number, number, number, number];
  assert.equal(w, 34 + 7 * 'pixels - mean, top-1 (%)'.length);
  assert.equal(h, 8 + 18 * 4);
  assert.equal(x + w, 640 - 20 - 8); // right
  // every corner is crossed (top-5 along the top, the pixel baselines low across the plot): below the top-5 curve,
  // above the top-1 curve, whose last point (68.7%) is at y = 177 on this scale
  assert.ok(y > 54 && y + h < 177, `legend at y ${y}..${y + h}`); // top-5 ends at 96.9%, y = 54
});
