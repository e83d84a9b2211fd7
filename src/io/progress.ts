// Progress of a long pass (feature extraction, a training epoch, an export check) as library code reports it: the
// command line draws it as a bar with ETA (src/cli/progress.ts); other callers log or ignore it.

/** `done` of `total` units (batches, steps, graph nodes) of the pass named `phase`; called after each unit. */
export type OnProgress = (phase: string, done: number, total: number) => void;
