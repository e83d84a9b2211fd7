// Reverse-mode autograd on a define-by-run tape: each op output records its inputs and a backward rule.
// backward() walks the graph in reverse topological order, accumulating into leaf .grad.
import { keep, tidy, Tensor, fmtShape } from './tensor.js';
import { inPhase } from './profiler.js';

export interface GradNode {
  op: string;
  inputs: readonly Tensor[];
  /** Given the gradient of the output, returns one gradient (or null) per input. Runs under noGrad. */
  backward: (g: Tensor) => readonly (Tensor | null)[];
}

let gradEnabled = true;

export function isGradEnabled(): boolean {
  return gradEnabled;
}

/** Runs fn without recording a graph (inference, optimizer steps, EMA updates). */
export function noGrad<T>(fn: () => T): T {
  const prev = gradEnabled;
  gradEnabled = false;
  try {
    return fn();
  } finally {
    gradEnabled = prev;
  }
}

/** Whether an op on these inputs must record a node. */
export function needsGrad(inputs: readonly (Tensor | null | undefined)[]): boolean {
  if (!gradEnabled) return false;
  for (const t of inputs) if (t != null && t.requiresGrad) return true;
  return false;
}

/** Attaches a node to an op's output when any input requires grad. Returns the output. */
export function record(out: Tensor, op: string, inputs: readonly Tensor[], backward: GradNode['backward']): Tensor {
  if (!needsGrad(inputs)) return out;
  out.requiresGrad = true;
  out.node = { op, inputs, backward };
  return out;
}

export interface BackwardOptions {
  /** Keep the graph so backward can run through it again. */
  retainGraph?: boolean;
  /**
   * Dispose every intermediate tensor of the graph (not the root, not leaves, not kept tensors) as soon as backward
   * has run through it, as PyTorch frees saved activations during backward: a training step's peak memory is then
   * about activations or gradients, not both. The tensors themselves go, so read what you need before backward.
   */
  freeActivations?: boolean;
  /**
   * Called once per leaf as soon as its .grad for this backward is complete (data-parallel training starts the
   * gradient allreduce of a bucket while backward goes on through earlier layers).
   */
  onLeafGrad?: (leaf: Tensor) => void;
}

/**
 * Backpropagates from `root`. Without `grad`, root must hold one element (a loss).
 * Leaf tensors with requiresGrad receive (accumulate into) `.grad`, which survives tidy() scopes.
 */
export function backward(root: Tensor, grad?: Tensor, opts: BackwardOptions = {}, ops?: BackwardOps): void {
  checkGraphAlive(root);
  if (!root.requiresGrad) {
    throw new Error(`[backward] tensor of shape ${fmtShape(root.shape)} does not require grad (no input had requiresGrad, or it was computed under noGrad)`);
  }
  if (ops === undefined) throw new Error('[backward] internal: ops not wired');
  let seed: Tensor;
  if (grad === undefined) {
    if (root.size !== 1) {
      throw new Error(`[backward] grad can be implicitly created only for one-element outputs; got shape ${fmtShape(root.shape)}: pass a gradient of the same shape`);
    }
    seed = ops.onesLike(root);
  } else {
    if (grad.shape.length !== root.shape.length || grad.shape.some((d, i) => d !== root.shape[i])) {
      throw new Error(`[backward] gradient shape ${fmtShape(grad.shape)} does not match output shape ${fmtShape(root.shape)}`);
    }
    seed = grad;
  }

  // Iterative DFS for a reverse topological order (graphs of deep ViTs would overflow recursion).
  const order: Tensor[] = [];
  const visited = new Set<number>();
  const stack: [Tensor, number][] = [[root, 0]];
  visited.add(root.id);
  while (stack.length > 0) {
    const top = stack[stack.length - 1]!;
    const [t, i] = top;
    const inputs = t.node?.inputs ?? [];
    if (i < inputs.length) {
      top[1] = i + 1;
      const child = inputs[i]!;
      if (child.requiresGrad && !visited.has(child.id)) {
        checkGraphAlive(child, t);
        visited.add(child.id);
        stack.push([child, 0]);
      }
    } else {
      stack.pop();
      order.push(t);
    }
  }

  // grads maps tensor id -> gradient; a rule may hand the same tensor to several inputs, so tensors
  // held in the map are reference-counted and disposed only when nothing holds them.
  const grads = new Map<number, Tensor>();
  const holds = new Map<Tensor, number>();
  const hold = (g: Tensor): void => { holds.set(g, (holds.get(g) ?? 0) + 1); };
  const drop = (g: Tensor): void => {
    const n = (holds.get(g) ?? 0) - 1;
    if (n > 0) { holds.set(g, n); return; }
    holds.delete(g);
    if (g !== seed) g.dispose();
  };
  grads.set(root.id, seed);
  hold(seed);
  const free = opts.freeActivations === true && opts.retainGraph !== true;
  const late: Tensor[] = [];
  const release = (t: Tensor): void => { if (t.holdsArena) late.push(t); else t.dispose(); };
  inPhase('backward', () => noGrad(() => {
    for (let k = order.length - 1; k >= 0; k--) {
      const t = order[k]!;
      const g = grads.get(t.id);
      if (g === undefined) {
        if (free && t !== root && t.node !== null && !t.kept) release(t);
        continue;
      }
      grads.delete(t.id);
      const node = t.node;
      if (node === null) {
        // a leaf: accumulate into .grad (a private copy when the tensor is shared or is the caller's)
        const own = g === seed || (holds.get(g) ?? 0) > 1 ? ops.clone(g) : g;
        if (own !== g) drop(g); else holds.delete(g);
        if (t.grad === null) {
          t.grad = keep(own);
        } else {
          const sum = ops.add(t.grad, own);
          t.grad.dispose();
          own.dispose();
          t.grad = keep(sum);
        }
        opts.onLeafGrad?.(t);
        continue;
      }
      const gins = tidy(() => node.backward(g));
      for (let j = 0; j < node.inputs.length; j++) {
        const inp = node.inputs[j]!;
        const gi = gins[j];
        if (gi == null || !inp.requiresGrad) continue;
        if (gi.shape.length !== inp.shape.length || gi.shape.some((d, q) => d !== inp.shape[q])) {
          throw new Error(`[backward] internal: ${node.op} produced a gradient of shape ${fmtShape(gi.shape)} for an input of shape ${fmtShape(inp.shape)}`);
        }
        const prev = grads.get(inp.id);
        if (prev === undefined) {
          grads.set(inp.id, gi);
          hold(gi);
        } else {
          const sum = ops.add(prev, gi);
          drop(prev);
          grads.set(inp.id, sum);
          hold(sum);
        }
      }
      // gradients the rule returned but nobody holds (unused inputs) are garbage now
      for (const gi of gins) if (gi != null && gi !== g && !holds.has(gi)) gi.dispose();
      drop(g);
      // every consumer of t ran before it (reverse topological order): nothing in the graph reads t any more. A tensor
      // holding a tidy scope's intermediates (its arena) goes at the end: those feed nodes still to come.
      if (free && t !== root && !t.kept) release(t);
    }
  }));
  // freed only now: a node's arena (tidy's intermediates) holds tensors that nodes later in the order still read
  if (opts.retainGraph !== true) for (const t of order) if (t.node !== null) t.freeNode('backward');
  for (const t of late) t.dispose();
}

/**
 * A tensor whose node was freed must not pass for a leaf: its inputs would silently get no gradient. `consumer` is
 * the tensor whose op read it.
 */
function checkGraphAlive(t: Tensor, consumer?: Tensor): void {
  const f = t.freedNode;
  if (f === null || t.node !== null) return;
  const where = `the ${f.op} output of shape ${fmtShape(t.shape)}${consumer?.node ? ` (an input of ${consumer.node.op})` : ''}`;
  if (f.by === 'backward') {
    throw new Error(`[backward] trying to backward through the graph a second time: ${where} was freed by an earlier backward(); pass { retainGraph: true } to the first one`);
  }
  throw new Error(`[backward] ${where} was disposed before backward(), so the graph below it is gone; dispose it after backward(), or let tidy() manage it`);
}

/** The few ops backward() itself needs, injected to keep this module free of op imports. */
export interface BackwardOps {
  onesLike(t: Tensor): Tensor;
  add(a: Tensor, b: Tensor): Tensor;
  clone(t: Tensor): Tensor;
}
