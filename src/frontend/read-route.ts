// read_write_split on the client side: whether the request waiting for a server may go to a replica, and, once it is
// there, which of the client's messages may follow it to that replica.

import { readCString } from "../protocol/messages.ts";
import { F_BIND, F_EXECUTE, F_FLUSH, F_FUNCTION_CALL, F_PARSE, F_QUERY, F_SYNC } from "../protocol/tags.ts";
import { readInt32 } from "../protocol/writer.ts";
import { beginsPlain, beginsReadOnly, endsTransaction, isRead, setsReadOnly, statements, type Tokens } from "./read-only-sql.ts";
import type { StatementAction } from "./statements.ts";

/** read: autocommit statements that cannot write; tx: a transaction that declared itself READ ONLY. */
export type ReadKind = "read" | "tx";

/** The end of a request: PostgreSQL answers everything before it, and pgbun may decide anew after it. */
export function endsRequest(tag: number): boolean {
  return tag === F_SYNC || tag === F_QUERY || tag === F_FLUSH || tag === F_FUNCTION_CALL;
}

/** The SQL text of a Parse message (after its statement name). */
function parseSql(m: Uint8Array, start: number, end: number): string {
  const [, at] = readCString(m, start + 5, end);
  return readCString(m, at, end)[0];
}

/**
 * Whether the first request of what waits for a server (up to its Sync or Query) may go to a replica, and as what.
 * Requests after it wait for the replica to answer and are routed in turn.
 * Only SQL pgbun can read counts: a Bind of a statement it does not know, a FunctionCall, a Flush-ended request
 * (the client holds the implicit transaction open) or anything pgbun answers itself sends the request to the primary.
 */
export function readKindOf(pending: ReadonlyArray<Uint8Array | StatementAction>): ReadKind | null {
  const sqls: string[] = [];
  let unnamed: string | null = null;
  let lastTag = 0;
  let runs = false;
  for (const item of pending) {
    if (lastTag === F_SYNC || lastTag === F_QUERY) break;
    // prepare_unnamed's actions carry the unnamed message as the client sent it: read as such.
    const bytes = item instanceof Uint8Array ? item : item.kind === "unnamed" ? item.msg : null;
    if (bytes === null) {
      const action = item as Exclude<StatementAction, { kind: "unnamed" }>;
      if (action.kind !== "parse" && action.kind !== "use") return null;
      sqls.push(parseSql(action.info.parse, 0, action.info.parse.length));
      lastTag = action.kind === "parse" ? F_PARSE : action.tag;
      if (lastTag === F_BIND) runs = true;
      continue;
    }
    for (let at = 0; at < bytes.length && lastTag !== F_SYNC && lastTag !== F_QUERY; ) {
      const tag = bytes[at]!;
      const end = at + 1 + readInt32(bytes, at + 1);
      lastTag = tag;
      switch (tag) {
        case F_QUERY:
          sqls.push(readCString(bytes, at + 5, end)[0]);
          break;
        case F_PARSE: {
          const [name, sqlAt] = readCString(bytes, at + 5, end);
          const sql = readCString(bytes, sqlAt, end)[0];
          if (name === "") unnamed = sql;
          sqls.push(sql);
          break;
        }
        case F_BIND: {
          // Named statements reach here only when pgbun does not follow them (max_prepared_statements = 0).
          const [, stmtAt] = readCString(bytes, at + 5, end);
          if (readCString(bytes, stmtAt, end)[0] !== "" || unnamed === null) return null;
          runs = true;
          break;
        }
        case F_EXECUTE:
          runs = true;
          break;
        case F_FUNCTION_CALL:
          return null;
      }
      at = end;
    }
  }
  // A request ends with Sync or Query; a Flush ends one that only describes (drivers ask a statement's parameter types
  // first, then bind and execute it): what follows up to Sync goes to the same replica.
  if (lastTag !== F_SYNC && lastTag !== F_QUERY && (lastTag !== F_FLUSH || runs)) return null;
  const list: Tokens[] = sqls.flatMap(statements);
  return kindOf(list);
}

/** Statements in order: a read-only transaction (nothing after its end), or reads only. */
export function kindOf(list: Tokens[]): ReadKind | null {
  if (list.length === 0) return null;
  const [first, second] = list;
  const tx = beginsReadOnly(first!) || (beginsPlain(first!) && second !== undefined && setsReadOnly(second));
  if (tx) {
    const end = list.findIndex(endsTransaction);
    return end < 0 || end === list.length - 1 ? "tx" : null;
  }
  return list.every(isRead) ? "read" : null;
}

/**
 * What a client linked to a replica may send it: the routed request, then each further request only once the replica
 * has answered everything before it. If the transaction ended meanwhile the replica goes back to the pool and the
 * waiting request is routed afresh (a write reaches the primary); if not, the request is part of the read-only
 * transaction and follows it to the replica.
 */
export class ReadRoute {
  /** Request ends that may still pass before the route closes. */
  private open = 1;

  /**
   * Whether a message may go to the replica now; a request answered with ReadyForQuery closes the route behind it. A
   * Flush does not: the client waits for what it flushed and then sends the rest, inside the same transaction.
   */
  pass(tag: number, serverQuiet: boolean): boolean {
    if (this.open === 0) {
      if (!serverQuiet) return false;
      this.open = 1;
    }
    if (tag === F_SYNC || tag === F_QUERY || tag === F_FUNCTION_CALL) this.open--;
    return true;
  }

  /** The replica has answered everything and is still this client's (inside the transaction): one more request may go. */
  reopen(): void {
    this.open = 1;
  }
}

/** How much of a slice of whole messages may go to the server now: all of it without a route. */
export function routeCut(msg: Uint8Array, route: ReadRoute | null, serverQuiet: boolean): number {
  if (route === null) return msg.length;
  let cut = 0;
  // Once a message has gone, the server owes its answer: it is no longer quiet.
  while (cut < msg.length && route.pass(msg[cut]!, serverQuiet && cut === 0)) cut += 1 + readInt32(msg, cut + 1);
  return cut;
}
