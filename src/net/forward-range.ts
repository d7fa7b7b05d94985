// Consecutive messages of one data chunk, gathered so they are forwarded as one slice rather than one send each.

export class ForwardRange {
  private buf: Uint8Array | null = null;
  private start = 0;
  private end = 0;

  /** Adds buf[start..end); returns what was gathered before when the new message does not continue it. */
  add(buf: Uint8Array, start: number, end: number): Uint8Array | null {
    if (this.buf === buf && this.end === start) {
      this.end = end;
      return null;
    }
    const before = this.take();
    this.buf = buf;
    this.start = start;
    this.end = end;
    return before;
  }

  /** Returns what was gathered (usually the whole chunk as it came, with no view to make) and empties the range. */
  take(): Uint8Array | null {
    const buf = this.buf;
    if (buf === null) return null;
    this.buf = null;
    return this.start === 0 && this.end === buf.length ? buf : buf.subarray(this.start, this.end);
  }

  get empty(): boolean {
    return this.buf === null;
  }

  clear(): void {
    this.buf = null;
  }
}
