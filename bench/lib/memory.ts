/** Memory measurement around an allocation, with garbage collected on both sides. */

/** Whether the process runs with `--expose-gc` (the `bench` script passes it). */
export function canCollectGarbage(): boolean {
  return typeof globalThis.gc === 'function';
}

/**
 * Bytes the process holds live in the JavaScript heap and in array buffers (typed arrays live
 * there, outside the heap). Collects garbage first, twice, so that what remains is live.
 */
export function liveBytes(): number {
  if (typeof globalThis.gc === 'function') {
    globalThis.gc();
    globalThis.gc();
  }
  const usage = process.memoryUsage();
  return usage.heapUsed + usage.arrayBuffers;
}
