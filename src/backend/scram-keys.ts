// Client keys recovered from clients' SCRAM proofs, by the stored verifier they were proven against. A verifier alone
// cannot log in anywhere; once a client has proven it knows the password, pgbun can log in to a server that stores the
// same verifier on that client's behalf, as PgBouncer does with auth_file and auth_query secrets.

import { parseScramVerifier, type ScramClientKeys } from "../protocol/scram.ts";

/** Bounded: one entry per distinct verifier that clients have logged in with. */
const MAX_ENTRIES = 10_000;
const keys = new Map<string, ScramClientKeys>();

/** A client proved `clientKey` against `verifier` (its SHA-256 is the verifier's StoredKey). */
export function rememberScramKeys(verifier: string, clientKey: Uint8Array): void {
  if (keys.has(verifier)) return;
  const v = parseScramVerifier(verifier);
  if (v === null) return;
  if (keys.size >= MAX_ENTRIES) keys.clear();
  keys.set(verifier, { clientKey, serverKey: v.serverKey, salt: v.salt, iterations: v.iterations });
}

/** The keys to log in with for this verifier, or null when no client has proven it yet. */
export function scramKeysFor(verifier: string): ScramClientKeys | null {
  return keys.get(verifier) ?? null;
}
