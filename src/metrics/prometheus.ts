// Renders pgbun's counters in the Prometheus text exposition format, every name prefixed pgbun_.

import { serverTlsLabel } from "../backend/server-tls.ts";
import { clientEncrypted } from "../frontend/client-tls.ts";
import { tlsStats } from "../net/tls.ts";
import type { Registry } from "../pool/registry.ts";
import { hostMetrics } from "./host-metrics.ts";
import { snapshotAll, type PoolSnapshot } from "./snapshot.ts";

type Kind = "gauge" | "counter";

function esc(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"');
}

export function renderMetrics(reg: Registry, extra: { openClientSockets: number; uptimeSeconds: number }): string {
  const out: string[] = [];
  const pools = snapshotAll(reg);
  const family = (name: string, kind: Kind, help: string, samples: Array<[string, number]>) => {
    out.push(`# HELP pgbun_${name} ${help}`, `# TYPE pgbun_${name} ${kind}`);
    for (const [labels, value] of samples) out.push(`pgbun_${name}${labels} ${Number.isFinite(value) ? value : 0}`);
  };
  // A database with several hosts has one pool per host: the host label tells them apart.
  const labels = (p: PoolSnapshot, more = "") => `{database="${esc(p.database)}",user="${esc(p.user)}"${p.role === "" ? "" : `,host="${esc(p.host)}"`}${more}}`;
  const perPool = (name: string, kind: Kind, help: string, f: (p: PoolSnapshot) => number) =>
    family(name, kind, help, pools.map((p) => [labels(p), f(p)]));

  family("pool_client_connections", "gauge", "Client connections by state.", pools.flatMap((p) => [
    [labels(p, ',state="active"'), p.cl_active],
    [labels(p, ',state="waiting"'), p.cl_waiting],
    [labels(p, ',state="idle"'), p.cl_idle],
  ] as Array<[string, number]>));
  family("pool_server_connections", "gauge", "Server connections by state.", pools.flatMap((p) => [
    [labels(p, ',state="active"'), p.sv_active],
    [labels(p, ',state="idle"'), p.sv_idle],
    [labels(p, ',state="login"'), p.sv_login],
    [labels(p, ',state="cleanup"'), p.sv_cleanup],
  ] as Array<[string, number]>));
  perPool("pool_waiting_clients", "gauge", "Clients waiting for a server connection.", (p) => p.cl_waiting);
  perPool("pool_max_wait_seconds", "gauge", "How long the oldest waiting client has waited.", (p) => p.maxwait_us / 1e6);
  perPool("pool_size", "gauge", "Configured server connections per pool.", (p) => p.pool_size);
  perPool("pool_transactions_total", "counter", "Transactions completed.", (p) => p.total_xact_count);
  perPool("pool_queries_total", "counter", "Queries (requests answered with ReadyForQuery) completed.", (p) => p.total_query_count);
  perPool("pool_received_bytes_total", "counter", "Bytes received from clients.", (p) => p.total_received);
  perPool("pool_sent_bytes_total", "counter", "Bytes sent to clients.", (p) => p.total_sent);
  perPool("pool_transaction_seconds_total", "counter", "Time clients held a server connection.", (p) => p.total_xact_time_us / 1e6);
  perPool("pool_query_seconds_total", "counter", "Time requests were outstanding on a server.", (p) => p.total_query_time_us / 1e6);
  perPool("pool_wait_seconds_total", "counter", "Time clients waited for a server connection.", (p) => p.total_wait_time_us / 1e6);
  perPool("pool_server_assignments_total", "counter", "Times a server connection was linked to a client.", (p) => p.total_server_assignment_count);
  perPool("pool_server_connections_opened_total", "counter", "Server connections opened.", (p) => p.server_connections_opened);
  perPool("pool_server_connections_failed_total", "counter", "Server connections that failed to connect or log in.", (p) => p.server_connections_failed);
  perPool("pool_wait_timeouts_total", "counter", "Clients disconnected by query_wait_timeout.", (p) => p.wait_timeouts);
  perPool("pool_prepared_statements_prepared_total", "counter", "Statements prepared on servers by pgbun.", (p) => p.prepared_statements_prepared);
  perPool("pool_prepared_statements_hits_total", "counter", "Statement uses served by a server that already held the statement.", (p) => p.prepared_statements_hits);
  perPool("pool_prepared_statements_misses_total", "counter", "Statement uses that needed a re-prepare on the server.", (p) => p.prepared_statements_misses);
  perPool("pool_prepared_statements_evictions_total", "counter", "Statements closed to keep max_prepared_statements.", (p) => p.prepared_statements_evictions);
  perPool("pool_prepared_statements_replays_total", "counter", "prepare_unnamed: reused statements found stale at first use, the request then sent again as it was.", (p) => p.prepared_statements_replays);
  perPool("pool_listen_subscribers", "gauge", "LISTEN subscriptions served by the pool's listening connection.", (p) => p.listen_subscribers);
  perPool("pool_notifications_delivered_total", "counter", "Notifications delivered to clients and HTTP streams.", (p) => p.notifications_delivered);
  perPool("pool_notification_clients_dropped_total", "counter", "Listeners disconnected because their unread notifications passed the bound.", (p) => p.notification_clients_dropped);
  perPool("pool_clients_pinned", "gauge", "Clients kept on their server by session state (advisory lock, temporary table, WITH HOLD cursor).", (p) => p.clients_pinned);
  if (reg.clusters.size > 0) out.push(...hostMetrics(reg));
  const mem = process.memoryUsage();
  family("uptime_seconds", "gauge", "Seconds since pgbun started.", [["", extra.uptimeSeconds]]);
  family("process_resident_memory_bytes", "gauge", "Resident set size.", [["", mem.rss]]);
  family("process_heap_bytes", "gauge", "JavaScript heap in use.", [["", mem.heapUsed]]);
  let serverSockets = 0;
  for (const p of reg.pools.values()) serverSockets += p.servers.size;
  family("open_sockets", "gauge", "Open sockets by side.", [
    ['{side="client"}', extra.openClientSockets],
    ['{side="server"}', serverSockets],
  ]);
  let tlsClients = 0;
  for (const c of reg.clients) if (clientEncrypted(c)) tlsClients++;
  let tlsServers = 0;
  for (const p of reg.pools.values()) for (const s of p.servers) if (serverTlsLabel(s) !== "") tlsServers++;
  family("connections_by_encryption", "gauge", "Client and server connections with and without TLS.", [
    ['{side="client",tls="true"}', tlsClients],
    ['{side="client",tls="false"}', reg.clients.size - tlsClients],
    ['{side="server",tls="true"}', tlsServers],
    ['{side="server",tls="false"}', serverSockets - tlsServers],
  ]);
  family("tls_handshakes_total", "counter", "TLS handshakes since start, by side and outcome (failed: refused, aborted or a certificate rejected).", [
    ['{side="client",result="ok"}', tlsStats.clientHandshakes],
    ['{side="client",result="failed"}', tlsStats.clientHandshakeFailures],
    ['{side="server",result="ok"}', tlsStats.serverHandshakes],
    ['{side="server",result="failed"}', tlsStats.serverHandshakeFailures],
  ]);
  return out.join("\n") + "\n";
}
