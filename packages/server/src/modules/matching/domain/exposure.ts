/**
 * The allocations of one capability and region, in time order, counted per partner over a
 * trailing window. The window only moves forward in normal use, so counting is amortised: each
 * allocation is counted once when it enters and once when it leaves. Entries that left the
 * window are kept (up to the longest window an operator may set) so that a longer window can be
 * counted again without reading the database.
 */
export class ExposureWindow {
  #times = new Float64Array(16);
  #partners = new Int32Array(16);
  #ids: string[] = [];
  #length = 0;
  /** Index of the first entry inside the counted window. */
  #head = 0;
  #windowStartMs = Number.NEGATIVE_INFINITY;
  #counts = new Map<number, number>();

  /** Records an allocation; entries arrive mostly in time order, a late one is slotted in. */
  add(id: string, atMs: number, partner: number): void {
    if (this.#length === this.#times.length) this.#grow();
    let at = this.#length;
    while (at > 0 && this.#times[at - 1]! > atMs) at--;
    if (at < this.#length) {
      this.#times.copyWithin(at + 1, at, this.#length);
      this.#partners.copyWithin(at + 1, at, this.#length);
    }
    this.#ids.splice(at, 0, id);
    this.#times[at] = atMs;
    this.#partners[at] = partner;
    this.#length++;
    if (atMs >= this.#windowStartMs) this.#counts.set(partner, (this.#counts.get(partner) ?? 0) + 1);
    else this.#head++;
  }

  /**
   * Forgets the allocation `id`, made at `atMs`, which no longer counts (its capacity was given
   * back). Returns whether it was here.
   */
  remove(id: string, atMs: number): boolean {
    // Entries are in time order: the first at `atMs` or later, then those made at the same time.
    let low = 0;
    let high = this.#length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (this.#times[middle]! < atMs) low = middle + 1;
      else high = middle;
    }
    let at = low;
    while (at < this.#length && this.#times[at] === atMs && this.#ids[at] !== id) at++;
    if (at === this.#length || this.#ids[at] !== id) return false;
    if (at >= this.#head) this.#uncount(this.#partners[at]!);
    else this.#head--;
    this.#times.copyWithin(at, at + 1, this.#length);
    this.#partners.copyWithin(at, at + 1, this.#length);
    this.#ids.splice(at, 1);
    this.#length--;
    return true;
  }

  /** Moves the window to start at `windowStartMs` and returns how many allocations it holds. */
  total(windowStartMs: number): number {
    if (windowStartMs >= this.#windowStartMs) {
      while (this.#head < this.#length && this.#times[this.#head]! < windowStartMs) {
        this.#uncount(this.#partners[this.#head]!);
        this.#head++;
      }
    } else {
      while (this.#head > 0 && this.#times[this.#head - 1]! >= windowStartMs) {
        this.#head--;
        const partner = this.#partners[this.#head]!;
        this.#counts.set(partner, (this.#counts.get(partner) ?? 0) + 1);
      }
    }
    this.#windowStartMs = windowStartMs;
    return this.#length - this.#head;
  }

  /** Allocations of `partner` in the window last passed to `total`. */
  count(partner: number): number {
    return this.#counts.get(partner) ?? 0;
  }

  /**
   * Forgets allocations older than `retainFromMs` that are outside the window, and returns
   * their ids. It compacts only when that frees at least half of the entries, so its cost is
   * amortised.
   */
  prune(retainFromMs: number): string[] {
    let drop = 0;
    while (drop < this.#head && this.#times[drop]! < retainFromMs) drop++;
    if (drop === 0 || drop * 2 < this.#length) return [];
    this.#times.copyWithin(0, drop, this.#length);
    this.#partners.copyWithin(0, drop, this.#length);
    this.#length -= drop;
    this.#head -= drop;
    return this.#ids.splice(0, drop);
  }

  #uncount(partner: number): void {
    const left = (this.#counts.get(partner) ?? 0) - 1;
    if (left > 0) this.#counts.set(partner, left);
    else this.#counts.delete(partner);
  }

  #grow(): void {
    const times = new Float64Array(this.#times.length * 2);
    times.set(this.#times);
    this.#times = times;
    const partners = new Int32Array(this.#partners.length * 2);
    partners.set(this.#partners);
    this.#partners = partners;
  }
}
