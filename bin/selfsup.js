#!/usr/bin/env node
// Launcher for the `selfsup` CLI. An installed package runs the compiled dist/cli/main.js. A git checkout (it has
// tsconfig.json and tsx, a dev dependency) runs the TypeScript sources through tsx, so edits take effect without a
// build.
import { existsSync } from 'node:fs';

const root = new URL('../', import.meta.url);

async function loadMain() {
  if (existsSync(new URL('tsconfig.json', root)) && existsSync(new URL('src/cli/main.ts', root))) {
    const tsx = await import('tsx/esm/api').catch(() => null);
    if (tsx !== null) {
      tsx.register();
      return (await import(new URL('src/cli/main.ts', root).href)).main;
    }
  }
  if (!existsSync(new URL('dist/cli/main.js', root))) {
    console.error('selfsup: dist/ is missing: run `npm run build` (or `npm ci`, which builds it) in this checkout');
    process.exit(1);
  }
  return (await import(new URL('dist/cli/main.js', root).href)).main;
}

const main = await loadMain();
await main(process.argv);
