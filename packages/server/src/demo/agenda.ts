interface Entry {
  readonly atMs: number;
  readonly seq: number;
  readonly run: () => Promise<void>;
}

/**
 * What the demo's participants will do, and when: a queue of actions ordered by time (and, at
 * the same time, by the order they were planned), so that the simulated weeks play out in the
 * order a real ecosystem would live them.
 */
export class Agenda {
  readonly #heap: Entry[] = [];
  #seq = 0;

  get size(): number {
    return this.#heap.length;
  }

  at(atMs: number, run: () => Promise<void>): void {
    const heap = this.#heap;
    heap.push({ atMs, seq: this.#seq++, run });
    let index = heap.length - 1;
    while (index > 0) {
      const parent = (index - 1) >> 1;
      if (!before(heap[index] as Entry, heap[parent] as Entry)) break;
      [heap[index], heap[parent]] = [heap[parent] as Entry, heap[index] as Entry];
      index = parent;
    }
  }

  /** Takes the next action off the queue, or null when nothing is planned. */
  pop(): Entry | null {
    const heap = this.#heap;
    const top = heap[0];
    if (!top) return null;
    const last = heap.pop() as Entry;
    if (heap.length === 0) return top;
    heap[0] = last;
    let index = 0;
    for (;;) {
      const left = 2 * index + 1;
      const right = left + 1;
      let first = index;
      if (left < heap.length && before(heap[left] as Entry, heap[first] as Entry)) first = left;
      if (right < heap.length && before(heap[right] as Entry, heap[first] as Entry)) first = right;
      if (first === index) break;
      [heap[index], heap[first]] = [heap[first] as Entry, heap[index] as Entry];
      index = first;
    }
    return top;
  }
}

function before(x: Entry, y: Entry): boolean {
  return x.atMs < y.atMs || (x.atMs === y.atMs && x.seq < y.seq);
}
