// SHOW commands of the admin console, with PgBouncer's column names and meanings (pgbun's own columns last).

import { SETTINGS } from "../config/schema.ts";
import { hostKey } from "../config/hosts.ts";
import type { Socket } from "bun";
import { serverTlsLabel } from "../backend/server-tls.ts";
import type { ClientConn } from "../frontend/client.ts";
import { tlsLabel } from "../net/tls.ts";
import { snapshotAll, TOTAL_KEYS, totalsByDatabase } from "../metrics/snapshot.ts";
import type { Registry } from "../pool/registry.ts";
import { cameViaUnixSocket } from "../frontend/unix-clients.ts";
import { replicationOf } from "../frontend/replication.ts";
import { int8, resultSet, text, type Cell, type Column } from "./result-set.ts";
import { VERSION } from "../version.ts";
import type { StatsWindow } from "../metrics/stats-window.ts";

const ts = (ms: number) => new Date(ms).toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");

export function showPools(reg: Registry): Uint8Array {
  const cols: Column[] = [
    text("database"), text("user"), int8("cl_active"), int8("cl_waiting"), int8("cl_active_cancel_req"), int8("cl_waiting_cancel_req"),
    int8("sv_active"), int8("sv_active_cancel"), int8("sv_being_canceled"), int8("sv_idle"), int8("sv_used"), int8("sv_tested"), int8("sv_login"),
    int8("maxwait"), int8("maxwait_us"), text("pool_mode"),
    int8("cl_idle"), int8("sv_cleanup"), int8("prepared_statements_prepared"), int8("prepared_statements_hits"),
    int8("prepared_statements_misses"), int8("prepared_statements_evictions"),
    // Databases with several hosts have one pool per host: which host, and its role now ("" with one host).
    text("host"), text("role"),
  ];
  const rows: Cell[][] = snapshotAll(reg).map((s) => [
    s.database, s.user, s.cl_active, s.cl_waiting, 0, 0, s.sv_active, 0, 0, s.sv_idle, 0, 0, s.sv_login,
    Math.floor(s.maxwait_us / 1e6), s.maxwait_us % 1e6, s.pool_mode,
    s.cl_idle, s.sv_cleanup, s.prepared_statements_prepared, s.prepared_statements_hits, s.prepared_statements_misses, s.prepared_statements_evictions,
    s.host, s.role,
  ]);
  return resultSet(cols, rows);
}

export function showStats(reg: Registry, window: StatsWindow, which: "STATS" | "STATS_TOTALS" | "STATS_AVERAGES"): Uint8Array {
  const rows: Cell[][] = [];
  for (const [db, t] of totalsByDatabase(reg)) {
    const a = window.averages(db);
    if (which === "STATS_TOTALS") rows.push([db, ...TOTAL_KEYS.map((k) => t[k])]);
    else if (which === "STATS_AVERAGES") rows.push([db, ...TOTAL_KEYS.map((k) => a[k])]);
    else {
      rows.push([
        db, t.server_assignment_count, t.xact_count, t.query_count, t.bytes_received, t.bytes_sent, t.xact_time, t.query_time, t.wait_time,
        a.server_assignment_count, a.xact_count, a.query_count, a.bytes_received, a.bytes_sent, a.xact_time, a.query_time, a.wait_time,
      ]);
    }
  }
  if (which === "STATS") {
    const cols = [
      text("database"), int8("total_server_assignment_count"), int8("total_xact_count"), int8("total_query_count"), int8("total_received"), int8("total_sent"),
      int8("total_xact_time"), int8("total_query_time"), int8("total_wait_time"), int8("avg_server_assignment_count"), int8("avg_xact_count"),
      int8("avg_query_count"), int8("avg_recv"), int8("avg_sent"), int8("avg_xact_time"), int8("avg_query_time"), int8("avg_wait_time"),
    ];
    return resultSet(cols, rows);
  }
  return resultSet([text("database"), ...TOTAL_KEYS.map(int8)], rows);
}

const CONN_COLUMNS: Column[] = [
  text("type"), text("user"), text("database"), text("state"), text("addr"), int8("port"), text("local_addr"), int8("local_port"),
  text("connect_time"), text("request_time"), int8("wait"), int8("wait_us"), int8("close_needed"), text("ptr"), text("link"),
  int8("remote_pid"), text("tls"), text("application_name"), int8("prepared_statements"), int8("id"), text("replication"),
  // pgbun's own: 1 while session state (advisory lock, temporary table, WITH HOLD cursor) keeps the client on its server.
  int8("pinned"),
  // Databases with several hosts: the role of the server's host now ("" for clients and databases with one host).
  text("role"),
];

export function showClients(reg: Registry): Uint8Array {
  const now = performance.now();
  const rows: Cell[][] = [];
  for (const c of reg.clients) {
    const waitUs = c.state === "waiting" ? Math.round((now - c.waitStartedAt) * 1000) : 0;
    const sock = c.socket as unknown as { remotePort?: number; localPort?: number; localAddress?: string };
    // PgBouncer shows a Unix-socket client as address "unix".
    const unix = cameViaUnixSocket(c);
    rows.push([
      "C", c.user, c.database, clientState(c), unix ? "unix" : c.remote, unix ? 0 : (sock.remotePort ?? 0), unix ? "unix" : (sock.localAddress ?? ""), unix ? 0 : (sock.localPort ?? 0),
      ts(c.connectedAt), ts(c.connectedAt), Math.floor(waitUs / 1e6), waitUs % 1e6, 0, `c${c.id}`, c.server ? `s${c.server.id}` : "",
      c.pid, tlsLabel(c.socket as Socket<unknown>), c.wanted.get("application_name") ?? "", c.statements.size, c.id, replicationOf(c),
      c.pinned ? 1 : 0, "",
    ]);
  }
  return resultSet(CONN_COLUMNS, rows);
}

function clientState(c: ClientConn): string {
  switch (c.state) {
    case "active":
      return "active";
    case "waiting":
      return "waiting";
    case "login":
      return "login";
    default:
      return "idle";
  }
}

export function showServers(reg: Registry): Uint8Array {
  const rows: Cell[][] = [];
  for (const p of reg.pools.values()) {
    for (const s of p.servers) {
      const state = s.state === "connecting" ? "login" : s.state === "cleanup" ? "used" : s.state;
      const sock = s.socket as unknown as { localPort?: number; localAddress?: string } | null;
      rows.push([
        "S", s.target.user, p.spec.name, state, s.target.host, s.target.port, sock?.localAddress ?? "", sock?.localPort ?? 0,
        ts(s.createdAt), ts(s.createdAt), 0, 0, s.retire ? 1 : 0, `s${s.id}`, s.client ? `c${s.client.id}` : "",
        s.pid, serverTlsLabel(s), s.reported.get("application_name") ?? "", s.statements.size, s.id, "none",
        s.client?.pinned ? 1 : 0, p.spec.host?.role ?? "",
      ]);
    }
  }
  return resultSet(CONN_COLUMNS, rows);
}

export function showDatabases(reg: Registry, disabled: Set<string>): Uint8Array {
  const cols = [
    text("name"), text("host"), int8("port"), text("database"), text("force_user"), int8("pool_size"), int8("min_pool_size"), int8("reserve_pool"),
    text("pool_mode"), int8("max_connections"), int8("current_connections"), int8("paused"), int8("disabled"),
  ];
  const s = reg.settings;
  const rows: Cell[][] = [];
  // Databases made from the wildcard entry are listed by the name clients asked for, as PgBouncer lists them.
  const made = [...reg.autodbs.values()].map((a) => a.db).filter((d) => !reg.config.databases.has(d.name));
  for (const d of [...reg.config.databases.values(), ...made]) {
    let current = 0;
    let paused = false;
    for (const p of reg.pools.values()) {
      if (p.spec.name !== d.name) continue;
      current += p.servers.size;
      paused ||= p.paused;
    }
    // Several hosts are shown as libpq writes them: host:port,host:port.
    const host = d.hosts === undefined ? d.host : d.hosts.map(hostKey).join(",");
    rows.push([d.name, host, d.port, d.dbname, d.user ?? "", d.pool_size ?? s.default_pool_size, d.min_pool_size ?? s.min_pool_size, 0, d.pool_mode ?? "", 0, current, paused ? 1 : 0, disabled.has(d.name) ? 1 : 0]);
  }
  return resultSet(cols, rows);
}

/** Every user pgbun knows, as PgBouncer lists them: [users], auth_file, and those auth_query has found. */
function knownUsers(reg: Registry): string[] {
  return [...new Set([...reg.config.users.keys(), ...(reg.config.authFile?.keys() ?? []), ...reg.learned.keys()])];
}

export function showUsers(reg: Registry): Uint8Array {
  return resultSet([text("name"), text("pool_mode")], knownUsers(reg).map((name) => [name, reg.config.users.get(name)?.pool_mode ?? ""]));
}

export function showLists(reg: Registry): Uint8Array {
  let used = 0;
  let free = 0;
  let login = 0;
  let freeServers = 0;
  let usedServers = 0;
  for (const c of reg.clients) {
    if (c.state === "login") login++;
    else if (c.state === "active" || c.state === "waiting") used++;
    else free++;
  }
  for (const p of reg.pools.values()) {
    for (const s of p.servers) {
      if (s.state === "idle") freeServers++;
      else usedServers++;
    }
  }
  const rows: Cell[][] = [
    ["databases", reg.config.databases.size],
    ["users", knownUsers(reg).length],
    ["pools", reg.pools.size],
    ["free_clients", free],
    ["used_clients", used],
    ["login_clients", login],
    ["free_servers", freeServers],
    ["used_servers", usedServers],
    ["dns_names", 0],
    ["dns_zones", 0],
    ["dns_queries", 0],
    ["dns_pending", 0],
  ];
  return resultSet([text("list"), int8("items")], rows);
}

/** Settings a reload cannot change: they apply at the next start. */
const RESTART_ONLY = new Set(["listen", "workers", "unix_socket_dir", "unix_socket_mode"]);

export function showConfig(reg: Registry): Uint8Array {
  const rows: Cell[][] = [];
  const fmt = (v: unknown): string =>
    v === null ? "" : Array.isArray(v) ? v.join(",") : typeof v === "object" ? `${(v as { host: string }).host}:${(v as { port: number }).port}` : String(v);
  for (const [key, spec] of Object.entries(SETTINGS)) {
    const value = (reg.settings as unknown as Record<string, unknown>)[key];
    rows.push([key, fmt(value), fmt(spec.default), RESTART_ONLY.has(key) ? "no" : "yes"]);
  }
  return resultSet([text("key"), text("value"), text("default"), text("changeable")], rows);
}

export function showVersion(): Uint8Array {
  return resultSet([text("version")], [[`pgbun ${VERSION}`]]);
}
