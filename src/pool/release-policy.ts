// The one decision poolers most often get wrong: may this server go back to the pool now?

import type { PoolMode } from "../config/schema.ts";
import type { CopyState } from "../backend/reply-tracker.ts";

export interface ServerProtocolState {
  /** Status byte of the last ReadyForQuery: 'I', 'T' or 'E'. */
  txStatus: "I" | "T" | "E";
  /** Requests forwarded and not yet fully answered. */
  owed: number;
  /** Extended-protocol messages sent since the last Sync (PostgreSQL keeps an implicit transaction open). */
  inExtended: boolean;
  /** PostgreSQL is discarding messages until a Sync after an extended-protocol error. */
  skipTillSync: boolean;
  copy: CopyState;
}

/**
 * keep: stay linked to the client.
 * release: hand the server back to the pool.
 * refuse: statement mode saw a transaction block left open; roll it back and tell the client.
 */
export type ReleaseDecision = "keep" | "release" | "refuse";

export function releaseDecision(mode: PoolMode, s: ServerProtocolState): ReleaseDecision {
  if (mode === "session") return "keep";
  if (s.owed > 0 || s.inExtended || s.skipTillSync || s.copy !== "none") return "keep";
  if (s.txStatus === "I") return "release";
  return mode === "statement" ? "refuse" : "keep";
}
