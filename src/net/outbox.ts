// Outgoing bytes of one socket: writes made in one tick are coalesced, and whatever the kernel does not take is queued until drain.

import type { Socket } from "bun";

/** Above this many queued bytes the peer feeding us is paused; below LOW it is resumed. */
export const HIGH_WATER = 1 << 20;
const LOW_WATER = 256 << 10;

let dirty: Outbox[] = [];
let scheduled = false;
/** Inside a socket handler: writes wait for endBatch() instead of a microtask. */
let batching = false;

function flushDirty(): void {
  scheduled = false;
  if (dirty.length === 0) return;
  const list = dirty;
  dirty = [];
  for (let i = 0; i < list.length; i++) list[i]!.flush();
}

/** Socket handlers bracket their work with these: everything written meanwhile goes out in one write per socket. */
export function beginBatch(): boolean {
  if (batching) return false;
  batching = true;
  return true;
}

export function endBatch(began: boolean): void {
  if (!began) return;
  batching = false;
  flushDirty();
}

export interface PressureSink {
  onPressure(pressured: boolean): void;
}

export class Outbox {
  /** The range being forwarded: consecutive messages of one received chunk, sent as one slice. */
  private range: Uint8Array | null = null;
  private rangeStart = 0;
  private rangeEnd = 0;
  private first: Uint8Array | null = null;
  private rest: Uint8Array[] | null = null;
  /** What the kernel did not take yet; null while nothing waits (most sockets, most of the time). */
  private queue: Uint8Array[] | null = null;
  private queued = 0;
  private isDirty = false;
  /** True while the queue is over HIGH_WATER; the sink is told on every change. */
  pressured = false;
  closed = false;

  /** Told when the queue goes over HIGH_WATER and back under LOW_WATER: a callback, or an owner with the method (no closure per socket). */
  constructor(
    private socket: Socket<unknown>,
    private readonly sink: PressureSink | ((pressured: boolean) => void),
  ) {}

  private pressure(on: boolean): void {
    const sink = this.sink;
    if (typeof sink === "function") sink(on);
    else sink.onPressure(on);
  }

  /**
   * Forwards buf[start..end) as it came: messages that continue the range being forwarded extend it, so a chunk of
   * many messages leaves as one slice. Anything sent later goes after it: write order is this object's to keep.
   */
  forward(buf: Uint8Array, start: number, end: number): void {
    if (this.closed || this.ending) return;
    if (this.range === buf && this.rangeEnd === start) {
      this.rangeEnd = end;
      return;
    }
    if (this.range !== null) this.closeRange();
    this.range = buf;
    this.rangeStart = start;
    this.rangeEnd = end;
    this.markDirty();
  }

  private closeRange(): void {
    const buf = this.range!;
    this.range = null;
    this.append(this.rangeStart === 0 && this.rangeEnd === buf.length ? buf : buf.subarray(this.rangeStart, this.rangeEnd));
  }

  /** Queues bytes for this tick, after everything forwarded or sent before; they are written together once the current event is handled. */
  send(buf: Uint8Array): void {
    if (this.closed || this.ending) return;
    if (this.range !== null) this.closeRange();
    this.append(buf);
    this.markDirty();
  }

  private append(buf: Uint8Array): void {
    // Most ticks send one slice: keep it in a field, and only gather several into a list.
    if (this.first === null) this.first = buf;
    else if (this.rest === null) this.rest = [buf];
    else this.rest.push(buf);
  }

  private markDirty(): void {
    if (!this.isDirty) {
      this.isDirty = true;
      dirty.push(this);
      if (!scheduled && !batching) {
        scheduled = true;
        queueMicrotask(flushDirty);
      }
    }
  }

  flush(): void {
    this.isDirty = false;
    if (this.range !== null) this.closeRange();
    const first = this.first;
    if (first === null) return;
    const rest = this.rest;
    this.first = null;
    this.rest = null;
    if (this.closed) return;
    let buf = first;
    if (rest !== null) {
      let total = first.length;
      for (const b of rest) total += b.length;
      buf = new Uint8Array(total);
      buf.set(first, 0);
      let at = first.length;
      for (const b of rest) {
        buf.set(b, at);
        at += b.length;
      }
    }
    if (this.queue === null) {
      const n = this.socket.write(buf);
      if (n < 0) {
        this.closed = true;
        return;
      }
      if (n === buf.length) return;
      buf = buf.subarray(n);
    }
    (this.queue ??= []).push(buf);
    this.queued += buf.length;
    if (!this.pressured && this.queued > HIGH_WATER) {
      this.pressured = true;
      this.pressure(true);
    }
  }

  /** The connection moved to another socket object (a TLS upgrade): later writes, and drains, go to that one. */
  moveTo(socket: Socket<unknown>): void {
    this.socket = socket;
  }

  /** Called from the socket's drain handler. */
  drain(): void {
    const queue = this.queue;
    while (queue !== null && queue.length > 0 && !this.closed) {
      const b = queue[0]!;
      const n = this.socket.write(b);
      if (n < 0) {
        this.closed = true;
        break;
      }
      this.queued -= n;
      if (n < b.length) {
        queue[0] = b.subarray(n);
        break;
      }
      queue.shift();
    }
    if (queue !== null && queue.length === 0) this.queue = null;
    if (this.ending && this.queue === null) this.socket.end();
    if (this.pressured && this.queued < LOW_WATER) {
      this.pressured = false;
      this.pressure(false);
    }
  }

  private ending = false;

  /** Writes what is pending, then ends the socket once the queue has drained; later sends are dropped. */
  end(): void {
    if (this.ending || this.closed) return;
    this.flush();
    this.ending = true;
    if (this.queue === null) this.socket.end();
  }

  /** The socket is gone: drop everything. */
  dispose(): void {
    this.closed = true;
    this.range = null;
    this.first = null;
    this.rest = null;
    this.queue = null;
    this.queued = 0;
  }
}
