/**
 * Units reserved per offer row and capacity period, for one table of the index. Most offers
 * have nothing reserved and the rest a few periods, so the entries live in a pool of flat
 * arrays, one linked list per row, rather than a map per offer: 4 bytes per row and 16 per
 * reserved period, and nothing for the garbage collector to walk.
 */
export class ReservedUnits {
  /** Each row's first entry, or -1. */
  heads: Int32Array;
  /*
   * The entries: the period's first day (days since the epoch), the units reserved in it, and
   * the row's next entry (or -1). Readable, so that the query loop can walk a list inline.
   */
  days = new Int32Array(16);
  units = new Float64Array(16);
  next = new Int32Array(16);
  #used = 0;
  #free = -1;

  constructor(rows: number) {
    this.heads = new Int32Array(rows).fill(-1);
  }

  growRows(rows: number): void {
    const heads = new Int32Array(rows).fill(-1);
    heads.set(this.heads.subarray(0, Math.min(rows, this.heads.length)));
    this.heads = heads;
  }

  /** Units reserved in the period starting on `day` (days since the epoch). */
  get(row: number, day: number): number {
    for (let entry = this.heads[row]!; entry !== -1; entry = this.next[entry]!) {
      if (this.days[entry] === day) return this.units[entry]!;
    }
    return 0;
  }

  /** The row's stored periods as `[day, units, day, units, ...]`: to carry them over to another row. */
  entries(row: number): number[] {
    const entries: number[] = [];
    for (let entry = this.heads[row]!; entry !== -1; entry = this.next[entry]!) {
      entries.push(this.days[entry]!, this.units[entry]!);
    }
    return entries;
  }

  /** The most units reserved in any one period of a row that is stored (0 when none). */
  max(row: number): number {
    let most = 0;
    for (let entry = this.heads[row]!; entry !== -1; entry = this.next[entry]!) {
      if (this.units[entry]! > most) most = this.units[entry]!;
    }
    return most;
  }

  /** Sets the units reserved in one period (0 removes it). */
  set(row: number, day: number, units: number): void {
    let before = -1;
    let found = -1;
    for (let entry = this.heads[row]!; entry !== -1; entry = this.next[entry]!) {
      if (this.days[entry] === day) {
        found = entry;
        break;
      }
      before = entry;
    }
    if (found !== -1) {
      if (units > 0) this.units[found] = units;
      else this.#unlink(row, before, found);
      return;
    }
    if (units <= 0) return;
    const entry = this.#allocate();
    this.days[entry] = day;
    this.units[entry] = units;
    this.next[entry] = this.heads[row]!;
    this.heads[row] = entry;
  }

  /**
   * Forgets, in every row, the periods that start before `day`, and calls `touched` for each
   * row that lost one. The cut-off comes from the clock, never from the period being set: a
   * booking months ahead must not erase this month's.
   */
  forgetBefore(day: number, touched: (row: number) => void): void {
    for (let row = 0; row < this.heads.length; row++) {
      let before = -1;
      let lost = false;
      for (let entry = this.heads[row]!; entry !== -1; ) {
        const next = this.next[entry]!;
        if (this.days[entry]! < day) {
          this.#unlink(row, before, entry);
          lost = true;
        } else {
          before = entry;
        }
        entry = next;
      }
      if (lost) touched(row);
    }
  }

  /** Drops the slack of the entry pool's growth (free entries stay inside the used range). */
  compact(): void {
    const size = Math.max(16, this.#used + (this.#used >> 3));
    if (size >= this.days.length) return;
    this.days = this.days.slice(0, size);
    this.units = this.units.slice(0, size);
    this.next = this.next.slice(0, size);
  }

  /** Forgets every period of a row. */
  clear(row: number): void {
    while (this.heads[row] !== -1) this.#unlink(row, -1, this.heads[row]!);
  }

  #unlink(row: number, previous: number, entry: number): void {
    if (previous === -1) this.heads[row] = this.next[entry]!;
    else this.next[previous] = this.next[entry]!;
    this.next[entry] = this.#free;
    this.#free = entry;
  }

  #allocate(): number {
    if (this.#free !== -1) {
      const entry = this.#free;
      this.#free = this.next[entry]!;
      return entry;
    }
    if (this.#used === this.days.length) {
      const size = this.days.length * 2;
      const days = new Int32Array(size);
      days.set(this.days);
      this.days = days;
      const units = new Float64Array(size);
      units.set(this.units);
      this.units = units;
      const next = new Int32Array(size);
      next.set(this.next);
      this.next = next;
    }
    return this.#used++;
  }
}
