// Reads the pools' live state and counters into one plain shape, shared by SHOW, /stats and /metrics.

import type { Pool } from "../pool/pool.ts";
import type { Registry } from "../pool/registry.ts";

export interface PoolSnapshot {
  database: string;
  user: string;
  pool_mode: string;
  pool_size: number;
  cl_active: number;
  cl_waiting: number;
  cl_idle: number;
  sv_active: number;
  sv_idle: number;
  sv_login: number;
  sv_cleanup: number;
  maxwait_us: number;
  total_xact_count: number;
  total_query_count: number;
  total_received: number;
  total_sent: number;
  total_xact_time_us: number;
  total_query_time_us: number;
  total_wait_time_us: number;
  total_server_assignment_count: number;
  total_server_assignment_fresh: number;
  server_connections_opened: number;
  server_connections_failed: number;
  server_connections_current: number;
  server_connections_peak: number;
  wait_timeouts: number;
  prepared_statements_prepared: number;
  prepared_statements_hits: number;
  prepared_statements_misses: number;
  prepared_statements_evictions: number;
  prepared_statements_replays: number;
  /** LISTEN in transaction mode: subscriptions held by the pool's listening connection (clients and HTTP streams). */
  listen_subscribers: number;
  notifications_delivered: number;
  notification_clients_dropped: number;
  /** Clients kept on their server by session state (advisory lock, temporary table, WITH HOLD cursor). */
  clients_pinned: number;
  paused: boolean;
  last_error: string;
  /** The host its servers go to (host:port). */
  host: string;
  /** Databases with several hosts: the host's role (primary, replica, unknown); "" for a database with one host. */
  role: string;
}

export function snapshotPool(p: Pool, nowMs = performance.now()): PoolSnapshot {
  let clActive = 0;
  let clWaiting = 0;
  let clIdle = 0;
  let clPinned = 0;
  let oldestWait = nowMs;
  for (const c of p.clients) {
    if (c.pinned) clPinned++;
    if (c.state === "active") clActive++;
    else if (c.state === "waiting") {
      clWaiting++;
      if (c.waitStartedAt < oldestWait) oldestWait = c.waitStartedAt;
    } else if (c.state === "idle") clIdle++;
  }
  let svActive = 0;
  let svIdle = 0;
  let svLogin = 0;
  let svCleanup = 0;
  for (const s of p.servers) {
    if (s.state === "active") svActive++;
    else if (s.state === "idle") svIdle++;
    else if (s.state === "connecting") svLogin++;
    else if (s.state === "cleanup") svCleanup++;
  }
  const st = p.stats;
  return {
    database: p.spec.name,
    user: p.spec.user,
    pool_mode: p.spec.mode,
    pool_size: p.spec.size,
    cl_active: clActive,
    cl_waiting: clWaiting,
    cl_idle: clIdle,
    sv_active: svActive,
    sv_idle: svIdle,
    sv_login: svLogin,
    sv_cleanup: svCleanup,
    maxwait_us: clWaiting > 0 ? Math.round((nowMs - oldestWait) * 1000) : 0,
    total_xact_count: st.xact_count,
    total_query_count: st.query_count,
    total_received: st.bytes_received,
    total_sent: st.bytes_sent,
    total_xact_time_us: st.xact_time_us,
    total_query_time_us: st.query_time_us,
    total_wait_time_us: st.wait_time_us,
    total_server_assignment_count: st.server_assignment_count,
    total_server_assignment_fresh: st.server_assignment_fresh,
    server_connections_opened: st.server_connections_opened,
    server_connections_failed: st.server_connections_failed,
    server_connections_current: p.servers.size,
    server_connections_peak: st.server_connections_peak,
    wait_timeouts: st.wait_timeouts,
    prepared_statements_prepared: st.prepared_statements_prepared,
    prepared_statements_hits: st.prepared_statements_hits,
    prepared_statements_misses: st.prepared_statements_misses,
    prepared_statements_evictions: st.prepared_statements_evictions,
    prepared_statements_replays: st.prepared_statements_replays,
    listen_subscribers: p.listenSubscribers,
    notifications_delivered: st.notifications_delivered,
    notification_clients_dropped: st.notification_clients_dropped,
    clients_pinned: clPinned,
    paused: p.paused,
    last_error: p.lastError,
    host: p.spec.host?.key ?? `${p.spec.target.host}:${p.spec.target.port}`,
    role: p.spec.host?.role ?? "",
  };
}

export function snapshotAll(reg: Registry): PoolSnapshot[] {
  const now = performance.now();
  return [...reg.pools.values()].map((p) => snapshotPool(p, now));
}

/** PgBouncer's STATS_TOTALS figures (times in microseconds). */
export interface Totals {
  server_assignment_count: number;
  xact_count: number;
  query_count: number;
  bytes_received: number;
  bytes_sent: number;
  xact_time: number;
  query_time: number;
  wait_time: number;
}

export const TOTAL_KEYS = ["server_assignment_count", "xact_count", "query_count", "bytes_received", "bytes_sent", "xact_time", "query_time", "wait_time"] as const;

export function zeroTotals(): Totals {
  return { server_assignment_count: 0, xact_count: 0, query_count: 0, bytes_received: 0, bytes_sent: 0, xact_time: 0, query_time: 0, wait_time: 0 };
}

/** Sums the pools of each database, as PgBouncer's SHOW STATS reports per database. */
export function totalsByDatabase(reg: Registry): Map<string, Totals> {
  const out = new Map<string, Totals>();
  for (const s of snapshotAll(reg)) {
    let t = out.get(s.database);
    if (t === undefined) out.set(s.database, (t = zeroTotals()));
    t.server_assignment_count += s.total_server_assignment_count;
    t.xact_count += s.total_xact_count;
    t.query_count += s.total_query_count;
    t.bytes_received += s.total_received;
    t.bytes_sent += s.total_sent;
    t.xact_time += s.total_xact_time_us;
    t.query_time += s.total_query_time_us;
    t.wait_time += s.total_wait_time_us;
  }
  return out;
}
