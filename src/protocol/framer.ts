// Incremental message framing over arbitrary data chunks: a message may span chunks, a chunk may hold many.

import { ProtocolError } from "./errors.ts";
import { readInt32 } from "./writer.ts";

export interface FrameSink {
  /** buf[start..end) is one whole message, tag byte and length included (startup messages have no tag: tag is 0). */
  frame(tag: number, buf: Uint8Array, start: number, end: number): void;
}

/** PostgreSQL's own limit on a startup packet. */
const MAX_STARTUP_LENGTH = 10_000;
/**
 * A message that spans chunks starts in a buffer this big (or as big as the bytes at hand) and doubles as bytes
 * arrive: a length is only a claim, and allocating it up front let a client reserve a gigabyte with five bytes.
 */
const FIRST_ALLOCATION = 64 * 1024;

export class Framer {
  /** While true, messages are untagged startup-phase packets (StartupMessage, SSLRequest, CancelRequest). */
  startup: boolean;
  /** The message being gathered: `need` bytes in all, `filled` so far; it grows towards `need` as bytes arrive. */
  private partial: Uint8Array | null = null;
  private need = 0;
  private filled = 0;
  /** A header split across chunks; made the first time one is (most connections never see one). */
  private head: Uint8Array | null = null;
  private headFilled = 0;

  constructor(
    readonly maxLength: number,
    startup = false,
  ) {
    this.startup = startup;
  }

  /** Bytes held for an incomplete message. */
  get buffered(): number {
    return this.partial !== null ? this.filled : this.headFilled;
  }

  feed(chunk: Uint8Array, sink: FrameSink): void {
    let off = 0;
    const n = chunk.length;
    if (this.partial !== null || this.headFilled > 0) {
      off = this.resume(chunk, sink);
      if (off < 0) return;
    }
    while (true) {
      const headLen = this.startup ? 4 : 5;
      if (off + headLen > n) break;
      const len = this.startup ? readInt32(chunk, off) : readInt32(chunk, off + 1);
      this.check(len);
      const end = off + headLen - 4 + len;
      if (end > n) {
        this.begin(end - off, chunk.subarray(off));
        return;
      }
      sink.frame(this.startup ? 0 : chunk[off]!, chunk, off, end);
      off = end;
    }
    if (off < n) {
      (this.head ??= new Uint8Array(5)).set(chunk.subarray(off), 0);
      this.headFilled = n - off;
    }
  }

  private check(len: number): void {
    if (len < 4) throw new ProtocolError(`invalid message length ${len}`);
    const max = this.startup ? MAX_STARTUP_LENGTH : this.maxLength;
    if (len > max) {
      throw new ProtocolError(
        this.startup
          ? `invalid startup packet length ${len >>> 0}`
          : `message of ${len} bytes exceeds max_packet_size (${max})`,
      );
    }
  }

  /** Completes a message begun in an earlier chunk; returns the offset where whole messages resume, or -1. */
  private resume(chunk: Uint8Array, sink: FrameSink): number {
    let off = 0;
    if (this.partial === null) {
      const head = this.head!;
      const headLen = this.startup ? 4 : 5;
      const take = Math.min(headLen - this.headFilled, chunk.length);
      head.set(chunk.subarray(0, take), this.headFilled);
      this.headFilled += take;
      off = take;
      if (this.headFilled < headLen) return -1;
      const len = this.startup ? readInt32(head, 0) : readInt32(head, 1);
      this.check(len);
      this.begin(headLen - 4 + len, head.subarray(0, headLen));
      this.headFilled = 0;
    }
    const take = Math.min(this.need - this.filled, chunk.length - off);
    const msg = this.room(this.filled + take);
    msg.set(chunk.subarray(off, off + take), this.filled);
    this.filled += take;
    off += take;
    if (this.filled < this.need) return -1;
    this.partial = null;
    this.filled = 0;
    sink.frame(this.startup ? 0 : msg[0]!, msg, 0, this.need);
    return off;
  }

  private begin(need: number, first: Uint8Array): void {
    this.need = need;
    this.partial = new Uint8Array(Math.min(need, Math.max(FIRST_ALLOCATION, first.length)));
    this.partial.set(first);
    this.filled = first.length;
  }

  /** The partial buffer, grown (doubling, never past the message's length) to hold `size` bytes. */
  private room(size: number): Uint8Array {
    const old = this.partial!;
    if (size <= old.length) return old;
    const grown = new Uint8Array(Math.min(this.need, Math.max(size, old.length * 2)));
    grown.set(old.subarray(0, this.filled));
    this.partial = grown;
    return grown;
  }
}
