// /metrics for databases with several hosts: each host's role, health and lag, and the failovers and bans seen.

import type { Registry } from "../pool/registry.ts";

const esc = (v: string) => v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"');

export function hostMetrics(reg: Registry): string[] {
  const out: string[] = [];
  const now = Date.now();
  const family = (name: string, kind: "gauge" | "counter", help: string, samples: Array<[string, number]>) => {
    out.push(`# HELP pgbun_${name} ${help}`, `# TYPE pgbun_${name} ${kind}`);
    for (const [labels, value] of samples) out.push(`pgbun_${name}${labels} ${Number.isFinite(value) ? value : 0}`);
  };
  const hosts = [...reg.clusters.values()].flatMap((c) => c.hosts.map((h) => ({ c, h, labels: `database="${esc(c.name)}",host="${esc(h.key)}"` })));
  family("host_up", "gauge", "1 when the host's latest health check succeeded.", hosts.map(({ h, labels }) => [`{${labels}}`, h.healthy === true ? 1 : 0]));
  family(
    "host_role",
    "gauge",
    "1 for the host's current role (primary, replica, unknown).",
    hosts.flatMap(({ h, labels }) => (["primary", "replica", "unknown"] as const).map((r): [string, number] => [`{${labels},role="${r}"}`, h.role === r ? 1 : 0])),
  );
  family(
    "host_usable",
    "gauge",
    "1 when the host takes work now: the primary for writes, a replica for reads (up, not banned, within max_replica_lag).",
    hosts.map(({ c, h, labels }) => [`{${labels}}`, c.writable() === h || c.readable(now).includes(h) ? 1 : 0]),
  );
  family("host_lag_bytes", "gauge", "How far a replica's replay is behind the primary, in bytes of WAL.", hosts.map(({ h, labels }) => [`{${labels}}`, h.lagBytes ?? 0]));
  family("host_lag_seconds", "gauge", "A replica's replay delay, in seconds.", hosts.map(({ h, labels }) => [`{${labels}}`, h.lagSeconds ?? 0]));
  family("host_role_changes_total", "counter", "Role changes seen by the health checks.", hosts.map(({ h, labels }) => [`{${labels}}`, h.roleChanges]));
  family("host_bans_total", "counter", "Times the host was found down (and, as a replica, banned for ban_timeout).", hosts.map(({ h, labels }) => [`{${labels}}`, h.bans]));
  family(
    "failovers_total",
    "counter",
    "Times the primary moved from one host to another.",
    [...reg.clusters.values()].map((c) => [`{database="${esc(c.name)}"}`, c.failovers]),
  );
  return out;
}
