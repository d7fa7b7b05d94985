// A server's prepared statements (by content name, LRU-bounded, with the shape each was described with), and how a
// client's named statements are carried out on it so that the client sees what PostgreSQL would have shown it.

import { B_CLOSE_COMPLETE, F_BIND, F_CLOSE, F_DESCRIBE, F_FLUSH, F_PARSE } from "../protocol/tags.ts";
import { closeStatement, describeStatement, describeStatementAndFlush, DOOMED_BIND, parseWithTypes, type PreparedInfo } from "../protocol/statements.ts";
import { errorResponse } from "../protocol/messages.ts";
import { type Attachment, INTERNAL, type MadeUpReply, REPLACE_ERROR, ReplacedError } from "./reply-tracker.ts";
import type { ServerConn } from "./server.ts";

/** A statement prepared on this server; also the attachment of requests using it, so an error names it. */
export class ServerStatement implements Attachment {
  /** The shape of its Describe answer on this server; null while unknown. */
  shape: string | null = null;
  /** The name as it is written in a message. */
  readonly nameBytes: Uint8Array;
  constructor(readonly name: string) {
    this.nameBytes = new TextEncoder().encode(name);
  }
  answered(): void {} // a request using it succeeded: nothing to record
}

/** Gathers a statement's Describe answer (ParameterDescription, then RowDescription or NoData). */
export class ShapeCapture implements Attachment {
  shape = "";
  constructor(
    private readonly stmt: ServerStatement,
    private readonly client: PreparedInfo | null,
    private readonly onEnd: (() => void) | null,
  ) {}
  answered(): void {
    this.stmt.shape = this.shape;
    if (this.client !== null) this.client.shape = this.shape;
    this.onEnd?.();
  }
  skipped(): void {
    this.onEnd?.();
  }
}

/** What PostgreSQL answers when a prepared statement's result shape changed after it was described; drivers such as
 *  postgres.js re-prepare on its routine, so it is named as PostgreSQL names it. */
export const STALE_PLAN_ERROR = errorResponse({
  severity: "ERROR",
  code: "0A000",
  message: "cached plan must not change result type",
  file: "plancache.c",
  routine: "RevalidateCachedQuery",
});

/** Content names a pool's servers prepared successfully: a client's Parse of one is answered without a server. */
export class KnownStatements {
  private readonly names = new Set<string>();
  constructor(private readonly limit = 10_000) {}

  has(name: string): boolean {
    return this.names.has(name);
  }

  add(name: string): void {
    if (this.names.has(name)) return;
    // Bounded: the oldest name is forgotten (its next Parse just goes to a server again).
    if (this.names.size >= this.limit) this.names.delete(this.names.values().next().value!);
    this.names.add(name);
  }

  delete(name: string): void {
    this.names.delete(name);
  }
}

export class StatementCache {
  /** Statements prepared here by content name, least recently used first. */
  readonly prepared = new Map<string, ServerStatement>();
  /** The statement touch() made most recently used last; another use of it changes nothing. */
  private lastTouched: ServerStatement | null = null;
  /** Statements PostgreSQL reported stale (0A000): closed before they are prepared again. */
  private readonly stale = new Set<string>();

  constructor(private readonly server: ServerConn) {}

  get size(): number {
    return this.prepared.size;
  }

  /** An error answered a request using a statement: a stale plan means that statement is closed and prepared afresh. */
  onError(code: string, message: string, at: Attachment | undefined): void {
    if (!(at instanceof ServerStatement) || code !== "0A000" || !message.startsWith("cached plan must not change result type")) return;
    if (this.prepared.get(at.name) === at) this.prepared.delete(at.name);
    this.stale.add(at.name);
  }

  /** DISCARD ALL or DEALLOCATE ALL ran on the server. */
  forgetAll(): void {
    this.prepared.clear();
    this.stale.clear();
  }

  /** Answers the client with a reply pgbun makes up, in its place among the replies owed before it. */
  reply(r: MadeUpReply): void {
    const s = this.server;
    if (s.tracker.skipTillSync) {
      r.skipped?.();
      return;
    }
    if (s.tracker.owed === 0) s.toClient(r.bytes(s.tracker.txStatus));
    else s.tracker.madeUp(r);
  }

  /** Makes PostgreSQL fail here as it would have for the client's request (aborting the transaction, skipping to Sync), showing `error` instead. */
  failWith(error: Uint8Array): void {
    const s = this.server;
    if (s.tracker.sent(F_BIND, REPLACE_ERROR, new ReplacedError(error))) s.outbox!.send(DOOMED_BIND);
  }

  /**
   * A client's Parse of a named statement. It always reaches PostgreSQL, so the client gets a plan made now, as it
   * would directly; a statement of the same content already here (maybe planned before some DDL) is closed first.
   * `forget` undoes the client's name if PostgreSQL fails or skips the Parse. `internal`: pgbun already answered the
   * client's Parse (a lazy statement made where first used), so ParseComplete is not forwarded; an error still is.
   */
  parse(info: PreparedInfo, forget: () => void, internal = false): void {
    const s = this.server;
    if (s.tracker.skipTillSync) {
      forget();
      return;
    }
    const name = info.serverName;
    const old = this.prepared.get(name);
    if (old !== undefined || this.stale.delete(name)) this.close(name, old);
    this.evictFor(1);
    const stmt = this.add(name);
    info.parsing = s.tracker.syncsSent + 1;
    s.tracker.sent(F_PARSE, internal ? INTERNAL : 0, {
      answered: () => {
        info.parsing = 0;
        s.owner.knownStatements.add(name);
        s.unhold();
      },
      skipped: () => {
        if (this.prepared.get(name) === stmt) this.prepared.delete(name);
        s.owner.knownStatements.delete(name);
        info.parsing = 0;
        if (!internal) info.failed = true;
        forget();
        s.unhold();
      },
    });
    s.owner.stats.prepared_statements_prepared++;
    s.outbox!.send(info.parse);
    // PostgreSQL fixes a statement's result shape when it is parsed; learn it now (the answer is swallowed), so that
    // wherever the client uses it later, a server statement of another shape is refused as PostgreSQL would.
    s.tracker.sent(F_DESCRIBE, INTERNAL, new ShapeCapture(stmt, info, null));
    s.outbox!.send(describeStatement(name));
  }

  /**
   * A client's Bind or Describe of its statement, renamed. Where this server lacks the statement it is prepared first;
   * where the client was shown a shape, the server's statement must have that shape, or the client gets PostgreSQL's
   * stale-plan error. Returns false when the shape must first be learned: the server holds the client until it is.
   */
  use(tag: number, info: PreparedInfo, renamed: Uint8Array, original: Uint8Array): boolean {
    const s = this.server;
    if (info.failed) {
      // Its Parse never happened: PostgreSQL answers the name as unknown (26000), as it would directly.
      s.tracker.sent(tag);
      s.outbox!.send(original);
      return true;
    }
    if (info.parsing > 0 && s.tracker.syncsSent >= info.parsing) {
      // Its Parse is still in flight in an earlier Sync group and may yet be skipped: wait for its answer.
      s.hold();
      return false;
    }
    if (s.tracker.skipTillSync) {
      // PostgreSQL discards it anyway; it only has to keep its place.
      s.tracker.sent(tag);
      s.outbox!.send(renamed);
      return true;
    }
    if (info.lazy) {
      // The Parse pgbun answered happens now, here, as parse() makes it: a plan made now. If it fails, this request
      // shows the error, and the next use tries again.
      info.lazy = false;
      this.parse(info, () => (info.lazy = true), true);
    }
    const name = info.serverName;
    let stmt = this.prepared.get(name);
    if (stmt !== undefined) {
      this.prepared.delete(name);
      this.prepared.set(name, stmt);
      this.lastTouched = null;
      s.owner.stats.prepared_statements_hits++;
    } else {
      s.owner.stats.prepared_statements_misses++;
      if (this.stale.delete(name)) this.close(name, undefined);
      this.evictFor(1);
      stmt = this.add(name);
      const added = stmt;
      s.tracker.sent(F_PARSE, INTERNAL, {
        skipped: () => {
          if (this.prepared.get(name) === added) this.prepared.delete(name);
        },
      });
      s.owner.stats.prepared_statements_prepared++;
      s.outbox!.send(info.shape === null ? info.parse : parseWithTypes(info.parse, info.shape));
    }
    if (info.shape !== null && stmt.shape === null) {
      // Learn what this server's statement looks like before the client's request runs on it.
      s.tracker.sent(F_DESCRIBE, INTERNAL, new ShapeCapture(stmt, null, () => s.unhold()));
      s.tracker.sent(F_FLUSH);
      s.outbox!.send(describeStatementAndFlush(name));
      s.hold();
      return false;
    }
    if (info.shape !== null && stmt.shape !== info.shape) {
      this.failWith(STALE_PLAN_ERROR);
      return true;
    }
    const capture = tag === F_DESCRIBE ? new ShapeCapture(stmt, info, null) : stmt;
    s.tracker.sent(tag, 0, capture);
    s.outbox!.send(renamed);
    return true;
  }

  /** prepare_unnamed: prepares a statement here for a client's unnamed Parse; PostgreSQL's answer is the client's. */
  prepareHere(name: string, parse: Uint8Array): ServerStatement {
    const s = this.server;
    if (this.stale.delete(name)) this.close(name, undefined);
    this.evictFor(1);
    const stmt = this.add(name);
    s.owner.stats.prepared_statements_misses++;
    s.owner.stats.prepared_statements_prepared++;
    s.tracker.sent(F_PARSE, 0, {
      answered: () => s.owner.knownStatements.add(name),
      skipped: () => {
        if (this.prepared.get(name) === stmt) this.prepared.delete(name);
      },
    });
    s.outbox!.send(parse);
    return stmt;
  }

  /** A statement used again: most recently used now. */
  touch(stmt: ServerStatement): void {
    this.server.owner.stats.prepared_statements_hits++;
    if (stmt === this.lastTouched) return; // already the most recently used
    this.prepared.delete(stmt.name);
    this.prepared.set(stmt.name, stmt);
    this.lastTouched = stmt;
  }

  /** A statement found stale: pgbun closes it (the caller sends the Close) and prepares it afresh when next needed. */
  drop(stmt: ServerStatement): void {
    if (this.prepared.get(stmt.name) === stmt) this.prepared.delete(stmt.name);
  }

  private add(name: string): ServerStatement {
    const stmt = new ServerStatement(name);
    this.lastTouched = null;
    this.prepared.set(name, stmt);
    return stmt;
  }

  /** Makes room for `n` more statements, closing the least recently used. */
  private evictFor(n: number): void {
    while (this.prepared.size + n > this.server.owner.maxPrepared && this.prepared.size > 0) {
      const oldest = this.prepared.keys().next().value!;
      const stmt = this.prepared.get(oldest);
      this.prepared.delete(oldest);
      this.server.owner.stats.prepared_statements_evictions++;
      this.close(oldest, stmt);
    }
  }

  /** Closes a statement here; if PostgreSQL skips the Close, the statement is still here and is remembered again. */
  private close(name: string, stmt: ServerStatement | undefined): void {
    this.prepared.delete(name);
    this.server.tracker.sent(F_CLOSE, INTERNAL, {
      skipped: () => {
        // A Parse of the same name after it is skipped too, and leaves this entry alone.
        if (stmt !== undefined) this.prepared.set(name, stmt);
        else this.stale.add(name);
      },
    });
    this.server.outbox!.send(closeStatement(name));
  }
}

const CLOSE_COMPLETE = Uint8Array.of(B_CLOSE_COMPLETE, 0, 0, 0, 4);

/** CloseComplete for a client's Close of its statement; if PostgreSQL would have skipped the Close, the name comes back. */
export function closeCompleteFor(restore: () => void): MadeUpReply {
  return { bytes: () => CLOSE_COMPLETE, skipped: restore };
}
