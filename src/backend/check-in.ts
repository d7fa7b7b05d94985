// The one decision about a server after each ReadyForQuery, when its client leaves, or when its cleanup ends:
// does it stay with its client, go back to the pool, need cleaning first, or close?

import type { PoolMode } from "../config/schema.ts";
import { TX_IDLE } from "../protocol/tags.ts";
import { type CloseReason, closeReason } from "./close-reason.ts";

export interface CheckInFacts {
  mode: PoolMode;
  /** linked: a client holds the server; left: its client just went away; none: no client (cleanup, login, cancel wait). */
  client: "linked" | "left" | "none";
  /** Nothing owed and no protocol state open (reply tracker). */
  quiet: boolean;
  /** Status byte of the last ReadyForQuery. */
  txStatus: number;
  /** The reset query must run before another client gets the server (session mode or server_reset_query_always). */
  resetDue: boolean;
  /** Cancel requests sent for this server that may still land. */
  cancelsInFlight: number;
  /** The server sent FATAL or its socket is going. */
  dead: boolean;
  /** Marked to close once free (RECONNECT, reload). */
  retire: boolean;
  /** Its pool refuses new work (removed, DISABLEd, shutting down). */
  draining: boolean;
  /** Its pool holds more servers than its size. */
  overSize: boolean;
  /** Older than server_lifetime. */
  expired: boolean;
  /** A client ran LISTEN on it: UNLISTEN * before another client gets it. */
  unlistenDue: boolean;
  /** Its client holds session state on it (advisory lock, temporary table, WITH HOLD cursor). */
  pinned: boolean;
}

export type CheckIn =
  /** Stay linked to the client (or, without one, stay where it is until the replies owed arrive). */
  | { readonly action: "keep" }
  /** Go back to the pool: to a waiting client or the idle list. */
  | { readonly action: "release" }
  /** Statement mode: a transaction block was left open. The client is told, the server rolled back, then checked in again. */
  | { readonly action: "refuse" }
  /** Before anyone else gets it: roll back, run the reset query and/or UNLISTEN *, then check in again. */
  | { readonly action: "clean"; readonly rollback: boolean; readonly reset: boolean; readonly unlisten: boolean }
  /** Out of reach until the cancels sent for it have landed, then checked in again. */
  | { readonly action: "wait" }
  | { readonly action: "close"; readonly reason: CloseReason };

const KEEP: CheckIn = { action: "keep" };
const RELEASE: CheckIn = { action: "release" };
const REFUSE: CheckIn = { action: "refuse" };
const WAIT: CheckIn = { action: "wait" };
/** The clean actions, indexed by rollback | reset << 1 | unlisten << 2. */
const CLEAN: CheckIn[] = Array.from({ length: 8 }, (_, i) => ({ action: "clean", rollback: (i & 1) !== 0, reset: (i & 2) !== 0, unlisten: (i & 4) !== 0 }));
const clean = (rollback: boolean, reset: boolean, unlisten: boolean) => CLEAN[(rollback ? 1 : 0) | (reset ? 2 : 0) | (unlisten ? 4 : 0)]!;
const close = (code: Parameters<typeof closeReason>[0]): CheckIn => ({ action: "close", reason: closeReason(code) });
const CLOSE = {
  fatal: close("server_fatal"),
  midRequest: close("client_left_mid_request"),
  leftOpen: close("transaction_left_open"),
  retired: close("retired"),
  draining: close("pool_draining"),
  shrunk: close("pool_shrunk"),
  lifetime: close("server_lifetime"),
};

export function checkIn(f: CheckInFacts): CheckIn {
  if (f.dead) return CLOSE.fatal;
  const idle = f.txStatus === TX_IDLE;
  switch (f.client) {
    case "linked":
      if (!f.quiet || f.mode === "session" || f.pinned) return KEEP;
      if (!idle) return f.mode === "statement" ? REFUSE : KEEP;
      break;
    case "left":
      if (!f.quiet) return CLOSE.midRequest;
      // A pinned client's state must go with it: the server is reset before anyone else gets it.
      if (!idle || f.resetDue || f.pinned || f.unlistenDue) return clean(!idle, f.resetDue || f.pinned, f.unlistenDue);
      break;
    case "none":
      if (!f.quiet) return KEEP;
      if (!idle) return CLOSE.leftOpen;
      break;
  }
  if (f.unlistenDue) return clean(false, false, true);
  if (f.cancelsInFlight > 0) return WAIT;
  if (f.retire) return CLOSE.retired;
  if (f.draining) return CLOSE.draining;
  if (f.overSize) return CLOSE.shrunk;
  if (f.expired) return CLOSE.lifetime;
  return RELEASE;
}
