// Comparing a 2-rank run with a 1-process run: losses and weights to a relative tolerance, and the one exemption
// AdamW forces on attention's key bias.
import assert from 'node:assert/strict';

/**
 * Worst |a - b| / max|a| over tensors (relative to each tensor's scale), and where. Differences under 1e-7 are
 * rounding, not error: statistics that are zero in exact arithmetic (the mean of a BN's input after an affine-free
 * BN and a linear layer) come out as +-1e-9 noise.
 */
export function worstRelative(a: Map<string, ArrayLike<number>>, b: Map<string, ArrayLike<number>>): { worst: number; at: string } {
  assert.deepEqual([...b.keys()].sort(), [...a.keys()].sort());
  let worst = 0;
  let at = '';
  for (const [k, va] of a) {
    const vb = b.get(k)!;
    let scale = 0;
    let diff = 0;
    for (let i = 0; i < va.length; i++) {
      scale = Math.max(scale, Math.abs(va[i]!));
      const d = Math.abs(va[i]! - vb[i]!);
      if (d > 1e-7) diff = Math.max(diff, d);
    }
    const rel = scale === 0 ? diff : diff / scale;
    if (rel > worst) { worst = rel; at = k; }
  }
  return { worst, at };
}

export function assertLossesClose(one: number[], two: number[], tol: number): void {
  assert.equal(two.length, one.length, 'same number of steps');
  one.forEach((l, i) => {
    // a loss near 0 (SimSiam's mean cosine at initialisation can be ~1e-4) is an average of O(0.1) terms whose
    // float32 rounding (~1e-8 each) the different reduction order moves: the scale floor is 1e-2, not the loss itself
    const rel = Math.abs(l - two[i]!) / Math.max(Math.abs(l), 1e-2);
    assert.ok(rel <= tol, `step ${i + 1}: loss ${two[i]} on 2 ranks vs ${l} on 1 process (relative ${rel.toExponential(2)} > ${tol})`);
  });
}

/**
 * The key bias of attention has zero gradient in exact arithmetic (softmax ignores a shift shared by all keys): its
 * gradient is rounding noise, which AdamW normalises into steps of about lr. Those entries can only be held to
 * Adam's bound |update| <= lr per step; this checks them against it and then copies a's values into b so that the
 * rest can be held to 1e-5.
 */
export function exemptAttentionKeyBias(a: Map<string, Float32Array>, b: Map<string, Float32Array>, lr: number, steps: number): void {
  for (const [k, va] of a) {
    if (!k.endsWith('.attn.qkv.bias')) continue;
    const D = va.length / 3;
    const vb = b.get(k)!;
    for (let i = D; i < 2 * D; i++) {
      assert.ok(Math.abs(va[i]! - vb[i]!) <= 2 * steps * lr, `${k}[${i}]: ${va[i]} vs ${vb[i]} exceeds Adam's bound`);
      vb[i] = va[i]!;
    }
  }
}
