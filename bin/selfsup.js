#!/usr/bin/env node
// Launcher for the `selfsup` CLI: registers tsx's TypeScript loader, then runs src/cli/main.ts.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../src/cli/main.ts');
await main(process.argv);
