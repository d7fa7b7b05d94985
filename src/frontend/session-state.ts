// Statements that leave state on a server in transaction and statement mode: what a client's SQL may have left
// behind (so pgbun checks and keeps the client on its server while it lasts), and session SETs pgbun follows.

/** SQL whose text may create session state (a session advisory lock, a temporary object, a WITH HOLD cursor, an SQL PREPARE). */
const MAY_PIN = /advisory_lock|\btemp(?:orary)?\b|\bwith\s+hold\b|\bprepare\b/i;
/** A session-level SET or RESET of one setting (not SET LOCAL, SET TRANSACTION or SET SESSION CHARACTERISTICS). */
const SET_ONE = /^\s*(?:set\s+(?:session\s+)?(?!local\b|transaction\b|session\s+characteristics\b)("(?:[^"]|"")+"|[A-Za-z_][\w.$]*)\s*(?:to\b|=)|reset\s+(?!all\b)("(?:[^"]|"")+"|[A-Za-z_][\w.$]*))/i;
/** Settings pgbun already keeps per client, or that SET cannot change this way. */
const NOT_FOLLOWED = new Set(["role", "session_authorization", "transaction_isolation", "transaction_read_only", "transaction_deferrable"]);

export interface SessionEffects {
  /** The text may have left session state: check after the transaction whether the server still holds any. */
  mayPin: boolean;
  /** Settings SET or RESET at session level: read back after the transaction and kept on every server. */
  settings: string[] | null;
}

/** Looks at a simple Query or a Parse's text; null when it can leave nothing behind. */
export function sessionEffects(text: string): SessionEffects | null {
  const mayPin = MAY_PIN.test(text);
  let settings: string[] | null = null;
  if (/\b(?:set|reset)\b/i.test(text)) {
    for (const stmt of text.split(";")) {
      const m = SET_ONE.exec(stmt);
      if (m === null) continue;
      const raw = m[1] ?? m[2]!;
      const name = raw.startsWith('"') ? raw.slice(1, -1).replace(/""/g, '"') : raw.toLowerCase();
      if (!NOT_FOLLOWED.has(name)) (settings ??= []).push(name);
    }
  }
  return mayPin || settings !== null ? { mayPin, settings } : null;
}

/** One query telling whether a server still holds session state: session advisory locks, temporary objects, WITH HOLD
 *  cursors, statements prepared with SQL PREPARE. */
export const PIN_CHECK_SQL =
  "SELECT (SELECT count(*) FROM pg_catalog.pg_locks WHERE locktype = 'advisory' AND pid = pg_catalog.pg_backend_pid())" +
  " + (SELECT count(*) FROM pg_catalog.pg_class WHERE relnamespace = pg_catalog.pg_my_temp_schema())" +
  " + (SELECT count(*) FROM pg_catalog.pg_cursors WHERE is_holdable)" +
  " + (SELECT count(*) FROM pg_catalog.pg_prepared_statements WHERE from_sql)";
