// auth_type = hba: each login is matched by connection type (Unix socket, TCP with or without TLS), database, user and
// client address against auth_hba_file's rules (config/hba-file.ts); the first matching line's method applies, and a
// login no line matches is refused.

import { ipBytes, type HbaRule, type NameList } from "../config/hba-file.ts";

export type { HbaMethod, HbaRule } from "../config/hba-file.ts";

export interface HbaLogin {
  /** Came in over the Unix socket. */
  local: boolean;
  tls: boolean;
  /** The client's IP address (ignored for local logins). */
  addr: string;
  database: string;
  user: string;
  /** replication=true is physical, replication=database logical; null for a normal login. */
  replication: "physical" | "logical" | null;
}

/** The method for a login, the rule that chose it (null: no line matched). */
export function matchHba(rules: readonly HbaRule[], login: HbaLogin): HbaRule | null {
  for (const r of rules) if (matches(r, login)) return r;
  return null;
}

function matches(r: HbaRule, l: HbaLogin): boolean {
  switch (r.type) {
    case "local":
      if (!l.local) return false;
      break;
    case "host":
      if (l.local) return false;
      break;
    case "hostssl":
      if (l.local || !l.tls) return false;
      break;
    case "hostnossl":
      if (l.local || l.tls) return false;
      break;
  }
  if (!databaseMatches(r.databases, l)) return false;
  if (!r.users.all && !r.users.names.has(l.user)) return false;
  if (r.address !== null && !l.local && !addressMatches(r.address, l.addr)) return false;
  return true;
}

/** As PostgreSQL: "replication" matches physical replication only, which no other keyword or name matches. */
function databaseMatches(d: NameList, l: HbaLogin): boolean {
  if (l.replication === "physical") return d.replication;
  return d.all || d.names.has(l.database) || (d.sameuser && l.database === l.user);
}

function addressMatches(a: { bytes: Uint8Array; mask: Uint8Array }, addr: string): boolean {
  const bytes = ipBytes(addr.replace(/^::ffff:(\d+\.\d+\.\d+\.\d+)$/i, "$1"));
  if (bytes === null || bytes.length !== a.bytes.length) return false;
  for (let i = 0; i < bytes.length; i++) if ((bytes[i]! & a.mask[i]!) !== (a.bytes[i]! & a.mask[i]!)) return false;
  return true;
}

