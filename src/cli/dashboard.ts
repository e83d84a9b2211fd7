// `selfsup dashboard [runs/]`: a local web page over run folders, served by node:http on 127.0.0.1 - runs side by side
// with a config diff, live curves (the page polls log.jsonl from a byte offset), MAE reconstructions by epoch, the
// augmentation grid, embedding maps and nearest neighbours. The page is static (web/dashboard/, no build step); the
// server answers only GET, only inside the runs folder and the page's own folder.
import type { Command } from 'commander';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { isIP } from 'node:net';
import { extname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { findRuns, insideFolder, loadEmbeddings, nearestNeighbours, pngState, readLogChunk, runId, summarizeRun, type LoadedEmbeddings } from '../io/runs.js';

/** The page's files: web/dashboard/ two levels above this module, in a git checkout (src/cli) and a build (dist/cli). */
export const DASHBOARD_ASSETS = fileURLToPath(new URL('../../web/dashboard/', import.meta.url));

const TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8', '.png': 'image/png', '.svg': 'image/svg+xml',
};

export interface DashboardOptions {
  /** the runs folder (a run folder itself, or a folder of them) */
  root: string;
  /** 0 picks a free port */
  port: number;
  /** 127.0.0.1 unless told otherwise */
  host: string;
  /** how often the page polls for new log lines and pictures, ms */
  pollMs?: number;
}

export interface Dashboard { url: string; port: number; server: Server; close(): Promise<void> }

class HttpError extends Error {
  constructor(readonly status: number, message: string) { super(message); }
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\./.test(host);
}

/** Starts the server; rejects with a clear error when the port is taken. */
export async function startDashboard(o: DashboardOptions): Promise<Dashboard> {
  const root = resolve(o.root);
  if (!existsSync(root) || !statSync(root).isDirectory()) throw new Error(`[dashboard] ${o.root}: no such folder`);
  if (!existsSync(join(DASHBOARD_ASSETS, 'index.html'))) throw new Error(`[dashboard] the page's files are missing from ${DASHBOARD_ASSETS}`);
  if (isIP(o.host) === 0 && o.host !== 'localhost') throw new Error(`[dashboard] --host must be an IP address or localhost, got '${o.host}'`);
  const pollMs = o.pollMs ?? 2000;
  const embeddingCache = new Map<string, { mtimeMs: number; value: LoadedEmbeddings }>();

  const runDir = (id: string | null): string => {
    if (id === null) throw new HttpError(400, 'missing ?run=');
    const dir = findRuns(root).find((d) => runId(root, d) === id);
    if (dir === undefined) throw new HttpError(404, `no run '${id}' under the runs folder`);
    return dir;
  };
  const embeddings = (dir: string, set: string | null): LoadedEmbeddings => {
    if (set === null || !/^[\w.-]+$/.test(set)) throw new HttpError(400, 'missing or invalid ?set=');
    const path = insideFolder(dir, set);
    if (path === null || !existsSync(join(path, 'embeddings.safetensors'))) throw new HttpError(404, `no embedding set '${set}' in this run`);
    const mtimeMs = statSync(join(path, 'embeddings.safetensors')).mtimeMs;
    const hit = embeddingCache.get(path);
    if (hit !== undefined && hit.mtimeMs === mtimeMs) return hit.value;
    const value = loadEmbeddings(path);
    embeddingCache.set(path, { mtimeMs, value });
    return value;
  };
  const intParam = (q: URLSearchParams, name: string, min: number, max: number, dflt?: number): number => {
    const raw = q.get(name);
    if (raw === null && dflt !== undefined) return dflt;
    const v = Number(raw);
    if (raw === null || !Number.isInteger(v) || v < min || v > max) throw new HttpError(400, `?${name}= must be an integer in [${min}, ${max}]`);
    return v;
  };

  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const send = (status: number, type: string, body: string | Buffer): void => {
      res.writeHead(status, {
        'Content-Type': type, 'Cache-Control': 'no-store', 'X-Content-Type-Options': 'nosniff',
        'Content-Security-Policy': "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'",
      });
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    const json = (v: unknown, status = 200): void => send(status, 'application/json; charset=utf-8', JSON.stringify(v));
    try {
      if (req.method !== 'GET' && req.method !== 'HEAD') throw new HttpError(405, 'only GET');
      // a page on another origin that resolves its name to 127.0.0.1 (DNS rebinding) must not read the runs
      const hostHeader = (req.headers.host ?? '').replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
      if (isLoopback(o.host) && !isLoopback(hostHeader)) throw new HttpError(403, `Host '${req.headers.host ?? ''}' is not this machine`);
      const url = new URL(req.url ?? '/', 'http://localhost');
      let pathname: string;
      try {
        pathname = decodeURIComponent(url.pathname);
      } catch {
        throw new HttpError(400, 'bad URL encoding');
      }
      if (pathname.split(/[/\\]/).includes('..')) throw new HttpError(403, 'path traversal refused');
      const q = url.searchParams;
      if (pathname === '/favicon.ico') {
        res.writeHead(204).end();
      } else if (pathname === '/' || pathname === '/index.html') {
        send(200, TYPES['.html']!, readFileSync(join(DASHBOARD_ASSETS, 'index.html')));
      } else if (pathname.startsWith('/static/')) {
        const file = insideFolder(DASHBOARD_ASSETS, pathname.slice('/static/'.length));
        if (file === null) throw new HttpError(403, 'path traversal refused');
        if (!existsSync(file) || !statSync(file).isFile() || TYPES[extname(file)] === undefined) throw new HttpError(404, 'no such file');
        send(200, TYPES[extname(file)]!, readFileSync(file));
      } else if (pathname === '/api/runs') {
        json({ root, pollMs, runs: findRuns(root).map((d) => summarizeRun(root, d)) });
      } else if (pathname === '/api/log') {
        json(readLogChunk(join(runDir(q.get('run')), 'log.jsonl'), intParam(q, 'from', 0, Number.MAX_SAFE_INTEGER, 0)));
      } else if (pathname === '/api/file') {
        const dir = runDir(q.get('run'));
        const rel = q.get('path') ?? '';
        const file = insideFolder(dir, rel);
        if (file === null) throw new HttpError(403, 'path traversal refused');
        if (extname(file) !== '.png') throw new HttpError(403, 'only PNG files are served from run folders');
        if (!existsSync(file) || !statSync(file).isFile()) throw new HttpError(404, `no ${rel} in this run`);
        if (pngState(file) !== 'ok') throw new HttpError(422, `${rel} is not a readable PNG`);
        send(200, TYPES['.png']!, readFileSync(file));
      } else if (pathname === '/api/embedding') {
        const e = embeddings(runDir(q.get('run')), q.get('set'));
        json({ n: e.n, d: e.d, classes: e.classes, labels: [...e.labels], paths: e.paths, pca: e.pca && [...e.pca], tsne: e.tsne && [...e.tsne] });
      } else if (pathname === '/api/neighbours') {
        const dir = runDir(q.get('run'));
        const queries = embeddings(dir, q.get('set'));
        const bankName = q.get('bank') ?? q.get('set');
        const bank = embeddings(dir, bankName);
        const query = intParam(q, 'query', 0, queries.n - 1);
        const k = intParam(q, 'k', 1, 100, 8);
        const item = (e: LoadedEmbeddings, i: number): { index: number; label: number; class: string; path: string } => ({
          index: i, label: e.labels[i]!, class: e.classes[e.labels[i]!] ?? '', path: e.paths[i] ?? '',
        });
        const sameSet = bankName === q.get('set');
        json({
          bank: bankName, query: item(queries, query),
          neighbours: nearestNeighbours(queries, query, bank, k, sameSet).map((nb) => ({ ...item(bank, nb.index), similarity: nb.similarity })),
        });
      } else {
        throw new HttpError(404, 'not found');
      }
    } catch (e) {
      if (e instanceof HttpError) json({ error: e.message }, e.status);
      else json({ error: e instanceof Error ? e.message : String(e) }, 500);
    }
  };

  const server = createServer(handle);
  await new Promise<void>((ok, fail) => {
    server.once('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'EADDRINUSE') fail(new Error(`[dashboard] port ${o.port} on ${o.host} is in use; pick another with --port N (or --port 0 for a free one)`));
      else if (e.code === 'EACCES') fail(new Error(`[dashboard] no permission to listen on ${o.host}:${o.port}; use a port above 1023`));
      else fail(new Error(`[dashboard] cannot listen on ${o.host}:${o.port}: ${e.message}`));
    });
    server.listen(o.port, o.host, () => ok());
  });
  const addr = server.address();
  const port = typeof addr === 'object' && addr !== null ? addr.port : o.port;
  const shown = o.host.includes(':') ? `[${o.host}]` : o.host;
  return {
    url: `http://${shown}:${port}/`, port, server,
    close: () => new Promise<void>((ok) => { server.closeAllConnections(); server.close(() => ok()); }),
  };
}

export function registerDashboard(program: Command): void {
  program
    .command('dashboard')
    .description('a local web page over run folders: configs side by side, live curves, reconstructions, augmentations, embeddings, neighbours')
    .argument('[runs]', 'a run folder, or a folder of run folders', 'runs')
    .option('--port <n>', 'port (0: any free one)', (v: string) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 0 || n > 65535) throw new Error(`[dashboard] --port must be an integer in [0, 65535], got '${v}'`);
      return n;
    }, 6060)
    .option('--host <ip>', 'address to listen on; anything but loopback exposes your runs to the network', '127.0.0.1')
    .option('--poll <ms>', 'how often the page looks for new log lines', (v: string) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 100) throw new Error(`[dashboard] --poll must be an integer >= 100 (ms), got '${v}'`);
      return n;
    }, 2000)
    .action(async (runs: string, f: { port: number; host: string; poll: number }) => {
      const d = await startDashboard({ root: runs, port: f.port, host: f.host, pollMs: f.poll });
      if (!isLoopback(f.host)) process.stderr.write(`[dashboard] warning: listening on ${f.host}, not loopback: anyone who can reach this machine can read ${resolve(runs)}\n`);
      process.stdout.write(`[dashboard] serving ${resolve(runs)} at ${d.url} (Ctrl-C to stop)\n`);
      const stop = (): void => { void d.close().then(() => process.exit(0)); };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });
}
