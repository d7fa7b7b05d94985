// One health check of one host: log in as the pools do, ask pg_is_in_recovery() and the WAL positions, leave.
// The way libpq's target_session_attrs=read-write decides, on a short connection outside the pools.

import { ServerAuth } from "../backend/server-auth.ts";
import type { ServerTarget } from "../backend/server-types.ts";
import { describeTarget } from "../net/address.ts";
import { oneShot } from "../net/one-shot.ts";
import { Framer } from "../protocol/framer.ts";
import { parseErrorFields, query, startupMessage, TERMINATE } from "../protocol/messages.ts";
import { B_AUTHENTICATION, B_DATA_ROW, B_ERROR_RESPONSE, B_READY_FOR_QUERY } from "../protocol/tags.ts";
import { readInt16, readInt32 } from "../protocol/writer.ts";

export type ProbeResult =
  | {
      ok: true;
      inRecovery: boolean;
      /** The primary's current WAL position, or a replica's replayed position. */
      lsn: bigint | null;
      /** A replica's received-but-not-replayed WAL, in bytes. */
      replayBacklog: number;
      /** A replica's replay delay in seconds (0 when it has replayed all it received). */
      lagSeconds: number;
    }
  | { ok: false; error: string; /** SQLSTATE of a login or query error, when PostgreSQL sent one. */ code: string | null };

// One statement, valid on a primary and on a replica; a replica's replay delay counts only while it has WAL left to
// replay, or an idle primary would make every replica look ever further behind.
const ROLE_SQL =
  "SELECT pg_is_in_recovery(), " +
  "CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END, " +
  "COALESCE(pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()), 0), " +
  "CASE WHEN pg_is_in_recovery() AND pg_last_wal_receive_lsn() IS DISTINCT FROM pg_last_wal_replay_lsn() " +
  "THEN COALESCE(extract(epoch FROM now() - pg_last_xact_replay_timestamp()), 0) ELSE 0 END";
const ROLE_QUERY = query(ROLE_SQL);
const utf8 = new TextDecoder();

/** "16/B374D848" as a number of bytes. */
export function parseLsn(text: string): bigint | null {
  const m = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/.exec(text);
  return m === null ? null : (BigInt(`0x${m[1]}`) << 32n) | BigInt(`0x${m[2]}`);
}

function dataRow(buf: Uint8Array, start: number): Array<string | null> {
  const n = readInt16(buf, start + 5);
  const out: Array<string | null> = [];
  let at = start + 7;
  for (let i = 0; i < n; i++) {
    const len = readInt32(buf, at);
    at += 4;
    if (len < 0) out.push(null);
    else {
      out.push(utf8.decode(buf.subarray(at, at + len)));
      at += len;
    }
  }
  return out;
}

export function probeRole(target: ServerTarget, timeoutMs: number): Promise<ProbeResult> {
  const auth = new ServerAuth(target.user, target.password);
  const framer = new Framer(1 << 20);
  const where = describeTarget(target.host, target.port);
  let row: Array<string | null> | null = null;
  let asked = false;
  return oneShot<ProbeResult>(target.host, target.port, timeoutMs, {
    hello: startupMessage({ user: target.user, database: target.database, application_name: "pgbun role check" }),
    failed: (why) => ({ ok: false, error: why.startsWith("cannot connect") ? why : `${where}: ${why}`, code: null }),
    data(chunk, send, finish) {
      framer.feed(chunk, {
        frame(tag, buf, start, end) {
          switch (tag) {
            case B_AUTHENTICATION: {
              let reply: Uint8Array | null;
              try {
                reply = auth.handle(buf, start, end);
              } catch (err) {
                // pgbun holds no usable secret for this user (a SCRAM verifier no client has proven yet): as PostgreSQL's 28000.
                return finish({ ok: false, error: `login as "${target.user}" on ${where}: ${(err as Error).message}`, code: "28000" });
              }
              if (reply !== null) send(reply);
              return;
            }
            case B_ERROR_RESPONSE: {
              const f = parseErrorFields(buf, start, end);
              const code = f.get("C") ?? null;
              const what = asked ? "role check query" : `login as "${target.user}"`;
              finish({ ok: false, error: `${what} on ${where} failed: ${f.get("M") ?? "no message"} (SQLSTATE ${code ?? "?"})`, code });
              return;
            }
            case B_DATA_ROW:
              row = dataRow(buf, start);
              return;
            case B_READY_FOR_QUERY:
              if (!asked) {
                asked = true;
                send(ROLE_QUERY);
                return;
              }
              send(TERMINATE);
              if (row === null) return finish({ ok: false, error: `${where}: the role check returned no row`, code: null });
              finish({
                ok: true,
                inRecovery: row[0] === "t",
                lsn: row[1] === null || row[1] === undefined ? null : parseLsn(row[1]),
                replayBacklog: Number(row[2] ?? 0),
                lagSeconds: Number(row[3] ?? 0),
              });
              return;
          }
        },
      });
    },
  });
}
