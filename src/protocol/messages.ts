// Encoders for the messages pgbun writes itself, and decoders for the few it must read.

import { ProtocolError } from "./errors.ts";
import {
  AUTH_OK,
  B_AUTHENTICATION,
  B_BACKEND_KEY_DATA,
  B_ERROR_RESPONSE,
  B_NEGOTIATE_PROTOCOL_VERSION,
  B_NOTICE_RESPONSE,
  B_PARAMETER_STATUS,
  B_PARSE_COMPLETE,
  B_READY_FOR_QUERY,
  CANCEL_REQUEST_CODE,
  F_PASSWORD,
  F_QUERY,
  F_TERMINATE,
  PROTOCOL_3_0,
  TX_IDLE,
} from "./tags.ts";
import { readInt32, Writer } from "./writer.ts";

const decoder = new TextDecoder();
const w = new Writer(1024);

/** Reads a NUL-terminated string at `at`; returns it and the offset after the NUL. */
export function readCString(buf: Uint8Array, at: number, end: number): [string, number] {
  const nul = buf.indexOf(0, at);
  if (nul < 0 || nul >= end) throw new ProtocolError("unterminated string in message");
  return [decoder.decode(buf.subarray(at, nul)), nul + 1];
}

// ---- Backend messages pgbun sends to clients ----

export type Severity = "ERROR" | "FATAL" | "WARNING" | "NOTICE" | "LOG";

export interface ErrorFields {
  severity: Severity;
  code: string;
  message: string;
  detail?: string;
  hint?: string;
  /** Where in PostgreSQL's source the error comes from (F and R): drivers key retries on the routine. */
  file?: string;
  routine?: string;
}

function noticeLike(tag: number, f: ErrorFields): Uint8Array {
  w.start(tag).byte(0x53).cstr(f.severity).byte(0x56).cstr(f.severity).byte(0x43).cstr(f.code).byte(0x4d).cstr(f.message);
  if (f.detail) w.byte(0x44).cstr(f.detail);
  if (f.hint) w.byte(0x48).cstr(f.hint);
  if (f.file) w.byte(0x46).cstr(f.file);
  if (f.routine) w.byte(0x52).cstr(f.routine);
  return w.byte(0).end().take();
}

export function errorResponse(f: ErrorFields): Uint8Array {
  return noticeLike(B_ERROR_RESPONSE, f);
}

export function noticeResponse(f: ErrorFields): Uint8Array {
  return noticeLike(B_NOTICE_RESPONSE, f);
}

export const PARSE_COMPLETE = Uint8Array.of(B_PARSE_COMPLETE, 0, 0, 0, 4);
export const READY_IDLE = new Writer(8).start(B_READY_FOR_QUERY).byte(TX_IDLE).end().take();
export const AUTH_OK_MSG = new Writer(16).start(B_AUTHENTICATION).int32(AUTH_OK).end().take();
export const SSL_REFUSED = Uint8Array.of(0x4e); // 'N'

export function readyForQuery(status: number): Uint8Array {
  return w.start(B_READY_FOR_QUERY).byte(status).end().take();
}

export function authRequest(code: number, payload?: Uint8Array | string): Uint8Array {
  w.start(B_AUTHENTICATION).int32(code);
  if (typeof payload === "string") w.str(payload);
  else if (payload) w.bytes(payload);
  return w.end().take();
}

/** AuthenticationSASL: the list of mechanisms, each NUL-terminated, then an empty one. */
export function authSasl(mechanisms: string[]): Uint8Array {
  w.start(B_AUTHENTICATION).int32(10);
  for (const m of mechanisms) w.cstr(m);
  return w.byte(0).end().take();
}

export function parameterStatus(name: string, value: string): Uint8Array {
  return w.start(B_PARAMETER_STATUS).cstr(name).cstr(value).end().take();
}

export function backendKeyData(pid: number, secret: number): Uint8Array {
  return w.start(B_BACKEND_KEY_DATA).int32(pid).int32(secret).end().take();
}

export function negotiateProtocolVersion(minor: number, unsupported: string[]): Uint8Array {
  w.start(B_NEGOTIATE_PROTOCOL_VERSION).int32(PROTOCOL_3_0 | minor).int32(unsupported.length);
  for (const o of unsupported) w.cstr(o);
  return w.end().take();
}

// ---- Frontend messages pgbun sends to servers ----

export function startupMessage(params: Record<string, string>): Uint8Array {
  w.startUntagged().int32(PROTOCOL_3_0);
  for (const [k, v] of Object.entries(params)) w.cstr(k).cstr(v);
  return w.byte(0).end().take();
}

export function cancelRequest(pid: number, secret: number): Uint8Array {
  return w.startUntagged().int32(CANCEL_REQUEST_CODE).int32(pid).int32(secret).end().take();
}

export function query(sql: string): Uint8Array {
  return w.start(F_QUERY).cstr(sql).end().take();
}

export function passwordMessage(password: string): Uint8Array {
  return w.start(F_PASSWORD).cstr(password).end().take();
}

export function saslInitialResponse(mechanism: string, data: string): Uint8Array {
  const bytes = new TextEncoder().encode(data);
  return w.start(F_PASSWORD).cstr(mechanism).int32(bytes.length).bytes(bytes).end().take();
}

export function saslResponse(data: string): Uint8Array {
  return w.start(F_PASSWORD).str(data).end().take();
}

export const TERMINATE = new Writer(8).start(F_TERMINATE).end().take();

// ---- Decoders ----

export type StartupPacket =
  | { kind: "startup"; major: number; minor: number; params: Map<string, string> }
  | { kind: "ssl" }
  | { kind: "gssenc" }
  | { kind: "cancel"; pid: number; secret: number };

export function parseStartup(buf: Uint8Array, start: number, end: number): StartupPacket {
  if (end - start < 8) throw new ProtocolError("invalid startup packet length");
  const code = readInt32(buf, start + 4);
  if (code === 80877103) return { kind: "ssl" };
  if (code === 80877104) return { kind: "gssenc" };
  if (code === CANCEL_REQUEST_CODE) {
    if (end - start !== 16) throw new ProtocolError("invalid cancel request length");
    return { kind: "cancel", pid: readInt32(buf, start + 8), secret: readInt32(buf, start + 12) };
  }
  const major = code >>> 16;
  const minor = code & 0xffff;
  if (major !== 3) {
    throw new ProtocolError(
      `unsupported frontend protocol ${major}.${minor}: server supports 3.0 to 3.0`,
      "0A000",
    );
  }
  const params = new Map<string, string>();
  let at = start + 8;
  while (at < end && buf[at] !== 0) {
    const [key, next] = readCString(buf, at, end);
    const [value, after] = readCString(buf, next, end);
    params.set(key, value);
    at = after;
  }
  return { kind: "startup", major, minor, params };
}

/** Parses ErrorResponse/NoticeResponse fields into a map keyed by the field letter. */
export function parseErrorFields(buf: Uint8Array, start: number, end: number): Map<string, string> {
  const fields = new Map<string, string>();
  let at = start + 5;
  while (at < end && buf[at] !== 0) {
    const type = String.fromCharCode(buf[at]!);
    const [value, next] = readCString(buf, at + 1, end);
    fields.set(type, value);
    at = next;
  }
  return fields;
}

/** A DataRow's values as text (NULL as null). */
export function dataRowValues(buf: Uint8Array, start: number, end: number): Array<string | null> {
  const n = (buf[start + 5]! << 8) | buf[start + 6]!;
  const out: Array<string | null> = [];
  let at = start + 7;
  for (let i = 0; i < n && at + 4 <= end; i++) {
    const len = readInt32(buf, at);
    at += 4;
    if (len < 0) {
      out.push(null);
      continue;
    }
    out.push(decodeText(buf, at, at + len));
    at += len;
  }
  return out;
}

export function parseParameterStatus(buf: Uint8Array, start: number, end: number): [string, string] {
  const [name, next] = readCString(buf, start + 5, end);
  const [value] = readCString(buf, next, end);
  return [name, value];
}

/** The body of a password-type message ('p') as text, without its terminator if it has one. */
export function passwordText(buf: Uint8Array, start: number, end: number): string {
  let stop = end;
  if (stop > start + 5 && buf[stop - 1] === 0) stop--;
  return decoder.decode(buf.subarray(start + 5, stop));
}

/** SASLInitialResponse: mechanism name and the client-first-message. */
export function parseSaslInitial(buf: Uint8Array, start: number, end: number): { mechanism: string; data: string } {
  const [mechanism, next] = readCString(buf, start + 5, end);
  if (next + 4 > end) throw new ProtocolError("invalid SASLInitialResponse");
  const len = readInt32(buf, next);
  const dataStart = next + 4;
  const dataEnd = len < 0 ? dataStart : dataStart + len;
  if (dataEnd > end) throw new ProtocolError("invalid SASLInitialResponse length");
  return { mechanism, data: decoder.decode(buf.subarray(dataStart, dataEnd)) };
}

export function decodeText(buf: Uint8Array, start: number, end: number): string {
  return decoder.decode(buf.subarray(start, end));
}
