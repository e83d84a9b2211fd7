// The pure-TypeScript reference backend: every kernel as a plain loop, in float32 or float64.
// It is the oracle the native backend is tested against, and it runs anywhere JavaScript runs.
import type { Backend, DType, TypedArray } from './backend.js';
import * as elementwise from './reference/elementwise.js';
import * as indexing from './reference/indexing.js';
import * as matmul from './reference/matmul.js';
import * as conv from './reference/conv.js';
import * as norm from './reference/norm.js';
import * as softmax from './reference/softmax.js';
import * as attention from './reference/attention.js';
import * as pool from './reference/pool.js';

export function allocTyped(dtype: DType, size: number): TypedArray {
  switch (dtype) {
    case 'float32': return new Float32Array(size);
    case 'float64': return new Float64Array(size);
    case 'int32': return new Int32Array(size);
    case 'uint8': return new Uint8Array(size);
  }
}

export const referenceBackend: Backend = {
  name: 'reference',
  alloc: (dtype, size) => allocTyped(dtype, size),
  free: () => { /* garbage collected */ },
  supports: () => true,
  ...elementwise,
  ...indexing,
  ...matmul,
  ...conv,
  ...norm,
  ...softmax,
  ...attention,
  ...pool,
};
