// prepare_unnamed: a client's unnamed Parse whose text pgbun has seen before binds a statement prepared once on this
// server, so PostgreSQL skips parse and planning, while the client sees exactly what the unnamed Parse would show it.
//
// A statement prepared here may have gone stale since (DDL): PostgreSQL then fails its first use (0A000, or the error
// re-analysis meets) where a fresh unnamed Parse would have worked or failed at the Parse. So a reused statement's
// ParseComplete is held until its first use is answered. If that fails, the error is swallowed and the client's
// messages, kept from its Parse on, are sent again as they were: the reuse happens only at the start of a Sync group
// outside a transaction block, before anything ran in it, so PostgreSQL rolled back nothing of the client's.

import { PARSE_COMPLETE } from "../protocol/messages.ts";
import { B_BIND_COMPLETE, B_ERROR_RESPONSE, B_NO_DATA, B_PARAMETER_DESCRIPTION, B_ROW_DESCRIPTION } from "../protocol/tags.ts";
import { F_BIND, F_CLOSE, F_DESCRIBE, F_EXECUTE, F_FLUSH, F_PARSE, F_SYNC, TX_IDLE } from "../protocol/tags.ts";
import { closeStatement, describeStatement, namingStatement, statementNameSpan, withStatementName } from "../protocol/statements.ts";
import { readInt32 } from "../protocol/writer.ts";
import { INTERNAL, type Attachment } from "./reply-tracker.ts";
import type { ServerStatement } from "./statement-cache.ts";
import type { ServerConn } from "./server.ts";

const SYNC = Uint8Array.of(F_SYNC, 0, 0, 0, 4);
const FLUSH = Uint8Array.of(F_FLUSH, 0, 0, 0, 4);
/** Beyond this much kept for a replay, the rest of the group waits for the outcome instead. */
const MAX_KEPT = 64 * 1024;

/** A reused statement whose first use is not answered yet; the attachment of that first use. */
class Reuse implements Attachment {
  /** The client's messages from its Parse on, as it sent them: what is sent again if the first use fails. */
  readonly kept: Uint8Array[] = [];
  keptBytes = 0;
  /** The run of contiguous bytes being kept (messages of one chunk follow each other): [runStart, runEnd) of runBuf. */
  runBuf: Uint8Array | null = null;
  runStart = 0;
  runEnd = 0;
  /** The first use (the client's Bind or Describe, or pgbun's own Describe) is sent. */
  useSent = false;
  /** The client's Sync of this group is sent. */
  syncSent = false;
  /** The server holds the client's later messages until the outcome. */
  holding = false;
  /** A Describe's ParameterDescription, held with the ParseComplete: PostgreSQL revalidates only after sending it. */
  heldParams: Uint8Array | null = null;
  constructor(readonly stmt: ServerStatement) {}
  answered(): void {} // the outcome is read off the reply itself (UnnamedStatements.reply)
}

/** A client's message naming the unnamed statement: as sent (`msg`), and where it lies in the chunk it came in. */
export interface UnnamedMessage {
  readonly tag: number;
  readonly msg: Uint8Array;
  readonly chunk: Uint8Array;
  readonly start: number;
  /** Parse: the content name its statement has on servers; "" otherwise. */
  readonly serverName: string;
}

export class UnnamedStatements {
  /** The server statement the client's unnamed statement stands for here; null when it is PostgreSQL's own. */
  private as: ServerStatement | null = null;
  /** Simple Queries sent when `as` was set: a later one destroys the unnamed statement, as PostgreSQL does. */
  private asQueries = 0;
  /** A reuse awaiting its first use's answer. */
  open: Reuse | null = null;

  constructor(private readonly server: ServerConn) {}

  /** The client left: nothing of its is sent again, whatever its reused statement's first use answers. */
  clientLeft(): void {
    this.open = null;
    this.as = null;
  }

  /** A client's unnamed Parse, Bind, Describe or Close of a statement, as sent (the statement name is ""). */
  run(a: UnnamedMessage): void {
    const { tag, msg } = a;
    if (tag === F_PARSE) return this.parse(a);
    const s = this.server;
    const t = s.tracker;
    if (tag === F_CLOSE) this.as = null;
    const stmt = this.as !== null && t.queriesSent === this.asQueries && !t.skipTillSync ? this.as : null;
    const r = this.open;
    if (stmt === null) {
      this.plain(a);
      return;
    }
    const renamed = namingStatement(msg, statementNameSpan(tag, msg, 0, msg.length)![0], stmt.nameBytes);
    if (r !== null) {
      this.keep(r, a.chunk, a.start, a.start + msg.length);
      if (!r.useSent) {
        r.useSent = true;
        t.sent(tag, 0, r);
        s.outbox!.send(renamed);
        return;
      }
    }
    t.sent(tag, 0, stmt);
    s.outbox!.send(renamed);
  }

  /** Forwards a message as the client sent it. */
  private plain(a: UnnamedMessage): void {
    if (this.open !== null) this.keep(this.open, a.chunk, a.start, a.start + a.msg.length);
    this.server.tracker.sent(a.tag);
    this.server.outbox!.send(a.msg);
  }

  private parse(a: UnnamedMessage): void {
    const { msg, serverName } = a;
    const s = this.server;
    const t = s.tracker;
    const cache = s.statements;
    const seen = s.owner.unnamedSeen;
    const stmt = t.skipTillSync ? undefined : cache.prepared.get(serverName);
    // Seen once: PostgreSQL parses it; texts that never repeat (literals inlined) are never prepared.
    if (stmt === undefined && (t.skipTillSync || !seen.has(serverName))) {
      if (!t.skipTillSync) seen.add(serverName);
      this.as = null;
      this.plain(a);
      return;
    }
    if (stmt === undefined) {
      // Not prepared here yet: it is now, under its content name; its ParseComplete (or error) is PostgreSQL's.
      const made = cache.prepareHere(serverName, withStatementName(msg, 0, msg.length, statementNameSpan(F_PARSE, msg, 0, msg.length)!, serverName));
      this.use(made);
      return;
    }
    if (!t.quiet || t.txStatus !== TX_IDLE) {
      // Inside a transaction block, or behind requests not yet answered: a stale statement's error could not be undone.
      this.as = null;
      this.plain(a);
      return;
    }
    cache.touch(stmt);
    this.use(stmt);
    const r = new Reuse(stmt);
    this.open = r;
    this.keep(r, a.chunk, a.start, a.start + msg.length);
  }

  private use(stmt: ServerStatement): void {
    this.as = stmt;
    this.asQueries = this.server.tracker.queriesSent;
  }

  /** Keeps chunk[start..end) for a replay; messages that follow each other in one chunk make one piece. */
  private keep(r: Reuse, chunk: Uint8Array, start: number, end: number): void {
    r.keptBytes += end - start;
    if (r.runBuf === chunk && r.runEnd === start) {
      r.runEnd = end;
      return;
    }
    if (r.runBuf !== null) r.kept.push(r.runBuf.subarray(r.runStart, r.runEnd));
    r.runBuf = chunk;
    r.runStart = start;
    r.runEnd = end;
  }

  /**
   * Any other message while a reuse awaits its outcome: whether it went (kept for a replay). False when it must wait
   * for the outcome (the server then holds the client): a Query, a COPY, or too much kept.
   */
  other(tag: number, buf: Uint8Array, start: number, end: number): boolean {
    const r = this.open!;
    const s = this.server;
    if (!r.useSent) this.validate(r);
    const replayable = tag === F_BIND || tag === F_DESCRIBE || tag === F_EXECUTE || tag === F_CLOSE || tag === F_SYNC || tag === F_FLUSH;
    if (!replayable || r.keptBytes + (end - start) > MAX_KEPT || r.syncSent) {
      this.interrupt(r);
      return false;
    }
    this.keep(r, buf, start, end);
    s.tracker.sent(tag);
    s.outbox!.forward(buf, start, end);
    // What the client sends after this group waits (see above: r.syncSent): if the reuse fails, the group goes again
    // before it. Most clients send nothing more before the answer, so nothing is held until something comes.
    if (tag === F_SYNC) r.syncSent = true;
    return true;
  }

  /** A statement action of the client's (not an unnamed one) while a reuse awaits its outcome: it waits for it. */
  interruptOpen(): void {
    const r = this.open!;
    if (!r.useSent) this.validate(r);
    this.interrupt(r);
  }

  /** Nothing has used the statement yet: a Describe of pgbun's own revalidates it, answered before what follows. */
  private validate(r: Reuse): void {
    r.useSent = true;
    this.server.tracker.sent(F_DESCRIBE, INTERNAL, r);
    this.server.outbox!.send(describeStatement(r.stmt.name));
  }

  /** The outcome must come before more is sent: PostgreSQL answers at a Flush, and the client waits meanwhile. */
  private interrupt(r: Reuse): void {
    if (!r.syncSent) this.server.outbox!.send(FLUSH);
    r.holding = true;
    this.server.hold();
  }

  /**
   * A reply arrived while a reuse is open. Returns true when it must not be forwarded now (a held ParameterDescription, or its first use failed). On the first
   * use's first answer the held ParseComplete goes to the client ahead of it.
   */
  reply(tag: number, buf: Uint8Array, start: number, end: number, dead: boolean): boolean {
    const r = this.open!;
    const s = this.server;
    if (s.tracker.headAttached !== r) return false;
    if (tag === B_PARAMETER_DESCRIPTION) {
      // A Describe of the statement: PostgreSQL sends this before it revalidates, so the outcome is the next message.
      if ((s.tracker.headKind & INTERNAL) === 0) r.heldParams = buf.slice(start, end);
      return true;
    }
    if (tag === B_BIND_COMPLETE || tag === B_ROW_DESCRIPTION || tag === B_NO_DATA) {
      s.toClient(PARSE_COMPLETE);
      if (r.heldParams !== null) s.toClient(r.heldParams);
      this.settle(r);
      return false;
    }
    if (tag !== B_ERROR_RESPONSE || dead) return false;
    this.replay(r);
    return true;
  }

  /** The outcome is known: what waited behind it goes. */
  private settle(r: Reuse): void {
    this.open = null;
    if (r.holding) this.server.unhold();
  }

  /**
   * The reused statement failed its first use: it is closed here, and what the client sent from its Parse on goes again
   * as it was, after the failed group's end (the client's Sync, or one of pgbun's own whose answer is swallowed).
   */
  private replay(r: Reuse): void {
    const s = this.server;
    const t = s.tracker;
    const out = s.outbox!;
    s.owner.stats.prepared_statements_replays++;
    s.statements.drop(r.stmt);
    this.as = null;
    this.open = null;
    if (r.syncSent) t.swallowNextReady = true;
    else {
      t.sent(F_SYNC, INTERNAL);
      out.send(SYNC);
    }
    t.sent(F_CLOSE, INTERNAL);
    out.send(closeStatement(r.stmt.name));
    if (r.runBuf !== null) r.kept.push(r.runBuf.subarray(r.runStart, r.runEnd));
    for (const piece of r.kept) {
      // A piece may hold several messages: each one owes its replies.
      for (let at = 0; at < piece.length; at += 1 + readInt32(piece, at + 1)) t.sent(piece[at]!);
      out.send(piece);
    }
    if (r.holding) s.unhold();
  }
}
