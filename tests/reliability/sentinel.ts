// The query each fuzz input is followed by: it ends what the input left open, and its answer names the input.

import type { FuzzInput } from "./fuzz-inputs.ts";
import { encode, fe } from "./wire.ts";
import type { Reply } from "./wire-client.ts";

const MARKER = /fz-(\d+)/;

/** CopyFail if the input may have left COPY FROM STDIN running, Sync, then ROLLBACK and a row naming the input. */
export function sentinel(input: FuzzInput): Uint8Array {
  return encode([...(input.inCopy ? [fe.copyFail("fuzz")] : []), fe.sync(), fe.query(`ROLLBACK; SELECT 'fz-${input.id}'`)]);
}

/**
 * The input a sentinel's DataRow names, or null for any other reply. A row naming another input is another
 * client's answer delivered on this connection.
 */
export function sentinelOf(r: Reply): number | null {
  if (r.tag !== "D") return null;
  const m = MARKER.exec(Buffer.from(r.body).toString("latin1"));
  return m ? Number(m[1]) : null;
}
