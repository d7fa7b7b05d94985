// Several hosts per database, as libpq writes them ("10.0.0.1,10.0.0.2:5433,[::1]:5434,db3"), and max_replica_lag's
// "bytes or seconds" values.

export interface HostAddress {
  host: string;
  port: number;
}

/**
 * The hosts of a list, each with its own port or `defaultPort`; throws an Error saying what is wrong with one entry.
 * A TOML array holds the same entries, one per element.
 */
export function parseHostList(given: string | readonly string[], defaultPort: number): HostAddress[] {
  const entries = typeof given === "string" ? given.split(",") : given.flatMap((g) => g.split(","));
  const out: HostAddress[] = [];
  for (const raw of entries) {
    const entry = raw.trim();
    if (entry === "") throw new Error(`an empty entry in the host list ${JSON.stringify(given)}`);
    // A bare IPv6 address has colons of its own: only [v6]:PORT gives it a port.
    const m = entry.split(":").length > 2 && !entry.startsWith("[") ? [entry, entry, undefined] : /^(?:\[([^\]]+)\]|([^:[\]]+))(?::(\d{1,5}))?$/.exec(entry);
    if (m === null) throw new Error(`host entry ${JSON.stringify(entry)} is not HOST, HOST:PORT or [IPv6]:PORT`);
    const host = m[1] ?? m[2] ?? "";
    const port = m[3] === undefined ? defaultPort : Number(m[3]);
    if (port < 1 || port > 65535) throw new Error(`port ${port} of host entry ${JSON.stringify(entry)} is out of range (1-65535)`);
    if (out.some((h) => h.host === host && h.port === port)) throw new Error(`host ${host}:${port} is listed twice`);
    out.push({ host, port });
  }
  return out;
}

export function hostKey(h: HostAddress): string {
  return h.host.includes(":") ? `[${h.host}]:${h.port}` : `${h.host}:${h.port}`;
}

/** max_replica_lag: off, a number of bytes of WAL, or a number of seconds of replay delay. */
export type LagLimit = { kind: "off" } | { kind: "bytes"; bytes: number } | { kind: "seconds"; seconds: number };

/** "0" (off), "1048576", "16MB", "512kB", "1GB" (bytes), "5s", "500ms", "1min" (time). */
export const LAG_PATTERN = /^\s*(\d+(?:\.\d+)?)\s*(|b|B|kB|KB|MB|GB|ms|s|min)\s*$/;

const UNIT: Record<string, number> = { "": 1, b: 1, B: 1, kB: 1024, KB: 1024, MB: 1024 ** 2, GB: 1024 ** 3 };

export function parseLag(text: string): LagLimit {
  const m = LAG_PATTERN.exec(text);
  if (m === null) throw new Error(`max_replica_lag ${JSON.stringify(text)} is not bytes (16MB) or time (5s)`);
  const n = Number(m[1]);
  const unit = m[2]!;
  if (n === 0) return { kind: "off" };
  if (unit === "ms") return { kind: "seconds", seconds: n / 1000 };
  if (unit === "s") return { kind: "seconds", seconds: n };
  if (unit === "min") return { kind: "seconds", seconds: n * 60 };
  return { kind: "bytes", bytes: Math.round(n * UNIT[unit]!) };
}
