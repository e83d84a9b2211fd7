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
  series.forEach((s, k) => {
    const color = s.color ?? PALETTE[k % PALETTE.length]!;
    const pts = s.x.map((x, i) => [x, s.y[i]!] as const).filter(([, y]) => Number.isFinite(y));
    if (pts.length === 1) {
      parts.push(`<circle cx="${px(pts[0]![0])}" cy="${py(pts[0]![1])}" r="3" fill="${color}"/>`);
    } else if (pts.length > 1) {
      parts.push(`<polyline fill="none" stroke="${color}" stroke-width="1.6" points="${pts.map(([x, y]) => `${px(x).toFixed(1)},${py(y).toFixed(1)}`).join(' ')}"/>`);
      if (pts.length <= 40) for (const [x, y] of pts) parts.push(`<circle cx="${px(x)}" cy="${py(y)}" r="2.5" fill="${color}"/>`);
    }
    parts.push(`<rect x="${W - m.r - 150}" y="${m.t + 8 + k * 18}" width="12" height="3" fill="${color}"/>`);
    parts.push(`<text x="${W - m.r - 132}" y="${m.t + 13 + k * 18}">${esc(s.name)}</text>`);
  });
  parts.push('</svg>');
  return parts.join('\n');
}

/** Writes a line chart PNG atomically. */
export async function writeLineChart(path: string, series: readonly Series[], o: ChartOptions): Promise<void> {
  const png = await sharp(Buffer.from(lineChartSvg(series, o))).png().toBuffer();
  writeFileAtomic(path, png);
}
