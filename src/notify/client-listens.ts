// One client's LISTENs in transaction and statement mode: which of its commands are LISTEN or UNLISTEN, which took
// effect (at the end of a committed transaction, as in PostgreSQL), and the notifications waiting for it to be free.

import type { ListenHub, Subscriber } from "./hub.ts";
import type { ListenOp } from "./listen-sql.ts";

/** Notifications kept for a client busy in a transaction, or not reading; beyond either bound it is disconnected. */
export const MAX_PENDING_NOTIFICATIONS = 1000;
export const MAX_PENDING_NOTIFICATION_BYTES = 1 << 20;

export class ClientListens {
  /** Channels this client listens on (committed). */
  readonly channels = new Set<string>();
  /** LISTEN/UNLISTEN sent to the server whose CommandComplete has not arrived, in order. */
  private expected: ListenOp[] = [];
  /** Done on the server, in effect once the transaction commits. */
  private pending: ListenOp[] = [];
  private failed = false;
  /** Notifications held while the client is linked to a server (in a transaction). */
  private held: Uint8Array[] = [];
  private heldBytes = 0;
  /** Extended protocol: the LISTEN/UNLISTEN of each named statement and bound portal ("" is the unnamed one). */
  readonly statements = new Map<string, ListenOp[]>();
  readonly portals = new Map<string, ListenOp[]>();

  constructor(
    private readonly hub: ListenHub,
    private readonly sub: Subscriber,
  ) {}

  /** The commands are on their way to the server. */
  sent(ops: ListenOp[]): void {
    for (const op of ops) {
      this.expected.push(op);
      if (op.listen) this.hub.listenAhead(op.channel, 1);
    }
  }

  /** A CommandComplete of LISTEN or UNLISTEN came back. */
  completed(): void {
    const op = this.expected.shift();
    if (op !== undefined) this.pending.push(op);
  }

  /** An error or a ROLLBACK: nothing done in this transaction takes effect. */
  aborted(): void {
    this.failed = true;
  }

  get active(): boolean {
    return this.expected.length > 0 || this.pending.length > 0;
  }

  /** A ReadyForQuery: outside a transaction now, what was done takes effect, or is dropped if it failed. */
  ready(status: number): void {
    if (status !== 0x49) {
      if (status === 0x45) this.failed = true;
      return;
    }
    if (!this.failed) for (const op of this.pending) this.apply(op);
    for (const op of this.pending) if (op.listen) this.hub.listenAhead(op.channel, -1);
    // Commands an error made PostgreSQL skip never complete.
    for (const op of this.expected) if (op.listen) this.hub.listenAhead(op.channel, -1);
    this.pending = [];
    this.expected = [];
    this.failed = false;
  }

  private apply(op: ListenOp): void {
    if (op.channel === "*" && !op.listen) {
      for (const ch of this.channels) this.hub.unsubscribe(this.sub, ch);
      this.channels.clear();
    } else if (op.listen) {
      this.channels.add(op.channel);
      this.hub.subscribe(this.sub, op.channel);
    } else if (this.channels.delete(op.channel)) {
      this.hub.unsubscribe(this.sub, op.channel);
    }
  }

  /** Keeps a notification for later; false when too many are waiting. */
  hold(bytes: Uint8Array): boolean {
    if (this.held.length >= MAX_PENDING_NOTIFICATIONS || this.heldBytes + bytes.length > MAX_PENDING_NOTIFICATION_BYTES) return false;
    this.held.push(bytes);
    this.heldBytes += bytes.length;
    return true;
  }

  /** The notifications held so far, in order. */
  takeHeld(): Uint8Array[] | null {
    if (this.held.length === 0) return null;
    const out = this.held;
    this.held = [];
    this.heldBytes = 0;
    return out;
  }

  /** The client is gone. */
  leave(): void {
    for (const op of [...this.expected, ...this.pending]) if (op.listen) this.hub.listenAhead(op.channel, -1);
    for (const ch of this.channels) this.hub.unsubscribe(this.sub, ch);
    this.channels.clear();
    this.expected = [];
    this.pending = [];
    this.held = [];
    this.heldBytes = 0;
  }
}
