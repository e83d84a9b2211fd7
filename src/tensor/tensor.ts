// Tensor: shape, dtype and device over a reference-counted buffer, plus the autograd fields.
// Memory is released deterministically: dispose(), or tidy() scopes that dispose what they created.
import type { Backend, DType, DeviceName, TypedArray } from '../backend/backend.js';
import { getBackend } from './device.js';
import type { GradNode } from './autograd.js';

export type Shape = readonly number[];

/** The [N, C, H, W] sizes of an activation held in oneDNN's blocked layout (nChw16c / nChw8c; native backend only). */
export interface BlockedLayout { readonly N: number; readonly C: number; readonly H: number; readonly W: number }

/** A buffer shared by a tensor and its views (reshape, detach); freed when the last holder disposes. */
export class Storage {
  data: TypedArray | null;
  refs = 1;
  /**
   * Set while the buffer holds an activation in the blocked layout, as conv and batch norm leave it for the next layer
   * (no reorder between layers). Every read through Tensor.data first turns it back into NCHW, in place.
   */
  blocked: BlockedLayout | null = null;
  /**
   * Set while the buffer holds the activation as bf16 values (2 bytes each, in a Uint8Array), as conv and batch norm
   * leave a ResNet's activations in bf16 precision (autocast keeps them in bf16 too); always blocked. Reads through
   * Tensor.data or Tensor.blockedData first widen it to f32 in a new buffer.
   */
  bf16 = false;
  constructor(data: TypedArray, readonly backend: Backend) {
    this.data = data;
  }
  release(): void {
    if (this.data === null) return;
    this.refs--;
    if (this.refs === 0) {
      this.backend.free(this.data);
      this.data = null;
    }
  }
}

// ---- scopes: tidy() disposes every tensor created inside it except those returned or kept ----
const scopeStack: Set<Tensor>[] = [];

function track(t: Tensor): void {
  const top = scopeStack[scopeStack.length - 1];
  if (top !== undefined) top.add(t);
}

function collectTensors(value: unknown, into: Set<Tensor>, depth = 0): void {
  if (depth > 4 || value === null || typeof value !== 'object') return;
  if (value instanceof Tensor) { into.add(value); return; }
  if (Array.isArray(value)) { for (const v of value) collectTensors(v, into, depth + 1); return; }
  if (value instanceof Map) { for (const v of value.values()) collectTensors(v, into, depth + 1); return; }
  if (Object.getPrototypeOf(value) === Object.prototype) {
    for (const v of Object.values(value)) collectTensors(v, into, depth + 1);
  }
}

/**
 * Runs fn and disposes every tensor it created, except the tensors in its result (arrays and plain
 * objects are searched) and tensors marked with keep(). fn must be synchronous.
 */
export function tidy<T>(fn: () => T): T {
  const scope = new Set<Tensor>();
  scopeStack.push(scope);
  let result: T;
  try {
    result = fn();
  } catch (e) {
    scopeStack.pop();
    for (const t of scope) if (!t.kept) t.dispose();
    throw e;
  }
  scopeStack.pop();
  if (result instanceof Promise) throw new Error('[tidy] fn must be synchronous; it returned a Promise');
  const survivors = new Set<Tensor>();
  collectTensors(result, survivors);
  // A returned tensor that is part of a graph may still be differentiated: its backward rules read the scope's
  // intermediates, so those live on in an arena until every such survivor has been through backward or is disposed
  // (PyTorch's rule: the graph holds what backward needs). Without such survivors, everything goes now.
  const holders = [...survivors].filter((t) => t.node !== null);
  const dead: Tensor[] = [];
  for (const t of scope) if (!survivors.has(t) && !t.kept && !t.isDisposed) dead.push(t);
  if (holders.length > 0 && dead.length > 0) {
    const arena = new GraphArena(dead, holders.length);
    for (const h of holders) h.holdArena(arena);
  } else {
    for (const t of dead) t.dispose();
  }
  for (const t of survivors) if (scope.has(t)) track(t);
  return result;
}

/** The intermediates a tidy() scope kept alive for the graph of the tensors it returned (see tidy). */
class GraphArena {
  constructor(private readonly tensors: Tensor[], private holders: number) {}
  release(): void {
    if (--this.holders > 0) return;
    for (const t of this.tensors) t.dispose();
    this.tensors.length = 0;
  }
}

/** Exempts a tensor from tidy() disposal (parameters, optimizer state, gradients). */
export function keep<T extends Tensor>(t: T): T {
  t.kept = true;
  return t;
}

let nextId = 1;

export class Tensor {
  readonly id = nextId++;
  readonly shape: Shape;
  readonly dtype: DType;
  readonly storage: Storage;
  requiresGrad = false;
  /** Accumulated gradient of a leaf after backward(). */
  grad: Tensor | null = null;
  /** The op that produced this tensor, when it is part of a graph. */
  node: GradNode | null = null;
  kept = false;
  /**
   * Why this tensor's graph node is gone, when it had one: the op, and whether dispose() or a backward() without
   * retainGraph freed it. Backward through such a tensor is an error instead of a silent leaf.
   */
  freedNode: { op: string; by: 'dispose' | 'backward' } | null = null;
  private arenas: GraphArena[] | null = null;
  private disposed = false;

  constructor(storage: Storage, shape: Shape, dtype: DType) {
    this.storage = storage;
    this.shape = shape;
    this.dtype = dtype;
    track(this);
  }

  get device(): DeviceName { return this.storage.backend.name; }
  get backend(): Backend { return this.storage.backend; }
  get ndim(): number { return this.shape.length; }
  get size(): number { return sizeOf(this.shape); }
  get isDisposed(): boolean { return this.disposed; }
  /** Contiguous row-major strides in elements. */
  get strides(): number[] { return contiguousStrides(this.shape); }

  /** The raw buffer, row-major; throws when the tensor has been disposed. */
  get data(): TypedArray {
    const d = this.storage.data;
    if (this.disposed || d === null) {
      throw new Error(`[tensor] use of a freed tensor (id ${this.id}, shape [${this.shape.join(', ')}])`);
    }
    if (this.storage.bf16) return this.widen().data;
    const b = this.storage.blocked;
    if (b !== null) {
      this.storage.backend.blocked!.relayout(d as Float32Array, b.N, b.C, b.H, b.W, false);
      this.storage.blocked = null;
    }
    return d;
  }

  /** Turns bf16 storage into f32 (same layout, a new buffer; the old one is freed); returns this. */
  private widen(): this {
    const st = this.storage, half = st.data as Uint8Array;
    const f = st.backend.alloc('float32', half.length / 2, false) as Float32Array;
    st.backend.blocked!.widenBf16(f, half);
    st.backend.free(half);
    st.data = f;
    st.bf16 = false;
    return this;
  }

  /** Whether this tensor is the blocked activation its storage holds, or a view the blocked layout allows. */
  private get blockedView(): boolean {
    const b = this.storage.blocked;
    if (b === null || this.disposed || this.storage.data === null) return false;
    if (this.shape.length !== 4) return false;
    const [N, C, H, W] = this.shape as [number, number, number, number];
    if (N === b.N && C === b.C && H === b.H && W === b.W) return true;
    // A view that only regroups batch and channels ([N, C, H, W] <-> [N/S, S*C, H, W], as SplitBatchNorm reshapes)
    // is the same bytes in the blocked layout when both channel counts are multiples of the block L: element
    // (n, c, hw) sits at (k - k % L) * HW + hw * L + k % L with k = n * C + c, whichever way k is split.
    if (H === b.H && W === b.W && N * C === b.N * b.C) {
      const L = this.storage.backend.blocked?.block() ?? 0;
      return L > 0 && C % L === 0 && b.C % L === 0;
    }
    return false;
  }

  /**
   * The buffer as it is when it holds this tensor in the blocked layout (a 4-D tensor whose storage a conv or batch norm left
   * blocked), else null. For the kernels that read that layout; everything else reads `data`.
   */
  get blockedData(): Float32Array | null {
    if (!this.blockedView) return null;
    if (this.storage.bf16) this.widen();
    return this.storage.data as Float32Array;
  }

  /**
   * The buffer when it holds this tensor blocked and in bf16 storage (2 bytes a value), else null: for the kernels
   * that read bf16 storage (conv, batch norm).
   */
  get bf16Data(): Uint8Array | null {
    return this.storage.bf16 && this.blockedView ? this.storage.data as Uint8Array : null;
  }

  /** Marks this tensor's fresh buffer as written in the blocked layout by a kernel. */
  markBlocked(): void {
    const [N, C, H, W] = this.shape as [number, number, number, number];
    this.storage.blocked = { N, C, H, W };
  }

  /** Releases the buffer now (shared with views until the last one is disposed). Idempotent. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.freeNode('dispose');
    this.storage.release();
    if (this.grad !== null) { this.grad.dispose(); this.grad = null; }
  }

  /** Drops the graph node (after backward, or on dispose) and lets go of the intermediates it kept alive. */
  freeNode(by: 'dispose' | 'backward'): void {
    if (this.node !== null) this.freedNode = { op: this.node.op, by };
    this.node = null;
    const arenas = this.arenas;
    this.arenas = null;
    if (arenas !== null) for (const a of arenas) a.release();
  }

  /** Whether this tensor's graph keeps a tidy scope's intermediates alive. */
  get holdsArena(): boolean { return this.arenas !== null; }

  /** Called by tidy(): this survivor's graph keeps arena's tensors alive. */
  holdArena(arena: GraphArena): void {
    (this.arenas ??= []).push(arena);
  }

  /** A new tensor over the same buffer with another shape (same element count). */
  view(shape: Shape): Tensor {
    const t = new Tensor(this.storageRef(), shape, this.dtype);
    return t;
  }

  /** Adds a holder to the storage, for views. */
  storageRef(): Storage {
    if (this.disposed || this.storage.data === null) {
      throw new Error(`[tensor] use of a freed tensor (id ${this.id}, shape [${this.shape.join(', ')}])`);
    }
    this.storage.refs++;
    return this.storage;
  }

  /** Copies values out as a plain number array. */
  toArray(): number[] {
    return Array.from(this.data);
  }

  /** The single value of a one-element tensor. */
  item(): number {
    if (this.size !== 1) throw new Error(`[item] expected a one-element tensor, got shape [${this.shape.join(', ')}]`);
    return this.data[0]!;
  }

  toString(): string {
    const vals = this.isDisposed ? 'freed' : Array.from(this.data.subarray(0, 8)).map((v) => +v.toPrecision(5)).join(', ');
    return `Tensor(shape=[${this.shape.join(', ')}], dtype=${this.dtype}, device=${this.device}, [${vals}${this.size > 8 ? ', ...' : ''}])`;
  }
}

export function sizeOf(shape: Shape): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function contiguousStrides(shape: Shape): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) { s[i] = acc; acc *= shape[i]!; }
  return s;
}

export function fmtShape(shape: Shape): string {
  return `[${shape.join(', ')}]`;
}

/**
 * An uninitialised float32 activation [N, C, H, W] in bf16 storage and the blocked layout, for a kernel to write (conv,
 * batch norm): 2 bytes a value.
 */
export function emptyBf16Blocked(shape: Shape, backend: Backend): Tensor {
  const t = new Tensor(new Storage(backend.alloc('uint8', 2 * sizeOf(shape), false), backend), shape, 'float32');
  t.storage.bf16 = true;
  t.markBlocked();
  return t;
}

/** Allocates an uninitialised (or zeroed) tensor on a device. */
export function empty(shape: Shape, dtype: DType = 'float32', device?: DeviceName, zero = false): Tensor {
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) throw new Error(`[empty] invalid shape ${fmtShape(shape)}`);
  }
  const backend = getBackend(device);
  if (!backend.supports(dtype)) {
    throw new Error(`[empty] device '${backend.name}' does not support dtype ${dtype}; use the reference device for float64`);
  }
  return new Tensor(new Storage(backend.alloc(dtype, sizeOf(shape), zero), backend), shape, dtype);
}
