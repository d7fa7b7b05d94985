// Why a server connection is closed: a typed code for decisions and counters, with free detail only for the log.

export type CloseCode =
  /** The client left while a request was still being answered: the server's state is unknown. */
  | "client_left_mid_request"
  /** RECONNECT, a reload that changed the target, or the pool's servers were told to go once idle. */
  | "retired"
  /** The database was removed from the config, DISABLEd or is shutting down. */
  | "pool_draining"
  /** The pool holds more servers than default_pool_size (it was made smaller by a reload). */
  | "pool_shrunk"
  | "server_lifetime"
  | "server_idle_timeout"
  | "server_connect_timeout"
  /** A rollback, reset query or cancel did not finish within server_connect_timeout. */
  | "cleanup_timeout"
  /** A transaction was still open after the cleanup meant to end it. */
  | "transaction_left_open"
  /** The server sent a FATAL (or PANIC) error: it is going away. */
  | "server_fatal"
  /** The server's socket closed or failed. */
  | "server_closed"
  | "protocol_error"
  | "login_failed"
  /** PAUSE, KILL or SHUTDOWN from the admin console. */
  | "admin"
  /** The server's host stopped being the primary (failover, demotion) or was removed from the database's host list. */
  | "failover"
  | "internal_error";

export interface CloseReason {
  readonly code: CloseCode;
  readonly detail?: string;
}

const plain = new Map<CloseCode, CloseReason>();

/** A close reason; those without detail are shared constants. */
export function closeReason(code: CloseCode, detail?: string): CloseReason {
  if (detail !== undefined) return { code, detail };
  let r = plain.get(code);
  if (r === undefined) plain.set(code, (r = { code }));
  return r;
}

export function describeClose(r: CloseReason): string {
  return r.detail ? `${r.code}: ${r.detail}` : r.code;
}
