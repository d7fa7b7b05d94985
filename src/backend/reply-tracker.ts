// What a server still owes for the requests forwarded to it, read off the protocol: the basis of every release decision.

import {
  B_BIND_COMPLETE,
  B_CLOSE_COMPLETE,
  B_COMMAND_COMPLETE,
  B_COPY_BOTH_RESPONSE,
  B_COPY_IN_RESPONSE,
  B_COPY_OUT_RESPONSE,
  B_EMPTY_QUERY_RESPONSE,
  B_ERROR_RESPONSE,
  B_NO_DATA,
  B_PARSE_COMPLETE,
  B_PORTAL_SUSPENDED,
  B_READY_FOR_QUERY,
  B_ROW_DESCRIPTION,
  F_BIND,
  F_CLOSE,
  F_COPY_DONE,
  F_COPY_FAIL,
  F_DESCRIBE,
  F_EXECUTE,
  F_FLUSH,
  F_FUNCTION_CALL,
  F_PARSE,
  F_QUERY,
  F_SYNC,
} from "../protocol/tags.ts";

// Kinds of owed replies, one per forwarded request that PostgreSQL answers.
export const K_QUERY = 1; // Query or FunctionCall: answered by ReadyForQuery
export const K_PARSE = 2;
export const K_BIND = 3;
export const K_DESCRIBE = 4;
export const K_EXECUTE = 5;
export const K_CLOSE = 6;
export const K_SYNC = 7;
/** CopyDone/CopyFail: answered by nothing, but bounds which Syncs PostgreSQL ignored during COPY IN. */
export const K_COPY_END = 8;
/** A reply pgbun makes up itself (ParseComplete for a statement the server holds, CloseComplete): sent when it reaches the head. */
export const K_SYNTH = 9;
/** Set on requests pgbun made itself: their replies are swallowed, not forwarded. */
export const INTERNAL = 0x10;
/** The request is meant to fail: its ErrorResponse is replaced by the one pgbun prepared (a client error the server cannot produce). */
export const REPLACE_ERROR = 0x20;
/** The request created or closed a named statement: its answer confirms pgbun's bookkeeping, its skipping undoes it. */
export const HAS_OP = 0x40;
export const KIND = 0x0f;

// Flags returned by received().
export const R_SWALLOW = 1; // the message answers an internal request
export const R_POPPED = 2; // the message completed the request at the head
export const R_READY = 4; // the message was ReadyForQuery
export const R_REPLACE = 8; // the head request's error is to be replaced

export type CopyState = "none" | "in" | "out" | "both";

export class ReplyTracker {
  private ring = new Uint8Array(32);
  private head = 0;
  private count = 0;
  /** Extended-protocol messages were sent since the last Sync: PostgreSQL holds an implicit transaction open. */
  inExtended = false;
  /** An extended-protocol error made PostgreSQL discard everything up to the next Sync. */
  skipTillSync = false;
  copy: CopyState = "none";
  /** The status byte of the last ReadyForQuery. */
  txStatus = 0x49;
  /** Told of every request an extended-protocol error makes PostgreSQL skip (with its flags). */
  dropHook: ((entry: number) => void) | null = null;

  get owed(): number {
    return this.count;
  }

  /** No reply owed and no protocol state open: the server is between requests. */
  get quiet(): boolean {
    return this.count === 0 && !this.inExtended && !this.skipTillSync && this.copy === "none";
  }

  /** The entry at the head, flags included; 0 when nothing is owed. */
  get headKind(): number {
    return this.count === 0 ? 0 : this.ring[this.head]!;
  }

  reset(): void {
    this.head = 0;
    this.count = 0;
    this.inExtended = false;
    this.skipTillSync = false;
    this.copy = "none";
    this.txStatus = 0x49;
  }

  /** Queues a reply pgbun will make up once everything before it is answered. */
  pushSynth(): void {
    this.push(K_SYNTH);
  }

  /** Queues a request whose error is replaced (see REPLACE_ERROR). */
  pushReplacing(kind: number): void {
    this.push(kind | REPLACE_ERROR);
    this.inExtended = true;
  }

  /** Removes the made-up reply at the head once it has been sent. */
  popSynth(): void {
    this.shift();
  }

  private push(kind: number): void {
    if (this.count === this.ring.length) {
      const next = new Uint8Array(this.ring.length * 2);
      for (let i = 0; i < this.count; i++) next[i] = this.ring[(this.head + i) % this.ring.length]!;
      this.ring = next;
      this.head = 0;
    }
    this.ring[(this.head + this.count) % this.ring.length] = kind;
    this.count++;
  }

  private shift(): void {
    this.head = (this.head + 1) % this.ring.length;
    this.count--;
    // Copy-end markers owe nothing: drop them as soon as they reach the head.
    while (this.count > 0 && (this.ring[this.head]! & KIND) === K_COPY_END) {
      this.head = (this.head + 1) % this.ring.length;
      this.count--;
    }
  }

  private at(i: number): number {
    return this.ring[(this.head + i) % this.ring.length]!;
  }

  /** Records a message forwarded to the server; flag may add INTERNAL (made by pgbun, replies swallowed) and HAS_OP. */
  sent(tag: number, flag = 0): void {
    if (this.skipTillSync && tag !== F_SYNC) return;
    switch (tag) {
      case F_QUERY:
      case F_FUNCTION_CALL:
        this.push(K_QUERY | flag);
        this.inExtended = false;
        return;
      case F_PARSE:
        this.push(K_PARSE | flag);
        this.inExtended = true;
        return;
      case F_BIND:
        this.push(K_BIND | flag);
        this.inExtended = true;
        return;
      case F_DESCRIBE:
        this.push(K_DESCRIBE | flag);
        this.inExtended = true;
        return;
      case F_EXECUTE:
        this.push(K_EXECUTE | flag);
        this.inExtended = true;
        return;
      case F_CLOSE:
        this.push(K_CLOSE | flag);
        this.inExtended = true;
        return;
      case F_FLUSH:
        this.inExtended = true;
        return;
      case F_SYNC:
        // PostgreSQL ignores Sync while COPY IN runs; it must not be counted as owing a ReadyForQuery.
        if (this.copy === "in") return;
        this.push(K_SYNC | flag);
        this.inExtended = false;
        this.skipTillSync = false;
        return;
      case F_COPY_DONE:
      case F_COPY_FAIL:
        if (this.count > 0) this.push(K_COPY_END);
        return;
    }
  }

  /** Records a message from the server; returns R_* flags. */
  received(tag: number, status: number): number {
    const head = this.count === 0 ? 0 : this.ring[this.head]!;
    const kind = head & KIND;
    let flags = head & INTERNAL ? R_SWALLOW : 0;
    if (head & REPLACE_ERROR) flags |= R_REPLACE;
    switch (tag) {
      case B_PARSE_COMPLETE:
      case B_BIND_COMPLETE:
      case B_CLOSE_COMPLETE:
        if (this.count > 0) {
          this.shift();
          flags |= R_POPPED;
        }
        break;
      case B_ROW_DESCRIPTION:
      case B_NO_DATA:
        if (kind === K_DESCRIBE) {
          this.shift();
          flags |= R_POPPED;
        }
        break;
      case B_COMMAND_COMPLETE:
        this.copy = "none";
        if (kind === K_EXECUTE) {
          this.shift();
          flags |= R_POPPED;
        }
        break;
      case B_EMPTY_QUERY_RESPONSE:
      case B_PORTAL_SUSPENDED:
        if (kind === K_EXECUTE) {
          this.shift();
          flags |= R_POPPED;
        }
        break;
      case B_COPY_IN_RESPONSE:
        this.copy = "in";
        this.dropSyncsDuringCopy();
        break;
      case B_COPY_OUT_RESPONSE:
        this.copy = "out";
        break;
      case B_COPY_BOTH_RESPONSE:
        this.copy = "both";
        break;
      case B_ERROR_RESPONSE:
        this.copy = "none";
        // Inside a Query, or a failed commit at Sync, ReadyForQuery still follows; an extended-protocol
        // error makes PostgreSQL skip every message (even a Query) up to the next Sync.
        if (kind !== 0 && kind !== K_QUERY && kind !== K_SYNC) {
          while (this.count > 0 && (this.ring[this.head]! & KIND) !== K_SYNC) {
            this.dropHook?.(this.ring[this.head]!);
            this.shift();
          }
          if (this.count === 0) this.skipTillSync = true;
          flags |= R_POPPED;
        }
        break;
      case B_READY_FOR_QUERY:
        this.txStatus = status;
        flags |= R_READY;
        while (this.count > 0) {
          const k = this.ring[this.head]! & KIND;
          this.shift();
          if (k === K_QUERY || k === K_SYNC) break;
        }
        flags |= R_POPPED;
        break;
    }
    return flags;
  }

  /** At CopyInResponse: the Syncs sent after the COPY began and before its CopyDone/CopyFail are ignored by PostgreSQL. */
  private dropSyncsDuringCopy(): void {
    if (this.count <= 1) return;
    let end = 1;
    while (end < this.count && (this.at(end) & KIND) !== K_COPY_END) end++;
    let kept = 1;
    for (let i = 1; i < this.count; i++) {
      const k = this.at(i);
      if (i < end && (k & KIND) === K_SYNC) continue;
      this.ring[(this.head + kept) % this.ring.length] = k;
      kept++;
    }
    this.count = kept;
  }
}
