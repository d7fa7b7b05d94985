// What a server still owes for the requests sent to it, read off the protocol: one queue holding, per request, its
// kind and what pgbun attached to it (a made-up reply, an error to show instead, a statement to confirm or undo).

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
  B_NOTICE_RESPONSE,
  B_NOTIFICATION_RESPONSE,
  B_PARAMETER_STATUS,
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
  TX_IDLE,
} from "../protocol/tags.ts";

// Kinds of owed replies, one per request that PostgreSQL answers.
export const K_QUERY = 1; // Query or FunctionCall: answered by ReadyForQuery
export const K_PARSE = 2;
export const K_BIND = 3;
export const K_DESCRIBE = 4;
export const K_EXECUTE = 5;
export const K_CLOSE = 6;
export const K_SYNC = 7;
/** CopyDone/CopyFail: answered by nothing, but bounds which Syncs PostgreSQL ignored during COPY IN. */
export const K_COPY_END = 8;
/** A reply pgbun makes up itself; its bytes are the entry's attachment, sent when it reaches the head. */
export const K_MADE_UP = 9;
export const KIND = 0x0f;
/** The request was made by pgbun: its replies are swallowed, not forwarded. */
export const INTERNAL = 0x10;
/** The request is meant to fail: its ErrorResponse is replaced by the entry's attachment (an error the server cannot produce). */
export const REPLACE_ERROR = 0x20;

/** What pgbun attached to a request: told whether PostgreSQL answered it or skipped it after an earlier error. */
export interface Attachment {
  answered?(): void;
  skipped?(): void;
}

/** A reply pgbun makes up, sent in its place in the reply order; `skipped` runs instead when an error comes first. */
export interface MadeUpReply extends Attachment {
  bytes(txStatus: number): Uint8Array;
}

/** The error shown in place of the server's for a REPLACE_ERROR request. */
export class ReplacedError implements Attachment {
  constructor(readonly error: Uint8Array) {}
  skipped(): void {} // nothing to undo: the request never had an effect
}

/** What to do with a message from the server, as received() decides it. */
export const FORWARD = 0;
/** It answers pgbun's own request. */
export const SWALLOW = 1;
/** It is the error of a request meant to fail: show the attached error instead. */
export const REPLACE = 2;
export type Action = typeof FORWARD | typeof SWALLOW | typeof REPLACE;

export type CopyState = "none" | "in" | "out" | "both";

export class ReplyTracker {
  private kinds = new Uint8Array(16);
  private attached: Array<Attachment | undefined> = new Array(16);
  private head = 0;
  private count = 0;
  /** Extended-protocol messages were sent since the last Sync: PostgreSQL holds an implicit transaction open. */
  inExtended = false;
  /** An extended-protocol error made PostgreSQL discard everything up to the next Sync. */
  skipTillSync = false;
  copy: CopyState = "none";
  /** The client ended the running COPY IN (CopyDone or CopyFail): Syncs from here on are answered again. */
  private copyEnded = false;
  /** Syncs pipelined into the COPY's data and taken as ignored: right if the COPY succeeds, unknowable if it fails. */
  private copySyncsDropped = 0;
  /**
   * PostgreSQL's replies can no longer be matched to requests (a COPY failed with Syncs pipelined into its data, so
   * which of them PostgreSQL answered depends on where it failed): the connection must not serve anyone again.
   */
  lost = false;
  /** The status byte of the last ReadyForQuery. */
  txStatus = TX_IDLE;
  /** Syncs sent so far: a request after a Sync belongs to a later group than one before it. */
  syncsSent = 0;
  /** Simple Queries sent so far (each destroys the unnamed statement). */
  queriesSent = 0;
  /** The next ReadyForQuery ends a group pgbun sends again (unnamed-reuse.ts): it is swallowed. */
  swallowNextReady = false;
  /** The attachment of the entry that was at the head when the last message arrived. */
  headAttachment: Attachment | undefined = undefined;

  get owed(): number {
    return this.count;
  }

  /** No reply owed and no protocol state open: the server is between requests. */
  get quiet(): boolean {
    return this.count === 0 && !this.inExtended && !this.skipTillSync && this.copy === "none";
  }

  /** The entry at the head, flags included; 0 when nothing is owed. */
  get headKind(): number {
    return this.count === 0 ? 0 : this.kinds[this.head]!;
  }

  /** The attachment of the entry at the head. */
  get headAttached(): Attachment | undefined {
    return this.count === 0 ? undefined : this.attached[this.head];
  }

  private push(kind: number, a?: Attachment): void {
    const size = this.kinds.length;
    if (this.count === size) {
      const kinds = new Uint8Array(size * 2);
      const attached: Array<Attachment | undefined> = new Array(size * 2);
      for (let i = 0; i < this.count; i++) {
        kinds[i] = this.kinds[(this.head + i) % size]!;
        attached[i] = this.attached[(this.head + i) % size];
      }
      this.kinds = kinds;
      this.attached = attached;
      this.head = 0;
    }
    const at = (this.head + this.count) % this.kinds.length;
    this.kinds[at] = kind;
    this.attached[at] = a;
    this.count++;
  }

  /** Removes the head entry; `answered` tells its attachment whether PostgreSQL answered it or skipped it. */
  private shift(answered: boolean): void {
    const a = this.attached[this.head];
    this.attached[this.head] = undefined;
    this.head = (this.head + 1) % this.kinds.length;
    this.count--;
    if (a !== undefined) {
      if (answered) a.answered?.();
      else a.skipped?.();
    }
    // Copy-end markers owe nothing: drop them as soon as they reach the head.
    while (this.count > 0 && (this.kinds[this.head]! & KIND) === K_COPY_END) {
      this.head = (this.head + 1) % this.kinds.length;
      this.count--;
    }
  }

  private at(i: number): number {
    return this.kinds[(this.head + i) % this.kinds.length]!;
  }

  /**
   * Records a message sent to the server. `flags` may add INTERNAL or REPLACE_ERROR; `a` is told how it ended.
   * Returns false when PostgreSQL will discard the message (skipping to Sync after an error): `a` is not kept then.
   */
  sent(tag: number, flags = 0, a?: Attachment): boolean {
    if (this.skipTillSync && tag !== F_SYNC) return false;
    switch (tag) {
      case F_QUERY:
      case F_FUNCTION_CALL:
        if (tag === F_QUERY) this.queriesSent++;
        this.push(K_QUERY | flags, a);
        this.inExtended = false;
        return true;
      case F_PARSE:
        this.push(K_PARSE | flags, a);
        break;
      case F_BIND:
        this.push(K_BIND | flags, a);
        break;
      case F_DESCRIBE:
        this.push(K_DESCRIBE | flags, a);
        break;
      case F_EXECUTE:
        this.push(K_EXECUTE | flags, a);
        break;
      case F_CLOSE:
        this.push(K_CLOSE | flags, a);
        break;
      case F_FLUSH:
        break;
      case F_SYNC:
        // PostgreSQL ignores Sync while COPY IN runs; it must not be counted as owing a ReadyForQuery. Once the client
        // has sent CopyDone or CopyFail the COPY is over for PostgreSQL, whatever replies are still on their way.
        if (this.copy === "in" && !this.copyEnded) return true;
        this.syncsSent++;
        this.push(K_SYNC | flags, a);
        this.inExtended = false;
        this.skipTillSync = false;
        return true;
      case F_COPY_DONE:
      case F_COPY_FAIL:
        if (this.copy === "in") this.copyEnded = true;
        if (this.count > 0) this.push(K_COPY_END);
        return true;
      default:
        return true;
    }
    this.inExtended = true;
    return true;
  }

  /** Queues a reply pgbun makes up; false when an earlier error means PostgreSQL is skipping to Sync (no reply is due). */
  madeUp(reply: MadeUpReply): boolean {
    if (this.skipTillSync) return false;
    this.push(K_MADE_UP, reply);
    return true;
  }

  /** The made-up reply at the head, removed; null when the head is something the server owes. */
  nextMadeUp(): MadeUpReply | null {
    if (this.count === 0 || (this.kinds[this.head]! & KIND) !== K_MADE_UP) return null;
    const r = this.attached[this.head] as MadeUpReply;
    this.shift(true);
    return r;
  }

  /**
   * A message that answers nothing: no request is owed, and it is not one PostgreSQL sends on its own (ParameterStatus,
   * NoticeResponse, NotificationResponse, or the ErrorResponse of a dying backend). pgbun has lost track of what this
   * server answers, and must not pass it on to anyone.
   */
  unexpected(tag: number, fatal: boolean): boolean {
    if (this.count > 0) return false;
    return !(tag === B_PARAMETER_STATUS || tag === B_NOTICE_RESPONSE || tag === B_NOTIFICATION_RESPONSE || (tag === B_ERROR_RESPONSE && fatal));
  }

  /** Records a message from the server and says what to do with it. */
  received(tag: number, status: number): Action {
    const head = this.count === 0 ? 0 : this.kinds[this.head]!;
    this.headAttachment = this.count === 0 ? undefined : this.attached[this.head];
    const kind = head & KIND;
    let action: Action = head & INTERNAL ? SWALLOW : FORWARD;
    switch (tag) {
      case B_PARSE_COMPLETE:
      case B_BIND_COMPLETE:
      case B_CLOSE_COMPLETE:
        if (kind !== 0) this.shift(true);
        break;
      case B_ROW_DESCRIPTION:
      case B_NO_DATA:
        if (kind === K_DESCRIBE) this.shift(true);
        break;
      case B_COMMAND_COMPLETE:
        this.copy = "none";
        this.copyEnded = false;
        this.copySyncsDropped = 0;
        if (kind === K_EXECUTE) this.shift(true);
        break;
      case B_EMPTY_QUERY_RESPONSE:
      case B_PORTAL_SUSPENDED:
        if (kind === K_EXECUTE) this.shift(true);
        break;
      case B_COPY_IN_RESPONSE:
        this.copy = "in";
        // The client may have sent CopyDone or CopyFail already, pipelined behind the COPY.
        this.copyEnded = this.dropSyncsDuringCopy();
        break;
      case B_COPY_OUT_RESPONSE:
        this.copy = "out";
        break;
      case B_COPY_BOTH_RESPONSE:
        this.copy = "both";
        break;
      case B_ERROR_RESPONSE:
        if (this.copy === "in" && this.copySyncsDropped > 0) this.lost = true;
        this.copy = "none";
        this.copyEnded = false;
        this.copySyncsDropped = 0;
        if (head & REPLACE_ERROR) action = REPLACE;
        // Inside a Query, or a failed commit at Sync, ReadyForQuery still follows; an extended-protocol
        // error makes PostgreSQL skip every message (even a Query) up to the next Sync.
        if (kind !== 0 && kind !== K_QUERY && kind !== K_SYNC) {
          this.shift(false);
          while (this.count > 0 && (this.kinds[this.head]! & KIND) !== K_SYNC) this.shift(false);
          if (this.count === 0) this.skipTillSync = true;
        }
        break;
      case B_READY_FOR_QUERY:
        this.txStatus = status;
        if (this.swallowNextReady) {
          this.swallowNextReady = false;
          action = SWALLOW;
        }
        while (this.count > 0) {
          const k = this.kinds[this.head]! & KIND;
          this.shift(true);
          if (k === K_QUERY || k === K_SYNC) break;
        }
        break;
    }
    return action;
  }

  /** Forgets everything owed (the server is gone): attachments are told their requests were skipped. */
  abandon(): void {
    while (this.count > 0) this.shift(false);
  }

  /**
   * At CopyInResponse: the Syncs sent after the COPY began and before its CopyDone/CopyFail are ignored by PostgreSQL.
   * Returns whether that CopyDone/CopyFail was already sent.
   */
  private dropSyncsDuringCopy(): boolean {
    if (this.count <= 1) return false;
    let end = 1;
    while (end < this.count && (this.at(end) & KIND) !== K_COPY_END) end++;
    let kept = 1;
    const size = this.kinds.length;
    for (let i = 1; i < this.count; i++) {
      const k = this.at(i);
      const a = this.attached[(this.head + i) % size];
      if (i < end && (k & KIND) === K_SYNC) {
        this.copySyncsDropped++;
        continue;
      }
      this.kinds[(this.head + kept) % size] = k;
      this.attached[(this.head + kept) % size] = a;
      kept++;
    }
    for (let i = kept; i < this.count; i++) this.attached[(this.head + i) % size] = undefined;
    const ended = end < this.count;
    this.count = kept;
    return ended;
  }
}
