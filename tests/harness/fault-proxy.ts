// A TCP proxy for tests, put between pgbun and PostgreSQL, that misbehaves on command: delay, stall, drop, half-close, reset.

import type { Socket, TCPSocketListener } from "bun";

/** "up" is client to server (toward PostgreSQL), "down" is server to client. */
export type Direction = "up" | "down" | "both";

/** Which connections a fault applies to; "carrying" matches text seen recently in either direction. */
export type Target =
  | "all"
  | "newest"
  | "oldest"
  | { index: number }
  | { backendPid: number }
  | { carrying: string }
  | ((c: ProxyConnection) => boolean);

export interface Trigger {
  direction: "up" | "down";
  /** Text the chunk (or the tail of the previous chunk and this one) must contain. */
  contains: string;
  /** Act before the chunk is forwarded (a reset then swallows it); default false. */
  before?: boolean;
  /** Fire this many times in all; default 1. */
  times?: number;
}

type Side = Socket<Pipe | undefined>;

// Past this many queued bytes the proxy stops reading the sending side, so a stalled peer backs up into TCP.
const QUEUE_HIGH = 1 << 20;
// Enough of the previous chunk to find a match split across two chunks, and to answer "carrying".
const WINDOW = 4096;

/** One direction of a proxied connection: what arrived from `from` and is still owed to `to`. */
class Pipe {
  from: Side | null = null;
  to: Side | null = null;
  private queue: Array<{ bytes: Uint8Array; due: number }> = [];
  private queued = 0;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private lastDue = 0;
  private paused = false;
  delayMs = 0;
  stalled = false;
  /** No more bytes pass: the far side has had (or will have, once the queue is sent) its FIN. */
  finished = false;
  private finAfterQueue = false;
  /** The last few KB that passed, for "carrying" targets. */
  window = "";
  // What triggers search; emptied when one fires, so the same bytes never fire twice.
  private unmatched = "";
  bytes = 0;

  constructor(readonly conn: ProxyConnection, readonly direction: "up" | "down") {}

  /** The pipe going the other way, which writes into the socket this one reads. */
  get reverse(): Pipe {
    return this.direction === "up" ? this.conn.down : this.conn.up;
  }

  /** True (once) when the bytes not yet matched contain `text`. */
  matches(text: string): boolean {
    if (!this.unmatched.includes(text)) return false;
    this.unmatched = "";
    return true;
  }

  receive(chunk: Uint8Array): void {
    if (this.finished) return;
    if (this.bytes === 0 && this.direction === "up") this.conn.noteFirstBytes(chunk);
    this.bytes += chunk.length;
    const text = latin1(chunk);
    this.window = (this.window + text).slice(-WINDOW);
    this.unmatched = (this.unmatched + text).slice(-WINDOW);
    const act = this.conn.proxy.fire(this.conn, this, chunk);
    if (act === "swallow") return;
    const due = Math.max(Date.now() + this.delayMs, this.lastDue);
    this.lastDue = due;
    this.queue.push({ bytes: chunk.slice(), due });
    this.queued += chunk.length;
    this.pump();
  }

  /** The sender closed: pass its FIN on once everything before it has been forwarded. */
  senderEnded(): void {
    this.finAfterQueue = true;
    this.pump();
  }

  pump(): void {
    if (this.timer !== null || this.finished) return;
    while (!this.stalled && this.to !== null && this.queue.length > 0) {
      const head = this.queue[0]!;
      const wait = head.due - Date.now();
      if (wait > 0) {
        this.timer = setTimeout(() => {
          this.timer = null;
          this.pump();
        }, wait);
        break;
      }
      const n = this.to.write(head.bytes);
      this.queued -= Math.max(n, 0);
      if (n < head.bytes.length) {
        // Bun took part of it: the rest goes on drain.
        if (n > 0) head.bytes = head.bytes.subarray(n);
        break;
      }
      this.queue.shift();
    }
    if (this.finAfterQueue && this.queue.length === 0 && this.to !== null && !this.stalled) this.finish();
    this.applyPause();
  }

  /** Sends FIN toward `to` and drops whatever was still queued. */
  finish(): void {
    this.finished = true;
    this.queue = [];
    this.queued = 0;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.to?.end();
    this.applyPause();
  }

  private applyPause(): void {
    const want = !this.finished && (this.stalled || this.queued > QUEUE_HIGH);
    if (want === this.paused || this.from === null) return;
    this.paused = want;
    if (want) this.from.pause();
    else this.from.resume();
  }
}

export class ProxyConnection {
  readonly up: Pipe;
  readonly down: Pipe;
  readonly openedAt = Date.now();
  /** PostgreSQL's process id for this session, read from BackendKeyData; 0 until seen. */
  backendPid = 0;
  state: "connecting" | "open" | "closed" = "connecting";
  clientClosed = false;
  serverClosed = false;
  // null once BackendKeyData was found or the stream stopped looking like a PostgreSQL login.
  private keyScan: Uint8Array | null = new Uint8Array(0);
  private skipSslAnswer = false;

  constructor(readonly proxy: FaultProxy, readonly index: number, readonly client: Side) {
    this.up = new Pipe(this, "up");
    this.down = new Pipe(this, "down");
    this.up.from = client;
    this.down.to = client;
  }

  get server(): Side | null {
    return this.up.to;
  }

  /** Text seen lately in either direction (latin1, protocol bytes included). */
  carries(text: string): boolean {
    return this.up.window.includes(text) || this.down.window.includes(text);
  }

  delay(ms: number, direction: Direction = "both"): void {
    for (const p of this.pipes(direction)) p.delayMs = ms;
  }

  /** Stops forwarding: bytes are held, and reading stops once a megabyte is held. */
  stall(direction: Direction = "both"): void {
    for (const p of this.pipes(direction)) p.stalled = true;
    for (const p of this.pipes(direction)) p.pump();
  }

  resume(direction: Direction = "both"): void {
    for (const p of this.pipes(direction)) p.stalled = false;
    for (const p of this.pipes(direction)) p.pump();
  }

  /** Ends one direction: the receiving side gets a FIN, later bytes that way are discarded. */
  halfClose(direction: "up" | "down"): void {
    this.pipes(direction)[0]!.finish();
  }

  /** Closes both sides politely (FIN), discarding anything still queued. */
  drop(): void {
    this.up.finish();
    this.down.finish();
  }

  /** Closes both sides abruptly: each peer gets a TCP RST. */
  reset(): void {
    if (this.state === "closed") return;
    this.up.finish();
    this.down.finish();
    this.client.terminate();
    this.server?.terminate();
    this.state = "closed";
  }

  private pipes(direction: Direction): Pipe[] {
    return direction === "both" ? [this.up, this.down] : direction === "up" ? [this.up] : [this.down];
  }

  /** An SSLRequest first means the server's first byte is its one-byte answer, not a message. */
  noteFirstBytes(chunk: Uint8Array): void {
    const v = new DataView(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    this.skipSslAnswer = chunk.length >= 8 && v.getInt32(0) === 8 && v.getInt32(4) === 80877103;
  }

  /** Reads BackendKeyData out of the server's first messages; stops at it or at the first ReadyForQuery. */
  scanForKey(chunk: Uint8Array): void {
    if (this.keyScan === null) return;
    let buf = new Uint8Array(this.keyScan.length + chunk.length);
    buf.set(this.keyScan);
    buf.set(chunk, this.keyScan.length);
    if (this.skipSslAnswer && buf.length > 0) {
      this.skipSslAnswer = false;
      if (buf[0] !== 0x4e) return void (this.keyScan = null); // 'S': TLS follows, nothing readable
      buf = buf.subarray(1);
    }
    const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    let at = 0;
    while (buf.length - at >= 5) {
      const tag = buf[at]!;
      const len = v.getInt32(at + 1);
      if (len < 4 || len > 1 << 20) return void (this.keyScan = null);
      if (buf.length - at < 1 + len) break;
      if (tag === 0x4b && len >= 12) this.backendPid = v.getInt32(at + 5); // 'K' BackendKeyData
      if (tag === 0x4b || tag === 0x5a) return void (this.keyScan = null); // 'Z' ReadyForQuery
      at += 1 + len;
    }
    this.keyScan = buf.slice(at);
  }
}

export interface FaultProxyOptions {
  /** Called for each accepted connection before any byte passes, e.g. to stall new logins. */
  onConnect?: (c: ProxyConnection) => void;
}

export class FaultProxy {
  private listener!: TCPSocketListener<Pipe | undefined>;
  private readonly live: ProxyConnection[] = [];
  private readonly triggers: Array<{ t: Trigger; left: number; action: (c: ProxyConnection) => void }> = [];
  private accepted = 0;
  host = "127.0.0.1";
  port = 0;

  private constructor(readonly target: { host: string; port: number }, private readonly opts: FaultProxyOptions) {}

  static start(target: { host: string; port: number }, opts: FaultProxyOptions = {}): FaultProxy {
    const proxy = new FaultProxy(target, opts);
    proxy.listen();
    return proxy;
  }

  /** Connections accepted since start, in order (index is the accept order, from 0). */
  get acceptedCount(): number {
    return this.accepted;
  }

  /** The connections still open, oldest first. */
  connections(): ProxyConnection[] {
    return this.live.filter((c) => c.state !== "closed");
  }

  select(target: Target): ProxyConnection[] {
    const open = this.connections();
    if (target === "all") return open;
    if (target === "newest") return open.slice(-1);
    if (target === "oldest") return open.slice(0, 1);
    if (typeof target === "function") return open.filter(target);
    if ("index" in target) return open.filter((c) => c.index === target.index);
    if ("backendPid" in target) return open.filter((c) => c.backendPid === target.backendPid);
    return open.filter((c) => c.carries(target.carrying));
  }

  delay(target: Target, ms: number, direction: Direction = "both"): number {
    return this.each(target, (c) => c.delay(ms, direction));
  }
  stall(target: Target, direction: Direction = "both"): number {
    return this.each(target, (c) => c.stall(direction));
  }
  resume(target: Target, direction: Direction = "both"): number {
    return this.each(target, (c) => c.resume(direction));
  }
  halfClose(target: Target, direction: "up" | "down"): number {
    return this.each(target, (c) => c.halfClose(direction));
  }
  drop(target: Target): number {
    return this.each(target, (c) => c.drop());
  }
  reset(target: Target): number {
    return this.each(target, (c) => c.reset());
  }

  /** Runs `action` on the connection whose traffic matches, at that moment (e.g. reset as COMMIT's reply passes). */
  when(trigger: Trigger, action: (c: ProxyConnection) => void): void {
    this.triggers.push({ t: trigger, left: trigger.times ?? 1, action });
  }

  /** Disarms every trigger that has not fired yet. */
  clearTriggers(): void {
    this.triggers.length = 0;
  }

  /** Stops listening and resets every open connection. */
  stop(): void {
    this.reset("all");
    this.listener.stop(true);
  }

  private each(target: Target, fn: (c: ProxyConnection) => void): number {
    const picked = this.select(target);
    for (const c of picked) fn(c);
    return picked.length;
  }

  /** Called by a pipe for every chunk; "swallow" when a trigger acted before forwarding. */
  fire(c: ProxyConnection, pipe: Pipe, chunk: Uint8Array): "forward" | "swallow" {
    if (pipe.direction === "down") c.scanForKey(chunk);
    let swallowed = false;
    for (const tr of this.triggers) {
      if (tr.left <= 0 || tr.t.direction !== pipe.direction || !pipe.matches(tr.t.contains)) continue;
      tr.left--;
      if (tr.t.before) {
        tr.action(c);
        swallowed = true;
      } else queueMicrotask(() => tr.action(c));
    }
    return swallowed ? "swallow" : "forward";
  }

  private listen(): void {
    const proxy = this;
    this.listener = Bun.listen<Pipe | undefined>({
      hostname: this.host,
      port: 0,
      allowHalfOpen: true,
      socket: {
        open(client) {
          const c = new ProxyConnection(proxy, proxy.accepted++, client);
          client.data = c.up;
          proxy.live.push(c);
          proxy.opts.onConnect?.(c);
          void proxy.connectUpstream(c);
        },
        data: (s, chunk) => s.data?.receive(chunk),
        drain: (s) => s.data?.reverse.pump(),
        end: (s) => s.data?.senderEnded(),
        close: (s) => s.data && proxy.closed(s.data),
        error: () => {},
      },
    });
    this.port = this.listener.port;
  }

  private async connectUpstream(c: ProxyConnection): Promise<void> {
    try {
      const server = await Bun.connect<Pipe | undefined>({
        hostname: this.target.host,
        port: this.target.port,
        allowHalfOpen: true,
        data: c.down,
        socket: {
          data: (s, chunk) => s.data?.receive(chunk),
          drain: (s) => s.data?.reverse.pump(),
          end: (s) => s.data?.senderEnded(),
          close: (s) => s.data && this.closed(s.data),
          error: () => {},
        },
      });
      if (c.state === "closed") return void server.terminate();
      c.state = "open";
      c.down.from = server;
      c.up.to = server;
      // Dropped or half-closed upward before the server answered: it gets its FIN now.
      if (c.up.finished) server.end();
      else c.up.pump();
    } catch {
      c.reset();
      this.forget(c);
    }
  }

  /** One side is gone: what it sent still goes to the other side, followed by a FIN; nothing more can reach it. */
  private closed(from: Pipe): void {
    const c = from.conn;
    if (from.direction === "up") c.clientClosed = true;
    else c.serverClosed = true;
    from.senderEnded();
    from.reverse.finish();
    if (c.clientClosed && (c.serverClosed || c.server === null)) this.forget(c);
  }

  private forget(c: ProxyConnection): void {
    c.state = "closed";
    const i = this.live.indexOf(c);
    if (i >= 0) this.live.splice(i, 1);
  }
}

function latin1(chunk: Uint8Array): string {
  let s = "";
  const from = Math.max(0, chunk.length - WINDOW);
  for (let i = from; i < chunk.length; i += 8192) s += String.fromCharCode(...chunk.subarray(i, Math.min(i + 8192, chunk.length)));
  return s;
}
