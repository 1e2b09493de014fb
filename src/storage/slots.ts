/**
 * A counting semaphore with two priorities: when a slot frees up, waiting on-demand reads
 * ("high") are served before waiting prefetch work ("low"). A waiting low-priority request
 * can be promoted when an on-demand read comes to depend on it.
 */

export type Priority = "high" | "low";

/** A pending slot: `granted` resolves to the release function (call it once). */
export interface SlotRequest {
  granted: Promise<() => void>;
  /** Moves a still-waiting low-priority request to the high-priority queue. */
  promote(): void;
}

export class RequestSlots {
  #free: number;
  readonly #waiting: Record<Priority, (() => void)[]> = { high: [], low: [] };

  constructor(readonly size: number) {
    if (!Number.isSafeInteger(size) || size < 1) throw new RangeError(`Cannot limit requests to ${size}: need at least 1`);
    this.#free = size;
  }

  /** Requests waiting for a slot, by priority. */
  get waiting(): { high: number; low: number } {
    return { high: this.#waiting.high.length, low: this.#waiting.low.length };
  }

  #release(): void {
    const next = this.#waiting.high.shift() ?? this.#waiting.low.shift();
    if (next) next();
    else this.#free++;
  }

  /** Asks for a slot; `granted` rejects when `signal` aborts before the slot is granted. */
  acquire(priority: Priority, signal?: AbortSignal): SlotRequest {
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      this.#release();
    };
    if (signal?.aborted) return { granted: Promise.reject(signal.reason), promote() {} };
    if (this.#free > 0) {
      this.#free--;
      return { granted: Promise.resolve(release), promote() {} };
    }
    let queue = this.#waiting[priority];
    let grant!: () => void;
    const granted = new Promise<() => void>((resolve, reject) => {
      const onAbort = () => {
        const i = queue.indexOf(grant);
        if (i >= 0) queue.splice(i, 1);
        reject(signal!.reason);
      };
      grant = () => {
        signal?.removeEventListener("abort", onAbort);
        resolve(release);
      };
      queue.push(grant);
      signal?.addEventListener("abort", onAbort, { once: true });
    });
    return {
      granted,
      promote: () => {
        const i = queue.indexOf(grant);
        if (i < 0 || queue === this.#waiting.high) return;
        queue.splice(i, 1);
        queue = this.#waiting.high;
        queue.push(grant);
      },
    };
  }
}
