// Device registry: 'native' (the oneDNN addon) and 'reference' (pure TypeScript), and the default device.
import type { Backend, DeviceName } from '../backend/backend.js';
import { referenceBackend } from '../backend/reference.js';
import { onBackendLoaded } from './profiler.js';

const backends = new Map<DeviceName, () => Backend>();
const loaded = new Map<DeviceName, Backend>();
let defaultDevice: DeviceName | null = null;

backends.set('reference', () => referenceBackend);

/** Registers a lazily loaded backend (the native one registers itself from src/backend/native.ts). */
export function registerBackend(name: DeviceName, load: () => Backend): void {
  backends.set(name, load);
  loaded.delete(name);
}

export function getBackend(device?: string): Backend {
  const name = (device ?? getDefaultDevice()) as DeviceName;
  const hit = loaded.get(name);
  if (hit !== undefined) return hit;
  const load = backends.get(name);
  if (load === undefined) {
    throw new Error(`[device] unknown device '${String(device)}'; expected one of: ${[...backends.keys()].join(', ')}`);
  }
  const b = onBackendLoaded(load());
  loaded.set(name, b);
  return b;
}

export function setDefaultDevice(device: DeviceName): void {
  getBackend(device); // validates and loads
  defaultDevice = device;
}

/**
 * How much slower the reference backend trains than the native one, rounded: one SimSiam step of a ResNet-18 (CIFAR
 * stem, width 0.25) at batch 8 on 32x32 views took 28.5 s against 0.27 s (104x) on a 2-core Intel Xeon with AVX-512
 * (`npm run bench:reference`).
 */
export const REFERENCE_SLOWDOWN = 100;

let warnedFallback = false;

export function getDefaultDevice(): DeviceName {
  if (defaultDevice !== null) return defaultDevice;
  if (backends.has('native')) {
    try {
      getBackend('native');
      return 'native';
    } catch (err) {
      // a bad setting (SELFSUP_LAYOUT, ONEDNN_MAX_CPU_ISA) is the user's to fix, never a reason to run slowly
      if (err instanceof Error && err.name === 'NativeConfigError') throw err;
      // without the addon everything still runs, slowly, on the reference backend: say so once
      if (!warnedFallback) {
        warnedFallback = true;
        const reason = err instanceof Error ? err.message : String(err);
        console.warn(`${reason}\n[selfsup] running on the pure-TypeScript reference backend instead, about ` +
          `${REFERENCE_SLOWDOWN}x slower than the native one`);
      }
    }
  }
  return 'reference';
}
