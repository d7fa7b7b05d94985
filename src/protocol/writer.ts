// One growable byte writer for building protocol messages; lengths are back-patched, never precomputed.

const encoder = new TextEncoder();

export class Writer {
  private buf: Uint8Array;
  private pos = 0;
  private msgStart = -1;

  constructor(initial = 256) {
    this.buf = new Uint8Array(initial);
  }

  private ensure(extra: number): void {
    const need = this.pos + extra;
    if (need <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < need) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
  }

  /** Starts a tagged message; its length is written by end(). */
  start(tag: number): this {
    this.ensure(5);
    this.buf[this.pos++] = tag;
    this.msgStart = this.pos;
    this.pos += 4;
    return this;
  }

  /** Starts an untagged startup-phase message (StartupMessage, CancelRequest, SSLRequest). */
  startUntagged(): this {
    this.ensure(4);
    this.msgStart = this.pos;
    this.pos += 4;
    return this;
  }

  end(): this {
    const len = this.pos - this.msgStart;
    writeInt32(this.buf, this.msgStart, len);
    this.msgStart = -1;
    return this;
  }

  byte(v: number): this {
    this.ensure(1);
    this.buf[this.pos++] = v;
    return this;
  }

  int16(v: number): this {
    this.ensure(2);
    this.buf[this.pos++] = (v >>> 8) & 0xff;
    this.buf[this.pos++] = v & 0xff;
    return this;
  }

  int32(v: number): this {
    this.ensure(4);
    writeInt32(this.buf, this.pos, v);
    this.pos += 4;
    return this;
  }

  /** A NUL-terminated string. */
  cstr(s: string): this {
    this.ensure(s.length * 3 + 1);
    const { written } = encoder.encodeInto(s, this.buf.subarray(this.pos));
    this.pos += written;
    this.buf[this.pos++] = 0;
    return this;
  }

  /** A string without terminator (SASL payloads). */
  str(s: string): this {
    this.ensure(s.length * 3);
    const { written } = encoder.encodeInto(s, this.buf.subarray(this.pos));
    this.pos += written;
    return this;
  }

  bytes(b: Uint8Array): this {
    this.ensure(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
    return this;
  }

  get length(): number {
    return this.pos;
  }

  /** Returns a copy of what was written and empties the writer for reuse. */
  take(): Uint8Array {
    const out = this.buf.slice(0, this.pos);
    this.pos = 0;
    return out;
  }
}

export function writeInt32(buf: Uint8Array, at: number, v: number): void {
  buf[at] = (v >>> 24) & 0xff;
  buf[at + 1] = (v >>> 16) & 0xff;
  buf[at + 2] = (v >>> 8) & 0xff;
  buf[at + 3] = v & 0xff;
}

export function readInt32(buf: Uint8Array, at: number): number {
  return ((buf[at]! << 24) | (buf[at + 1]! << 16) | (buf[at + 2]! << 8) | buf[at + 3]!) | 0;
}

export function readInt16(buf: Uint8Array, at: number): number {
  return (buf[at]! << 8) | buf[at + 1]!;
}
