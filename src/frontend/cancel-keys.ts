// BackendKeyData pgbun hands its clients, and the lookup a CancelRequest goes through.

import { randomBytes } from "node:crypto";

export interface Cancellable {
  readonly secret: number;
  /** Forwards the cancel to the server the client is linked to now, if any. */
  cancelQuery(): void;
}

/**
 * Process ids are positive 32-bit integers: applications pass them to pg_terminate_backend and int4 columns.
 * The top bits carry the worker number so a cancel arriving at another worker can be routed to the owner.
 */
export class CancelKeys {
  private readonly byPid = new Map<number, Cancellable>();
  private next: number;

  constructor(
    private readonly worker = 0,
    private readonly workerBits = 0,
  ) {
    this.next = (randomBytes(4).readUInt32BE(0) >>> (8 + workerBits)) + 1;
  }

  /** The worker that owns a pid handed out by any worker. */
  static workerOf(pid: number, workerBits: number): number {
    return workerBits === 0 ? 0 : pid >>> (31 - workerBits);
  }

  allocate(owner: Cancellable): { pid: number; secret: number } {
    const span = 2 ** (31 - this.workerBits);
    let local = this.next;
    while (this.byPid.has(this.compose(local))) local = (local % (span - 1)) + 1;
    this.next = (local % (span - 1)) + 1;
    const pid = this.compose(local);
    this.byPid.set(pid, owner);
    return { pid, secret: randomBytes(4).readInt32BE(0) };
  }

  private compose(local: number): number {
    return ((this.worker << (31 - this.workerBits)) | local) >>> 0;
  }

  release(pid: number): void {
    this.byPid.delete(pid);
  }

  /** Returns false when no client has this key (or the secret is wrong): the request is dropped silently, as PostgreSQL does. */
  cancel(pid: number, secret: number): boolean {
    const owner = this.byPid.get(pid);
    if (owner === undefined || owner.secret !== secret) return false;
    owner.cancelQuery();
    return true;
  }
}
