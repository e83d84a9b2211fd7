// Line charts as PNG (loss and kNN curves): drawn as SVG, rasterised by sharp, written atomically.
import sharp from 'sharp';
import { writeFileAtomic } from './atomic.js';

export interface Series {
  name: string;
  x: readonly number[];
  y: readonly number[];
  color?: string;
}

export interface ChartOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  width?: number;
  height?: number;
}

const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd'];

/** Escapes text for SVG (charts, confusion matrices, captions). */
export function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function niceTicks(lo: number, hi: number, n = 5): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / n;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? raw;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(+v.toPrecision(12));
  return out;
}

const LEGEND_ROW = 18;
/** Width of a 12 px DejaVu Sans character, a little over the average so a name never runs past its box. */
const CHAR_W = 7;

/**
 * Where the legend goes, like matplotlib's loc='best': the corners of the plot area first (top right, bottom right,
 * top left, bottom left), then every 4 px down its right edge, left edge and middle; the first place whose box covers
 * the fewest points of the curves (sampled every 3 px along each segment) wins, so the legend hides as little of the
 * data as it can. The box is as wide as the longest name.
 */
export function legendBox(names: readonly string[], curves: readonly (readonly (readonly [number, number])[])[],
  area: { l: number; r: number; t: number; b: number }): { x: number; y: number; w: number; h: number } {
  const w = 34 + CHAR_W * Math.max(0, ...names.map((n) => n.length));
  const h = 8 + LEGEND_ROW * names.length;
  const inset = 8;
  const [right, left, mid] = [area.r - inset - w, area.l + inset, Math.round((area.l + area.r - w) / 2)];
  const [top, bottom] = [area.t + inset, area.b - inset - h];
  const places = [{ x: right, y: top }, { x: right, y: bottom }, { x: left, y: top }, { x: left, y: bottom }];
  for (const x of [right, left, mid]) for (let y = top; y <= bottom; y += 4) places.push({ x, y });
  const samples: (readonly [number, number])[] = [];
  for (const c of curves) {
    c.forEach((p, i) => {
      samples.push(p);
      const q = c[i + 1];
      if (q === undefined) return;
      const steps = Math.ceil(Math.hypot(q[0] - p[0], q[1] - p[1]) / 3);
      for (let j = 1; j < steps; j++) samples.push([p[0] + ((q[0] - p[0]) * j) / steps, p[1] + ((q[1] - p[1]) * j) / steps]);
    });
  }
  const covered = (c: { x: number; y: number }): number =>
    samples.filter(([x, y]) => x >= c.x - 3 && x <= c.x + w + 3 && y >= c.y - 3 && y <= c.y + h + 3).length;
  let best = places[0]!;
  let bestCount = covered(best);
  for (const c of places.slice(1)) {
    const n = covered(c);
    if (n < bestCount) [best, bestCount] = [c, n];
  }
  return { ...best, w, h };
}

/** An SVG line chart of the series (points with non-finite y are skipped). */
export function lineChartSvg(series: readonly Series[], o: ChartOptions): string {
  const W = o.width ?? 640;
  const H = o.height ?? 400;
  const m = { l: 70, r: 20, t: 40, b: 50 };
  const xs = series.flatMap((s) => s.x.filter((_, i) => Number.isFinite(s.y[i])));
  const ys = series.flatMap((s) => s.y.filter((v) => Number.isFinite(v)));
  let [x0, x1] = xs.length ? [Math.min(...xs), Math.max(...xs)] : [0, 1];
  let [y0, y1] = ys.length ? [Math.min(...ys), Math.max(...ys)] : [0, 1];
  if (x1 === x0) x1 = x0 + 1;
  if (y1 === y0) { y0 -= 0.5; y1 += 0.5; }
  const pad = (y1 - y0) * 0.05;
  y0 -= pad;
  y1 += pad;
  const px = (v: number): number => m.l + ((v - x0) / (x1 - x0)) * (W - m.l - m.r);
  const py = (v: number): number => H - m.b - ((v - y0) / (y1 - y0)) * (H - m.t - m.b);
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="DejaVu Sans, sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="24" text-anchor="middle" font-size="15">${esc(o.title)}</text>`,
  ];
  for (const t of niceTicks(y0, y1)) {
    parts.push(`<line x1="${m.l}" x2="${W - m.r}" y1="${py(t)}" y2="${py(t)}" stroke="#e5e5e5"/>`);
    parts.push(`<text x="${m.l - 6}" y="${py(t) + 4}" text-anchor="end">${+t.toPrecision(4)}</text>`);
  }
  for (const t of niceTicks(x0, x1)) {
    parts.push(`<text x="${px(t)}" y="${H - m.b + 18}" text-anchor="middle">${+t.toPrecision(4)}</text>`);
  }
  parts.push(`<rect x="${m.l}" y="${m.t}" width="${W - m.l - m.r}" height="${H - m.t - m.b}" fill="none" stroke="#333"/>`);
  parts.push(`<text x="${(m.l + W - m.r) / 2}" y="${H - 12}" text-anchor="middle">${esc(o.xLabel)}</text>`);
  parts.push(`<text transform="translate(18 ${(m.t + H - m.b) / 2}) rotate(-90)" text-anchor="middle">${esc(o.yLabel)}</text>`);
  const curves = series.map((s) => s.x.map((x, i) => [x, s.y[i]!] as const).filter(([, y]) => Number.isFinite(y)));
  const colors = series.map((s, k) => s.color ?? PALETTE[k % PALETTE.length]!);
  curves.forEach((pts, k) => {
    const color = colors[k]!;
    if (pts.length === 1) {
      parts.push(`<circle cx="${px(pts[0]![0])}" cy="${py(pts[0]![1])}" r="3" fill="${color}"/>`);
    } else if (pts.length > 1) {
      parts.push(`<polyline fill="none" stroke="${color}" stroke-width="1.6" points="${pts.map(([x, y]) => `${px(x).toFixed(1)},${py(y).toFixed(1)}`).join(' ')}"/>`);
      if (pts.length <= 40) for (const [x, y] of pts) parts.push(`<circle cx="${px(x)}" cy="${py(y)}" r="2.5" fill="${color}"/>`);
    }
  });
  const onScreen = curves.map((c) => c.map(([x, y]) => [px(x), py(y)] as const));
  const box = legendBox(series.map((s) => s.name), onScreen, { l: m.l, r: W - m.r, t: m.t, b: H - m.b });
  if (series.length > 0) {
    parts.push(`<rect x="${box.x}" y="${box.y}" width="${box.w}" height="${box.h}" fill="white" fill-opacity="0.85" stroke="#cccccc"/>`);
  }
  series.forEach((s, k) => {
    parts.push(`<rect x="${box.x + 8}" y="${box.y + 9 + k * LEGEND_ROW}" width="12" height="3" fill="${colors[k]!}"/>`);
    parts.push(`<text x="${box.x + 26}" y="${box.y + 14 + k * LEGEND_ROW}">${esc(s.name)}</text>`);
  });
  parts.push('</svg>');
  return parts.join('\n');
}

/** Writes a line chart PNG atomically. */
export async function writeLineChart(path: string, series: readonly Series[], o: ChartOptions): Promise<void> {
  const png = await sharp(Buffer.from(lineChartSvg(series, o))).png().toBuffer();
  writeFileAtomic(path, png);
}
