/** The source of the current time. Domain code receives time; services read it from here. */
export interface Clock {
  now(): Date;
}

export const systemClock: Clock = { now: () => new Date() };

/** A clock that only moves when told to, for tests of deadlines, grace periods and expiry. */
export class ManualClock implements Clock {
  #nowMs: number;

  constructor(start: Date = new Date('2026-01-01T00:00:00Z')) {
    this.#nowMs = start.getTime();
  }

  now(): Date {
    return new Date(this.#nowMs);
  }

  advance(ms: number): void {
    this.#nowMs += ms;
  }

  set(at: Date): void {
    this.#nowMs = at.getTime();
  }
}
