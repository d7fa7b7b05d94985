// auth_user + auth_query: a user pgbun does not know is looked up in PostgreSQL. pgbun logs in as auth_user and runs
// auth_query with the user name as $1 (extended protocol, so the name is never spliced into SQL); the answer's second
// column is the user's secret. Answers, "no such user" included, are kept briefly and shared by logins in flight.

import { oneShotSession } from "../backend/one-shot-session.ts";
import { log } from "../log.ts";
import { F_BIND, F_EXECUTE, F_PARSE, F_SYNC } from "../protocol/tags.ts";
import { Writer } from "../protocol/writer.ts";

export interface AuthQueryTarget {
  host: string;
  port: number;
  /** The database auth_query runs in. */
  database: string;
  /** auth_user, and its secret (undefined when the server lets it in without one). */
  user: string;
  password: string | undefined;
  query: string;
}

/** found: the user exists, with its secret (null: no usable password, e.g. expired). none: no such user. */
export type AuthQueryAnswer = { kind: "found"; secret: string | null } | { kind: "none" } | { kind: "error"; message: string };

/** Long enough to absorb a burst of logins, short enough that a changed or new password applies almost at once. */
export const AUTH_QUERY_CACHE_MS = 10_000;
const TIMEOUT_MS = 5_000;
const MAX_CACHED = 10_000;

const cache = new Map<string, { at: number; answer: AuthQueryAnswer }>();
const inFlight = new Map<string, Promise<AuthQueryAnswer>>();

/** The user's secret as auth_query gives it; errors (the query fails, auth_user cannot log in) are answers too. */
export function lookUpUser(t: AuthQueryTarget, user: string, now = Date.now()): Promise<AuthQueryAnswer> {
  const key = JSON.stringify([t.host, t.port, t.database, t.user, t.password ?? null, t.query, user]);
  const hit = cache.get(key);
  if (hit !== undefined && now - hit.at < AUTH_QUERY_CACHE_MS) return Promise.resolve(hit.answer);
  let p = inFlight.get(key);
  if (p === undefined) {
    p = runQuery(t, user).then((answer) => {
      inFlight.delete(key);
      // Failures are not kept: the next login tries again.
      if (answer.kind !== "error") {
        if (cache.size >= MAX_CACHED) cache.clear();
        cache.set(key, { at: Date.now(), answer });
      } else {
        log.error("auth", "auth_query failed", { user, auth_user: t.user, database: t.database, error: answer.message });
      }
      return answer;
    });
    inFlight.set(key, p);
  }
  return p;
}

async function runQuery(t: AuthQueryTarget, user: string): Promise<AuthQueryAnswer> {
  const r = await oneShotSession(t, "pgbun auth_query", TIMEOUT_MS, queryMessages(t.query, user));
  const where = `${t.host}:${t.port}`;
  if (!r.ok) {
    const why = r.stage === "connect" || r.stage === "auth" ? r.message : `${r.message} (SQLSTATE ${r.code ?? "?"})`;
    return { kind: "error", message: `auth_query as "${t.user}" on ${where}: ${why}` };
  }
  const row = r.row;
  if (row === null || row[0] === null) return { kind: "none" };
  if (row.length < 2) return { kind: "error", message: "auth_query must return two columns, the user name and the password" };
  return { kind: "found", secret: row[1] || null };
}

const w = new Writer(256);

/** Parse, Bind (the user name as text), Execute and Sync of the unnamed statement. */
function queryMessages(sql: string, user: string): Uint8Array {
  const name = new TextEncoder().encode(user);
  w.start(F_PARSE).cstr("").cstr(sql).int16(0).end();
  w.start(F_BIND).cstr("").cstr("").int16(0).int16(1).int32(name.length).bytes(name).int16(0).end();
  w.start(F_EXECUTE).cstr("").int32(0).end();
  w.start(F_SYNC).end();
  return w.take();
}

