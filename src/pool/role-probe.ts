// One health check of one host: log in as the pools do, ask pg_is_in_recovery() and the WAL positions, leave.
// The way libpq's target_session_attrs=read-write decides, on a short connection outside the pools.

import { oneShotSession } from "../backend/one-shot-session.ts";
import type { ServerTarget } from "../backend/server-types.ts";
import { describeTarget } from "../net/address.ts";
import { query } from "../protocol/messages.ts";

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

/** "16/B374D848" as a number of bytes. */
export function parseLsn(text: string): bigint | null {
  const m = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/.exec(text);
  return m === null ? null : (BigInt(`0x${m[1]}`) << 32n) | BigInt(`0x${m[2]}`);
}

export async function probeRole(target: ServerTarget, timeoutMs: number): Promise<ProbeResult> {
  const where = describeTarget(target.host, target.port);
  const r = await oneShotSession(target, "pgbun role check", timeoutMs, ROLE_QUERY);
  if (!r.ok) {
    switch (r.stage) {
      case "connect":
        return { ok: false, error: r.message.startsWith("cannot connect") ? r.message : `${where}: ${r.message}`, code: null };
      case "auth":
        // pgbun holds no usable secret for this user (a SCRAM verifier no client has proven yet): as PostgreSQL's 28000.
        return { ok: false, error: `login as "${target.user}" on ${where}: ${r.message}`, code: "28000" };
      default: {
        const what = r.stage === "request" ? "role check query" : `login as "${target.user}"`;
        return { ok: false, error: `${what} on ${where} failed: ${r.message} (SQLSTATE ${r.code ?? "?"})`, code: r.code };
      }
    }
  }
  const row = r.row;
  if (row === null) return { ok: false, error: `${where}: the role check returned no row`, code: null };
  return {
    ok: true,
    inRecovery: row[0] === "t",
    lsn: row[1] === null || row[1] === undefined ? null : parseLsn(row[1]),
    replayBacklog: Number(row[2] ?? 0),
    lagSeconds: Number(row[3] ?? 0),
  };
}
