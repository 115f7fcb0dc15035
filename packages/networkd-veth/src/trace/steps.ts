/**
 * Marks of the network setup's steps, for measuring where a container's
 * time to an address goes (tools/bench/net prints them). Nothing is
 * recorded, and nothing costs more than one check, until someone listens.
 * A mark is the end of a named step, at performance.now().
 */

export type StepListener = (step: string, at: number) => void;

const listeners = new Set<StepListener>();

/** Calls `listener` with every mark from now on; returns the unsubscribe. */
export function onNetworkStep(listener: StepListener): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

export function markStep(step: string): void {
  if (listeners.size === 0) return;
  const at = performance.now();
  for (const l of listeners) l(step, at);
}
