// LISTEN in transaction and statement mode: one dedicated server connection per pool listens on the union of its
// clients' channels, and hands each notification to every client subscribed to its channel.

import { type CloseReason, describeClose } from "../backend/close-reason.ts";
import { KnownStatements } from "../backend/statement-cache.ts";
import { ServerConn, type ServerOwner, type ServerState, type ServerTarget } from "../backend/server.ts";
import type { PoolMode } from "../config/schema.ts";
import { clock } from "../clock.ts";
import { log } from "../log.ts";
import { readCString } from "../protocol/messages.ts";
import type { PoolStats } from "../pool/stats.ts";

/** A client as the hub sees it. */
export interface Subscriber {
  readonly id: number;
  /** A NotificationResponse for one of its channels, as PostgreSQL sent it. */
  notify(bytes: Uint8Array): void;
  /** The listening connection was lost while it was subscribed: notifications may have been missed. */
  notificationsLost(why: string): void;
}

/** Quotes a channel name for LISTEN/UNLISTEN. */
export function quoteChannel(channel: string): string {
  return '"' + channel.replace(/"/g, '""') + '"';
}

export class ListenHub implements ServerOwner {
  readonly mode: PoolMode = "session";
  readonly maxPrepared = 0;
  /** Never used: the listening connection prepares no client statements. */
  readonly knownStatements = new KnownStatements(1);
  readonly unnamedSeen = new KnownStatements(1);
  readonly resetQuery = "";
  draining = false;
  private conn: ServerConn | null = null;
  private ready = false;
  /** Committed subscriptions per channel. */
  private readonly subs = new Map<string, Set<Subscriber>>();
  /** LISTENs sent by clients whose outcome is not known yet: the hub listens ahead so nothing sent meanwhile is missed. */
  private readonly ahead = new Map<string, number>();
  /** Channels the dedicated connection listens on (LISTEN sent). */
  private readonly listening = new Set<string>();
  /** Channels whose LISTEN PostgreSQL has answered on the current connection. */
  private readonly confirmed = new Set<string>();
  /** Callbacks waiting for a channel's LISTEN to be answered. */
  private readonly waiting = new Map<string, Array<() => void>>();
  private retryAt = 0;

  constructor(
    private readonly target: ServerTarget,
    readonly stats: PoolStats,
    private readonly packetSize: () => number,
  ) {}

  get maxPacketSize(): number {
    return this.packetSize();
  }

  get subscribers(): number {
    let n = 0;
    for (const s of this.subs.values()) n += s.size;
    return n;
  }

  /** A client sent a LISTEN: listen on the channel now, before its transaction ends. */
  listenAhead(channel: string, delta: 1 | -1): void {
    const n = (this.ahead.get(channel) ?? 0) + delta;
    if (n <= 0) this.ahead.delete(channel);
    else this.ahead.set(channel, n);
    this.sync(channel);
  }

  subscribe(s: Subscriber, channel: string): void {
    let set = this.subs.get(channel);
    if (set === undefined) this.subs.set(channel, (set = new Set()));
    set.add(s);
    this.sync(channel);
  }

  unsubscribe(s: Subscriber, channel: string): void {
    const set = this.subs.get(channel);
    if (set === undefined || !set.delete(s)) return;
    if (set.size === 0) this.subs.delete(channel);
    this.sync(channel);
  }

  /** Brings the dedicated connection's LISTENs in line with what clients want on `channel`. */
  private sync(channel: string): void {
    const wanted = this.subs.has(channel) || this.ahead.has(channel);
    if (wanted === this.listening.has(channel)) return;
    if (this.conn === null) {
      if (wanted) this.connect();
      return;
    }
    if (!this.ready) return; // every wanted channel is listened on at login
    if (wanted) {
      this.listening.add(channel);
      this.conn.runInternal(`LISTEN ${quoteChannel(channel)}`, () => this.confirm(channel));
    } else {
      this.listening.delete(channel);
      this.confirmed.delete(channel);
      this.conn.runInternal(`UNLISTEN ${quoteChannel(channel)}`);
    }
  }

  private confirm(channel: string): void {
    if (!this.listening.has(channel)) return;
    this.confirmed.add(channel);
    const list = this.waiting.get(channel);
    if (list === undefined) return;
    this.waiting.delete(channel);
    for (const cb of list) cb();
  }

  /** PostgreSQL has answered the LISTEN on `channel` on the current connection. */
  isListening(channel: string): boolean {
    return this.confirmed.has(channel);
  }

  /** Runs `cb` once PostgreSQL has answered the LISTEN on `channel` (at once if it has), or the connection is lost. */
  whenListening(channel: string, cb: () => void): void {
    if (this.confirmed.has(channel)) {
      cb();
      return;
    }
    const list = this.waiting.get(channel);
    if (list === undefined) this.waiting.set(channel, [cb]);
    else list.push(cb);
  }

  private connect(): void {
    if (this.conn !== null || clock.now < this.retryAt) return;
    this.conn = new ServerConn(this, this.target);
    this.conn.connect();
  }

  /** The janitor's tick: retry a lost connection while someone still wants a channel. */
  tick(now: number): void {
    if (this.conn === null && (this.subs.size > 0 || this.ahead.size > 0) && now >= this.retryAt) this.connect();
  }

  // ServerOwner: the dedicated connection's life.

  changeState(s: ServerConn, next: ServerState): void {
    s.state = next;
    s.stateSince = clock.now;
  }
  overSize(): boolean {
    return false;
  }
  expired(): boolean {
    return false;
  }

  serverLoggedIn(s: ServerConn): void {
    this.ready = true;
    this.listening.clear();
    const channels = new Set([...this.subs.keys(), ...this.ahead.keys()]);
    for (const ch of channels) {
      this.listening.add(ch);
      s.runInternal(`LISTEN ${quoteChannel(ch)}`, () => this.confirm(ch));
    }
  }

  serverFree(): void {}

  serverLoginFailed(s: ServerConn, reason: string): void {
    this.lost(s, reason);
  }

  serverClosed(s: ServerConn, reason: CloseReason): void {
    this.lost(s, describeClose(reason));
  }

  private lost(s: ServerConn, why: string): void {
    if (this.conn !== s) return;
    this.conn = null;
    this.ready = false;
    this.listening.clear();
    this.confirmed.clear();
    this.retryAt = clock.now + 1000;
    // Whoever waits for a LISTEN goes on: its own LISTEN runs on its server, and it is told below if it was subscribed.
    const waiting = [...this.waiting.values()].flat();
    this.waiting.clear();
    for (const cb of waiting) cb();
    log.warn("notify", "listening connection lost", { server: s.id, reason: why, subscribers: this.subscribers });
    // Notifications sent while nobody listened are gone: every subscriber is told, as its own connection would be.
    const told = new Set<Subscriber>();
    for (const set of this.subs.values()) for (const sub of set) told.add(sub);
    this.subs.clear();
    for (const sub of told) sub.notificationsLost(why);
  }

  notification(_s: ServerConn, buf: Uint8Array, start: number, end: number): boolean {
    const [channel] = readCString(buf, start + 9, end);
    const set = this.subs.get(channel);
    if (set === undefined) return true;
    const bytes = buf.subarray(start, end);
    for (const sub of set) sub.notify(bytes);
    return true;
  }

  close(): void {
    this.conn?.close({ code: "pool_draining" });
  }
}
