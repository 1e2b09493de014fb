/**
 * Pull-based cursor over an async iterable of byte pieces, for the tar reader. It holds one
 * input piece at a time and pulls the next only when the current one is used up, so it never
 * reads ahead of its caller. Reads hand out views into the pieces (no copy) except when a
 * fixed-size read spans two pieces.
 */

const EMPTY = new Uint8Array(0);

/** A cursor over `source`; see the module comment. Single consumer, no concurrent calls. */
export class PieceInput {
  readonly #it: AsyncIterator<Uint8Array>;
  readonly #abort: Promise<never> | undefined;
  #piece: Uint8Array = EMPTY;
  #pos = 0;
  #ended = false;
  /** Absolute offset of the next unread byte. */
  offset = 0;

  /**
   * @param source the byte pieces; a Node `Readable`, a Web `ReadableStream`, any async iterable
   * @param abort rejects with the abort reason; a pending pull is raced against it
   */
  constructor(source: AsyncIterable<Uint8Array>, abort?: Promise<never>) {
    this.#it = source[Symbol.asyncIterator]();
    this.#abort = abort;
  }

  /** Unread bytes of the current piece. */
  get available(): number {
    return this.#piece.length - this.#pos;
  }

  /**
   * Replaces the (used up) current piece with the next non-empty one.
   *
   * @returns false at the end of the source
   * @throws whatever the source throws, unchanged; the abort reason when aborted
   */
  async pull(): Promise<boolean> {
    while (!this.#ended) {
      let r: IteratorResult<Uint8Array>;
      if (this.#abort) {
        const next = this.#it.next();
        // The race may settle on the abort first; the losing pull's outcome is irrelevant then.
        next.catch(() => undefined);
        r = await Promise.race([next, this.#abort]);
      } else {
        r = await this.#it.next();
      }
      if (r.done) {
        this.#ended = true;
        break;
      }
      if (r.value.length === 0) continue;
      this.#piece = r.value;
      this.#pos = 0;
      return true;
    }
    this.#piece = EMPTY;
    this.#pos = 0;
    return false;
  }

  /**
   * Takes up to `max` bytes from the current piece without pulling.
   *
   * @returns a view into the piece, or null when the piece is used up (call {@link pull})
   */
  take(max: number): Uint8Array | null {
    const avail = this.#piece.length - this.#pos;
    if (avail === 0 || max <= 0) return null;
    const n = avail < max ? avail : max;
    const start = this.#pos;
    this.#pos += n;
    this.offset += n;
    return this.#piece.subarray(start, start + n);
  }

  /**
   * Reads exactly `n` bytes: a view when they lie in one piece, else a copy.
   *
   * @returns the bytes; shorter than `n` (possibly empty) when the source ended first
   */
  async read(n: number): Promise<Uint8Array> {
    if (n === 0) return EMPTY;
    if (this.available === 0 && !(await this.pull())) return EMPTY;
    const first = this.take(n)!;
    if (first.length === n) return first;
    const out = new Uint8Array(n);
    out.set(first);
    let got = first.length;
    while (got < n) {
      if (!(await this.pull())) return out.subarray(0, got);
      const part = this.take(n - got)!;
      out.set(part, got);
      got += part.length;
    }
    return out;
  }

  /**
   * Discards `n` bytes without copying them.
   *
   * @returns the number discarded; less than `n` when the source ended first
   */
  async skip(n: number): Promise<number> {
    let done = 0;
    while (done < n) {
      const avail = this.available;
      if (avail === 0) {
        if (!(await this.pull())) break;
        continue;
      }
      const k = Math.min(avail, n - done);
      this.#pos += k;
      this.offset += k;
      done += k;
    }
    return done;
  }

  /** Reads and discards everything up to the end of the source. */
  async drain(): Promise<void> {
    this.offset += this.available;
    this.#pos = this.#piece.length;
    while (await this.pull()) {
      this.offset += this.#piece.length;
      this.#pos = this.#piece.length;
    }
  }

  /** Stops the source early (its iterator's `return()`) unless it already ended; not awaited. */
  close(): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#piece = EMPTY;
    this.#pos = 0;
    const ret = this.#it.return?.();
    // Closing is best effort (a pending pull may still be running); a failure to close has
    // nobody left to report to.
    if (ret) Promise.resolve(ret).catch(() => undefined);
  }

  /** Whether the source has ended (or was closed). */
  get ended(): boolean {
    return this.#ended;
  }
}
