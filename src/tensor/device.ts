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

export function getDefaultDevice(): DeviceName {
  if (defaultDevice !== null) return defaultDevice;
  if (backends.has('native')) {
    try {
      getBackend('native');
      return 'native';
    } catch {
      // fall through: without the addon everything still runs, slowly, on the reference backend
    }
  }
  return 'reference';
}
