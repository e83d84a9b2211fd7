// Replays the random draws a reference transform recorded (reference/recipe_transforms.py): each call must be the
// kind the reference made next, so our code has to draw in the official order to pass, and then sees the same values.
import { Rng } from '../../src/tensor/rng.js';

export type Draw = [kind: string, value: number];

export class ReplayRng extends Rng {
  private next = 0;
  constructor(private readonly draws: readonly Draw[], private readonly label: string) {
    super(0);
  }
  private take(kind: string): number {
    const d = this.draws[this.next];
    if (d === undefined) throw new Error(`${this.label}: draw ${this.next} (${kind}) beyond the ${this.draws.length} the reference made`);
    if (d[0] !== kind) throw new Error(`${this.label}: draw ${this.next} is ${kind} here but ${d[0]} in the reference`);
    this.next++;
    return d[1];
  }
  /** all recorded draws were used */
  get done(): boolean { return this.next === this.draws.length; }
  // Python's random.random() is our uniform(); random.uniform(a, b) is uniformRange(a, b)
  override uniform(): number { return this.take('random'); }
  override uniformRange(low: number, high: number): number {
    const v = this.take('uniform');
    if (!(v >= Math.min(low, high) - 1e-6 && v <= Math.max(low, high) + 1e-6)) throw new Error(`${this.label}: uniform(${low}, ${high}) replayed ${v}`);
    return v;
  }
  override randint(low: number, high: number): number {
    const v = this.take('randint');
    if (!(v >= low && v < high)) throw new Error(`${this.label}: randint(${low}, ${high}) replayed ${v}`);
    return v;
  }
  override gauss(mu: number, sigma: number): number {
    void mu; void sigma;
    return this.take('gauss');
  }
  override normal(): number { return this.take('normal'); }
  override int(n: number): number { return this.randint(0, n); }
  override randperm(): Int32Array { throw new Error(`${this.label}: randperm is not replayable`); }
}
