// What pgbun does instead of forwarding a client's statement commands in transaction and statement mode.

import { closeCompleteFor } from "../backend/statement-cache.ts";
import type { MadeUpReply } from "../backend/reply-tracker.ts";
import type { UnnamedMessage } from "../backend/unnamed-reuse.ts";
import type { ServerConn } from "../backend/server.ts";
import { errorResponse, PARSE_COMPLETE, readyForQuery } from "../protocol/messages.ts";
import { queryText, serverStatementName, statementNameSpan, withStatementName, type PreparedInfo } from "../protocol/statements.ts";
import { F_CLOSE, F_PARSE } from "../protocol/tags.ts";

export type StatementAction =
  /** Parse of a new named statement. */
  | { kind: "parse"; info: PreparedInfo; forget: () => void }
  /** Bind or Describe of a known statement, with the name rewritten. */
  | { kind: "use"; tag: number; info: PreparedInfo; msg: Uint8Array; original: Uint8Array }
  /** A request PostgreSQL would refuse; the server is made to fail likewise and the client sees `error`. */
  | { kind: "fail"; error: Uint8Array }
  /** A reply pgbun makes up, in its place among the server's replies. */
  | { kind: "reply"; reply: MadeUpReply }
  /** prepare_unnamed: Parse, Bind, Describe or Close of the unnamed statement, as sent; the server decides (unnamed-reuse.ts). */
  | ({ kind: "unnamed" } & UnnamedMessage);

interface StatementOwner {
  readonly statements: Map<string, PreparedInfo>;
}



/** The client, as its protocol-level statements need it. */
interface ClientStatements extends StatementOwner {
  /** What server statements are scoped by: the settings that change what a text means. */
  statementSeed(): number | bigint;
  /** Whether a Parse of this server statement may be answered at once: no server linked, nothing waiting, and the
   *  pool's servers prepared it before. */
  parseAnswerable(serverName: string): boolean;
  /** prepare_unnamed is on for it. */
  readonly prepareUnnamed: boolean;
  /** prepare_unnamed: its last unnamed Parse's text and types, and their server name (most clients repeat a few). */
  lastUnnamed: { body: Uint8Array; seed: number | bigint; name: string } | null;
}

/** The longest unnamed Parse (text and types) whose server name a client keeps. */
const MAX_KEPT_TEXT = 8192;

/** The server name of an unnamed Parse's content; the last one's is kept, as drivers send the same text again and again. */
function unnamedServerName(owner: ClientStatements, buf: Uint8Array, end: number, span: [number, number]): string {
  const seed = owner.statementSeed();
  const from = span[1] + 1;
  const last = owner.lastUnnamed;
  if (last !== null && last.seed === seed && last.body.length === end - from) {
    const body = last.body;
    let i = 0;
    while (i < body.length && body[i] === buf[from + i]) i++;
    if (i === body.length) return last.name;
  }
  const name = serverStatementName(buf, end, span, seed);
  // Only short texts are kept: a client's huge statement is not copied to stay with it while it idles.
  owner.lastUnnamed = end - from <= MAX_KEPT_TEXT ? { body: buf.slice(from, end), seed, name } : null;
  return name;
}

/** Named statements one client may hold in transaction and statement mode: pgbun keeps each one's Parse. */
const MAX_CLIENT_STATEMENTS = 10_000;
const TOO_MANY_STATEMENTS = errorResponse({
  severity: "ERROR",
  code: "54000",
  message: `pgbun: more than ${MAX_CLIENT_STATEMENTS} prepared statements on one connection`,
  hint: "close (DEALLOCATE) statements the application no longer uses, or use pool_mode = session",
});

/** CloseComplete for a name the client never prepared: PostgreSQL answers that too, without an error. */
const CLOSE_UNKNOWN: MadeUpReply = closeCompleteFor(() => {});

const utf8 = new TextDecoder();

/** A protocol message naming one of the client's statements, turned into what pgbun does instead; null to forward as it is. */
export function protocolStatementAction(owner: ClientStatements, tag: number, buf: Uint8Array, start: number, end: number): StatementAction | null {
  const span = statementNameSpan(tag, buf, start, end);
  if (span === null) return null;
  if (span[0] === span[1]) {
    // Unnamed statements pass through untouched, unless prepare_unnamed may stand a server statement in for them.
    if (!owner.prepareUnnamed) return null;
    const serverName = tag === F_PARSE ? unnamedServerName(owner, buf, end, span) : "";
    return { kind: "unnamed", tag, msg: buf.subarray(start, end), chunk: buf, start, serverName };
  }
  const name = utf8.decode(buf.subarray(span[0], span[1]));
  if (tag === F_PARSE) {
    if (owner.statements.has(name)) {
      return { kind: "fail", error: errorResponse({ severity: "ERROR", code: "42P05", message: `prepared statement "${name}" already exists` }) };
    }
    if (owner.statements.size >= MAX_CLIENT_STATEMENTS) return { kind: "fail", error: TOO_MANY_STATEMENTS };
    // Settings that change what the text means (search_path, DateStyle, TimeZone...) are part of its identity.
    const serverName = serverStatementName(buf, end, span, owner.statementSeed());
    const info: PreparedInfo = {
      serverName,
      parse: withStatementName(buf, start, end, span, serverName),
      shape: null,
      parsing: 0,
      failed: false,
      lazy: false,
    };
    owner.statements.set(name, info);
    const forget = () => {
      if (owner.statements.get(name) === info) owner.statements.delete(name);
    };
    if (owner.parseAnswerable(serverName)) {
      // Known to parse: answered now, made on whichever server its first Bind or Describe reaches. A client preparing
      // synchronously (pgbench -M prepared) never waits here behind clients holding every server.
      info.lazy = true;
      return { kind: "reply", reply: { bytes: () => PARSE_COMPLETE, skipped: forget } };
    }
    return { kind: "parse", info, forget };
  }
  if (tag === F_CLOSE) {
    // Closing only forgets this client's name: the server-side statement may serve others.
    const closed = owner.statements.get(name);
    if (closed === undefined) return { kind: "reply", reply: CLOSE_UNKNOWN };
    owner.statements.delete(name);
    return {
      kind: "reply",
      reply: closeCompleteFor(() => {
        if (!owner.statements.has(name)) owner.statements.set(name, closed);
      }),
    };
  }
  const info = owner.statements.get(name);
  // Unknown names go on unchanged: the server answers 26000 "prepared statement ... does not exist" as it would directly.
  if (info === undefined) return null;
  return { kind: "use", tag, info, msg: withStatementName(buf, start, end, span, info.serverName), original: buf.subarray(start, end) };
}


const DEALLOCATE_ALL = /^\s*(?:DEALLOCATE\s+(?:PREPARE\s+)?ALL|DISCARD\s+ALL)\s*;?\s*$/i;
const DEALLOCATE_ONE = /^\s*DEALLOCATE\s+(?:PREPARE\s+)?(?:"((?:[^"]|"")+)"|([A-Za-z_][\w$]*))\s*;?\s*$/i;

const commandComplete = (tag: string) => {
  const body = new TextEncoder().encode(tag);
  const out = new Uint8Array(body.length + 6);
  out[0] = 0x43;
  new DataView(out.buffer).setInt32(1, body.length + 5);
  out.set(body, 5);
  return out;
};

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/**
 * SQL that touches prepared statements, in a simple Query. DEALLOCATE ALL and DISCARD ALL go to the server (which then
 * drops its statements) and empty the client's names; DEALLOCATE of a client's statement is answered here. SQL-level
 * PREPARE goes to the server, which then keeps its client until the statement is gone (frontend/session-state.ts).
 */
export function sqlStatementCommand(owner: StatementOwner, buf: Uint8Array, start: number, end: number): StatementAction | null {
  const first = buf[start + 5]! | 0x20;
  // Cheap filter: only queries starting with d, p, e or whitespace can be one of these.
  if (first !== 0x64 && first !== 0x70 && first !== 0x65 && first !== 0x20 && first !== 0x29 && first !== 0x2a && first !== 0x2d) return null;
  const sql = queryText(buf, start, end);
  if (DEALLOCATE_ALL.test(sql)) {
    owner.statements.clear();
    return null;
  }
  const one = DEALLOCATE_ONE.exec(sql);
  if (one) {
    const name = one[1] !== undefined ? one[1].replace(/""/g, '"') : one[2]!.toLowerCase();
    const known = owner.statements.has(name) ? name : one[1] === undefined && owner.statements.has(one[2]!) ? one[2]! : null;
    if (known === null) return null; // the server answers 26000 as PostgreSQL would
    owner.statements.delete(known);
    const done = commandComplete("DEALLOCATE");
    return { kind: "reply", reply: { bytes: (status) => concat(done, readyForQuery(status)) } };
  }
  return null;
}

/** Carries out a statement action on the server; false when the server holds the client first (the action must run again). */
export function runStatementAction(server: ServerConn, a: StatementAction): boolean {
  const open = server.unnamed.open;
  if (open !== null && (a.kind !== "unnamed" || open.syncSent)) {
    // A reused unnamed statement awaits its outcome, and only its own group's requests can be sent again: this waits.
    server.unnamed.interruptOpen();
    return false;
  }
  switch (a.kind) {
    case "unnamed":
      server.unnamed.run(a);
      return true;
    case "parse":
      server.statements.parse(a.info, a.forget);
      return true;
    case "use":
      return server.statements.use(a.tag, a.info, a.msg, a.original);
    case "fail":
      server.statements.failWith(a.error);
      return true;
    case "reply":
      server.statements.reply(a.reply);
      return true;
  }
}
