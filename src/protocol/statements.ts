// Reading and rewriting the statement names in Parse, Bind, Describe and Close, and naming server statements by content.

import { readCString } from "./messages.ts";
import { B_NO_DATA, B_PARAMETER_DESCRIPTION, B_ROW_DESCRIPTION, F_BIND, F_CLOSE, F_DESCRIBE, F_FLUSH, F_PARSE } from "./tags.ts";
import { Writer } from "./writer.ts";

/** Where a message's statement name lies: [nameStart, nameEnd) in the buffer; null when the message names no statement. */
export function statementNameSpan(tag: number, buf: Uint8Array, start: number, end: number): [number, number] | null {
  let at = start + 5;
  switch (tag) {
    case F_PARSE:
      break;
    case F_BIND: {
      const nul = buf.indexOf(0, at);
      if (nul < 0 || nul >= end) return null;
      at = nul + 1; // skip the portal name
      break;
    }
    case F_DESCRIBE:
    case F_CLOSE:
      if (buf[at] !== 0x53) return null; // 'S' statement; 'P' portals pass through
      at++;
      break;
    default:
      return null;
  }
  const nul = buf.indexOf(0, at);
  if (nul < 0 || nul >= end) return null;
  return [at, nul];
}

/** The same message with the statement name at [nameStart, nameEnd) replaced. */
export function withStatementName(buf: Uint8Array, start: number, end: number, span: [number, number], name: string): Uint8Array {
  const w = new Writer(end - start + name.length * 3 + 8);
  w.start(buf[start]!);
  w.bytes(buf.subarray(start + 5, span[0]));
  w.cstr(name);
  w.bytes(buf.subarray(span[1] + 1, end));
  return w.end().take();
}

/** A message naming the unnamed statement (its name, empty, at `at`), naming `name` (ASCII bytes) instead. */
export function namingStatement(msg: Uint8Array, at: number, name: Uint8Array): Uint8Array {
  const out = new Uint8Array(msg.length + name.length);
  out.set(msg);
  out.copyWithin(at + name.length, at, msg.length);
  out.set(name, at);
  const len = out.length - 1;
  out[1] = len >>> 24;
  out[2] = (len >>> 16) & 0xff;
  out[3] = (len >>> 8) & 0xff;
  out[4] = len & 0xff;
  return out;
}

/**
 * The server-side name of a statement: the same query text and parameter types get the same name on every server.
 * `scopeSeed` (a hash of the client's settings, 0 for none) is what else decides what the text means: PostgreSQL plans a statement with the
 * search_path it was prepared under, and folds constants with its DateStyle and TimeZone, so clients whose settings
 * differ must not share it.
 */
export function serverStatementName(buf: Uint8Array, end: number, span: [number, number], scopeSeed: number | bigint = 0): string {
  const body = buf.subarray(span[1] + 1, end);
  const hash = Bun.hash(body, scopeSeed);
  return "pgbun_" + hash.toString(36) + "_" + body.length.toString(36);
}

export function closeStatement(name: string): Uint8Array {
  return new Writer(name.length + 8).start(F_CLOSE).byte(0x53).cstr(name).end().take();
}

/**
 * A Parse (as built for a server) with every parameter type given, as the shape's ParameterDescription lists them:
 * prepared elsewhere later, the statement keeps the types PostgreSQL inferred when the client prepared it.
 */
export function parseWithTypes(parse: Uint8Array, shape: string): Uint8Array {
  const m = /^t((?::\d+)*);/.exec(shape);
  if (m === null) return parse;
  const oids = m[1]!.split(":").slice(1).map(Number);
  const [name, afterName] = readCString(parse, 5, parse.length);
  const [text] = readCString(parse, afterName, parse.length);
  const w = new Writer(parse.length + oids.length * 4 + 8).start(F_PARSE).cstr(name).cstr(text).int16(oids.length);
  for (const oid of oids) w.int32(oid);
  return w.end().take();
}

export function describeStatement(name: string): Uint8Array {
  return new Writer(name.length + 8).start(F_DESCRIBE).byte(0x53).cstr(name).end().take();
}

/** Describe of a statement, then Flush: PostgreSQL answers at once, without ending the implicit transaction. */
export function describeStatementAndFlush(name: string): Uint8Array {
  return new Writer(name.length + 16).start(F_DESCRIBE).byte(0x53).cstr(name).end().start(F_FLUSH).end().take();
}

/**
 * The part of a statement's Describe answer that PostgreSQL fixes when the statement is prepared, as a comparable
 * string: parameter types from ParameterDescription; column names, types and typmods from RowDescription (not the
 * table OIDs, which change when a table is recreated with the same columns, as PostgreSQL's own check ignores them).
 */
export function shapePart(tag: number, buf: Uint8Array, start: number, end: number): string {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let at = start + 5;
  if (tag === B_NO_DATA) return "n;";
  if (tag === B_PARAMETER_DESCRIPTION) {
    const n = view.getInt16(at);
    at += 2;
    let out = "t";
    for (let i = 0; i < n && at + 4 <= end; i++, at += 4) out += ":" + view.getUint32(at);
    return out + ";";
  }
  if (tag !== B_ROW_DESCRIPTION) return "";
  const n = view.getInt16(at);
  at += 2;
  let out = "T";
  for (let i = 0; i < n; i++) {
    const nul = buf.indexOf(0, at);
    if (nul < 0 || nul + 19 > end) break;
    const name = readCString(buf, at, end)[0];
    at = nul + 1;
    out += ":" + name + "/" + view.getUint32(at + 6) + "/" + view.getInt32(at + 12);
    at += 18;
  }
  return out + ";";
}

/** A Bind naming a statement that cannot exist: PostgreSQL fails it, and skips to Sync exactly as for the real error. */
export const DOOMED_BIND = new Writer(32).start(F_BIND).cstr("").cstr("pgbun_no_such_statement").int16(0).int16(0).int16(0).end().take();

export function queryText(buf: Uint8Array, start: number, end: number): string {
  return readCString(buf, start + 5, end)[0];
}

/** A client's named statement: the name it has on servers, the Parse that creates it there, and its shape. */
export interface PreparedInfo {
  serverName: string;
  parse: Uint8Array;
  /** shapePart()s of the Describe answer the client was shown for it; null until it asked. */
  shape: string | null;
  /** While its Parse is unanswered: 1 + the number of Syncs sent before it; 0 once answered. */
  parsing: number;
  /** PostgreSQL skipped its Parse after an earlier error: the statement never existed. */
  failed: boolean;
  /** pgbun answered its Parse itself (the pool knew the statement): it is made, freshly, where it is first used. */
  lazy: boolean;
}
