// Per-pool counters, named as PgBouncer's SHOW STATS columns, plus pgbun's own.

export class PoolStats {
  xact_count = 0;
  query_count = 0;
  /** Bytes received from clients / sent to clients. */
  bytes_received = 0;
  bytes_sent = 0;
  /** Microseconds spent in transactions and in queries (server linked / request outstanding). */
  xact_time_us = 0;
  query_time_us = 0;
  /** Microseconds clients waited for a server. */
  wait_time_us = 0;
  /** Times a server was linked to a client. */
  server_assignment_count = 0;
  /** Links whose server had never served a client before: the transactions that did not reuse a connection. */
  server_assignment_fresh = 0;
  server_connections_opened = 0;
  server_connections_failed = 0;
  server_connections_closed = 0;
  /** Most server connections open at once since start. */
  server_connections_peak = 0;
  client_connections_accepted = 0;
  wait_timeouts = 0;
  // Prepared statements in transaction/statement mode.
  prepared_statements_prepared = 0;
  prepared_statements_hits = 0;
  prepared_statements_misses = 0;
  prepared_statements_evictions = 0;
  /** prepare_unnamed: reused statements whose first use failed (DDL since), the client's messages then sent again. */
  prepared_statements_replays = 0;
  // LISTEN in transaction and statement mode.
  notifications_delivered = 0;
  /** Clients disconnected because their unread notifications passed the bound. */
  notification_clients_dropped = 0;
}
