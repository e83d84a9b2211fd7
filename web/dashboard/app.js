// selfsup dashboard page: plain ES module, no build step. It polls the server's JSON API (see src/cli/dashboard.ts),
// keeps each run's log records, and draws curves as hand-written SVG and embedding maps on a canvas.

// matplotlib's tab10, as the PNG plots use
const COLORS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf'];
const SVG = 'http://www.w3.org/2000/svg';

/** Curves: which log records feed them, the field, the x axis. Step-level curves get smoothing. */
const CHARTS = [
  { id: 'loss', title: 'train loss', field: 'loss', kind: 'step' },
  { id: 'lr', title: 'learning rate', field: 'lr', kind: 'step', raw: true },
  { id: 'epoch-loss', title: 'epoch mean loss', field: 'loss', kind: 'epoch' },
  { id: 'knn-top1', title: 'kNN top-1', field: 'knnTop1', kind: 'epoch', before: 'top1' },
  { id: 'knn-top5', title: 'kNN top-5', field: 'knnTop5', kind: 'epoch', before: 'top5' },
  { id: 'test-loss', title: 'MAE loss on held-out images', field: 'testLoss', kind: 'epoch', before: 'testLoss' },
  { id: 'acc1', title: 'InfoNCE accuracy (MoCo)', field: 'acc1', kind: 'step' },
  { id: 'zstd', title: 'output std (SimSiam collapse check)', field: 'zStd', kind: 'step' },
  { id: 'img-per-sec', title: 'images / s', field: 'imgPerSec', kind: 'step' },
];

const state = {
  pollMs: 2000,
  runs: [],
  /** run id -> { records, next, damaged, pendingBytes } */
  logs: new Map(),
  selected: new Set(),
  embedding: null,
  embeddingKey: '',
};

const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') e.className = v;
    else if (k === 'style') Object.assign(e.style, v);
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, String(v));
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c instanceof Node ? c : String(c));
  return e;
}

function svg(tag, attrs = {}) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  return e;
}

async function getJson(url) {
  const r = await fetch(url, { cache: 'no-store' });
  const body = await r.json();
  if (!r.ok) throw new Error(body.error ?? `${r.status}`);
  return body;
}

const q = (o) => new URLSearchParams(o).toString();
const fileUrl = (run, path) => `/api/file?${q({ run, path })}`;
const colorOf = (id) => COLORS[state.runs.findIndex((r) => r.id === id) % COLORS.length];
const pct = (v) => (typeof v === 'number' ? `${(100 * v).toFixed(2)}%` : '');

// ---- data ---------------------------------------------------------------------------------------------------------

async function refreshRuns() {
  const data = await getJson('/api/runs');
  state.pollMs = data.pollMs;
  $('root').textContent = data.root;
  const known = new Set(state.runs.map((r) => r.id));
  state.runs = data.runs;
  for (const r of data.runs) if (!known.has(r.id)) state.selected.add(r.id);
  for (const id of [...state.selected]) if (!data.runs.some((r) => r.id === id)) state.selected.delete(id);
}

/** Fetches new log lines of every run; true when any arrived. */
async function refreshLogs() {
  let changed = false;
  for (const r of state.runs) {
    const log = state.logs.get(r.id) ?? { records: [], next: 0, damaged: [], pendingBytes: 0 };
    const chunk = await getJson(`/api/log?${q({ run: r.id, from: log.next })}`);
    if (chunk.next < log.next) { log.records = []; log.damaged = []; } // the file was replaced
    if (chunk.records.length > 0 || chunk.damaged.length > 0 || chunk.pendingBytes !== log.pendingBytes) changed = true;
    log.records.push(...chunk.records);
    log.damaged.push(...chunk.damaged);
    log.next = chunk.next;
    log.pendingBytes = chunk.pendingBytes;
    state.logs.set(r.id, log);
  }
  return changed;
}

// ---- runs table and config diff ----------------------------------------------------------------------------------

function renderRuns() {
  const body = $('run-table').querySelector('tbody');
  body.replaceChildren();
  for (const r of state.runs) {
    const log = state.logs.get(r.id) ?? { records: [], damaged: [], pendingBytes: 0 };
    const epochs = log.records.filter((x) => x.event === 'epoch');
    const steps = log.records.filter((x) => x.event === 'step');
    const knn = [...log.records].reverse().find((x) => x.event === 'epoch' && typeof x.knnTop1 === 'number');
    const problems = [...r.problems];
    if (log.damaged.length > 0) problems.push(`log.jsonl: ${log.damaged.length} damaged line(s) skipped`);
    if (log.pendingBytes > 0) problems.push(`log.jsonl ends in an incomplete line (${log.pendingBytes} bytes: being written, or cut)`);
    const evals = Object.entries(r.evaluations).map(([k, v]) => `${k} ${pct(v.top1)}`).join(', ');
    const box = el('input', { type: 'checkbox', 'data-run': r.id });
    box.checked = state.selected.has(r.id);
    box.addEventListener('change', () => {
      if (box.checked) state.selected.add(r.id); else state.selected.delete(r.id);
      renderAll();
    });
    body.append(el('tr', { 'data-run': r.id },
      el('td', {}, box, ' ', el('span', { class: 'swatch', style: { background: colorOf(r.id) } })),
      el('td', {}, r.id), el('td', {}, r.method),
      el('td', { class: 'num' }, `${epochs.length}/${r.config.epochs ?? '?'}`),
      el('td', { class: 'num' }, steps.length > 0 ? Number(steps[steps.length - 1].loss).toFixed(4) : ''),
      el('td', { class: 'num' }, knn ? pct(knn.knnTop1) : ''),
      el('td', {}, evals),
      el('td', { class: r.checkpoint ? '' : 'problem' }, r.checkpoint ? `epoch ${r.checkpoint.epoch}, step ${r.checkpoint.step}` : 'missing'),
      el('td', {}, problems.length === 0 ? '' : el('ul', { class: 'problems' }, ...problems.map((p) => el('li', { class: 'problem' }, p))))));
  }
}

function flatten(obj, prefix = '', out = {}) {
  for (const [k, v] of Object.entries(obj ?? {})) {
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) flatten(v, `${prefix}${k}.`, out);
    else out[`${prefix}${k}`] = JSON.stringify(v);
  }
  return out;
}

function renderConfig() {
  const runs = state.runs.filter((r) => state.selected.has(r.id));
  const flat = runs.map((r) => flatten(r.config));
  const keys = [...new Set(flat.flatMap((f) => Object.keys(f)))].sort();
  const diffOnly = $('diff-only').checked;
  const head = $('config-table').querySelector('thead');
  const body = $('config-table').querySelector('tbody');
  head.replaceChildren(el('tr', {}, el('th', {}, 'key'), ...runs.map((r) => el('th', {}, el('span', { class: 'swatch', style: { background: colorOf(r.id) } }), ' ', r.id))));
  body.replaceChildren();
  for (const k of keys) {
    const values = flat.map((f) => f[k]);
    const differs = new Set(values).size > 1;
    if (diffOnly && !differs) continue;
    body.append(el('tr', { 'data-key': k, class: differs ? 'differs' : '' }, el('th', { class: 'key' }, k),
      ...values.map((v) => el('td', { class: differs ? 'differs' : '' }, v === undefined ? '-' : v))));
  }
  if (body.children.length === 0) body.append(el('tr', {}, el('td', { colspan: runs.length + 1 }, runs.length < 2 ? 'select two runs to compare' : 'no differences')));
}

// ---- curves -------------------------------------------------------------------------------------------------------

/** TensorBoard's smoothing: an exponential moving average, debiased for its zero start. */
function smooth(ys, weight) {
  let last = 0;
  let n = 0;
  return ys.map((y) => {
    n++;
    last = last * weight + (1 - weight) * y;
    return weight === 0 ? y : last / (1 - weight ** n);
  });
}

/**
 * A curve's points in log order. A resumed run logs again the steps between its last checkpoint and the kill: a
 * point at or before the previous one drops the points it repeats (as TensorBoard purges on SessionLog.START).
 */
function seriesOf(runId, spec) {
  const records = state.logs.get(runId)?.records ?? [];
  const pts = [];
  const push = (x, y) => {
    while (pts.length > 0 && pts[pts.length - 1][0] >= x) pts.pop();
    pts.push([x, y]);
  };
  if (spec.kind === 'step') {
    for (const r of records) if (r.event === 'step' && typeof r[spec.field] === 'number') push(r.step, r[spec.field]);
  } else {
    for (const r of records) {
      if (r.event === 'knn' && spec.before && typeof r[spec.before] === 'number') push(r.epoch ?? 0, r[spec.before]);
      if (r.event === 'epoch' && typeof r[spec.field] === 'number') push(r.epoch, r[spec.field]);
    }
  }
  return pts;
}

function niceTicks(lo, hi, n = 4) {
  if (!(hi > lo)) { hi = lo + 1; lo -= 1; }
  const step0 = (hi - lo) / n;
  const mag = 10 ** Math.floor(Math.log10(step0));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= step0);
  const ticks = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) ticks.push(+t.toPrecision(12));
  return ticks;
}

function fmt(v) {
  const a = Math.abs(v);
  return a !== 0 && (a < 1e-3 || a >= 1e5) ? v.toExponential(1) : String(+v.toPrecision(4));
}

function chart(spec, runs, weight) {
  const W = 420, H = 230, L = 52, R = 12, T = 24, B = 30;
  const series = runs.map((id) => ({ id, pts: seriesOf(id, spec) })).filter((s) => s.pts.length > 0);
  if (series.length === 0) return null;
  const xs = series.flatMap((s) => s.pts.map((p) => p[0]));
  const ys = series.flatMap((s) => s.pts.map((p) => p[1]));
  let [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  if (x1 === x0) { x0 -= 1; x1 += 1; }
  if (y1 === y0) { const d = Math.abs(y0) * 0.1 || 1; y0 -= d; y1 += d; }
  const px = (x) => L + ((x - x0) / (x1 - x0)) * (W - L - R);
  const py = (y) => H - B - ((y - y0) / (y1 - y0)) * (H - T - B);
  const root = svg('svg', { width: W, height: H, class: 'chart', 'data-chart': spec.id, viewBox: `0 0 ${W} ${H}` });
  root.append(Object.assign(svg('text', { x: L, y: 15, class: 'title' }), { textContent: spec.title }));
  for (const t of niceTicks(y0, y1)) {
    if (t < y0 || t > y1) continue;
    root.append(svg('line', { x1: L, x2: W - R, y1: py(t), y2: py(t), stroke: '#eee' }));
    root.append(Object.assign(svg('text', { x: L - 4, y: py(t) + 4, 'text-anchor': 'end' }), { textContent: fmt(t) }));
  }
  for (const t of niceTicks(x0, x1, 5)) {
    if (t < x0 || t > x1 || !Number.isInteger(t)) continue; // steps and epochs are whole numbers
    root.append(Object.assign(svg('text', { x: px(t), y: H - B + 14, 'text-anchor': 'middle' }), { textContent: fmt(t) }));
  }
  root.append(Object.assign(svg('text', { x: W - R, y: H - 4, 'text-anchor': 'end' }), { textContent: spec.kind === 'step' ? 'step' : 'epoch' }));
  root.append(svg('rect', { x: L, y: T, width: W - L - R, height: H - T - B, fill: 'none', stroke: '#ccc' }));
  for (const s of series) {
    const color = colorOf(s.id);
    const d = (pts) => pts.map((p, i) => `${i === 0 ? 'M' : 'L'}${px(p[0]).toFixed(1)},${py(p[1]).toFixed(1)}`).join('');
    const smoothed = spec.kind === 'step' && !spec.raw && weight > 0;
    root.append(svg('path', { d: d(s.pts), fill: 'none', stroke: color, 'stroke-width': 1.5, class: smoothed ? 'raw series' : 'series', 'data-run': s.id, 'data-points': s.pts.length }));
    if (smoothed) {
      const sy = smooth(s.pts.map((p) => p[1]), weight);
      root.append(svg('path', { d: d(s.pts.map((p, i) => [p[0], sy[i]])), fill: 'none', stroke: color, 'stroke-width': 2, class: 'smoothed', 'data-run': s.id }));
    }
    if (spec.kind === 'epoch') {
      for (const p of s.pts) {
        const c = svg('circle', { cx: px(p[0]), cy: py(p[1]), r: 3, fill: color, class: 'pt', 'data-run': s.id });
        c.append(Object.assign(svg('title'), { textContent: `${s.id}: epoch ${p[0]}: ${fmt(p[1])}` }));
        root.append(c);
      }
    }
  }
  return root;
}

function renderCharts() {
  const weight = Number($('smoothing').value);
  $('smoothing-value').textContent = weight.toFixed(2);
  const runs = state.runs.filter((r) => state.selected.has(r.id)).map((r) => r.id);
  $('charts').replaceChildren(...CHARTS.map((c) => chart(c, runs, weight)).filter((c) => c !== null));
}

// ---- pictures -----------------------------------------------------------------------------------------------------

function picture(run, path, stateOf, alt) {
  if (stateOf === 'unreadable') return el('div', { class: 'missing', 'data-missing': path }, `${path} is unreadable`);
  const img = el('img', { src: fileUrl(run, path), alt });
  img.addEventListener('error', () => img.replaceWith(el('div', { class: 'missing', 'data-missing': path }, `${path} could not be loaded`)));
  return img;
}

function renderPictures() {
  const sel = $('picture-run');
  const withPictures = state.runs.filter((r) => r.pictures.augs !== null || r.pictures.recon.length > 0);
  const current = sel.value;
  sel.replaceChildren(...withPictures.map((r) => el('option', { value: r.id }, r.id)));
  if (withPictures.some((r) => r.id === current)) sel.value = current;
  const run = withPictures.find((r) => r.id === sel.value);
  if (!run) {
    $('augs').replaceChildren(el('div', { class: 'missing' }, 'no run with pictures yet'));
    $('recon').replaceChildren();
    return;
  }
  const augKey = `${run.id}|${run.pictures.augs}`;
  if ($('augs').dataset.key !== augKey) {
    $('augs').dataset.key = augKey;
    $('augs').replaceChildren(run.pictures.augs === null ? el('div', { class: 'missing' }, 'no augs.png') : picture(run.id, 'augs.png', run.pictures.augs, 'augmentation grid'));
  }
  const slider = $('recon-slider');
  const recon = run.pictures.recon;
  $('recon-figure').hidden = recon.length === 0;
  if (recon.length === 0) return;
  const atEnd = slider.dataset.run !== run.id || Number(slider.value) >= Number(slider.max);
  slider.max = String(recon.length - 1);
  if (atEnd) slider.value = slider.max; // follow the newest epoch unless the user went back
  slider.dataset.run = run.id;
  showRecon(run);
}

function showRecon(run) {
  const i = Number($('recon-slider').value);
  const r = run.pictures.recon[i];
  const path = `recon/epoch-${String(r.epoch).padStart(3, '0')}.png`;
  $('recon-epoch').textContent = `${r.epoch} (${i + 1} of ${run.pictures.recon.length})`;
  if ($('recon').dataset.key === `${run.id}|${path}|${r.state}`) return;
  $('recon').dataset.key = `${run.id}|${path}|${r.state}`;
  $('recon').replaceChildren(picture(run.id, path, r.state, `reconstructions after epoch ${r.epoch}`));
}

// ---- embeddings and neighbours ------------------------------------------------------------------------------------

function embeddingSets() {
  return state.runs.flatMap((r) => r.embeddings.map((e) => ({ run: r, set: e, key: `${r.id}|${e.name}` })));
}

function renderEmbeddingChoices() {
  const sets = embeddingSets();
  const sel = $('embed-select');
  const current = sel.value;
  sel.replaceChildren(...sets.map((s) => el('option', { value: s.key }, `${s.run.id}: ${s.set.name} (${s.set.split}, ${s.set.count} images)`)));
  if (sets.some((s) => s.key === current)) sel.value = current;
  if (sel.value !== state.embeddingKey) void loadEmbedding();
}

function thumb(run, set, index) {
  const d = el('div', { class: 'thumb', 'data-index': index });
  if (!set.sprite) return d;
  const size = 64;
  Object.assign(d.style, {
    backgroundImage: `url("${fileUrl(run.id, set.sprite.path)}")`,
    backgroundSize: `${set.sprite.cols * size}px ${set.sprite.cols * size}px`,
    backgroundPosition: `-${(index % set.sprite.cols) * size}px -${Math.floor(index / set.sprite.cols) * size}px`,
  });
  return d;
}

async function loadEmbedding() {
  const key = $('embed-select').value;
  state.embeddingKey = key;
  const s = embeddingSets().find((x) => x.key === key);
  if (!s) { state.embedding = null; drawMap(); return; }
  const data = await getJson(`/api/embedding?${q({ run: s.run.id, set: s.set.name })}`);
  state.embedding = { ...s, data };
  $('map-kind').querySelector('option[value=tsne]').disabled = data.tsne === null;
  if (data.tsne === null) $('map-kind').value = 'pca';
  const banks = s.run.embeddings;
  const preferred = s.set.split === 'test' ? banks.find((b) => b.split === 'train') : undefined;
  $('nn-bank').replaceChildren(...banks.map((b) => el('option', { value: b.name }, `${b.name} (${b.split}, ${b.count})`)));
  $('nn-bank').value = (preferred ?? s.set).name;
  $('nn-query').max = String(data.n - 1);
  drawMap();
  $('legend').replaceChildren(...data.classes.map((c, k) => el('div', {}, el('span', { class: 'swatch', style: { background: COLORS[k % COLORS.length] } }), ' ', c)));
}

function mapPoints() {
  const e = state.embedding;
  if (!e) return [];
  const xy = $('map-kind').value === 'tsne' && e.data.tsne ? e.data.tsne : e.data.pca;
  const canvas = $('embed-map');
  const m = 16;
  let [x0, x1, y0, y1] = [Infinity, -Infinity, Infinity, -Infinity];
  for (let i = 0; i < e.data.n; i++) {
    x0 = Math.min(x0, xy[2 * i]); x1 = Math.max(x1, xy[2 * i]);
    y0 = Math.min(y0, xy[2 * i + 1]); y1 = Math.max(y1, xy[2 * i + 1]);
  }
  if (!(x1 > x0)) { x0 -= 1; x1 += 1; }
  if (!(y1 > y0)) { y0 -= 1; y1 += 1; }
  return Array.from({ length: e.data.n }, (_, i) => ({
    i, x: m + ((xy[2 * i] - x0) / (x1 - x0)) * (canvas.width - 2 * m), y: canvas.height - m - ((xy[2 * i + 1] - y0) / (y1 - y0)) * (canvas.height - 2 * m),
  }));
}

function drawMap() {
  const canvas = $('embed-map');
  const ctx = canvas.getContext('2d');
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  const e = state.embedding;
  if (!e) {
    ctx.fillStyle = '#6e6e73';
    ctx.fillText('no embeddings: run `selfsup embed --checkpoint RUN` (test and train splits)', 20, 30);
    return;
  }
  state.points = mapPoints();
  for (const p of state.points) {
    const l = e.data.labels[p.i];
    ctx.fillStyle = l >= 0 ? COLORS[l % COLORS.length] : '#555';
    ctx.globalAlpha = 0.8;
    ctx.beginPath();
    ctx.arc(p.x, p.y, 3, 0, 2 * Math.PI);
    ctx.fill();
  }
  ctx.globalAlpha = 1;
}

function nearestPoint(ev) {
  const canvas = $('embed-map');
  const rect = canvas.getBoundingClientRect();
  const x = ((ev.clientX - rect.left) * canvas.width) / rect.width;
  const y = ((ev.clientY - rect.top) * canvas.height) / rect.height;
  let best = null;
  let bestD = 36;
  for (const p of state.points ?? []) {
    const d = (p.x - x) ** 2 + (p.y - y) ** 2;
    if (d < bestD) { bestD = d; best = p; }
  }
  return best;
}

function onMapHover(ev) {
  const tip = $('tooltip');
  const p = nearestPoint(ev);
  const e = state.embedding;
  if (!p || !e) { tip.hidden = true; return; }
  const label = e.data.labels[p.i];
  tip.replaceChildren(thumb(e.run, e.set, p.i), el('div', { class: 'tip-class' }, label >= 0 ? e.data.classes[label] : 'unlabelled'), el('div', {}, `#${p.i}`));
  tip.dataset.index = String(p.i);
  tip.style.left = `${p.x + 12}px`;
  tip.style.top = `${p.y + 12}px`;
  tip.hidden = false;
}

async function findNeighbours() {
  const e = state.embedding;
  if (!e) return;
  const out = $('nn-result');
  try {
    const r = await getJson(`/api/neighbours?${q({ run: e.run.id, set: e.set.name, bank: $('nn-bank').value, query: $('nn-query').value, k: $('nn-k').value })}`);
    const bank = e.run.embeddings.find((b) => b.name === r.bank);
    out.replaceChildren(
      el('div', { class: 'nn-query' }, thumb(e.run, e.set, r.query.index), el('div', {}, `query #${r.query.index}`), el('div', {}, r.query.class)),
      ...r.neighbours.map((n) => el('div', { class: `nn-item${n.label === r.query.label ? ' hit' : ''}`, title: n.path },
        thumb(e.run, bank, n.index), el('div', {}, n.class || `#${n.index}`), el('div', {}, n.similarity.toFixed(3)))));
  } catch (err) {
    out.replaceChildren(el('div', { class: 'missing' }, `neighbours: ${err.message}`));
  }
}

// ---- wiring -------------------------------------------------------------------------------------------------------

function renderAll() {
  renderRuns();
  renderConfig();
  renderCharts();
  renderPictures();
  renderEmbeddingChoices();
}

async function tick(full) {
  try {
    if (full) await refreshRuns();
    const changed = await refreshLogs();
    if (full) renderAll();
    else if (changed) { renderRuns(); renderCharts(); }
    $('status').textContent = `updated ${new Date().toLocaleTimeString()}`;
  } catch (err) {
    $('status').textContent = `server unreachable: ${err.message}`;
  }
}

async function main() {
  $('diff-only').addEventListener('change', renderConfig);
  $('smoothing').addEventListener('input', renderCharts);
  $('picture-run').addEventListener('change', renderPictures);
  $('recon-slider').addEventListener('input', () => {
    const run = state.runs.find((r) => r.id === $('picture-run').value);
    if (run) showRecon(run);
  });
  $('embed-select').addEventListener('change', () => void loadEmbedding());
  $('map-kind').addEventListener('change', drawMap);
  $('embed-map').addEventListener('mousemove', onMapHover);
  $('embed-map').addEventListener('mouseleave', () => { $('tooltip').hidden = true; });
  $('embed-map').addEventListener('click', (ev) => {
    const p = nearestPoint(ev);
    if (p) { $('nn-query').value = String(p.i); void findNeighbours(); }
  });
  $('nn-go').addEventListener('click', () => void findNeighbours());
  await tick(true);
  document.body.dataset.ready = '1';
  // new log lines every poll; the run list (pictures, checkpoints, embeddings) every third
  let n = 0;
  const loop = async () => {
    n++;
    await tick(n % 3 === 0);
    setTimeout(loop, state.pollMs);
  };
  setTimeout(loop, state.pollMs);
}

void main();
