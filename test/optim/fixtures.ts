// Loads test/fixtures/optim/optim.json (written by reference/make_optim_fixtures.py with PyTorch 1.13).
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { LrSchedule } from '../../src/optim/index.js';

const PATH = fileURLToPath(new URL('../fixtures/optim/optim.json', import.meta.url));
export const REGENERATE = 'regenerate with: /usr/bin/python3 reference/make_optim_fixtures.py';

export interface RunFixture {
  name: string;
  optimizer: 'sgd' | 'lars' | 'larc' | 'adamw';
  defaults: Record<string, number | boolean | number[]>;
  groupB: Record<string, number | boolean>;
  schedule: LrSchedule;
  itersPerEpoch: number;
  /** lr of [groupA, groupB] at each step */
  lrs: number[][];
  /** every parameter after each step */
  params: Record<string, number[]>[];
}

export interface ClipFixture {
  maxNorm: number;
  normType: number | 'inf';
  shapes: number[][];
  grads: number[][];
  totalNorm: number;
  clipped: number[][];
}

export interface OptimFixtures {
  magic: string;
  version: number;
  steps: number;
  paramShapes: { name: string; shape: number[] }[];
  groups: [string[], string[]];
  init: Record<string, number[]>;
  /** per step, the gradient of each parameter that has one */
  grads: Record<string, number[]>[];
  runs: RunFixture[];
  clip: ClipFixture[];
  schedules: {
    cases: { schedule: LrSchedule; epochs: number[]; lrs: number[] }[];
    mocoMomentum: { m: number; epochs: number; at: number[]; values: number[] };
    groupLrs: { lrScale: number; lrs: number[][][] };
  };
  paramGroups: {
    vit: { name: string; shape: number[] }[];
    depth: number;
    skip: string[];
    layerDecay: { weightDecay: number; layerDecay: number; groups: { name: string; lrScale: number; weightDecay: number; params: string[] }[] };
    weightDecay: { weightDecay: number; groups: { weightDecay: number; params: string[] }[] };
  };
}

let cached: OptimFixtures | null = null;

export function loadOptimFixtures(): OptimFixtures {
  if (cached !== null) return cached;
  const doc = JSON.parse(readFileSync(PATH, 'utf8')) as OptimFixtures;
  if (doc.magic !== 'selfsup-optim-fixtures' || doc.version !== 1) {
    throw new Error(`[optim fixtures] bad header ${doc.magic} v${doc.version}; ${REGENERATE}`);
  }
  cached = doc;
  return doc;
}
